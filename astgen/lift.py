"""Stage 5a: code text from elsewhere becomes astgen's IR: parse, then lift statement by statement.

The loader's language is the IR's. A text is parsed, and each statement is
lifted into the instructions lowering makes from an FX graph: call a piece,
an operator, a listed function or a tensor method; read an attribute or an
item; an operator; unpack; delete; return. Literals, tuples, lists, dicts and
slices become operands. The result is checked by the IR verifier, emitted
by astgen's emitter and compiled from that tree: the foreign tree is never
compiled, so nothing the IR cannot say can run. Every other form is a
`CodegenError` naming the text's line.

Three dialects are accepted, all of them written by generators of stitching
code:

* astgen's own (`astgen.emit`): `import torch`, a prelude binding each global
  once (`submod_0_fn = __astgen_pieces__[0]`, `float64 = __astgen_consts__[0]`,
  `aten_mm_default = torch.ops.aten.mm.default`), then the function;
* vLLM's of today: `__vllm_submods__[i](...)` calls through a keyword-only
  parameter of the entry, `__vllm_consts__[i]` reads, dotted names in the
  body, and `def __vllm_inlined_submods__N(...)` functions, whose bodies
  the lift splices into the entry at each call, as lowering splices a
  piece;
* the seed generator's, which vLLM's took over: the same without consts.

What a name may stand for is judged by the object it reaches, found without
running anything (`astgen.importable`, which also documents each table):

* a callee is a piece (a table slot: the caller's callable), an operator or
  listed function reached by a dotted name, a builtin of
  `importable.SAFE_BUILTINS` (not `getattr`), an inlined function, or a
  constant the caller supplies (the victim's object, checked at bind:
  `callable_const`). A local value is never called, and a literal never
  has a method called on it;
* a method call on a value names a method of `importable.TENSOR_METHODS`;
  an attribute read one of `importable.TENSOR_ATTRIBUTES`, also written
  `getattr(value, 'name')`; neither on a piece or a named object;
* no call passes `key=` (the builtins that take it would call it);
* a parameter default is a literal or a constant-table global: nothing runs
  when the function is defined.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from astgen import importable, ir
from astgen.errors import CodegenError, VerifyError, a_or_an
from astgen.names import Namespace, is_identifier

VLLM_SUBMODS = "__vllm_submods__"
VLLM_CONSTS = "__vllm_consts__"
_INLINED = re.compile(r"__vllm_inlined_submods__\d+")
# The builtins a text may call by name: `getattr` only in its literal form.
CALLABLE_BUILTINS = importable.SAFE_BUILTINS - {"getattr"}
# No name of the text may be one of these: the lifted function reads builtins
# and its globals by name, and `torch`/`operator` are the roots of dotted names.
_RESERVED = frozenset(vars(builtins)) | set(importable.ROOTS) | {ir.PIECES_TABLE, ir.CONSTS_TABLE, VLLM_CONSTS}
_MAX_SPLICE_DEPTH = 8
# The objects a dotted name may stand for as a value, not a callee.
_NAMED_VALUES = (torch.dtype, torch.layout, torch.memory_format)

_BINARY = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "truediv",
    ast.FloorDiv: "floordiv",
    ast.Mod: "mod",
    ast.Pow: "pow",
    ast.MatMult: "matmul",
    ast.LShift: "lshift",
    ast.RShift: "rshift",
    ast.BitAnd: "and_",
    ast.BitOr: "or_",
    ast.BitXor: "xor",
}
_UNARY = {ast.USub: "neg", ast.UAdd: "pos", ast.Invert: "invert", ast.Not: "not_"}
_COMPARE = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}


# ---------------------------------------------------------------- where each global comes from


@dataclass(frozen=True, slots=True)
class PieceSlot:
    """Slot `index` of the pieces table: the caller's callable for `piece_names[index]`."""

    index: int


@dataclass(frozen=True, slots=True)
class ConstSlot:
    """Slot `index` of the consts table; checked at bind: `called` when the text calls it,
    `enum` when it is given to an operator as a dtype, layout or memory format."""

    index: int
    called: bool = False
    enum: bool = False


@dataclass(frozen=True, slots=True)
class Named:
    """An object the text names by a dotted path, resolved by `importable.resolve`."""

    path: str


Source = PieceSlot | ConstSlot | Named


@dataclass(frozen=True)
class Lifted:
    """A verified IR function and, by global slot, where its caller finds each global."""

    function: ir.Function
    sources: tuple[Source, ...]
    # What the text calls each piece slot, where it says: astgen's prelude name
    # (`<target>_fn`), vLLM's result name (the node's, which FX names after the
    # target). For checking the order of piece names.
    piece_hints: tuple[tuple[int, str], ...] = ()


def _refuse(node: ast.AST | None, message: str) -> CodegenError:
    line = getattr(node, "lineno", None)
    return CodegenError(f"code text, line {line}: {message}" if line else f"code text: {message}")


# ---------------------------------------------------------------- literals


def _literal(node: ast.expr) -> object:
    """The value of a literal as `emit` writes one (`-1.5`, `1e309`, `0.0 - 2j`); raises LookupError otherwise."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = node.operand
        number: Any = inner.value if isinstance(inner, ast.Constant) else None
        if type(number) in (int, float, complex):
            return -number if isinstance(node.op, ast.USub) else +number
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, (ast.Add, ast.Sub))
        and isinstance(node.right, ast.Constant)
        and type(node.right.value) is complex
        and node.right.value.real == 0
    ):
        real = _literal(node.left)
        if type(real) is float:
            imaginary = node.right.value.imag
            return complex(real, imaginary if isinstance(node.op, ast.Add) else -imaginary)
    raise LookupError


def _const(node: ast.expr) -> ir.Const | None:
    try:
        value = _literal(node)
    except LookupError:
        return None
    if not ir.is_exact_literal(value):
        raise _refuse(node, f"literal {type(value).__name__} is not one astgen writes exactly")
    return ir.Const(value)


def _index(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        return node.value
    return None


def _dotted(node: ast.expr) -> str | None:
    """`torch.ops.aten.mm.default` as text, for a chain of attributes on a root name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or not parts or node.id not in importable.ROOTS:
        return None
    return ".".join([node.id, *reversed(parts)])


def _contains_mutable(operand: ir.Operand) -> bool:
    if isinstance(operand, (ir.ListOf, ir.DictOf)):
        return True
    if isinstance(operand, (ir.TupleOf, ir.NamedTupleOf)):
        return any(_contains_mutable(item) for item in operand.items)
    return False


# ---------------------------------------------------------------- the module


@dataclass
class _Module:
    """What the text's module level binds: globals by name, inlined functions, the entry."""

    trusted_namespaces: tuple[str, ...]
    names: Namespace
    globals: dict[str, ir.Global] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    by_source: dict[Source, ir.Global] = field(default_factory=dict)
    inlined: dict[str, ast.FunctionDef] = field(default_factory=dict)
    piece_hints: list[tuple[int, str]] = field(default_factory=list)

    def bind(self, source: Source, hint: str) -> ir.Global:
        """The global for `source`; one per source, named after `hint` where that is free."""
        key = ConstSlot(source.index) if isinstance(source, ConstSlot) else source
        found = self.by_source.get(key)
        if found is not None:
            return found
        made = ir.Global(
            self.names.fresh(hint),
            len(self.sources),
            str(source.index) if isinstance(source, PieceSlot) else None,
            source.path if isinstance(source, Named) else None,
        )
        self.sources.append(source)
        self.by_source[key] = made
        return made

    def named(self, node: ast.expr, dotted: str) -> ir.Global:
        try:
            importable.resolve(dotted, self.trusted_namespaces)
        except LookupError as error:
            raise _refuse(node, str(error)) from None
        return self.bind(Named(dotted), re.sub(r"\W", "_", dotted.removeprefix("torch.ops.")))

    def call_const(self, g: ir.Global) -> None:
        source = self.sources[g.slot]
        if isinstance(source, ConstSlot):
            self.sources[g.slot] = dataclasses.replace(source, called=True)

    def enum_const(self, g: ir.Global) -> None:
        source = self.sources[g.slot]
        if isinstance(source, ConstSlot):
            self.sources[g.slot] = dataclasses.replace(source, enum=True)


class _Scope:
    """The names one function of the text binds, each to an operand."""

    def __init__(self, takes_submods: bool) -> None:
        self.names: dict[str, ir.Operand] = {}
        self.takes_submods = takes_submods


class _Lifter:
    def __init__(self, module: _Module) -> None:
        self.module = module
        self.body: list[ir.Instruction] = []
        self.splicing: list[str] = []
        # The scopes of the function being lifted and of the pieces spliced into it, innermost last.
        self.scopes: list[_Scope] = []

    # ------------------------------------------------------------ names

    def value(self, name: str) -> ir.Value:
        return ir.Value(self.module.names.claim(name))

    def temporary(self) -> ir.Value:
        return ir.Value(self.module.names.fresh("tmp"))

    def read(self, node: ast.Name, scope: _Scope) -> ir.Operand:
        name = node.id
        if name in scope.names:
            return scope.names[name]
        found = self.module.globals.get(name)
        if found is not None:
            if isinstance(self.module.sources[found.slot], PieceSlot):
                raise _refuse(node, f"piece {name!r} is read as a value; a piece is only called")
            return found
        if name in CALLABLE_BUILTINS:
            return ir.Builtin(name)
        raise _refuse(node, f"{name!r} is not a value the text defines")

    def store(self, node: ast.expr, scope: _Scope) -> str:
        if not isinstance(node, ast.Name):
            raise _refuse(node, f"assignment to {a_or_an(type(node).__name__)}")
        name = node.id
        _check_local_name(node, name)
        if name in self.module.globals or name in self.module.inlined:
            raise _refuse(node, f"local {name!r} shadows a module-level name")
        return name

    # ------------------------------------------------------------ functions

    def parameters(self, definition: ast.FunctionDef, scope: _Scope, *, entry: bool) -> list[ir.Param]:
        arguments = definition.args
        if definition.decorator_list or definition.returns is not None or getattr(definition, "type_params", None):
            raise _refuse(definition, "a decorator, return annotation or type parameter")
        if arguments.posonlyargs or arguments.kwarg is not None:
            raise _refuse(definition, "positional-only or ** parameters")
        params: list[ir.Param] = []
        positional_defaults = [None] * (len(arguments.args) - len(arguments.defaults)) + list(arguments.defaults)
        for argument, default in zip(arguments.args, positional_defaults, strict=True):
            params.append(self.parameter(argument, default, scope))
        if arguments.vararg is not None:
            params.append(self.parameter(arguments.vararg, None, scope, variadic=True))
        for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
            if entry and argument.arg == VLLM_SUBMODS and default is None and argument.annotation is None:
                # vLLM's entry reads its pieces through this parameter; the lifted one reads globals.
                scope.takes_submods = True
                continue
            if arguments.vararg is None:
                raise _refuse(argument, "a keyword-only parameter without a starred one")
            params.append(self.parameter(argument, default, scope))
        return params

    def parameter(self, argument: ast.arg, default: ast.expr | None, scope: _Scope, variadic: bool = False) -> ir.Param:
        if argument.annotation is not None:
            raise _refuse(argument, "a parameter annotation")
        _check_local_name(argument, argument.arg)
        if argument.arg in scope.names or argument.arg in self.module.globals:
            raise _refuse(argument, f"parameter {argument.arg!r} is bound twice")
        value = self.value(argument.arg)
        scope.names[argument.arg] = value
        return ir.Param(value, None if default is None else self.default(default), variadic, _origin(argument))

    def default(self, node: ast.expr) -> ir.Const | ir.Global:
        const = _const(node)
        if const is not None:
            return const
        if isinstance(node, ast.Name):
            found = self.module.globals.get(node.id)
            if found is not None and not isinstance(self.module.sources[found.slot], PieceSlot):
                return found
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == VLLM_CONSTS:
            # vLLM's dialect: the default is read from the constants table once, when the def runs.
            index = _index(node.slice)
            if index is not None:
                return self.module.bind(ConstSlot(index), "const")
        raise _refuse(node, f"a parameter default is a literal, a constant of the prelude or {VLLM_CONSTS}[i]")

    def statements(self, definition: ast.FunctionDef, scope: _Scope) -> ir.Operand:
        """Lift a function's body; the operand its one `return`, its last statement, gives."""
        body = definition.body
        if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
            raise _refuse(definition, f"function {definition.name!r} does not end in a return of a value")
        for statement in body[:-1]:
            if isinstance(statement, ast.Assign):
                self.assign(statement, scope)
            elif isinstance(statement, ast.Delete):
                self.delete(statement, scope)
            else:
                raise _refuse(statement, f"{a_or_an(type(statement).__name__)} statement")
        returned = body[-1]
        assert returned.value is not None
        # Read once, by the return or by the one name a splice binds it to (which builds it once then).
        return self.expression(returned.value, scope)

    def assign(self, statement: ast.Assign, scope: _Scope) -> None:
        if len(statement.targets) != 1:
            raise _refuse(statement, "a chained assignment")
        (target,) = statement.targets
        if isinstance(target, ast.Tuple):
            names = [self.store(element, scope) for element in target.elts]
            if len(set(names)) != len(names):
                raise _refuse(statement, "a name bound twice in one unpacking")
            self.unpack(statement, names, scope)
            return
        name = self.store(target, scope)
        operand = self.expression(statement.value, scope, result_name=name)
        scope.names[name] = self.materialized(operand, statement)

    def unpack(self, statement: ast.Assign, names: list[str], scope: _Scope) -> None:
        value = statement.value
        if isinstance(value, ast.Call) and not (isinstance(value.func, ast.Name) and _INLINED.fullmatch(value.func.id)):
            results = tuple(self.value(name) for name in names)
            self.call(value, scope, results)
            for name, result in zip(names, results, strict=True):
                scope.names[name] = result
            return
        source = self.expression(value, scope)
        if isinstance(source, ir.TupleOf):
            if len(source.items) != len(names):
                raise _refuse(statement, f"unpacks {len(names)} names from a tuple of {len(source.items)}")
            for name, item in zip(names, source.items, strict=True):
                scope.names[name] = self.materialized(item, statement)
            return
        if not isinstance(source, ir.Value):
            raise _refuse(statement, "unpacks something that is not a value")
        unpacked = tuple(self.value(name) for name in names)
        self.body.append(ir.Unpack(unpacked, source, _origin(statement)))
        for name, result in zip(names, unpacked, strict=True):
            scope.names[name] = result

    def delete(self, statement: ast.Delete, scope: _Scope) -> None:
        freed: list[ir.Value] = []
        for target in statement.targets:
            if not isinstance(target, ast.Name) or target.id not in scope.names:
                raise _refuse(target, "deletes something that is not a local name")
            operand = scope.names.pop(target.id)
            if isinstance(operand, ir.Value) and operand not in freed and not self.aliased(operand):
                freed.append(operand)
        if freed:
            self.body.append(ir.Delete(tuple(freed), _origin(statement)))

    def aliased(self, value: ir.Value) -> bool:
        """Whether a name still bound, in this function or one it is spliced into, reads `value`."""
        return any(value in ir.operand_values(operand) for scope in self.scopes for operand in scope.names.values())

    def materialized(self, operand: ir.Operand, node: ast.AST) -> ir.Operand:
        """`operand`, with each list and dict display built once into a value of its own:
        a name for a display is read as the one object Python built, however often it is read."""
        if isinstance(operand, ir.ListOf):
            built = self.temporary()
            self.body.append(
                ir.CallFunction(built, ir.Builtin("list"), (ir.TupleOf(operand.items),), (), _origin(node))
            )
            return built
        if isinstance(operand, ir.DictOf):
            built = self.temporary()
            self.body.append(ir.CallFunction(built, ir.Builtin("dict"), (operand,), (), _origin(node)))
            return built
        if isinstance(operand, ir.TupleOf) and _contains_mutable(operand):
            return ir.TupleOf(tuple(self.materialized(item, node) for item in operand.items))
        return operand

    # ------------------------------------------------------------ expressions

    def expression(self, node: ast.expr, scope: _Scope, result_name: str | None = None) -> ir.Operand:
        """`node` as an operand; a computation in it becomes an instruction whose result is the operand."""
        const = _const(node)
        if const is not None:
            return const
        if isinstance(node, ast.Name):
            return self.read(node, scope)
        if isinstance(node, (ast.Tuple, ast.List)):
            if isinstance(node.ctx, ast.Store):
                raise _refuse(node, "a nested target")
            items = tuple(self.operand(element, scope) for element in node.elts)
            return ir.TupleOf(items) if isinstance(node, ast.Tuple) else ir.ListOf(items)
        if isinstance(node, ast.Dict):
            if any(key is None for key in node.keys):
                raise _refuse(node, "** in a dict display")
            return ir.DictOf(
                tuple(
                    (self.operand(key, scope), self.operand(item, scope))
                    for key, item in zip(node.keys, node.values, strict=True)
                    if key is not None
                )
            )
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == VLLM_CONSTS:
            index = _index(node.slice)
            if index is None:
                raise _refuse(node, f"{VLLM_CONSTS} is indexed by something other than an int literal")
            return self.module.bind(ConstSlot(index), "const")
        if isinstance(node, ast.Call):
            sliced = self.slice_call(node, scope)
            if sliced is not None:
                return sliced
        result = ir.Value(self.module.names.claim(result_name)) if result_name is not None else self.temporary()
        spliced = self.computation(node, scope, result)
        return result if spliced is None else spliced

    def operand(self, node: ast.expr, scope: _Scope) -> ir.Operand:
        """An argument or an item of a display: the namedtuple `emit` rebuilds there is an operand too."""
        if isinstance(node, ast.Starred):
            raise _refuse(node, "*value outside a call's arguments")
        if isinstance(node, ast.Call) and _plain_call(node) and node.func.id not in scope.names:  # type: ignore[attr-defined]
            found = self.module.globals.get(node.func.id)  # type: ignore[attr-defined]
            if found is not None and isinstance(self.module.sources[found.slot], ConstSlot):
                self.module.call_const(found)
                return ir.NamedTupleOf(found, tuple(self.operand(argument, scope) for argument in node.args))
        return self.expression(node, scope)

    def slice_call(self, node: ast.Call, scope: _Scope) -> ir.SliceOf | None:
        """`slice(a, b, c)`, as `emit` writes a slice outside a subscript."""
        func = node.func
        if not _plain_call(node) or func.id != "slice" or func.id in scope.names or not 1 <= len(node.args) <= 3:  # type: ignore[attr-defined]
            return None
        parts = [self.operand(argument, scope) for argument in node.args]
        none = ir.Const(None)
        start, stop, step = (none, parts[0], none) if len(parts) == 1 else (*parts, none, none)[:3]
        return ir.SliceOf(start, stop, step)

    def key(self, node: ast.expr, scope: _Scope) -> ir.Operand:
        if isinstance(node, ast.Slice):
            parts = [
                ir.Const(None) if part is None else self.operand(part, scope)
                for part in (node.lower, node.upper, node.step)
            ]
            return ir.SliceOf(*parts)
        if isinstance(node, ast.Tuple):
            return ir.TupleOf(tuple(self.key(element, scope) for element in node.elts))
        return self.operand(node, scope)

    def computation(self, node: ast.expr, scope: _Scope, result: ir.Value) -> ir.Operand | None:
        """Append the instruction computing `node` into `result`; for a spliced call, the operand it gives."""
        origin = _origin(node)
        if isinstance(node, ast.Call):
            return self.call(node, scope, result)
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                raise _refuse(node, f"operator {type(node.op).__name__}")
            args = (self.operand(node.left, scope), self.operand(node.right, scope))
            self.body.append(ir.Operator(result, op, args, origin))
        elif isinstance(node, ast.UnaryOp):
            self.body.append(ir.Operator(result, _UNARY[type(node.op)], (self.operand(node.operand, scope),), origin))
        elif isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
                raise _refuse(node, "a chained comparison or one of is/in")
            args = (self.operand(node.left, scope), self.operand(node.comparators[0], scope))
            self.body.append(ir.Operator(result, _COMPARE[type(node.ops[0])], args, origin))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            container = self.operand(node.value, scope)
            key = self.key(node.slice, scope)
            folded = _folded_item(container, key)
            if folded is not None:
                return folded
            self.body.append(ir.GetItem(result, self.receiver(node.value, container), key, origin))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            dotted = _dotted(node)
            if dotted is not None:
                # The seed generator wrote a dtype (or layout) by its repr; a function is named only to be called.
                named = self.module.named(node, dotted)
                if not isinstance(importable.resolve(dotted, self.module.trusted_namespaces), _NAMED_VALUES):
                    raise _refuse(node, "a dotted name used as a value; only calls name functions")
                return named
            self.attribute(node, node.attr, self.operand(node.value, scope), result)
        else:
            raise _refuse(node, f"{type(node).__name__} is not in the loader's language")
        return None

    def receiver(self, node: ast.expr, operand: ir.Operand) -> ir.Operand:
        """What an item, attribute or method is read on: values and constants the caller supplies."""
        if isinstance(operand, ir.Value) or (
            isinstance(operand, ir.Global) and isinstance(self.module.sources[operand.slot], ConstSlot)
        ):
            return operand
        if isinstance(operand, (ir.TupleOf, ir.ListOf, ir.DictOf)) and not isinstance(node, ast.Attribute):
            return operand
        raise _refuse(node, "an attribute or method of something that is not a value or a constant")

    def attribute(self, node: ast.expr, attribute: str, obj: ir.Operand, result: ir.Value) -> None:
        if attribute not in importable.TENSOR_ATTRIBUTES:
            raise _refuse(node, f"attribute {attribute!r} is not one a value may be read for")
        if not isinstance(obj, (ir.Value, ir.Global)):
            raise _refuse(node, "an attribute of a literal")
        self.body.append(ir.GetAttr(result, self.receiver(node, obj), attribute, _origin(node)))

    # ------------------------------------------------------------ calls

    def call(self, node: ast.Call, scope: _Scope, result: ir.Result) -> ir.Operand | None:
        func, origin = node.func, _origin(node)
        if isinstance(func, ast.Name) and func.id == "getattr" and func.id not in scope.names:
            if len(node.args) != 2 or node.keywords or not isinstance(node.args[1], ast.Constant):
                raise _refuse(node, "getattr takes a value and a literal name")
            name = node.args[1].value
            if not isinstance(name, str) or not isinstance(result, ir.Value):
                raise _refuse(node, "getattr takes a value and a literal name")
            self.attribute(node, name, self.operand(node.args[0], scope), result)
            return None
        if isinstance(func, ast.Name) and _INLINED.fullmatch(func.id) and func.id not in scope.names:
            return self.splice(node, func.id, scope, result)
        args, kwargs = self.arguments(node, scope)
        if isinstance(func, ast.Attribute) and _dotted(func) is None:
            method = func.attr
            if method not in importable.TENSOR_METHODS:
                raise _refuse(func, f"method {method!r} is not one a value may be called for")
            receiver = self.operand(func.value, scope)
            if isinstance(receiver, (ir.Const, ir.TupleOf, ir.ListOf, ir.DictOf, ir.SliceOf)):
                raise _refuse(func, "a method of a literal")
            self.body.append(ir.CallMethod(result, self.receiver(func, receiver), method, args, kwargs, origin))
            return None
        callee = self.callee(func, scope)
        source = self.module.sources[callee.slot] if isinstance(callee, ir.Global) else None
        if isinstance(source, Named) and source.path.startswith("torch.ops."):
            self.enum_arguments(node, source.path, args, kwargs)
        if isinstance(callee, ir.Global) and isinstance(self.module.sources[callee.slot], PieceSlot):
            # No order hint from the result's name: vLLM names it after the FX node, which
            # need not be named after the piece it calls, so a hint there refused valid text.
            self.body.append(ir.CallModule(result, callee, callee.name, args, kwargs, origin))
        else:
            self.body.append(ir.CallFunction(result, callee, args, kwargs, origin))
        return None

    def callee(self, func: ast.expr, scope: _Scope) -> ir.Global | ir.Builtin:
        if isinstance(func, ast.Name):
            if func.id in scope.names:
                raise _refuse(func, f"the function calls its own value {func.id!r}")
            found = self.module.globals.get(func.id)
            if found is not None:
                self.module.call_const(found)
                return found
            if func.id in CALLABLE_BUILTINS:
                return ir.Builtin(func.id)
            raise _refuse(func, f"{func.id!r} is not a function the text may call")
        dotted = _dotted(func)
        if dotted is not None:
            return self.module.named(func, dotted)
        if isinstance(func, ast.Subscript) and isinstance(func.value, ast.Name) and func.value.id == VLLM_SUBMODS:
            index = _index(func.slice)
            if index is None or not scope.takes_submods:
                raise _refuse(func, f"{VLLM_SUBMODS} read by a function that does not take it, or by a computed index")
            return self.module.bind(PieceSlot(index), f"submod_{index}_fn")
        raise _refuse(func, f"a call of {a_or_an(type(func).__name__)}")

    def enum_arguments(self, node: ast.Call, path: str, args: tuple[ir.Operand, ...], kwargs: ir.Kwargs) -> None:
        """An operator's dtype, layout and memory format arguments are named or the caller's constants.

        Through `torch.ops` each is an int underneath, and an int out of range
        crashes the process (`empty.memory_format([2], dtype=100000)`): so no
        value the function computes and no literal may stand there.
        """
        positions, names = _enum_parameters(path, self.module.trusted_namespaces)
        if not positions and not names:
            return
        given: list[tuple[int | str, ir.Operand]] = [
            (index, arg) for index, arg in enumerate(args) if index in positions
        ]
        given += [(key, value) for key, value in kwargs if key in names]
        if any(isinstance(arg, ir.Starred) for arg in args):
            raise _refuse(node, "* arguments to an operator that takes a dtype, layout or memory format")
        for where, operand in given:
            if isinstance(operand, ir.Const) and operand.value is None:
                continue
            if isinstance(operand, ir.Global) and isinstance(self.module.sources[operand.slot], Named):
                continue
            if isinstance(operand, ir.Global) and isinstance(self.module.sources[operand.slot], ConstSlot):
                self.module.enum_const(operand)
                continue
            raise _refuse(node, f"argument {where!r} of {path} is a dtype, layout or memory format: name it")

    def arguments(self, node: ast.Call, scope: _Scope) -> tuple[tuple[ir.Operand, ...], ir.Kwargs]:
        args: list[ir.Operand] = []
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                starred = self.expression(argument.value, scope)
                if not isinstance(starred, ir.Value):
                    raise _refuse(argument, "* of something that is not a value")
                args.append(ir.Starred(starred))
            else:
                args.append(self.operand(argument, scope))
        kwargs: list[tuple[str, ir.Operand]] = []
        for keyword in node.keywords:
            if keyword.arg is not None:
                kwargs.append((keyword.arg, self.operand(keyword.value, scope)))
                continue
            # `f(**{'not-an-identifier': v})` is how astgen passes such a keyword.
            mapping = keyword.value
            if not isinstance(mapping, ast.Dict) or not all(
                isinstance(key, ast.Constant) and type(key.value) is str for key in mapping.keys
            ):
                raise _refuse(keyword.value, "** of something other than a dict display with string keys")
            for key, item in zip(mapping.keys, mapping.values, strict=True):
                kwargs.append((key.value, self.operand(item, scope)))  # type: ignore[union-attr]
        names = [key for key, _ in kwargs]
        if "key" in names and not _keeps_key(node.func, scope):
            # `sorted`, `max`, `min` and `list.sort` would call it.
            raise _refuse(node, "a key= argument to a builtin or a method, which would call it")
        if len(set(names)) != len(names):
            raise _refuse(node, "a keyword given twice")
        return tuple(args), tuple(kwargs)

    def splice(self, node: ast.Call, name: str, scope: _Scope, result: ir.Result) -> ir.Operand:
        """A vLLM inlined piece's body in place of its call; the operand it returns."""
        definition = self.module.inlined.get(name)
        if definition is None:
            raise _refuse(node, f"{name!r} is not defined by the text")
        if name in self.splicing or len(self.splicing) >= _MAX_SPLICE_DEPTH:
            raise _refuse(node, f"{name!r} calls itself")
        if not isinstance(result, ir.Value):
            raise _refuse(node, "an inlined piece's result is unpacked in its call")
        arguments = definition.args
        if arguments.vararg or arguments.kwonlyargs or arguments.kwarg or arguments.posonlyargs or arguments.defaults:
            raise _refuse(definition, "an inlined piece takes plain parameters only")
        if definition.decorator_list or definition.returns is not None:
            raise _refuse(definition, "a decorator or return annotation")
        args, kwargs = self.arguments(node, scope)
        parameters = [argument.arg for argument in arguments.args]
        if len(args) > len(parameters) or any(isinstance(arg, ir.Starred) for arg in args):
            raise _refuse(node, f"{name!r} is called with arguments it does not take")
        bound = dict(zip(parameters, args, strict=False))
        for key, value in kwargs:
            if key not in parameters or key in bound:
                raise _refuse(node, f"{name!r} is called with keyword {key!r} it does not take")
            bound[key] = value
        if set(bound) != set(parameters):
            raise _refuse(node, f"{name!r} is called without all of its parameters")
        inner = _Scope(takes_submods=False)
        for argument in arguments.args:
            if argument.annotation is not None:
                raise _refuse(argument, "a parameter annotation")
            _check_local_name(argument, argument.arg)
            inner.names[argument.arg] = self.materialized(bound[argument.arg], node)
        self.splicing.append(name)
        self.scopes.append(inner)
        try:
            returned = self.statements(definition, inner)
        finally:
            self.scopes.pop()
            self.splicing.pop()
        return returned


def _keeps_key(func: ast.expr, scope: _Scope) -> bool:
    """Whether a callee takes `key=` as data: a global (a piece, constant or named function), not a builtin or method."""
    if isinstance(func, ast.Name):
        return func.id not in CALLABLE_BUILTINS or func.id in scope.names
    return _dotted(func) is not None or isinstance(func, ast.Subscript)


_ENUM_TYPES = ("ScalarType", "Layout", "MemoryFormat")


@functools.cache
def _enum_parameters(path: str, trusted_namespaces: tuple[str, ...]) -> tuple[frozenset[int], frozenset[str]]:
    """The positions and names of an operator's dtype, layout and memory-format parameters,
    over every overload a packet may pick."""
    obj = importable.resolve(path, trusted_namespaces)
    if isinstance(obj, torch._ops.OpOverload):
        schemas = [obj._schema]
    else:
        schemas = torch._C._jit_get_schemas_for_operator(obj._qualified_op_name)  # type: ignore[attr-defined]
    positions: set[int] = set()
    names: set[str] = set()
    for schema in schemas:
        for index, argument in enumerate(schema.arguments):
            if any(kind in str(argument.real_type) for kind in _ENUM_TYPES):
                names.add(argument.name)
                if not argument.kwarg_only:
                    positions.add(index)
    return frozenset(positions), frozenset(names)


def _plain_call(node: ast.Call) -> bool:
    """A call of a bare name with positional arguments only."""
    return (
        isinstance(node.func, ast.Name) and not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
    )


def _folded_item(container: ir.Operand, key: ir.Operand) -> ir.Operand | None:
    """`container[key]` for a tuple the text built and a constant index: the item itself."""
    if not isinstance(container, ir.TupleOf) or not isinstance(key, ir.Const) or type(key.value) is not int:
        return None
    index = key.value
    return container.items[index] if -len(container.items) <= index < len(container.items) else None


def _origin(node: ast.AST) -> ir.Origin:
    return ir.Origin(f"line {getattr(node, 'lineno', '?')}")


def bindable(name: str) -> bool:
    """Whether the text may bind `name`: an identifier, and not a builtin's, a table's or a dunder."""
    return is_identifier(name) and name not in _RESERVED and not (name.startswith("__") and name.endswith("__"))


def _check_local_name(node: ast.AST, name: str) -> None:
    if not bindable(name):
        raise _refuse(node, f"name {name!r} is a builtin's, a table's, a dunder or no identifier")


# ---------------------------------------------------------------- the module level


def _prelude(statement: ast.Assign, module: _Module) -> None:
    if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
        raise _refuse(statement, "a prelude assignment binds one name")
    name = statement.targets[0].id
    _check_local_name(statement, name)
    if name in module.globals or name in module.inlined:
        raise _refuse(statement, f"name {name!r} is bound twice")
    value = statement.value
    if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name):
        table, index = value.value.id, _index(value.slice)
        if table in (ir.PIECES_TABLE, ir.CONSTS_TABLE):
            if index is None:
                raise _refuse(value, f"{table} is indexed by something other than an int literal")
            source: Source = PieceSlot(index) if table == ir.PIECES_TABLE else ConstSlot(index)
            module.names.give([name])
            if module.by_source.get(source) is not None:
                raise _refuse(statement, f"{table}[{index}] is bound twice")
            made = ir.Global(name, len(module.sources), str(index) if table == ir.PIECES_TABLE else None)
            if table == ir.PIECES_TABLE:
                # astgen binds a piece's slot to `<target>_fn` (`names.piece_name`).
                module.piece_hints.append((index, name.removesuffix("_fn")))
            module.sources.append(source)
            module.by_source[source] = made
            module.globals[name] = made
            return
    dotted = _dotted(value)
    if dotted is None:
        raise _refuse(value, "a prelude assignment reads a table slot or names a torch or operator object")
    try:
        importable.resolve(dotted, module.trusted_namespaces)
    except LookupError as error:
        raise _refuse(value, str(error)) from None
    module.names.give([name])
    made = ir.Global(name, len(module.sources), None, dotted)
    module.sources.append(Named(dotted))
    module.globals[name] = made


def nodes(root: ast.AST) -> list[ast.AST]:
    """`ast.walk(root)`'s nodes in its order (breadth first), as a list, in a third of its time:
    `ast.walk` is generators within generators, and a lift walks every text."""
    found = [root]
    append = found.append
    for node in found:  # the list grows as it is read: first in, first out
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        append(item)
            elif isinstance(value, ast.AST):
                append(value)
    return found


class _TextNamespace(Namespace):
    """A `Namespace` that reserves every name of `tree`, walked only when a fresh name is first asked for.

    Most texts a fuzz run sends are mutants the lift refuses before it wants
    a fresh name: the walk was a third of their lift. Reserving at the first
    `fresh` (or `release`) leaves `taken` as reserving up front would: the
    names given before it are in it either way.
    """

    def __init__(self, tree: ast.Module) -> None:
        super().__init__()
        self._unwalked: ast.Module | None = tree

    def _reserve(self) -> None:
        if self._unwalked is not None:
            self.taken |= _all_names(self._unwalked)
            self._unwalked = None

    def fresh(self, base: str) -> str:
        self._reserve()
        return super().fresh(base)

    def release(self, name: str) -> None:
        self._reserve()
        super().release(name)


def _all_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    # By exact type: `ast.parse` makes no subclasses.
    for node in nodes(tree):
        if type(node) is ast.Name:
            names.add(node.id)
        elif type(node) is ast.arg:
            names.add(node.arg)
        elif type(node) is ast.FunctionDef:
            names.add(node.name)
    return names


def lift(
    code: str, entry: str | None = None, *, trusted_namespaces: tuple[str, ...] = (), filename: str = "<text>"
) -> Lifted:
    """Parse `code` and lift its entry function into verified IR.

    `entry` names the function to lift (vLLM's `execution_fn`); by default
    the module's one function that is not an inlined piece.
    `trusted_namespaces` adds operator namespaces to `aten` and `prims`.
    Raises `CodegenError` naming the line of the first form the IR cannot say.
    """
    if not isinstance(code, str):
        raise TypeError(f"code text must be a str, not {type(code).__name__}")
    try:
        tree = ast.parse(code, filename=filename)
    except SyntaxError as error:
        raise CodegenError(f"code text does not parse: {error.msg} (line {error.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise CodegenError(f"code text does not parse: {error}") from None
    try:
        return _lift_module(tree, entry, tuple(trusted_namespaces))
    except RecursionError:
        raise CodegenError("code text nests too deeply to lift") from None


def _lift_module(tree: ast.Module, entry: str | None, trusted_namespaces: tuple[str, ...]) -> Lifted:
    module = _Module(trusted_namespaces, _TextNamespace(tree))
    definitions: list[ast.FunctionDef] = []
    for statement in tree.body:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.name not in importable.ROOTS or alias.asname is not None:
                    raise _refuse(statement, f"import of {alias.name!r}: only torch and operator, as themselves")
        elif isinstance(statement, ast.Assign):
            _prelude(statement, module)
        elif isinstance(statement, ast.FunctionDef):
            if statement.name in module.globals or any(d.name == statement.name for d in definitions):
                raise _refuse(statement, f"{statement.name!r} is defined twice")
            if _INLINED.fullmatch(statement.name):
                module.inlined[statement.name] = statement
            else:
                _check_local_name(statement, statement.name)
            definitions.append(statement)
        else:
            raise _refuse(statement, f"a module-level {type(statement).__name__} statement")
    entries = [d for d in definitions if d.name not in module.inlined]
    if entry is not None:
        entries = [d for d in entries if d.name == entry]
        if len(entries) != 1:
            raise CodegenError(f"code text does not define {entry!r}")
    elif len(entries) != 1:
        raise CodegenError(f"code text defines {len(entries)} functions besides inlined pieces; expected one")
    (definition,) = entries
    if definition.name in module.globals:
        raise _refuse(definition, f"{definition.name!r} is defined twice")
    module.names.give([definition.name])
    function = _lift_entry(_Lifter(module), definition)
    # An inlined piece no call reaches is lifted on its own too: every text is in the language, run or not.
    reached = _reached(definition, module)
    for name, inlined in module.inlined.items():
        if name not in reached:
            _lift_unreached(module, inlined)
    try:
        ir.verify(function)
    except VerifyError as error:
        raise CodegenError(f"code text: {error.reason}") from None
    return Lifted(function, tuple(module.sources), tuple(module.piece_hints))


def _lift_entry(lifter: _Lifter, definition: ast.FunctionDef) -> ir.Function:
    scope = _Scope(takes_submods=False)
    lifter.scopes = [scope]
    params = lifter.parameters(definition, scope, entry=True)
    returned = lifter.statements(definition, scope)
    lifter.body.append(ir.Return(returned, _origin(definition.body[-1])))
    return ir.Function(definition.name, tuple(params), tuple(lifter.body), tuple(_module_globals(lifter.module)))


def _module_globals(module: _Module) -> list[ir.Global]:
    every = {g.slot: g for g in (*module.by_source.values(), *module.globals.values())}
    return [every[slot] for slot in sorted(every)]


def _reached(definition: ast.FunctionDef, module: _Module) -> set[str]:
    """The inlined pieces a call reaches from `definition`, directly or through other pieces.

    One walk of each function reached: asking piece by piece walked the
    entry once per piece, quadratic in a text's size (9 s at 3,000 nodes).
    """
    reached = {definition.name}
    frontier = [definition] if module.inlined else []
    while frontier:
        current = frontier.pop()
        for node in nodes(current):
            callee = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
            if callee in module.inlined and callee not in reached:
                reached.add(callee)
                frontier.append(module.inlined[callee])
    return reached


def _lift_unreached(module: _Module, definition: ast.FunctionDef) -> None:
    lifter = _Lifter(module)
    scope = _Scope(takes_submods=False)
    lifter.scopes = [scope]
    lifter.splicing = [definition.name]
    for argument in definition.args.args:
        _check_local_name(argument, argument.arg)
        scope.names[argument.arg] = lifter.value(argument.arg)
    if definition.args.vararg or definition.args.kwonlyargs or definition.args.kwarg or definition.args.defaults:
        raise _refuse(definition, "an inlined piece takes plain parameters only")
    lifter.statements(definition, scope)
