"""A small decoder-shaped model whose attention is a custom op SGLang's backend splits at."""

from __future__ import annotations

import torch
from torch import nn

SPLIT_OP = "astgen_test.attention"


@torch.library.custom_op("astgen_test::attention", mutates_args=())
def attention(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A stand-in for SGLang's attention op: what matters here is that the graph is split at it."""
    return q * torch.sigmoid(k.sum(-1, keepdim=True))


@attention.register_fake
def _(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(q)


class Layer(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.qk = nn.Linear(hidden, 2 * hidden)
        self.mlp = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k = self.qk(x).chunk(2, dim=-1)
        x = x + torch.ops.astgen_test.attention(q, k)
        return x + torch.relu(self.mlp(x))


class Decoder(nn.Module):
    def __init__(self, layers: int = 3, hidden: int = 8) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Layer(hidden) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
