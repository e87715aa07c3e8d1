"""Source text for a generated tree, for people: `ast.unparse` or astor, optionally annotated.

Text only ever comes from unparsing the tree. `--annotate` adds a comment
after each statement naming the FX node it stands for and the user's line.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Sequence

from astgen import ir
from astgen.compiled import CompiledGraph

RENDERERS = ("unparse", "astor")


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
    if isinstance(tree, CompiledGraph):
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
