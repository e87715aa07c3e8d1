"""What code text from elsewhere may hold, checked on its tree before any of it runs.

Code text arrives from a cache file or another process: astgen's own
artifacts, vLLM's generated code of today, and the code of the seed
generator it replaced. `check` walks the parsed module and accepts only the
forms those generators write; every other node is refused with a
`CodegenError` naming its line. Deny by default, allow by name, as
`ast.literal_eval` and RestrictedPython do.

A module holds, in this order:
  * `import torch` / `import operator`;
  * prelude assignments `name = __astgen_pieces__[i]`, `name = __astgen_consts__[i]`
    or `name = <a dotted name in torch or operator>`;
  * vLLM's inlined pieces `def __vllm_inlined_submods__N(...)`, and exactly one
    other function, the entry.
A function's parameters have no annotations and no `**`; a default is an
expression of the same forms. Its body holds `Assign`, `Delete` and `Return`
only. Its expressions are literals, names it binds, prelude names,
`__vllm_consts__[i]`, `__vllm_submods__[i]` (vLLM's entry only), a short list
of builtins (`astgen.importable.SAFE_BUILTINS`), tuples, lists, dicts,
subscripts and slices, operators, calls, dotted names that `astgen.importable`
resolves to a torch operator or tensor function, and attributes and method
calls on the function's own values, with names that do not start with `_`
(or are an operator's dunder method, `importable.SAFE_DUNDER_METHODS`).
No attribute and no module-level name starts with `_`, unless it is one of
the tables above; a local name may (vLLM names locals after FX nodes such as
`_to_copy`), if it is no dunder. A dotted name is judged by the object it
reaches, so `torch.ops.aten._to_copy.default` passes where
`torch.serialization.os.system` does not.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from astgen import importable, ir
from astgen.errors import CodegenError, a_or_an

VLLM_SUBMODS = "__vllm_submods__"
VLLM_CONSTS = "__vllm_consts__"
_INLINED = re.compile(r"__vllm_inlined_submods__\d+")
_PRELUDE_TABLES = (ir.PIECES_TABLE, ir.CONSTS_TABLE)
# Names with a meaning of their own in the text; nothing may rebind them.
_RESERVED = importable.SAFE_BUILTINS | set(importable.ROOTS) | {VLLM_SUBMODS, VLLM_CONSTS, *_PRELUDE_TABLES}

_BINARY = (
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.MatMult,
    ast.LShift,
    ast.RShift,
    ast.BitAnd,
    ast.BitOr,
    ast.BitXor,
)


@dataclass
class Checked:
    """What a verified module reads from outside: the tables a loader must fill, by index."""

    entry: str
    # `__vllm_submods__` is a keyword-only parameter of the entry: bind it with `functools.partial`.
    takes_vllm_submods: bool = False
    pieces: set[int] = field(default_factory=set)
    consts: set[int] = field(default_factory=set)
    vllm_submods: set[int] = field(default_factory=set)
    vllm_consts: set[int] = field(default_factory=set)


def _refuse(node: ast.AST, message: str) -> CodegenError:
    line = getattr(node, "lineno", None)
    return CodegenError(f"code text, line {line}: {message}" if line else f"code text: {message}")


def _plain_name(node: ast.AST, name: str, what: str) -> None:
    if not name.isidentifier() or name.startswith("_"):
        raise _refuse(node, f"{what} {name!r} starts with '_' or is no identifier")


def _index(node: ast.expr) -> int | None:
    """`i` of `table[i]` where `i` is a non-negative int literal."""
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        return node.value
    return None


def _dotted(node: ast.expr) -> str | None:
    """`torch.ops.aten.mm.default` as text, for a chain of attributes on a plain name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or not parts:
        return None
    return ".".join([node.id, *reversed(parts)])


class _Function:
    """The checks for one function: its own names and what it may read.

    With no definition, the checks for expressions evaluated at module level
    (defaults), which have no names of their own.
    """

    def __init__(self, checker: _Checker, definition: ast.FunctionDef | None, *, entry: bool) -> None:
        self.checker = checker
        self.definition = definition
        self.entry = entry
        self.locals: set[str] = set()
        self.vllm_submods = False

    # ------------------------------------------------------------ statements

    def check(self) -> None:
        definition = self.definition
        assert definition is not None, "the module scope holds no statements to check"
        if definition.decorator_list:
            raise _refuse(definition, "a function has decorators")
        if definition.returns is not None or definition.type_comment:
            raise _refuse(definition, "a function has annotations")
        if getattr(definition, "type_params", None):
            raise _refuse(definition, "a function has type parameters")
        arguments = definition.args
        if arguments.posonlyargs or arguments.kwarg is not None:
            raise _refuse(definition, "a function takes positional-only or ** parameters")
        for default in [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]:
            # Defaults are evaluated where the def runs: they read module names only.
            self.checker.module_scope.expression(default)
        params = [*arguments.args, *([arguments.vararg] if arguments.vararg else []), *arguments.kwonlyargs]
        for param in params:
            if param.annotation is not None or param.type_comment:
                raise _refuse(param, "a parameter has an annotation")
            if param.arg == VLLM_SUBMODS and self.entry and param in arguments.kwonlyargs:
                self.vllm_submods = True
                continue
            self.bind(param, param.arg)
        if self.vllm_submods:
            index = arguments.kwonlyargs.index(next(a for a in arguments.kwonlyargs if a.arg == VLLM_SUBMODS))
            if arguments.kw_defaults[index] is not None:
                raise _refuse(definition, f"{VLLM_SUBMODS} has a default")
        # Every name the body binds is a local from the start, as Python scopes it.
        for statement in definition.body:
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    for name in self.targets(target):
                        self.bind(name, name.id)
        if not definition.body:
            raise _refuse(definition, "a function has no body")
        for statement in definition.body:
            self.statement(statement)

    def bind(self, node: ast.AST, name: str) -> None:
        # vLLM names locals after FX nodes (`_to_copy`): a local reaches
        # nothing outside, so one leading underscore is fine, a dunder is not.
        if not name.isidentifier() or name.startswith("__"):
            raise _refuse(node, f"name {name!r} is a dunder or no identifier")
        # A local may share a function's name (the function never reads
        # itself), not a prelude name: the body would read the wrong object.
        if name in _RESERVED or name in self.checker.prelude_names:
            raise _refuse(node, f"name {name!r} would shadow a name the text reads from outside")
        self.locals.add(name)

    def targets(self, target: ast.expr) -> list[ast.Name]:
        if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
            return [target]
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(target.ctx, ast.Store):
            names = []
            for element in target.elts:
                if not isinstance(element, ast.Name):
                    raise _refuse(element, "an assignment unpacks into something other than names")
                names.append(element)
            return names
        raise _refuse(target, f"assignment to a {type(target).__name__}")

    def statement(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.Assign):
            if len(statement.targets) != 1 or statement.type_comment:
                raise _refuse(statement, "chained assignment")
            self.expression(statement.value)
        elif isinstance(statement, ast.Delete):
            for target in statement.targets:
                if not (isinstance(target, ast.Name) and target.id in self.locals):
                    raise _refuse(target, "del of something other than the function's own names")
        elif isinstance(statement, ast.Return):
            if statement.value is not None:
                self.expression(statement.value)
        else:
            raise _refuse(statement, f"a function holds {a_or_an(type(statement).__name__)} statement")

    # ------------------------------------------------------------ expressions

    def expression(self, node: ast.expr) -> None:
        if isinstance(node, ast.Constant):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            self.name(node)
        elif isinstance(node, (ast.Tuple, ast.List)) and isinstance(node.ctx, ast.Load):
            for element in node.elts:
                self.expression(element)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    raise _refuse(node, "a dict display unpacks a mapping")
                self.expression(key)
                self.expression(value)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if not self.table_read(node):
                self.expression(node.value)
                self.key(node.slice)
        elif isinstance(node, ast.UnaryOp):
            self.expression(node.operand)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, _BINARY):
                raise _refuse(node, f"operator {type(node.op).__name__}")
            self.expression(node.left)
            self.expression(node.right)
        elif isinstance(node, ast.Compare):
            self.expression(node.left)
            for comparator in node.comparators:
                self.expression(comparator)
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            self.attribute(node)
        else:
            raise _refuse(node, f"{type(node).__name__} is not allowed")

    def key(self, node: ast.expr) -> None:
        if isinstance(node, ast.Slice):
            for part in (node.lower, node.upper, node.step):
                if part is not None:
                    self.expression(part)
        elif isinstance(node, ast.Tuple):
            for element in node.elts:
                self.key(element)
        else:
            self.expression(node)

    def name(self, node: ast.Name) -> None:
        name = node.id
        if name in self.locals or name in self.checker.module_names:
            return
        if name in importable.SAFE_BUILTINS and name != "getattr":
            return
        if name in _RESERVED:
            raise _refuse(node, f"{name!r} is read in a way the text may not use it")
        raise _refuse(node, f"{name!r} is not defined by the text")

    def table_read(self, node: ast.Subscript) -> bool:
        """`__vllm_consts__[i]`, or `__vllm_submods__[i]` in vLLM's entry: recorded, True; other subscripts False."""
        if not isinstance(node.value, ast.Name) or node.value.id not in (VLLM_CONSTS, VLLM_SUBMODS):
            return False
        index = _index(node.slice)
        if index is None:
            raise _refuse(node, f"{node.value.id} is indexed by something other than an int literal")
        if node.value.id == VLLM_CONSTS:
            self.checker.result.vllm_consts.add(index)
        elif self.vllm_submods:
            self.checker.result.vllm_submods.add(index)
        else:
            raise _refuse(node, f"{VLLM_SUBMODS} is read by a function that does not take it")
        return True

    def call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "getattr":
            self.getattr_call(node)
            return
        self.callee(node.func)
        for argument in node.args:
            self.expression(argument.value if isinstance(argument, ast.Starred) else argument)
        for keyword in node.keywords:
            # `f(**{'not-an-identifier': v})` is how astgen passes such a keyword.
            if keyword.arg is None and not isinstance(keyword.value, ast.Dict):
                raise _refuse(keyword.value, "** of something other than a dict display")
            self.expression(keyword.value)

    def callee(self, func: ast.expr) -> None:
        if isinstance(func, ast.Name):
            if func.id in self.locals:
                raise _refuse(func, f"the function calls its own value {func.id!r}")
            self.name(func)
        elif isinstance(func, ast.Attribute):
            self.attribute(func)
        elif isinstance(func, ast.Subscript) and isinstance(func.value, ast.Name) and func.value.id == VLLM_SUBMODS:
            self.table_read(func)
        elif isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "getattr":
            self.getattr_call(func)
        else:
            raise _refuse(func, f"a call of {a_or_an(type(func).__name__)}")

    def getattr_call(self, node: ast.Call) -> None:
        """`getattr(value, 'name')`: how astgen reads an attribute whose name is no identifier."""
        if len(node.args) != 2 or node.keywords:
            raise _refuse(node, "getattr takes a value and a literal name")
        obj, name = node.args
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)) or name.value.startswith("_"):
            raise _refuse(node, "getattr of a name that is not a literal or starts with '_'")
        self.receiver(obj)

    def attribute(self, node: ast.Attribute) -> None:
        dotted = _dotted(node)
        if dotted is not None and dotted.partition(".")[0] in importable.ROOTS:
            self.checker.resolve(node, dotted)
            return
        if node.attr.startswith("_") and node.attr not in importable.SAFE_DUNDER_METHODS:
            raise _refuse(node, f"attribute {node.attr!r} starts with '_'")
        self.receiver(node.value)

    def receiver(self, node: ast.expr) -> None:
        """What an attribute or method is read on: the function's own values or the prelude's objects."""
        if isinstance(node, ast.Name) and (node.id in self.locals or node.id in self.checker.prelude_names):
            return
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == VLLM_CONSTS:
            self.table_read(node)
            return
        # What the receiver holds may be refused for itself (`__import__('os').system`): say that first.
        self.expression(node)
        raise _refuse(node, "an attribute of something other than the function's values or the prelude's objects")


class _Checker:
    def __init__(self, entry: str | None) -> None:
        self.wanted_entry = entry
        self.prelude_names: set[str] = set()
        self.module_names: set[str] = set()
        self.module_scope = _Function(self, None, entry=False)
        self.result = Checked(entry="")

    def resolve(self, node: ast.AST, dotted: str) -> None:
        try:
            importable.resolve(dotted)
        except LookupError as error:
            raise _refuse(node, str(error)) from None

    def module(self, tree: ast.Module) -> Checked:
        definitions: list[ast.FunctionDef] = []
        seen_def = False
        for statement in tree.body:
            if isinstance(statement, ast.Import):
                if seen_def or self.prelude_names:
                    raise _refuse(statement, "an import after the prelude began")
                for alias in statement.names:
                    if alias.name not in importable.ROOTS or alias.asname is not None:
                        raise _refuse(statement, f"import of {alias.name!r}: only torch and operator are imported")
            elif isinstance(statement, ast.Assign):
                if seen_def:
                    raise _refuse(statement, "a module-level assignment after a function")
                self.prelude(statement)
            elif isinstance(statement, ast.FunctionDef):
                seen_def = True
                name = statement.name
                if name in self.module_names:
                    raise _refuse(statement, f"{name!r} is defined twice")
                if not _INLINED.fullmatch(name):
                    _plain_name(statement, name, "function name")
                    if name in _RESERVED:
                        raise _refuse(statement, f"function name {name!r} shadows a name the text reads")
                self.module_names.add(name)
                definitions.append(statement)
            else:
                raise _refuse(statement, f"a module holds {a_or_an(type(statement).__name__)} statement")
        entries = [d for d in definitions if not _INLINED.fullmatch(d.name)]
        if self.wanted_entry is not None:
            entries = [d for d in entries if d.name == self.wanted_entry]
            if len(entries) != 1:
                raise CodegenError(f"code text does not define {self.wanted_entry!r}")
        elif len(entries) != 1:
            raise CodegenError(f"code text defines {len(entries)} functions besides inlined pieces; expected one")
        self.result.entry = entries[0].name
        for definition in definitions:
            checks = _Function(self, definition, entry=definition is entries[0])
            checks.check()
            if checks.vllm_submods:
                self.result.takes_vllm_submods = True
        return self.result

    def prelude(self, statement: ast.Assign) -> None:
        if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
            raise _refuse(statement, "a prelude assignment binds one name")
        name = statement.targets[0].id
        _plain_name(statement, name, "name")
        if name in _RESERVED or name in self.module_names:
            raise _refuse(statement, f"name {name!r} is bound twice or shadows a name the text reads")
        value = statement.value
        if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name) and value.value.id in _PRELUDE_TABLES:
            index = _index(value.slice)
            if index is None:
                raise _refuse(value, f"{value.value.id} is indexed by something other than an int literal")
            (self.result.pieces if value.value.id == ir.PIECES_TABLE else self.result.consts).add(index)
        else:
            dotted = _dotted(value)
            if dotted is None:
                raise _refuse(value, "a prelude assignment reads a table slot or a dotted name in torch or operator")
            self.resolve(value, dotted)
        self.prelude_names.add(name)
        self.module_names.add(name)


def check(tree: ast.Module, entry: str | None = None) -> Checked:
    """Verify `tree` against the allow-list; what it reads from outside.

    `entry` names the function to load (vLLM's `execution_fn`); by default
    the module's one function that is not an inlined piece. Raises
    `CodegenError` naming the line of the first form it refuses.
    """
    if not isinstance(tree, ast.Module):
        raise CodegenError("code text is not a module")
    try:
        return _Checker(entry).module(tree)
    except RecursionError:
        raise CodegenError("code text nests too deeply to check") from None
