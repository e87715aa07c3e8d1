"""astgen.piecewise (`backend="astgen"`) under torch.compile: real models, eager and inductor pieces, dynamic shapes, recompiles."""

from __future__ import annotations

import copy
import logging
import operator
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx._lazy_graph_module import _LazyGraphModule

import astgen
from astgen import ir
from astgen.piecewise import Backend, astgen_backend
from astgen.split import ATTENTION_OPS


class Block(nn.Module):
    """A GPT-2 block: causal self-attention and an MLP, each behind a LayerNorm."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(dim, dim=-1)
        q, k, v = (t.view(batch, seq, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(batch, seq, dim))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, layers: int = 2, dim: int = 16, heads: int = 2, vocab: int = 32, context: int = 64) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(context, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


class AttentionStack(nn.Module):
    """A stack of `nn.MultiheadAttention` with residuals: the first causal, the others not."""

    def __init__(self, layers: int = 3, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.attentions = nn.ModuleList(nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.shape[1]
        causal = torch.ones(seq, seq, dtype=torch.bool, device=x.device).triu(1)
        for index, (attention, norm) in enumerate(zip(self.attentions, self.norms, strict=True)):
            h = norm(x)
            mask = causal if index == 0 else None
            x = x + attention(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x


def encoder(layers: int = 2, dim: int = 16, activation: Any = "relu") -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0, activation=activation, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).eval()


# A fresh Dynamo for every test: see `fresh_dynamo` in tests/conftest.py.
pytestmark = pytest.mark.usefixtures("fresh_dynamo")


def recording(calls: list[tuple[torch.fx.GraphModule, list[Any]]]) -> Callable[..., Any]:
    """A piece backend that records what it is given and runs the piece as it is."""

    def piece_backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        calls.append((gm, list(example_inputs)))
        return gm.forward

    return piece_backend


def has_attention(gm: torch.fx.GraphModule) -> bool:
    return any(
        node.op == "call_function"
        and (node.target in ATTENTION_OPS or getattr(node.target, "overloadpacket", None) in ATTENTION_OPS)
        for node in gm.graph.nodes
    )


def symbolic_params(compiled: astgen.CompiledGraph) -> int:
    return sum(1 for param in compiled.ir.params if param.value.type == ir.IntType(symbolic=True))


def called_pieces(compiled: astgen.CompiledGraph) -> list[str]:
    return [instruction.target for instruction in compiled.ir.body if isinstance(instruction, ir.CallModule)]


def test_gpt_eager_pieces_dynamic_shapes() -> None:
    torch.manual_seed(0)
    model = GPT(layers=2).eval()
    calls: list[tuple[torch.fx.GraphModule, list[Any]]] = []
    backend = astgen.backend(piece_backend=recording(calls))
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    with torch.no_grad():
        for seq in (3, 5, 9):
            idx = torch.randint(0, 32, (2, seq))
            torch.testing.assert_close(compiled_model(idx), model(idx), rtol=1e-5, atol=1e-5)
    # One graph for every length: the sequence length is a SymInt input.
    (stitching,) = backend.compiled
    assert symbolic_params(stitching) >= 1
    # before, attention, between, attention, after; the two attentions stay eager.
    assert len(called_pieces(stitching)) == 5
    assert len(calls) == 3 and not any(has_attention(gm) for gm, _ in calls)
    # The pieces were compiled for symbolic shapes, not for the first length.
    sizes = [size for _, inputs in calls for x in inputs if isinstance(x, torch.Tensor) for size in x.shape]
    assert any(isinstance(size, torch.SymInt) for size in sizes)
    assert backend.sources == [stitching.source]
    # Every piece is called through its own bound name, and a compiled
    # piece's tuple is unpacked straight from the call: the backend types
    # the calls, since astgen does not unpack a replacement piece on trust.
    for name in called_pieces(stitching):
        assert f"= {name}_fn(" in stitching.source
    assert "getitem, getitem_1, getitem_2, getitem_3 = submod_0_fn(" in stitching.source


def test_transformer_encoder_eager_pieces_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    model = encoder()
    reference = copy.deepcopy(model)
    backend = Backend(piece_backend="eager")
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    for seq in (4, 7, 2):
        x = torch.randn(3, seq, 16)
        out, expected = compiled_model(x), reference(x)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        out.square().sum().backward()
        expected.square().sum().backward()
    for (name, param), ref in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, ref.grad, rtol=1e-4, atol=1e-5, msg=name)
    (stitching,) = backend.compiled
    # nn.MultiheadAttention is one call in Dynamo's graph, a piece of its own in each layer.
    assert len(called_pieces(stitching)) == 5


def test_multihead_attention_stack_eager_pieces() -> None:
    torch.manual_seed(0)
    model = AttentionStack(layers=3).eval()
    backend = Backend(piece_backend="eager")
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    with torch.no_grad():
        for seq in (5, 3, 8):
            x = torch.randn(2, seq, 16)
            torch.testing.assert_close(compiled_model(x), model(x), rtol=1e-5, atol=1e-5)
    (stitching,) = backend.compiled
    assert len(called_pieces(stitching)) == 7


def test_gpt_inductor_pieces_dynamic_shapes() -> None:
    torch.manual_seed(0)
    model = GPT(layers=1, dim=8).eval()
    backend = Backend(piece_backend="inductor")
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    with torch.no_grad():
        for seq in (3, 6, 11):
            idx = torch.randint(0, 32, (2, seq))
            torch.testing.assert_close(compiled_model(idx), model(idx), rtol=1e-4, atol=1e-5)
    (stitching,) = backend.compiled
    assert len(called_pieces(stitching)) == 3 and symbolic_params(stitching) >= 1


def test_transformer_encoder_inductor_pieces() -> None:
    # With dynamic=True Dynamo makes the LayerNorm eps a tensor input read by
    # `.item()`; AOT autograd then asks Dynamo to restart with it specialized,
    # as it does for a whole-graph compile. The pieces must get the same chance.
    # SiLU keeps nn.TransformerEncoderLayer off its fused fast path under no_grad.
    torch.manual_seed(0)
    model = encoder(layers=1, dim=8, activation=F.silu)
    backend = Backend(piece_backend="inductor")
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    with torch.no_grad():
        for seq in (3, 5):
            x = torch.randn(2, seq, 8)
            torch.testing.assert_close(compiled_model(x), model(x), rtol=1e-4, atol=1e-5)
    (stitching,) = backend.compiled
    assert len(called_pieces(stitching)) == 3


def test_graph_breaks_and_recompiles_each_get_a_stitching_graph() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = Block(16, 2)
            self.second = Block(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.first(x)
            torch._dynamo.graph_break()
            return self.second(x)

    torch.manual_seed(0)
    model = Broken().eval()
    backend = Backend(piece_backend="eager")
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    with torch.no_grad():
        for seq in (3, 4):
            x = torch.randn(2, seq, 16)
            torch.testing.assert_close(compiled_model(x), model(x), rtol=1e-5, atol=1e-5)
        assert len(backend.compiled) == 2
        # A new dtype fails the guards: both graphs are compiled again.
        model64 = model.double()
        x = torch.randn(2, 5, 16, dtype=torch.float64)
        torch.testing.assert_close(compiled_model(x), model64(x))
    assert len(backend.compiled) == 4
    assert all(len(called_pieces(stitching)) == 3 for stitching in backend.compiled)


def test_options_override_split_at_and_piece_backend() -> None:
    torch.manual_seed(0)
    model = GPT(layers=2).eval()
    calls: list[tuple[torch.fx.GraphModule, list[Any]]] = []
    backend = Backend(piece_backend="inductor")
    options = {"piece_backend": recording(calls), "split_at": {torch.nn.functional.gelu}}
    compiled_model = torch.compile(model, backend=backend, options=options, dynamic=True)
    with torch.no_grad():
        idx = torch.randint(0, 32, (1, 6))
        torch.testing.assert_close(compiled_model(idx), model(idx), rtol=1e-5, atol=1e-5)
    (stitching,) = backend.compiled
    # Split at the two GELUs instead: attention is inside the compiled pieces.
    assert len(called_pieces(stitching)) == 5 and len(calls) == 3
    assert sum(has_attention(gm) for gm, _ in calls) == 2


def test_registered_under_the_name_astgen() -> None:
    from torch._dynamo.backends.registry import lookup_backend

    assert lookup_backend("astgen") is astgen_backend
    torch.manual_seed(0)
    model = AttentionStack(layers=2).eval()
    # Graphs of earlier tests in this process leave the history at a
    # collection, which may come at any time: holding them keeps them in.
    before = astgen_backend.compiled
    compiled_model = torch.compile(model, backend="astgen", options={"piece_backend": "eager"}, dynamic=True)
    with torch.no_grad():
        for seq in (3, 4):
            x = torch.randn(1, seq, 16)
            torch.testing.assert_close(compiled_model(x), model(x), rtol=1e-5, atol=1e-5)
    assert len(astgen_backend.compiled) == len(before) + 1


def test_graph_without_recorded_values_is_run_for_its_example_inputs() -> None:
    torch.manual_seed(0)

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlp = nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = x.unflatten(-1, (2, 8)).transpose(1, 2)
            return F.scaled_dot_product_attention(q, q, q).transpose(1, 2).flatten(-2) + self.mlp(x)

    gm = torch.fx.symbolic_trace(Flat())
    calls: list[tuple[torch.fx.GraphModule, list[Any]]] = []
    x = torch.randn(2, 5, 16)
    compiled = Backend(piece_backend=recording(calls)).compile(gm, [x])
    torch.testing.assert_close(compiled.fn(x), gm(x))
    # Before and after attention, given real tensors: x, then the attention result and x.
    assert len(calls) == 2
    assert [value is x for value in calls[0][1]] == [True]
    assert any(value is x for value in calls[1][1])
    assert all(type(value) is torch.Tensor for _, inputs in calls for value in inputs)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"piece_backend": 3}, "backend name or a callable"),
        ({"split_at": 5}, "collection of ops or a predicate"),
        ({"split_at": F.scaled_dot_product_attention.__name__}, "one op"),
        ({"split_at": ["aten.nope_not_an_op.default"]}, "no op named"),
    ],
)
def test_bad_arguments_are_refused_at_construction(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backend(**arguments)


def test_unknown_piece_backend_and_option_are_refused() -> None:
    gm = torch.fx.symbolic_trace(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="not a registered torch\\.compile backend"):
        Backend(piece_backend="no_such_backend_anywhere").compile(gm, [torch.randn(2, 4)])
    with pytest.raises(ValueError, match="unknown astgen backend options"):
        Backend().compile(gm, [torch.randn(2, 4)], options={"mode": "max-autotune"})


def test_module_is_importable_by_its_name_and_the_entry_point_resolves() -> None:
    import importlib
    import tomllib
    import types
    from pathlib import Path

    import astgen.piecewise as module

    assert isinstance(module, types.ModuleType)
    assert module.astgen_backend is astgen_backend and module.backend is astgen.backend
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    entry = pyproject["project"]["entry-points"]["torch_dynamo_backends"]["astgen"]
    module_name, _, attribute = entry.partition(":")
    assert getattr(importlib.import_module(module_name), attribute) is astgen_backend
    # The factory is still what the package's name gives.
    assert isinstance(astgen.backend(piece_backend="eager"), Backend)


@pytest.mark.parametrize("piece_backend", ["aot_eager", "eager"])
def test_every_readme_piece_backend_on_the_readme_model(piece_backend: str) -> None:
    # The last piece returns one value: AOT autograd takes tuple outputs only.
    # Inductor on this model: test_gpt_inductor_pieces_dynamic_shapes.
    torch.manual_seed(0)
    model = GPT(layers=1, dim=8).eval()
    backend = Backend(piece_backend=piece_backend)
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    with torch.no_grad():
        for seq in (3, 6):
            idx = torch.randint(0, 32, (2, seq))
            torch.testing.assert_close(compiled_model(idx), model(idx), rtol=1e-4, atol=1e-5)
    (stitching,) = backend.compiled
    assert len(called_pieces(stitching)) == 3


def test_compiled_pieces_return_tuples() -> None:
    torch.manual_seed(0)
    model = GPT(layers=2).eval()
    calls: list[tuple[torch.fx.GraphModule, list[Any]]] = []
    compiled_model = torch.compile(model, backend=Backend(piece_backend=recording(calls)))
    idx = torch.randint(0, 32, (1, 4))
    with torch.no_grad():
        torch.testing.assert_close(compiled_model(idx), model(idx))
    assert len(calls) == 3
    for gm, _ in calls:
        (output,) = gm.graph.find_nodes(op="output")
        assert isinstance(output.args[0], tuple), gm.code


class ScaledAttention(nn.Module):
    """Attention with a float attribute as its scale: under dynamic=True Dynamo reads it with `.item()`."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.scale = 0.3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.out(F.scaled_dot_product_attention(q, k, v, scale=self.scale)) * self.scale


def test_no_python_float_crosses_a_piece_boundary() -> None:
    torch.manual_seed(0)
    model = ScaledAttention().eval()
    calls: list[tuple[torch.fx.GraphModule, list[Any]]] = []
    backend = Backend(piece_backend=recording(calls))
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    with torch.no_grad():
        for seq in (3, 5):
            x = torch.randn(2, seq, 8)
            torch.testing.assert_close(compiled_model(x), model(x))
    (stitching,) = backend.compiled
    assert len(called_pieces(stitching)) == 3
    # The scale is read in the piece before attention, in attention and after it.
    floats = [
        node
        for gm, _ in calls
        for node in gm.graph.nodes
        if isinstance(node.meta.get("example_value"), (float, torch.SymFloat))
    ]
    assert floats, "Dynamo no longer makes the scale a float: this test tests nothing"
    for gm, _ in calls:
        (output,) = gm.graph.find_nodes(op="output")
        for value in output.args[0]:
            assert not isinstance(value.meta.get("example_value"), (float, torch.SymFloat)), gm.code
        for placeholder in gm.graph.find_nodes(op="placeholder"):
            assert not isinstance(placeholder.meta.get("example_value"), (float, torch.SymFloat)), gm.code


def test_float_scale_with_aot_eager_pieces() -> None:
    torch.manual_seed(0)
    model = ScaledAttention().eval()
    compiled_model = torch.compile(model, backend=Backend(piece_backend="aot_eager"), dynamic=True)
    with torch.no_grad():
        for seq in (3, 5):
            x = torch.randn(2, seq, 8)
            torch.testing.assert_close(compiled_model(x), model(x))


def test_history_lets_go_of_graphs_dynamo_dropped() -> None:
    import gc

    backend = Backend(piece_backend="eager")
    # Models of one class share their graph (parameters are its inputs): each
    # width is a graph of its own.
    models = [Block(dim, 2).eval() for dim in (4, 6, 8, 10)]
    with torch.no_grad():
        for model in models:
            torch.compile(model, backend=backend)(torch.randn(1, 3, model.ln1.normalized_shape[0]))
    assert len(backend.compiled) == 4
    kept = Block(12, 2).eval()
    kept_compiled = torch.compile(kept, backend=backend)
    torch._dynamo.reset()
    del model, models
    gc.collect()
    assert backend.compiled == [] and backend.sources == []
    # A graph in use stays, with its source.
    with torch.no_grad():
        kept_compiled(torch.randn(1, 3, 12))
    (stitching,) = backend.compiled
    assert backend.sources == [stitching.source]


def test_mode_is_accepted_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    model = GPT(layers=1, dim=8).eval()
    backend = Backend(piece_backend="eager")
    compiled_model = torch.compile(model, backend=backend, mode="reduce-overhead", dynamic=True)
    with caplog.at_level(logging.WARNING, logger="astgen"), torch.no_grad():
        idx = torch.randint(0, 32, (2, 5))
        torch.testing.assert_close(compiled_model(idx), model(idx))
    assert len(backend.compiled) == 1
    assert any("ignores mode='reduce-overhead'" in record.getMessage() for record in caplog.records)


def attend_twice(x: torch.Tensor) -> torch.Tensor:
    h = F.scaled_dot_product_attention(torch.relu(x), x, x)
    return F.scaled_dot_product_attention(h * 2, h, h) - 1


def recorded_inductor_config(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The config patches inductor compiles are given from now on (the compiles still run).

    `compile_fx` calls itself again inside the patches, with none: only the
    outer call, the one a backend makes, is recorded.
    """
    import torch._inductor.compile_fx

    patches: list[dict[str, Any]] = []
    compile_fx = torch._inductor.compile_fx.compile_fx

    def recording_compile_fx(*args: Any, config_patches: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if config_patches is not None:
            patches.append(dict(config_patches))
        return compile_fx(*args, config_patches=config_patches, **kwargs)

    monkeypatch.setattr(torch._inductor.compile_fx, "compile_fx", recording_compile_fx)
    return patches


def test_mode_reaches_inductor_pieces(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    patches = recorded_inductor_config(monkeypatch)
    backend = Backend()
    compiled = torch.compile(attend_twice, backend=backend, mode="max-autotune-no-cudagraphs")
    x = torch.randn(1, 2, 4, 8)
    with caplog.at_level(logging.WARNING, logger="astgen"):
        torch.testing.assert_close(compiled(x), attend_twice(x))
    assert not [record for record in caplog.records if "ignores mode" in record.getMessage()]
    # Three pieces around the two attentions, each compiled in the mode's config.
    assert len(called_pieces(backend.compiled[0])) == 5
    assert len(patches) == 3
    assert all(patch == {"max_autotune": True, "coordinate_descent_tuning": True} for patch in patches)


def test_inductor_options_reach_inductor_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    patches = recorded_inductor_config(monkeypatch)
    options = {"split_at": {F.scaled_dot_product_attention}, "epilogue_fusion": False, "max-autotune": True}
    compiled = torch.compile(attend_twice, backend=Backend(), options=options)
    x = torch.randn(1, 2, 4, 8)
    torch.testing.assert_close(compiled(x), attend_twice(x))
    assert patches == [{"epilogue_fusion": False, "max_autotune": True}] * 3


def test_inductor_options_and_modes_are_checked() -> None:
    gm = torch.fx.symbolic_trace(nn.Linear(4, 4))
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match=r"unknown astgen backend options \['no_such_option'\].*list_options"):
        Backend().compile(gm, [x], options={"no_such_option": 1})
    with pytest.raises(ValueError, match=r"inductor options for piece_backend 'inductor', not 'eager'"):
        Backend().compile(gm, [x], options={"piece_backend": "eager", "max_autotune": True})
    with pytest.raises(ValueError, match=r"unknown mode 'fastest'; torch.compile's modes are"):
        Backend().compile(gm, [x], mode="fastest")


def test_eager_pieces_are_called_through_their_generated_forward() -> None:
    # The eager backend returns each piece's bound `forward`: for Dynamo's
    # lazy GraphModules a stub that calls the module through nn.Module.__call__.
    backend = Backend(piece_backend="eager")
    compiled = torch.compile(attend_twice, backend=backend)
    x = torch.randn(1, 2, 4, 8)
    torch.testing.assert_close(compiled(x), attend_twice(x))
    (stitching,) = backend.compiled
    pieces = [binding for binding in stitching.bindings if getattr(binding, "__self__", None) is not None]
    assert len(pieces) == 5
    assert all(type(piece.__self__).forward is piece.__func__ for piece in pieces)
    assert not any(piece.__func__ is _LazyGraphModule._lazy_forward for piece in pieces)
    # A call goes through no nn.Module.__call__: a hook added now sees none.
    calls: list[str] = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: calls.append(type(module).__name__)
    )
    try:
        torch.testing.assert_close(compiled(x), attend_twice(x))
    finally:
        handle.remove()
    assert calls == []


def test_a_copy_has_the_settings_and_no_graphs() -> None:
    calls: list[tuple[torch.fx.GraphModule, list[Any]]] = []
    piece_backend = recording(calls)
    original = astgen.backend(split_at={F.gelu}, piece_backend=piece_backend)
    gm = torch.fx.symbolic_trace(nn.Sequential(nn.Linear(4, 4), nn.GELU()))
    kept = original.compile(gm, [torch.randn(2, 4)])
    for duplicate in (copy.deepcopy(original), copy.copy(original)):
        assert isinstance(duplicate, Backend) and duplicate is not original
        assert duplicate.split_at == {F.gelu} and duplicate.piece_backend is piece_backend
        assert duplicate.compiled == []
        x = torch.randn(3, 4)
        torch.testing.assert_close(duplicate.compile(gm, [x]).fn(x), gm(x))
    assert original.compiled == [kept]


@pytest.mark.parametrize(
    "split_at",
    [
        {torch.ops.aten.scaled_dot_product_attention},
        {torch.ops.aten.scaled_dot_product_attention.default},
        {"aten.scaled_dot_product_attention.default"},
        {F.scaled_dot_product_attention},
    ],
    ids=["packet", "overload", "name", "function"],
)
def test_split_at_an_op_matches_dynamo_and_exported_graphs(split_at: set[Any]) -> None:
    torch.manual_seed(0)
    model = GPT(layers=2).eval()
    backend = Backend(split_at=split_at, piece_backend="eager")
    compiled_model = torch.compile(model, backend=backend)
    idx = torch.randint(0, 32, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(compiled_model(idx), model(idx))
    (stitching,) = backend.compiled
    assert len(called_pieces(stitching)) == 5
    # The same op in an exported program.
    exported = torch.export.export(model, (idx,))
    split = astgen.split_graph(exported.module(), split_at)
    assert len(split.splitting) == 2, exported.graph_module.code
    torch.testing.assert_close(split.stitching(idx), model(idx))


@pytest.mark.parametrize(
    "split_at",
    [{"aten.scaled_dot_product_attention.default"}, {F.scaled_dot_product_attention}],
    ids=["name", "function"],
)
def test_attention_matches_its_fused_cpu_kernel(split_at: set[Any]) -> None:
    # What AOT autograd's decompositions turn attention into on CPU.
    graph = torch.fx.Graph()
    q = graph.placeholder("q")
    fused = graph.call_function(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default, (q, q, q))
    out = graph.call_function(operator.getitem, (fused, 0))
    graph.output(graph.call_function(torch.ops.aten.relu.default, (out,)))
    gm = torch.fx.GraphModule({}, graph)
    split = astgen.split_graph(gm, split_at)
    assert len(split.splitting) == 1
    q_value = torch.randn(1, 2, 4, 8)
    torch.testing.assert_close(split.stitching(q_value), gm(q_value))


def test_an_overload_does_not_match_the_other_overloads_of_its_op() -> None:
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    tensor = graph.call_function(torch.ops.aten.add.Tensor, (x, x))
    scalar = graph.call_function(torch.ops.aten.add.Scalar, (tensor, 1))
    graph.output(scalar)
    gm = torch.fx.GraphModule({}, graph)
    split = astgen.split_graph(gm, {torch.ops.aten.add.Scalar})
    (name,) = split.splitting
    assert [node.target for node in split.pieces[name].graph.nodes if node.op == "call_function"] == [
        torch.ops.aten.add.Scalar
    ]


def test_a_split_that_matches_nothing_says_so(caplog: pytest.LogCaptureFixture) -> None:
    gm = torch.fx.symbolic_trace(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    with caplog.at_level(logging.WARNING, logger="astgen"):
        split = astgen.split_graph(gm, {F.gelu, "aten.scaled_dot_product_attention.default"})
    assert split.splitting == frozenset() and len(split.pieces) == 1
    (record,) = [record for record in caplog.records if record.name == "astgen"]
    assert "matched no node" in record.getMessage() and "gelu" in record.getMessage()


def test_help_of_the_factory_is_short() -> None:
    import pydoc

    text = pydoc.render_doc(astgen.backend, renderer=pydoc.plaintext)
    assert "split_at: 'SplitAt' = ATTENTION_OPS" in text
    assert " at 0x" not in text and len(text) < 1000, text
    assert repr(ATTENTION_OPS) == "ATTENTION_OPS"
    for duplicate in (copy.copy(ATTENTION_OPS), copy.deepcopy(ATTENTION_OPS)):
        assert duplicate == ATTENTION_OPS and repr(duplicate) == "ATTENTION_OPS"
