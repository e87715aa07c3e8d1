"""Source text for a generated tree, for people: `ast.unparse` or astor, optionally annotated.

Text only ever comes from unparsing the tree. `--annotate` adds a comment
after each statement naming the FX node it stands for and the user's line.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable

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


def _comment(origin: ir.Origin | None) -> str:
    if origin is None:
        return ""
    text = f"  # {origin.node}"
    if origin.source_line:
        text += f" <- {' '.join(origin.source_line.split())}"
    return text


def to_source(
    tree: ast.Module | CompiledGraph,
    function: ir.Function | None = None,
    *,
    renderer: str = "unparse",
    annotate: bool = False,
) -> str:
    """`tree` (or a `CompiledGraph`'s tree) as source text. With `annotate`,
    `function` (the IR the tree was emitted from; a `CompiledGraph` brings its
    own) supplies a comment for each statement's first line."""
    if isinstance(tree, CompiledGraph):
        function = tree.ir
        tree = tree.tree
    render = _renderer(renderer)
    if not annotate:
        return render(tree) + "\n"
    if function is None:
        raise ValueError("annotate needs the IR function the tree was emitted from")
    (definition,) = tree.body
    if not isinstance(definition, ast.FunctionDef):
        raise ValueError("expected a module holding one function definition")
    header = copy.copy(definition)
    header.body = [ast.Pass()]
    lines = render(header).splitlines()[:-1]
    # Statement i stands for instruction i; a fused `return <expr>` drops the last instruction.
    for statement, instruction in zip(definition.body, function.body, strict=False):
        rendered = render(statement).splitlines()
        rendered[0] += _comment(getattr(instruction, "origin", None))
        lines += ["    " + line for line in rendered]
    return "\n".join(lines) + "\n"
