"""Built-in example graphs, for `python -m astgen.dump --example NAME`, the docs and the tests.

Each factory returns a stitching `GraphModule` shaped like what a piecewise
compiler runs: placeholders, `call_module submod_N`, `getitem`, `output`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.fx.passes.split_module import split_module

from astgen.split import ATTENTION_OPS, split_graph


class DecoderLayer(nn.Module):
    """A Llama-shaped decoder layer: attention and a gated MLP, each behind an RMSNorm."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.mlp_norm = nn.RMSNorm(dim)
        self.gate_up = nn.Linear(dim, 4 * dim, bias=False)
        self.down = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Shapes by unflatten/flatten, not x.shape: no sizes cross a piece boundary.
        qkv = self.qkv(self.attn_norm(x)).unflatten(-1, (3, self.heads, -1))
        q, k, v = qkv.transpose(1, 3).unbind(2)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(attn.transpose(1, 2).flatten(-2))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class TinyDecoder(nn.Module):
    def __init__(self, layers: int = 2, dim: int = 32, heads: int = 4, vocab: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads) for _ in range(layers))
        self.norm = nn.RMSNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


def split_at_attention(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Split `gm` the way vLLM does: each attention call is a piece of its own."""
    return split_graph(gm, ATTENTION_OPS).stitching


def transformer(layers: int = 2) -> torch.fx.GraphModule:
    """A 2-layer Llama-shaped decoder, traced and split at attention.

    Linear layers stay modules inside the pieces, so the stitching graph
    reads only the tokens, as vLLM's does; `ShapeProp` records the tensor
    types that `--format ir` prints.
    """
    model = TinyDecoder(layers=layers).train(False)
    gm = torch.fx.symbolic_trace(model)
    ShapeProp(gm).propagate(torch.randint(0, 64, (1, 8)))
    return split_at_attention(gm)


def _three_pieces() -> torch.fx.GraphModule:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(4, 4)
            self.last = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            a = self.first(x).relu()
            b = torch.sigmoid(a * 2 + y)
            return self.last(b) + a, b

    model = Model()
    gm = torch.fx.symbolic_trace(model)
    pieces = {"add": 1, "sigmoid": 1, "last": 2, "add_1": 2}
    return split_module(gm, model, lambda node: pieces.get(node.name, 0), keep_original_order=True)


def toy() -> torch.fx.GraphModule:
    """Three pieces of a small model, split by hand: the smallest realistic stitching graph."""
    return _three_pieces()


def constants() -> torch.fx.GraphModule:
    """Arguments vLLM's string generator cannot render: inf, nan, -0.0, a dtype, a device,
    a slice, a non-identifier keyword and a node name holding code."""
    gm = _three_pieces()
    graph = gm.graph
    output = next(node for node in graph.nodes if node.op == "output")
    with graph.inserting_before(output):
        result = output.args[0][0]
        clamped = graph.call_function(torch.clamp, (result,), {"min": -math.inf, "max": math.inf})
        filled = graph.call_function(torch.nan_to_num, (clamped,), {"nan": -0.0})
        cast = graph.call_method("to", (filled,), {"dtype": torch.float64, "device": torch.device("cpu")})
        sliced = graph.call_function(operator.getitem, (cast, (slice(None), slice(0, 2))))
        sliced.name = "x; __import__('os').system('echo pwned')"
        nan_fill = graph.call_function(torch.full_like, (sliced, math.nan))
        odd = graph.call_function(_keywords, (nan_fill,), {"not-an-identifier": 1, "class": 2})
        output.args = ((odd, output.args[0][1]),)
    # No gm.recompile(): FX's own codegen would paste the node name above into
    # its source. The interpreter and astgen both run the graph as it is.
    return gm


def _keywords(x: torch.Tensor, **options: int) -> torch.Tensor:
    return x + sum(options.values())


EXAMPLES: dict[str, Callable[[], torch.fx.GraphModule]] = {
    "transformer": transformer,
    "toy": toy,
    "constants": constants,
}
DEFAULT_EXAMPLE = "transformer"
