"""Shared helpers for the unit tests: small hand-built graphs and exact result comparison."""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.fx

import astgen
from astgen import examples, ir
from astgen.testing.oracles import difference


class Root(torch.nn.Module):
    """A root module holding whatever submodules and attributes a hand-built graph needs."""

    def __init__(self, **attributes: object) -> None:
        super().__init__()
        for name, value in attributes.items():
            setattr(self, name, value)


def _empty(attributes: dict[str, object]) -> torch.fx.GraphModule:
    gm = torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph())
    for name, value in attributes.items():
        if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
            gm.register_buffer(name, value)
        else:
            setattr(gm, name, value)
    return gm


def build(
    body: Callable[[torch.fx.Graph], object], *, recompile: bool = True, **attributes: object
) -> torch.fx.GraphModule:
    """A GraphModule holding `attributes`, whose graph `body(graph)` fills; `body` returns the output argument.

    `recompile=False` leaves FX's own codegen out, for graphs it cannot render
    (objects without a parseable repr, keyword attribute names, ...); such a
    graph can still be run by the interpreter and by astgen, not by `gm(...)`.
    """
    gm = _empty(attributes)
    gm.graph.output(body(gm.graph))
    if recompile:
        gm.recompile()
    return gm


def build_raw(body: Callable[[torch.fx.Graph], object], **attributes: object) -> torch.fx.GraphModule:
    """Like `build`, but `body` adds the output itself (or not), and FX's own codegen never
    runs: graphs it would reject (or paste code from) can be built too."""
    gm = _empty(attributes)
    body(gm.graph)
    return gm


def body_of(gm: torch.fx.GraphModule) -> tuple[ir.Instruction, ...]:
    """The lowered body, before any pass."""
    return astgen.lower(gm).function.body


def interpret(gm: torch.fx.GraphModule, *args: object) -> object:
    return torch.fx.Interpreter(gm).run(*args)


def assert_same(actual: object, expected: object, path: str = "result") -> None:
    """Exact equality through containers (`astgen.testing.oracles.difference`): tensors equal in dtype,
    shape and values (nan == nan), floats equal including nan and the sign of zero, the rest by type and ==."""
    found = difference(expected, actual, path)
    assert found is None, found


def same_float(a: float, b: float) -> bool:
    """Identical floats: nan matches nan, and 0.0 does not match -0.0."""
    return difference(a, b) is None


def check(
    gm: torch.fx.GraphModule,
    *args: object,
    submodules: Mapping[str, Callable[..., Any]] | None = None,
    cache: bool = True,
) -> astgen.CompiledGraph:
    """Compile `gm` (verifying the IR after every pass) and assert it returns what the interpreter returns."""
    astgen.run_passes(astgen.lower(gm, submodules).function, check=True)
    compiled = astgen.compile_graph(gm, submodules, cache=cache)
    expected = interpret(gm, *args)
    assert_same(compiled(*args), expected)
    assert_same(compiled.fn(*args), expected)
    return compiled


def statement_kinds(tree: ast.Module) -> set[type]:
    *prelude, definition = tree.body
    assert all(isinstance(statement, (ast.Import, ast.Assign)) for statement in prelude)
    assert isinstance(definition, ast.FunctionDef)
    return {type(statement) for statement in definition.body}


def split_at(gm: torch.fx.GraphModule, is_boundary: Callable[[torch.fx.Node], bool]) -> torch.fx.GraphModule:
    """The stitching graph of `astgen.split_graph`: every boundary node in a piece of its own, as vLLM splits at attention."""
    return astgen.split_graph(gm, is_boundary).stitching


@functools.cache
def example(name: str) -> torch.fx.GraphModule:
    """A built-in example graph, built once per process (exporting the transformer takes seconds)."""
    return examples.EXAMPLES[name]()


def tuple_read_out_of_order() -> tuple[torch.fx.GraphModule, Callable[..., tuple[Any, ...]]]:
    """A stitching graph reading a piece's 4-tuple out of order, apart, one item never read, its
    pieces where vLLM's backend puts them; and the piece, which appends "a", "b", "c" to its arguments."""
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    whole = graph.call_module("submod_0", (x,))
    whole.meta["val"] = (torch.empty(1),) * 4
    second = graph.call_function(operator.getitem, (whole, 2))
    first = graph.call_function(operator.getitem, (whole, 0))
    joined = graph.call_module("submod_1", (second, first))
    graph.output((joined, graph.call_function(operator.getitem, (whole, 1))))

    def piece(*args: Any) -> tuple[Any, ...]:
        return (*args, "a", "b", "c")

    root = torch.nn.Module()
    root.__dict__.update(submod_0=piece, submod_1=piece)
    gm = torch.fx.GraphModule(root, graph)
    gm.__dict__.update(submod_0=piece, submod_1=piece)
    return gm, piece
