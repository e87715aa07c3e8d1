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
from collections.abc import Callable, Sequence
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


def _expression(node: Any, precedence: int = _TEST) -> str:
    """`node`'s text where the context binds as tightly as `precedence`."""
    kind = type(node)
    if kind is ast.Name:
        return node.id  # type: ignore[no-any-return]
    writer = _EXPRESSIONS.get(kind)
    if writer is None:
        raise UnsupportedNode(kind.__name__)
    return writer(node, precedence)


def _items(elements: list[Any]) -> str:
    """Elements separated by commas; a single one keeps its trailing comma."""
    if len(elements) == 1:
        return _expression(elements[0]) + ","
    return ", ".join([_expression(element) for element in elements])


def _constant(node: ast.Constant, precedence: int) -> str:
    value = node.value
    if value is ...:
        return "..."
    if isinstance(value, tuple):
        raise UnsupportedNode("tuple constant")
    prefix = "u" if node.kind == "u" else ""
    if isinstance(value, (float, complex)):
        return prefix + repr(value).replace("inf", _INFINITY).replace("nan", f"({_INFINITY}-{_INFINITY})")
    return prefix + repr(value)


def _call(node: ast.Call, precedence: int) -> str:
    parts = [_expression(argument) for argument in node.args]
    for keyword in node.keywords:
        if type(keyword) is not ast.keyword:
            raise UnsupportedNode(type(keyword).__name__)
        value = _expression(keyword.value)
        parts.append("**" + value if keyword.arg is None else keyword.arg + "=" + value)
    return _expression(node.func, _ATOM) + "(" + ", ".join(parts) + ")"


def _attribute(node: ast.Attribute, precedence: int) -> str:
    value = node.value
    # `3.real` does not parse: an int literal is followed by a space.
    space = " " if isinstance(value, ast.Constant) and isinstance(value.value, int) else ""
    return _expression(value, _ATOM) + space + "." + node.attr


def _subscript(node: ast.Subscript, precedence: int) -> str:
    key = node.slice
    inside = _items(key.elts) if type(key) is ast.Tuple and key.elts else _expression(key)
    return _expression(node.value, _ATOM) + "[" + inside + "]"


def _slice(node: ast.Slice, precedence: int) -> str:
    text = (_expression(node.lower) if node.lower else "") + ":"
    if node.upper:
        text += _expression(node.upper)
    if node.step:
        text += ":" + _expression(node.step)
    return text


def _tuple(node: ast.Tuple, precedence: int) -> str:
    elements = node.elts
    text = _items(elements)
    return "(" + text + ")" if not elements or precedence > _TUPLE else text


def _list(node: ast.List, precedence: int) -> str:
    return "[" + ", ".join([_expression(element) for element in node.elts]) + "]"


def _dict(node: ast.Dict, precedence: int) -> str:
    items = [
        "**" + _expression(value, _EXPR) if key is None else _expression(key) + ": " + _expression(value)
        for key, value in zip(node.keys, node.values, strict=False)
    ]
    return "{" + ", ".join(items) + "}"


def _starred(node: ast.Starred, precedence: int) -> str:
    return "*" + _expression(node.value, _EXPR)


def _binary(node: ast.BinOp, precedence: int) -> str:
    found = _BINARY_OPERATORS.get(type(node.op))
    if found is None:
        raise UnsupportedNode(type(node.op).__name__)
    symbol, own = found
    tighter = min(own + 1, _ATOM)
    # `**` groups to the right, every other operator to the left.
    left, right = (tighter, own) if own == _POWER else (own, tighter)
    text = _expression(node.left, left) + " " + symbol + " " + _expression(node.right, right)
    return "(" + text + ")" if precedence > own else text


def _unary(node: ast.UnaryOp, precedence: int) -> str:
    found = _UNARY_OPERATORS.get(type(node.op))
    if found is None:
        raise UnsupportedNode(type(node.op).__name__)
    symbol, own = found
    text = symbol + _expression(node.operand, own)
    return "(" + text + ")" if precedence > own else text


def _compare(node: ast.Compare, precedence: int) -> str:
    text = _expression(node.left, _CMP + 1)
    for op, comparator in zip(node.ops, node.comparators, strict=False):
        symbol = _COMPARISONS.get(type(op))
        if symbol is None:
            raise UnsupportedNode(type(op).__name__)
        text += " " + symbol + " " + _expression(comparator, _CMP + 1)
    return "(" + text + ")" if precedence > _CMP else text


_EXPRESSIONS: dict[type, Callable[[Any, int], str]] = {
    ast.Constant: _constant,
    ast.Call: _call,
    ast.Attribute: _attribute,
    ast.Subscript: _subscript,
    ast.Slice: _slice,
    ast.Tuple: _tuple,
    ast.List: _list,
    ast.Dict: _dict,
    ast.Starred: _starred,
    ast.BinOp: _binary,
    ast.UnaryOp: _unary,
    ast.Compare: _compare,
}


def _statement(node: Any) -> str:
    """A simple statement's text, without indentation."""
    kind = type(node)
    if kind is ast.Assign:
        if node.type_comment is not None:
            raise UnsupportedNode("type comment")
        targets = [_expression(target, _TUPLE) + " = " for target in node.targets]
        return "".join(targets) + _expression(node.value)
    if kind is ast.Delete:
        return "del " + ", ".join([_expression(target) for target in node.targets])
    if kind is ast.Return:
        return "return " + _expression(node.value) if node.value else "return"
    if kind is ast.Import:
        names = []
        for alias in node.names:
            if type(alias) is not ast.alias:
                raise UnsupportedNode(type(alias).__name__)
            names.append(alias.name + " as " + alias.asname if alias.asname else alias.name)
        return "import " + ", ".join(names)
    raise UnsupportedNode(kind.__name__)


def _parameter(parameter: ast.arg, default: Any) -> str:
    if type(parameter) is not ast.arg or parameter.annotation:
        raise UnsupportedNode("annotated parameter")
    return parameter.arg + "=" + _expression(default) if default else parameter.arg


def _arguments(node: ast.arguments) -> str:
    if type(node) is not ast.arguments or node.kwarg:
        raise UnsupportedNode("**kwargs")
    positional = node.posonlyargs + node.args
    defaults = [None] * (len(positional) - len(node.defaults)) + node.defaults
    parts = []
    for index, (parameter, default) in enumerate(zip(positional, defaults, strict=False), 1):
        parts.append(_parameter(parameter, default))
        if index == len(node.posonlyargs):
            parts[-1] += ", /"
    if node.vararg or node.kwonlyargs:
        parts.append("*" + (_parameter(node.vararg, None) if node.vararg else ""))
    parts += [
        _parameter(parameter, default) for parameter, default in zip(node.kwonlyargs, node.kw_defaults, strict=False)
    ]
    return ", ".join(parts)


def _definition(node: ast.FunctionDef) -> list[str]:
    if node.decorator_list or node.returns or node.type_comment is not None:
        raise UnsupportedNode("decorated, annotated or type-commented def")
    lines = ["def " + node.name + "(" + _arguments(node.args) + "):"]
    lines += ["    " + _statement(statement) for statement in node.body]
    return lines


def unparse_subset(tree: ast.Module) -> str:
    """`ast.unparse(tree)` for a module of the forms emit makes; `UnsupportedNode` for any other."""
    if type(tree) is not ast.Module or tree.type_ignores:
        raise UnsupportedNode("not a module without type ignores")
    lines: list[str] = []
    for statement in tree.body:
        if type(statement) is ast.FunctionDef:
            if lines:
                lines.append("")  # `ast.unparse` sets a definition off with a blank line
            lines += _definition(statement)
        else:
            lines.append(_statement(statement))
    return "\n".join(lines)


def unparse(tree: ast.Module) -> str:
    """`ast.unparse(tree)`, byte for byte: by `unparse_subset` where it can, else by `ast.unparse`."""
    try:
        return unparse_subset(tree)
    except UnsupportedNode:
        return ast.unparse(tree)


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
