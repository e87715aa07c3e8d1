"""Shared helpers for the unit tests: small hand-built graphs and exact result comparison."""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.fx
from torch.fx.immutable_collections import immutable_dict, immutable_list
from torch.fx.passes.split_module import split_module

import astgen
from astgen import examples, ir
from astgen.lower import Lowered


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


def lowered(gm: torch.fx.GraphModule, **kwargs: Any) -> Lowered:
    return astgen.lower(gm, **kwargs)


def body_of(gm: torch.fx.GraphModule) -> tuple[ir.Instruction, ...]:
    """The lowered body, before any pass."""
    return astgen.lower(gm).function.body


def interpret(gm: torch.fx.GraphModule, *args: object) -> object:
    return torch.fx.Interpreter(gm).run(*args)


_PLAIN: dict[type, type] = {immutable_list: list, immutable_dict: dict}


def assert_same(actual: object, expected: object, path: str = "result") -> None:
    """Exact equality through containers: tensors equal in dtype, shape and values (nan == nan),
    floats equal including nan and the sign of zero, everything else by type and ==."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{path}: {type(actual).__name__} is not a tensor"
        assert actual.dtype == expected.dtype, f"{path}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{path}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
        if actual.is_floating_point() or actual.is_complex():
            assert torch.equal(actual.isnan(), expected.isnan()), f"{path}: nan positions differ"
            numbers = ~actual.isnan()
            assert torch.equal(actual[numbers], expected[numbers]), f"{path}: values differ"
            if actual.is_floating_point():
                assert torch.equal(actual.signbit(), expected.signbit()), f"{path}: signs differ"
        else:
            assert torch.equal(actual, expected), f"{path}: values differ"
        return
    # The interpreter rebuilds containers as FX's immutable ones; GraphModule's
    # own code, like astgen's, builds plain ones.
    expected_type = _PLAIN.get(type(expected), type(expected))
    actual_type = _PLAIN.get(type(actual), type(actual))
    assert actual_type is expected_type, f"{path}: {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"  # type: ignore[arg-type]
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):  # type: ignore[call-overload]
            assert_same(a, e, f"{path}[{index}]")
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"  # type: ignore[call-overload]
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")  # type: ignore[index]
    elif isinstance(expected, float):
        assert same_float(actual, expected), f"{path}: {actual!r} != {expected!r}"  # type: ignore[arg-type]
    elif isinstance(expected, complex):
        assert same_float(actual.real, expected.real) and same_float(actual.imag, expected.imag), (  # type: ignore[attr-defined]
            f"{path}: {actual!r} != {expected!r}"
        )
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def same_float(a: float, b: float) -> bool:
    """Identical floats: nan matches nan, and 0.0 does not match -0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


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
    """`split_module(keep_original_order=True)` with every boundary node in a piece of its own,
    the way vLLM splits at attention; pieces are numbered in graph order, so no cycle can form."""
    piece = 0
    assignment: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        boundary = is_boundary(node)
        piece += boundary
        assignment[node.name] = piece
        piece += boundary
    return split_module(gm, gm, lambda node: assignment[node.name], keep_original_order=True)


@functools.cache
def example(name: str) -> torch.fx.GraphModule:
    """A built-in example graph, built once per process (exporting the transformer takes seconds)."""
    return examples.EXAMPLES[name]()
