"""Source text for a generated tree: `unparse`, and for people `to_source` (astor, annotations).

Text only ever comes from unparsing the tree. `unparse` writes exactly what
`ast.unparse` writes, byte for byte, for the closed set of nodes `astgen.emit`
makes; it is the text a compiled graph carries (`CompiledGraph.source`, its
artifact, vLLM's `generate_execution_code`). `--annotate` adds a comment after
each statement naming the FX node it stands for and the user's line.
"""

from __future__ import annotations

import ast
import copy
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from astgen import ir

if TYPE_CHECKING:
    from astgen.compiled import CompiledGraph

RENDERERS = ("unparse", "astor")

# ---------------------------------------------------------------- unparse
#
# `ast.unparse` is a general visitor: per node a method found by name, a
# precedence kept in a dict keyed by node, and one `write` per token. For a
# stitching module that was a third of a cold compile through vLLM's contract.
# This writer knows only the forms emit makes (module-level imports,
# assignments and one `def`; in the body `Assign`, `Delete`, `Return`; as
# expressions names, constants, calls, keywords, attributes, subscripts,
# slices, tuples, lists, dicts, starred names and the operators) and builds
# each expression's text as one string, passing the precedence down. Each
# rule below is `ast._Unparser`'s for that node; any other node, or a field
# emit never sets (annotations, decorators, type comments), gives up and the
# whole tree goes to `ast.unparse`, so the text is always what it would write.


class UnsupportedNode(ValueError):
    """A node outside the forms `unparse_subset` writes."""


# `ast._Precedence`'s values, in its order.
_TUPLE, _TEST, _NOT, _CMP, _EXPR, _FACTOR, _POWER, _ATOM = 2, 4, 7, 8, 9, 15, 16, 18
_BINARY_OPERATORS: dict[type[ast.operator], tuple[str, int]] = {
    ast.Add: ("+", 13),
    ast.Sub: ("-", 13),
    ast.Mult: ("*", 14),
    ast.MatMult: ("@", 14),
    ast.Div: ("/", 14),
    ast.Mod: ("%", 14),
    ast.LShift: ("<<", 12),
    ast.RShift: (">>", 12),
    ast.BitOr: ("|", 9),
    ast.BitXor: ("^", 10),
    ast.BitAnd: ("&", 11),
    ast.FloorDiv: ("//", 14),
    ast.Pow: ("**", _POWER),
}
_UNARY_OPERATORS: dict[type[ast.unaryop], tuple[str, int]] = {
    ast.Invert: ("~", _FACTOR),
    ast.Not: ("not ", _NOT),
    ast.UAdd: ("+", _FACTOR),
    ast.USub: ("-", _FACTOR),
}
_COMPARISONS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
# How `ast.unparse` writes an infinite float: a literal that overflows to it.
_INFINITY = "1e" + repr(sys.float_info.max_10_exp + 1)


class _Writer:
    """The text of one tree; `names` maps a name the tree reads to the text written in its place."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def _expression(self, node: Any, precedence: int = _TEST) -> str:
        """`node`'s text where the context binds as tightly as `precedence`."""
        kind = type(node)
        if kind is ast.Name:
            if self.names and type(node.ctx) is ast.Load:
                return self.names.get(node.id, node.id)
            return node.id  # type: ignore[no-any-return]
        writer = _EXPRESSIONS.get(kind)
        if writer is None:
            raise UnsupportedNode(kind.__name__)
        return writer(self, node, precedence)

    def _items(self, elements: list[Any]) -> str:
        """Elements separated by commas; a single one keeps its trailing comma."""
        if len(elements) == 1:
            return self._expression(elements[0]) + ","
        return ", ".join([self._expression(element) for element in elements])

    def _constant(self, node: ast.Constant, precedence: int) -> str:
        value = node.value
        if value is ...:
            return "..."
        if isinstance(value, tuple):
            raise UnsupportedNode("tuple constant")
        prefix = "u" if node.kind == "u" else ""
        if isinstance(value, (float, complex)):
            return prefix + repr(value).replace("inf", _INFINITY).replace("nan", f"({_INFINITY}-{_INFINITY})")
        return prefix + repr(value)

    def _call(self, node: ast.Call, precedence: int) -> str:
        parts = [self._expression(argument) for argument in node.args]
        for keyword in node.keywords:
            if type(keyword) is not ast.keyword:
                raise UnsupportedNode(type(keyword).__name__)
            value = self._expression(keyword.value)
            parts.append("**" + value if keyword.arg is None else keyword.arg + "=" + value)
        return self._expression(node.func, _ATOM) + "(" + ", ".join(parts) + ")"

    def _attribute(self, node: ast.Attribute, precedence: int) -> str:
        value = node.value
        # `3.real` does not parse: an int literal is followed by a space.
        space = " " if isinstance(value, ast.Constant) and isinstance(value.value, int) else ""
        return self._expression(value, _ATOM) + space + "." + node.attr

    def _subscript(self, node: ast.Subscript, precedence: int) -> str:
        key = node.slice
        inside = self._items(key.elts) if type(key) is ast.Tuple and key.elts else self._expression(key)
        return self._expression(node.value, _ATOM) + "[" + inside + "]"

    def _slice(self, node: ast.Slice, precedence: int) -> str:
        text = (self._expression(node.lower) if node.lower else "") + ":"
        if node.upper:
            text += self._expression(node.upper)
        if node.step:
            text += ":" + self._expression(node.step)
        return text

    def _tuple(self, node: ast.Tuple, precedence: int) -> str:
        elements = node.elts
        text = self._items(elements)
        return "(" + text + ")" if not elements or precedence > _TUPLE else text

    def _list(self, node: ast.List, precedence: int) -> str:
        return "[" + ", ".join([self._expression(element) for element in node.elts]) + "]"

    def _dict(self, node: ast.Dict, precedence: int) -> str:
        items = [
            "**" + self._expression(value, _EXPR)
            if key is None
            else self._expression(key) + ": " + self._expression(value)
            for key, value in zip(node.keys, node.values, strict=False)
        ]
        return "{" + ", ".join(items) + "}"

    def _starred(self, node: ast.Starred, precedence: int) -> str:
        return "*" + self._expression(node.value, _EXPR)

    def _binary(self, node: ast.BinOp, precedence: int) -> str:
        found = _BINARY_OPERATORS.get(type(node.op))
        if found is None:
            raise UnsupportedNode(type(node.op).__name__)
        symbol, own = found
        tighter = min(own + 1, _ATOM)
        # `**` groups to the right, every other operator to the left.
        left, right = (tighter, own) if own == _POWER else (own, tighter)
        text = self._expression(node.left, left) + " " + symbol + " " + self._expression(node.right, right)
        return "(" + text + ")" if precedence > own else text

    def _unary(self, node: ast.UnaryOp, precedence: int) -> str:
        found = _UNARY_OPERATORS.get(type(node.op))
        if found is None:
            raise UnsupportedNode(type(node.op).__name__)
        symbol, own = found
        text = symbol + self._expression(node.operand, own)
        return "(" + text + ")" if precedence > own else text

    def _compare(self, node: ast.Compare, precedence: int) -> str:
        text = self._expression(node.left, _CMP + 1)
        for op, comparator in zip(node.ops, node.comparators, strict=False):
            symbol = _COMPARISONS.get(type(op))
            if symbol is None:
                raise UnsupportedNode(type(op).__name__)
            text += " " + symbol + " " + self._expression(comparator, _CMP + 1)
        return "(" + text + ")" if precedence > _CMP else text

    def _statement(self, node: Any) -> str:
        """A simple statement's text, without indentation."""
        kind = type(node)
        if kind is ast.Assign:
            if node.type_comment is not None:
                raise UnsupportedNode("type comment")
            targets = node.targets
            if len(targets) == 1 and type(targets[0]) is ast.Name:
                fast = self._read_or_call(node.value)
                if fast is not None:
                    return self._name(targets[0]) + " = " + fast
            targets = [self._expression(target, _TUPLE) + " = " for target in node.targets]
            return "".join(targets) + self._expression(node.value)
        if kind is ast.Delete:
            targets = node.targets
            if all([type(target) is ast.Name for target in targets]):
                renames = self.names
                written = [
                    renames.get(target.id, target.id) if renames and type(target.ctx) is ast.Load else target.id
                    for target in targets
                ]
                return "del " + ", ".join(written)
            return "del " + ", ".join([self._expression(target) for target in targets])
        if kind is ast.Return:
            return "return " + self._expression(node.value) if node.value else "return"
        if kind is ast.Import:
            names = []
            for alias in node.names:
                if type(alias) is not ast.alias:
                    raise UnsupportedNode(type(alias).__name__)
                names.append(alias.name + " as " + alias.asname if alias.asname else alias.name)
            return "import " + ", ".join(names)
        raise UnsupportedNode(kind.__name__)

    def _name(self, node: ast.Name) -> str:
        """`_expression`'s text for a name."""
        if self.names and type(node.ctx) is ast.Load:
            return self.names.get(node.id, node.id)
        return node.id

    def _read_or_call(self, value: Any) -> str | None:
        """`_expression`'s text for `name[index]` (an int) or `name(name, ...)`, the values of
        most statements of a stitching function, written without a call per node; None for any other."""
        kind = type(value)
        if kind is ast.Subscript:
            container, key = value.value, value.slice
            if type(container) is not ast.Name or type(key) is not ast.Constant or type(key.value) is not int:
                return None
            if key.kind == "u":
                return None
            return self._name(container) + "[" + repr(key.value) + "]"
        if kind is not ast.Call or value.keywords or type(value.func) is not ast.Name:
            return None
        arguments = value.args
        if not all([type(argument) is ast.Name for argument in arguments]):
            return None
        names = self.names
        written = [
            names.get(argument.id, argument.id) if names and type(argument.ctx) is ast.Load else argument.id
            for argument in arguments
        ]
        return self._name(value.func) + "(" + ", ".join(written) + ")"

    def _parameter(self, parameter: ast.arg, default: Any) -> str:
        if type(parameter) is not ast.arg or parameter.annotation:
            raise UnsupportedNode("annotated parameter")
        return parameter.arg + "=" + self._expression(default) if default else parameter.arg

    def _arguments(self, node: ast.arguments) -> str:
        if type(node) is not ast.arguments or node.kwarg:
            raise UnsupportedNode("**kwargs")
        positional = node.posonlyargs + node.args
        defaults = [None] * (len(positional) - len(node.defaults)) + node.defaults
        parts = []
        for index, (parameter, default) in enumerate(zip(positional, defaults, strict=False), 1):
            parts.append(self._parameter(parameter, default))
            if index == len(node.posonlyargs):
                parts[-1] += ", /"
        if node.vararg or node.kwonlyargs:
            parts.append("*" + (self._parameter(node.vararg, None) if node.vararg else ""))
        parts += [
            self._parameter(parameter, default)
            for parameter, default in zip(node.kwonlyargs, node.kw_defaults, strict=False)
        ]
        return ", ".join(parts)

    def _definition(self, node: ast.FunctionDef) -> list[str]:
        if node.decorator_list or node.returns or node.type_comment is not None:
            raise UnsupportedNode("decorated, annotated or type-commented def")
        lines = ["def " + node.name + "(" + self._arguments(node.args) + "):"]
        lines += ["    " + self._statement(statement) for statement in node.body]
        return lines


_EXPRESSIONS: dict[type, Callable[[_Writer, Any, int], str]] = {
    ast.Constant: _Writer._constant,
    ast.Call: _Writer._call,
    ast.Attribute: _Writer._attribute,
    ast.Subscript: _Writer._subscript,
    ast.Slice: _Writer._slice,
    ast.Tuple: _Writer._tuple,
    ast.List: _Writer._list,
    ast.Dict: _Writer._dict,
    ast.Starred: _Writer._starred,
    ast.BinOp: _Writer._binary,
    ast.UnaryOp: _Writer._unary,
    ast.Compare: _Writer._compare,
}


Names = Sequence[Mapping[str, ast.expr]]
"""For each statement of a module, the names it reads that are written otherwise, and what is written."""


def unparse_subset(tree: ast.Module, names: Names = ()) -> str:
    """`ast.unparse(tree)` for a module of the forms emit makes; `UnsupportedNode` for any other.

    With `names`, each read of a name `names[i]` holds, in statement i, is
    written as its expression, as if that expression stood in the tree
    there. Only a name, a dotted name or a subscript of one with a constant
    (what vLLM's dialect writes for a global) may stand in: each writes the
    same at any precedence.
    """
    if type(tree) is not ast.Module or tree.type_ignores:
        raise UnsupportedNode("not a module without type ignores")
    plain = _Writer({})
    lines: list[str] = []
    for index, statement in enumerate(tree.body):
        replaced = names[index] if index < len(names) else None
        writer = plain
        if replaced:
            writer = _Writer({name: plain._expression(_atom(value), _ATOM) for name, value in replaced.items()})
        if type(statement) is ast.FunctionDef:
            if lines:
                lines.append("")  # `ast.unparse` sets a definition off with a blank line
            lines += writer._definition(statement)
        else:
            lines.append(writer._statement(statement))
    return "\n".join(lines)


def unparse(tree: ast.Module, names: Names = ()) -> str:
    """`ast.unparse(tree)`, byte for byte: by `unparse_subset` where it can, else by `ast.unparse`.

    `names` as for `unparse_subset`; `ast.unparse` then writes a copy of the
    tree with each of those reads replaced.
    """
    try:
        return unparse_subset(tree, names)
    except UnsupportedNode:
        return ast.unparse(_replaced(tree, names) if names else tree)


def _atom(node: ast.expr) -> ast.expr:
    """`node`, checked to be a form that writes the same at any precedence."""
    inner = node.value if type(node) is ast.Subscript and type(node.slice) is ast.Constant else node
    while type(inner) is ast.Attribute:
        inner = inner.value
    if type(inner) is not ast.Name:
        raise ValueError(f"a name may be replaced by a name, a dotted name or a subscript of one, not {ast.dump(node)}")
    return node


class _Replacer(ast.NodeTransformer):
    def __init__(self, names: Mapping[str, ast.expr]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.names and isinstance(node.ctx, ast.Load):
            return copy.deepcopy(_atom(self.names[node.id]))
        return node


def _replaced(tree: ast.Module, names: Names) -> ast.Module:
    body = [
        _Replacer(names[index]).visit(copy.deepcopy(statement)) if index < len(names) else statement
        for index, statement in enumerate(tree.body)
    ]
    return ast.Module(body=body, type_ignores=tree.type_ignores)


# ---------------------------------------------------------------- for people


def _renderer(name: str) -> Callable[[ast.AST], str]:
    if name == "unparse":
        return ast.unparse
    if name == "astor":
        import astor  # type: ignore[import-untyped]

        return lambda node: str(astor.to_source(node, indent_with="    ")).rstrip("\n")
    raise ValueError(f"unknown renderer {name!r}; choose one of {', '.join(RENDERERS)}")


def _comment(instructions: Sequence[ir.Instruction]) -> str:
    """`  # node <- user line` for the instructions one statement stands for."""
    origins = [instruction.origin for instruction in instructions if instruction.origin is not None]
    if not origins:
        return ""
    # Several instructions of one statement may come from one node (an exported
    # program's output is a call of its output processing and the return).
    text = ", ".join(dict.fromkeys(origin.node for origin in origins))
    lines = [" ".join(origin.source_line.split()) for origin in origins if origin.source_line]
    if lines:
        text += " <- " + "; ".join(dict.fromkeys(lines))
    return "  # " + _printable(text)


def _printable(text: str) -> str:
    """`text` unchanged when every character prints, else its repr.

    Node names and stack traces are anyone's text: a line break in a comment
    (any that `str.splitlines` knows, \\x85 and \\u2028 included) would end it
    and make the rest a statement; NUL and lone surrogates break parsing and
    printing. Each of these is a character `str.isprintable` rejects.
    """
    return text if text.isprintable() else repr(text)


def to_source(
    tree: ast.Module | CompiledGraph,
    function: ir.Function | None = None,
    *,
    renderer: str = "unparse",
    annotate: bool = False,
) -> str:
    """`tree` (or a `CompiledGraph`'s tree) as source text. With `annotate`,
    `function` (the IR the tree was emitted from; a `CompiledGraph` brings its
    own) supplies a comment at the end of each statement."""
    if not isinstance(tree, ast.AST):
        function = tree.ir
        tree = tree.tree
    unguarded = _renderer(renderer)

    def render(node: ast.AST) -> str:
        with ir.too_deep_is_an_error(function, "render the source of"):
            return unguarded(node)

    if not annotate:
        return render(tree) + "\n"
    if function is None:
        raise ValueError("annotate needs the IR function the tree was emitted from")
    definition = tree.body[-1] if tree.body else None
    if not isinstance(definition, ast.FunctionDef):
        raise ValueError("expected a module ending in a function definition")
    # Statements before the def (bound constants) are rendered as they are,
    # in the renderer's own layout: only the function body is annotated.
    header = copy.copy(definition)
    header.body = [ast.Pass()]
    shell = copy.copy(tree)
    shell.body = [*tree.body[:-1], header]
    lines = render(shell).splitlines()[:-1]
    # Statement i stands for instruction i; the last statement also for any
    # instruction left over (`v = <expr>; return v` is emitted `return <expr>`).
    last = len(definition.body) - 1
    for index, statement in enumerate(definition.body):
        # The renderer indents the statement itself, under an `if` it leaves
        # out: indenting its lines here would indent the inside of a string
        # astor writes over several lines. The comment goes after the last
        # line, which ends the statement, so it can never land in a string.
        block = ast.If(test=ast.Constant(True), body=[statement], orelse=[])
        rendered = render(block).splitlines()[1:]
        rendered[-1] += _comment(function.body[index:] if index == last else function.body[index : index + 1])
        lines += rendered
    return "\n".join(lines) + "\n"
