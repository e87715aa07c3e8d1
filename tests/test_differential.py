"""astgen against `torch.fx.Interpreter` on real graphs, and on every graph vLLM's string generator fails.

Each test runs the same graph both ways and asserts exactly equal results
(tensors bit for bit, nan matching nan).
"""

from __future__ import annotations

import functools
import math
import operator
import pathlib
import weakref
from typing import Any

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.split_module import split_module

import astgen
from astgen import ir
from astgen.examples import split_at_attention
from tests.helpers import assert_same, build, build_raw, check, example, interpret, split_at

# ---------------------------------------------------------------- symbolic_trace + split_module


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.up = nn.Linear(8, 16)
        self.down = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.up(self.norm(x))
        gate, value = h.chunk(2, dim=-1)
        mixed = torch.sigmoid(gate) * value
        out = x + self.down(torch.cat([mixed, mixed * mask], dim=-1))
        return out, mixed.sum(-1)


def test_symbolic_trace_split_module() -> None:
    model = Block()
    gm = torch.fx.symbolic_trace(model)
    # Pieces in graph order, as a piecewise compiler cuts: everything up to `chunk`, then up to `cat`, then the rest.
    piece = 0
    assignment: dict[str, int] = {}
    for node in gm.graph.nodes:
        piece += node.name in ("chunk", "cat")
        assignment[node.name] = piece
    split = split_module(gm, model, lambda node: assignment[node.name], keep_original_order=True)
    assert sum(node.op == "call_module" for node in split.graph.nodes) >= 3
    args = (torch.randn(3, 8), torch.randint(0, 2, (3, 8)).float())
    compiled = check(split, *args)
    assert_same(compiled(*args), tuple(model(*args)))


def test_symbolic_trace_split_with_getitem_of_tuple_pieces() -> None:
    model = Block()
    gm = torch.fx.symbolic_trace(model)
    split = split_at(gm, lambda node: node.op == "call_function" and node.target is torch.sigmoid)
    args = (torch.randn(2, 8), torch.ones(2, 8))
    compiled = check(split, *args)
    # The tuple pieces are read: by item, by unpacking, or unpacked straight from the call.
    assert any(
        isinstance(i, (ir.GetItem, ir.Unpack)) or isinstance(getattr(i, "result", None), tuple)
        for i in compiled.ir.body
    )


@pytest.mark.parametrize("name", ["toy", "constants"])
def test_examples_match_interpreter(name: str) -> None:
    check(example(name), torch.randn(2, 4), torch.randn(2, 4))


# ---------------------------------------------------------------- torch.export + split at attention


@functools.cache
def _exported_encoder() -> tuple[nn.Module, torch.fx.GraphModule]:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    batch, seq = torch.export.Dim("batch", min=2, max=16), torch.export.Dim("seq", min=2, max=64)
    exported = torch.export.export(encoder, (torch.randn(2, 5, 16),), dynamic_shapes={"src": {0: batch, 1: seq}})
    return encoder, split_at_attention(exported.module())


def test_exported_transformer_encoder_split_at_attention() -> None:
    encoder, split = _exported_encoder()
    attention_pieces = [
        node
        for node in split.graph.nodes
        if node.op == "call_module"
        and any(
            inner.target is torch.ops.aten.scaled_dot_product_attention.default
            for inner in getattr(split, str(node.target)).graph.nodes
        )
    ]
    assert len(attention_pieces) == 2
    # Parameters reach the pieces through get_attr nodes of the stitching graph.
    assert any(node.op == "get_attr" for node in split.graph.nodes)
    compiled = astgen.compile_graph(split)
    for shape in [(2, 5, 16), (3, 9, 16), (16, 2, 16)]:
        src = torch.randn(*shape)
        result = compiled(src)
        assert_same(result, interpret(split, src))
        torch.testing.assert_close(result, encoder(src))


def test_transformer_example_with_dynamic_sequence() -> None:
    gm = example("transformer")
    compiled = astgen.compile_graph(gm)
    for length in (2, 17):
        tokens = torch.randint(0, 64, (1, length))
        assert_same(compiled(tokens), interpret(gm, tokens))


# ---------------------------------------------------------------- torch.compile(dynamic=True) backend


class Mixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        h = h.reshape(x.shape[0], -1, 2).sum(-1)
        return self.b(torch.cat([h, h], dim=-1)) + x.shape[0]


def test_torch_compile_dynamic_backend_graph() -> None:
    torch._dynamo.reset()
    captured: list[torch.fx.GraphModule] = []
    calls: list[int] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        split = split_at(gm, lambda node: node.op == "call_function" and node.target in (torch.relu, torch.cat))
        captured.append(gm)
        compiled = astgen.compile_graph(split)

        def run(*args: Any) -> Any:
            result = compiled(*args)
            assert_same(result, interpret(split, *args))
            calls.append(len(args))
            return result

        return run

    model = Mixer()
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    for rows in (3, 5, 11):
        x = torch.randn(rows, 4)
        torch.testing.assert_close(compiled_model(x), model(x))
    torch._dynamo.reset()

    assert len(captured) == 1 and len(calls) == 3
    params = astgen.lower(captured[0]).function.params
    assert any(param.value.type == ir.IntType(symbolic=True) for param in params)
    # Parameters are lifted to placeholders, not get_attr nodes.
    assert sum(isinstance(param.value.type, ir.TensorType) for param in params) == 5


# ---------------------------------------------------------------- what vLLM's string generator fails on


def test_inf_nan_and_device_constants() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        clamped = g.call_function(torch.clamp, (x,), {"min": -math.inf, "max": math.inf})
        filled = g.call_function(torch.full_like, (clamped, math.nan))
        moved = g.call_method("to", (filled,), {"device": torch.device("cpu"), "dtype": torch.float64})
        return (moved, g.call_function(torch.nan_to_num, (x,), {"nan": -0.0, "posinf": math.inf}))

    check(build(body), torch.tensor([1.0, math.nan, -math.inf]))


def test_get_attr_nodes() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        return g.call_function(torch.addmm, (g.get_attr("bias"), x, g.get_attr("inner.weight")))

    gm = build(body, bias=torch.randn(3), inner=nn.Linear(3, 3))
    check(gm, torch.randn(2, 3))


@pytest.mark.parametrize(
    "function",
    [operator.add, operator.mul, torch.add, torch.ops.aten.mul.Tensor, F.relu, torch.Tensor.abs],
    ids=lambda f: getattr(f, "__name__", str(f)),
)
def test_call_function_other_than_getitem(function: Any) -> None:
    arity = 2 if function in (operator.add, operator.mul, torch.add, torch.ops.aten.mul.Tensor) else 1

    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        return g.call_function(function, (x, x)[:arity])

    check(build(body), torch.randn(4))


def test_slice_getitem() -> None:
    gm = build(lambda g: g.call_function(operator.getitem, (g.placeholder("x"), (slice(None), slice(1, None, 2)))))
    check(gm, torch.arange(12).reshape(3, 4))


def test_str_key_getitem() -> None:
    sub = build(lambda g: {"hidden": g.placeholder("x"), "residual": 1})

    def body(g: torch.fx.Graph) -> object:
        out = g.call_module("sub", (g.placeholder("x"),))
        return g.call_function(operator.getitem, (out, "hidden"))

    check(build(body, sub=sub), torch.ones(2))


def test_zero_input_graph() -> None:
    gm = build(lambda g: g.call_function(torch.arange, (4,), {"dtype": torch.int32}))
    check(gm)


def test_placeholder_defaults() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        scale = g.placeholder("scale", default_value=-0.5)
        shift = g.placeholder("shift", default_value=None)
        return (g.call_function(operator.mul, (x, scale)), shift)

    gm = build(body)
    check(gm, torch.ones(2))
    check(gm, torch.ones(2), 3.0)
    check(gm, torch.ones(2), 3.0, "given")


def _sum_kwargs(x: torch.Tensor, **options: int) -> torch.Tensor:
    return x + sum(options.values())


@pytest.mark.parametrize("kwargs", [{"class": 1}, {"a-b": 2}, {"class": 1, "a-b": 2, "ok": 3}, {"": 4, "1st": 5}])
def test_keyword_named_kwargs(kwargs: dict[str, int]) -> None:
    gm = build(lambda g: g.call_function(_sum_kwargs, (g.placeholder("x"),), kwargs), recompile=False)
    compiled = check(gm, torch.zeros(1))
    assert compiled(torch.zeros(1)).item() == sum(kwargs.values())


def test_unused_results_are_released() -> None:
    refs: list[weakref.ref[torch.Tensor]] = []
    seen_alive: list[bool] = []

    def make(x: torch.Tensor) -> torch.Tensor:
        result = x + 1
        refs.append(weakref.ref(result))
        return result

    def observe(x: torch.Tensor) -> torch.Tensor:
        seen_alive.append(refs[0]() is not None)
        return x * 2

    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        g.call_function(make, (x,))  # nobody reads it
        return g.call_function(observe, (x,))

    compiled = check(build(body), torch.ones(1))
    seen_alive.clear()
    compiled(torch.ones(1))
    assert seen_alive == [False]


FLAG: list[str] = []


@pytest.mark.parametrize(
    "payload",
    [
        "x = 1; FLAG.append('name')",
        "y\nimport tests.test_differential as m; m.FLAG.append('newline')",
        "__import__('tests.test_differential').test_differential.FLAG.append('import')",
        "FLAG.append('open') or open({path!r}, 'w')",
    ],
)
def test_code_in_a_node_name_is_never_executed(payload: str, tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "created"
    payload = payload.replace("{path!r}", repr(str(marker)))

    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        x.name = payload
        node = g.call_function(operator.neg, (x,))
        node.name = payload + " "
        g.output(node)

    gm = build_raw(body)
    FLAG.clear()
    compiled = check(gm, 2)
    astgen.compile_graph(gm, cache=False)(2)
    assert FLAG == [] and not marker.exists()
    assert payload not in compiled.source
