"""astgen.split: each splitting op alone in its piece, order kept, the stitching graph equal to the original."""

from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import astgen
from astgen import examples
from astgen.errors import CodegenError
from astgen.split import ATTENTION_OPS, parse_target, split_graph

SDPA = torch.ops.aten.scaled_dot_product_attention


class TwoAttentions(nn.Module):
    """Attention, a projection, attention again right after it, then a projection."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.out = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, 2, 4)).transpose(-2, -4).unbind(-3)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        b = F.scaled_dot_product_attention(a, a, v)
        y = b.transpose(-2, -3).flatten(-2)
        return self.out(torch.relu(y)) + x


def _traced() -> tuple[torch.fx.GraphModule, torch.Tensor]:
    torch.manual_seed(0)
    return torch.fx.symbolic_trace(TwoAttentions()), torch.randn(2, 5, 8)


def _calls(gm: torch.fx.GraphModule, target: object) -> int:
    return sum(1 for node in gm.graph.nodes if node.op == "call_function" and node.target is target)


def test_each_splitting_op_is_a_piece_of_its_own_in_order() -> None:
    gm, x = _traced()
    split = split_graph(gm, {F.scaled_dot_product_attention})
    called = [node.target for node in split.stitching.graph.nodes if node.op == "call_module"]
    assert called == list(split.pieces)
    # Two attentions back to back: no empty piece between them.
    assert [name in split.splitting for name in split.pieces] == [False, True, True, False]
    for name, piece in split.pieces.items():
        ops = [node for node in piece.graph.nodes if node.op not in ("placeholder", "output")]
        if name in split.splitting:
            assert [node.target for node in ops] == [F.scaled_dot_product_attention]
        else:
            assert _calls(piece, F.scaled_dot_product_attention) == 0
    torch.testing.assert_close(split.stitching(x), gm(x))


def test_stitching_compiles_with_astgen_and_calls_the_given_pieces() -> None:
    gm, x = _traced()
    split = split_graph(gm, {F.scaled_dot_product_attention})
    called: list[str] = []

    def counting(name: str, piece: torch.fx.GraphModule):  # type: ignore[no-untyped-def]
        def run(*args: object) -> object:
            called.append(name)
            return piece(*args)

        return run

    compiled = astgen.compile_graph(
        split.stitching, {name: counting(name, piece) for name, piece in split.pieces.items()}
    )
    torch.testing.assert_close(compiled.fn(x), gm(x))
    assert called == list(split.pieces)


def test_a_predicate_selects_nodes() -> None:
    gm, x = _traced()
    split = split_graph(gm, lambda node: node.op == "call_function" and node.target is torch.relu)
    assert len(split.pieces) == 3 and len(split.splitting) == 1
    (relu_piece,) = (split.pieces[name] for name in split.splitting)
    assert _calls(relu_piece, torch.relu) == 1
    torch.testing.assert_close(split.stitching(x), gm(x))


def test_no_splitting_op_gives_one_piece() -> None:
    gm, x = _traced()
    split = split_graph(gm, {torch.ops.aten.mm})
    assert len(split.pieces) == 1 and split.splitting == frozenset()
    torch.testing.assert_close(split.stitching(x), gm(x))


@pytest.fixture(scope="module")
def exported() -> torch.fx.GraphModule:
    torch.manual_seed(0)
    seq = torch.export.Dim("seq", min=2, max=64)
    program = torch.export.export(TwoAttentions(), (torch.randn(2, 5, 8),), dynamic_shapes=({1: seq},))
    return program.module()


@pytest.mark.parametrize(
    "split_at",
    [
        {SDPA},
        {SDPA.default},
        ["aten.scaled_dot_product_attention.default"],
        ("torch.ops.aten.scaled_dot_product_attention",),
        ATTENTION_OPS,
    ],
    ids=["packet", "overload", "name", "qualified-packet-name", "default"],
)
def test_aten_graph_split_by_packet_overload_or_name(exported: torch.fx.GraphModule, split_at: object) -> None:
    split = split_graph(exported, split_at)  # type: ignore[arg-type]
    assert len(split.splitting) == 2
    for name in split.splitting:
        assert _calls(split.pieces[name], SDPA.default) == 1
    for length in (3, 7):
        x = torch.randn(2, length, 8)
        torch.testing.assert_close(astgen.compile_graph(split.stitching).fn(x), exported(x))


def test_parse_target_spellings() -> None:
    assert parse_target("aten.scaled_dot_product_attention.default") is SDPA.default
    assert parse_target("torch.ops.aten.scaled_dot_product_attention") is SDPA
    assert parse_target("aten::scaled_dot_product_attention") is SDPA
    assert parse_target("aten.add.Tensor") is torch.ops.aten.add.Tensor


@pytest.mark.parametrize(
    ("split_at", "message"),
    [
        (SDPA.default, "one op"),
        (SDPA, "one op"),
        ("aten.scaled_dot_product_attention.default", "one op"),
        (F.scaled_dot_product_attention, "one op"),
        ([3], "neither an op nor a function"),
        (["aten.no_such_op_anywhere.default"], "no op named"),
        (["aten.scaled_dot_product_attention.no_such_overload"], "no op named"),
        (["not an op"], "not an op name"),
        (["a.b.c.d"], "not an op name"),
        (5, "collection of ops or a predicate"),
    ],
)
def test_bad_split_at_is_refused(split_at: object, message: str) -> None:
    gm, _ = _traced()
    with pytest.raises(ValueError, match=message):
        split_graph(gm, split_at)  # type: ignore[arg-type]


def test_predicate_answering_no_bool_names_the_node() -> None:
    gm, _ = _traced()
    with pytest.raises(CodegenError, match="not a bool") as raised:
        split_graph(gm, lambda node: node.name if node.op == "call_function" else False)  # type: ignore[arg-type,return-value]
    assert raised.value.node is not None


def test_not_a_graph_module() -> None:
    with pytest.raises(TypeError, match="GraphModule, got TwoAttentions; trace it to one first"):
        split_graph(TwoAttentions(), ATTENTION_OPS)  # type: ignore[arg-type]


def test_examples_split_at_attention_is_split_graph() -> None:
    stitching = examples.transformer()
    pieces = [node.target for node in stitching.graph.nodes if node.op == "call_module"]
    # Two layers: before, attention, between, attention, after.
    assert len(pieces) == 5
    attention = [
        name
        for name in pieces
        if _calls(stitching.get_submodule(name), SDPA.default)
        + _calls(stitching.get_submodule(name), F.scaled_dot_product_attention)
        == 1
    ]
    assert attention == [pieces[1], pieces[3]]
