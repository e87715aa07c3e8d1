"""Synthetic vLLM-shaped stitching graphs, built node by node with `torch.fx.Graph`.

A decoder split at attention, as vLLM's piecewise backend splits it: piece 0
embeds and runs layer 0 up to attention; attention piece i; piece i + 1 runs
layer i's output projection, residual add, MLP and layer i + 1 up to
attention; the last piece runs the final norm. With L layers that is
2 L + 1 submodules and 7 L + 5 FX nodes:

    x, positions, s0                                    (placeholders)
    submod_0 = submod_0(x, s0, positions)               -> (q, k, v, residual, out)
    getitem .. getitem_4 = submod_0[0] .. submod_0[4]
    submod_1 = submod_1(q, k, v, out, s0)               (attention)
    submod_2 = submod_2(submod_1, residual, s0, positions)
    ...
    submod_2L = submod_2L(attention, residual, s0)      -> output

`positions` and `s0` live across every layer, `residual` across each
attention call. Each tuple-returning node carries `meta["val"]`, a tuple of
meta tensors, as Dynamo's `example_value` would, so element types are known.

With `unused=True` the graph also holds results nobody reads: each piece
returns a sixth element no `getitem` reads, and each layer calls a side piece
(`aux_N`, a statistics or cache write) whose result has no users at all.

Submodules are plain callables placed in the GraphModule's `__dict__`, the
way vLLM installs its piecewise backends, so `GraphModule.__call__` and the
interpreter reach them without `nn.Module.__call__`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx

INPUT_NAMES = ("x", "positions", "s0")
_META = torch.empty(2, 16, device="meta")


@dataclass(frozen=True)
class Piece:
    """One `call_module` target: its name and how many results it returns (0: a single value)."""

    name: str
    arity: int
    kind: str  # "piece", "attention", "final" or "aux"


@dataclass(frozen=True)
class Stitching:
    gm: torch.fx.GraphModule
    pieces: tuple[Piece, ...]
    layers: int

    @property
    def submodules(self) -> int:
        return len(self.pieces)

    @property
    def nodes(self) -> int:
        return len(self.gm.graph.nodes)


def _tuple_node(graph: torch.fx.Graph, target: str, args: tuple[Any, ...], arity: int) -> torch.fx.Node:
    node = graph.call_module(target, args)
    node.meta["val"] = tuple(_META for _ in range(arity))
    return node


def build(
    layers: int,
    make: Callable[[Piece], Callable[..., Any]],
    *,
    unused: bool = False,
) -> Stitching:
    """The stitching graph of a `layers`-layer decoder; `make(piece)` gives each submodule's callable."""
    if layers < 1:
        raise ValueError("a decoder has at least one layer")
    graph = torch.fx.Graph()
    x, positions, s0 = (graph.placeholder(name) for name in INPUT_NAMES)
    pieces: list[Piece] = []
    arity = 6 if unused else 5

    def call(kind: str, args: tuple[Any, ...], piece_arity: int) -> torch.fx.Node:
        name = f"submod_{sum(p.kind != 'aux' for p in pieces)}" if kind != "aux" else f"aux_{len(pieces)}"
        pieces.append(Piece(name, piece_arity, kind))
        if piece_arity:
            return _tuple_node(graph, name, args, piece_arity)
        return graph.call_module(name, args)

    hidden = call("piece", (x, s0, positions), arity)
    for _ in range(layers):
        q, k, v, residual, out = (graph.call_function(operator.getitem, (hidden, i)) for i in range(5))
        if unused:
            call("aux", (q, s0), 0)
        attention = call("attention", (q, k, v, out, s0), 0)
        last = len(pieces) == 2 * layers + (layers if unused else 0)
        if last:
            hidden = call("final", (attention, residual, s0), 0)
        else:
            hidden = call("piece", (attention, residual, s0, positions), arity)
    graph.output(hidden)

    root = torch.nn.Module()
    for piece in pieces:
        # A plain attribute, not a registered child: vLLM's `__dict__` install.
        root.__dict__[piece.name] = make(piece)
    gm = torch.fx.GraphModule(root, graph)
    for piece in pieces:
        gm.__dict__[piece.name] = root.__dict__[piece.name]
    return Stitching(gm, tuple(pieces), layers)


def submodule_callables(stitching: Stitching) -> dict[str, Callable[..., Any]]:
    return {piece.name: stitching.gm.__dict__[piece.name] for piece in stitching.pieces}


def layers_for_nodes(nodes: int, *, unused: bool = False) -> int:
    """The layer count whose graph has about `nodes` FX nodes."""
    per_layer = 8 if unused else 7
    return max(1, round((nodes - 5) / per_layer))


# ---------------------------------------------------------------- trivial submodules


def trivial(piece: Piece) -> Callable[..., Any]:
    """A submodule that returns constant objects of the right arity, so a call times only the stitching."""
    if piece.arity:
        result: Any = tuple(object() for _ in range(piece.arity))
    else:
        result = object()

    def submodule(*args: Any) -> Any:
        return result

    submodule.__name__ = piece.name
    return submodule


def trivial_inputs() -> tuple[object, object, int]:
    return (object(), object(), 7)
