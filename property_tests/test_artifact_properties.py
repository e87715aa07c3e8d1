"""Every drawn split graph's portable artifact rebuilds a function that behaves as the graph does.

The artifact is `(code, piece_names, consts)`: the consts go through pickle
where they pickle, as they would into vLLM's cache; the text goes through
the loader's lift into the IR. A second build of the same recipe with other
buffer values gives the same text, and the text run with either graph's
consts computes that graph: text and consts together say which objects run.
"""

from __future__ import annotations

import pickle
from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st

import astgen
from astgen.testing import recipe as strategies
from astgen.testing.drawing import recipes
from astgen.testing.oracles import difference
from astgen.testing.recipe import Recipe


def _through_pickle(consts: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        return tuple(pickle.loads(pickle.dumps(consts)))
    except (pickle.PicklingError, AttributeError, TypeError):
        return consts  # drawn opaque objects of a local class: the artifact holds them as they are


def _pieces(gm: torch.fx.GraphModule, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: gm.get_submodule(name) for name in names}


@given(recipes(), st.booleans())
def test_artifact_round_trip_equals_interpreter(recipe: Recipe, inline: bool) -> None:
    strategies.clear_payload_canary()
    gm, args = strategies.build(recipe)
    expected = torch.fx.Interpreter(gm).run(*args)
    code, names, consts = astgen.compile_graph(gm, inline=inline).artifact()
    loaded = astgen.load((code, names, _through_pickle(consts)), _pieces(gm, names))
    found = difference(expected, loaded(*args))
    assert found is None, f"{found}\n{code}"
    assert not strategies.payload_executed()


@given(recipes())
def test_one_text_runs_whichever_graph_its_consts_come_from(recipe: Recipe) -> None:
    first, args = strategies.build(recipe)
    second, _ = strategies.build(recipe)
    with torch.no_grad():
        for buffer in second.buffers():
            if buffer.is_floating_point():
                buffer.mul_(2).add_(1)
    first_artifact = astgen.compile_graph(first).artifact()
    second_artifact = astgen.compile_graph(second).artifact()
    assert first_artifact.code == second_artifact.code
    # The first graph's text with the second graph's objects is the second graph.
    swapped = astgen.load(
        (first_artifact.code, first_artifact.piece_names, second_artifact.consts),
        _pieces(second, first_artifact.piece_names),
    )
    found = difference(torch.fx.Interpreter(second).run(*args), swapped(*args))
    assert found is None, found
