"""On every drawn graph, the text astgen carries is `ast.unparse` of its tree, byte for byte."""

from __future__ import annotations

import ast

from hypothesis import given

import astgen
from astgen.render import unparse_subset
from astgen.testing.drawing import VLLM_KINDS, recipes
from astgen.testing.recipe import Recipe, build

GRAPHS = recipes()


def _check(gm: object, inline: bool) -> None:
    compiled = astgen.compile_graph(gm, cache=False, inline=inline)  # type: ignore[arg-type]
    assert unparse_subset(compiled.tree) == ast.unparse(compiled.tree)
    assert compiled.source == ast.unparse(compiled.tree) + "\n"


@given(GRAPHS)
def test_unparse_of_every_drawn_tree_is_ast_unparse(recipe: Recipe) -> None:
    gm, _ = build(recipe)
    _check(gm, inline=False)


@given(recipes(kinds=VLLM_KINDS, max_nodes=12))
def test_unparse_of_vllm_shaped_trees_called_and_inlined_is_ast_unparse(recipe: Recipe) -> None:
    gm, _ = build(recipe)
    _check(gm, inline=False)
    _check(gm, inline=True)
