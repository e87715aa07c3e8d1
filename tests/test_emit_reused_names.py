"""Functions with more than 256 local names reuse dead names; smaller ones keep the IR's names."""

from __future__ import annotations

import operator

import torch
import torch.fx

import astgen


def _chain(pieces: int) -> torch.fx.GraphModule:
    """x -> piece -> (a, b) -> piece(a, b) -> ...: two getitems and one call per step."""
    graph = torch.fx.Graph()
    value = graph.placeholder("x")
    root = torch.nn.Module()
    for index in range(pieces):
        name = f"submod_{index}"
        root.__dict__[name] = lambda *args, index=index: (args, index)
        pair = graph.call_module(name, (value,) if index == 0 else (value, index))
        pair.meta["val"] = (torch.empty(1), torch.empty(1))
        first = graph.call_function(operator.getitem, (pair, 0))
        graph.call_function(operator.getitem, (pair, 1))
        value = first
    graph.output(value)
    gm = torch.fx.GraphModule(root, graph)
    for index in range(pieces):
        gm.__dict__[f"submod_{index}"] = root.__dict__[f"submod_{index}"]
    return gm


def test_small_function_keeps_every_ir_name() -> None:
    compiled = astgen.compile_graph(_chain(10), cache=False)
    ir_names = {value.name for instruction in compiled.ir.body for value in astgen.ir.defines(instruction)}
    assert set(compiled.fn.__code__.co_varnames) == ir_names | {"x"}


def test_large_function_reuses_dead_names_and_still_computes_the_same() -> None:
    gm = _chain(200)
    compiled = astgen.compile_graph(gm, cache=False)
    assert compiled.fn.__code__.co_nlocals < 16
    assert compiled.fn(7) == torch.fx.Interpreter(gm).run(7)
    # Reused names keep their stem.
    assert {name.rstrip("_0123456789") for name in compiled.fn.__code__.co_varnames} <= {"x", "submod", "getitem"}


def test_large_function_source_round_trips() -> None:
    gm = _chain(200)
    compiled = astgen.compile_graph(gm, cache=False)
    artifact = compiled.artifact()
    loaded = astgen.load(artifact, {name: getattr(gm, name) for name in artifact.piece_names})
    assert loaded(3) == compiled.fn(3)
