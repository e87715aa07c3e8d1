"""Peak live activation bytes with real tensors, on graphs that hold unused results and long-lived values.

The graph is `graphs.build(..., unused=True)`: each piece returns a sixth
tensor nobody reads and each layer calls a side piece whose result has no
users, while `positions`, `s0` and each `residual` live across calls.

CPU tensors have no allocator statistics, so bytes are counted by hand:
every tensor a submodule makes is registered with a `weakref.finalize` that
subtracts its size when CPython frees it. Frees happen at the exact moment a
reference count reaches zero, so the count is exact; the peak is read each
time a submodule has made its results, the high-water mark of any step.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.fx

import astgen
from benchmarks import graphs, hand_written, string_baseline

INTERPRETER = "torch.fx.Interpreter"
GRAPH_MODULE = "GraphModule.__call__"
STRING = "string baseline"
ASTGEN = "astgen .fn"
HAND = "hand-written"
CONTENDERS = (INTERPRETER, GRAPH_MODULE, STRING, ASTGEN, HAND)

LAYERS = (2, 8, 32)
UNIT = 64 * 1024  # bytes of one activation; the side results are bigger, as statistics buffers are
_SIZES = {"piece": (1, 1, 1, 1, 1, 4), "attention": (1,), "final": (1,), "aux": (2,)}


class Tracker:
    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def reset(self) -> None:
        self.live = self.peak = 0

    def _free(self, size: int) -> None:
        self.live -= size

    def tensor(self, units: int) -> torch.Tensor:
        size = units * UNIT
        made = torch.empty(size, dtype=torch.uint8)
        weakref.finalize(made, self._free, size)
        self.live += size
        return made

    def submodule(self, piece: graphs.Piece) -> Callable[..., Any]:
        sizes = _SIZES[piece.kind][: piece.arity or 1]

        def submodule(*args: Any) -> Any:
            made = tuple(self.tensor(units) for units in sizes)
            self.peak = max(self.peak, self.live)
            return made if piece.arity else made[0]

        return submodule


def contenders(stitching: graphs.Stitching) -> dict[str, Callable[..., Any]]:
    gm = stitching.gm
    return {
        INTERPRETER: torch.fx.Interpreter(gm).run,
        GRAPH_MODULE: gm,
        STRING: string_baseline.compile_graph(gm, graphs.submodule_callables(stitching)),
        ASTGEN: astgen.compile_graph(gm, cache=False).fn,
        HAND: hand_written.compile_hand_written(stitching),
    }


def measure(layers: tuple[int, ...] = LAYERS) -> list[dict[str, Any]]:
    rows = []
    for count in layers:
        tracker = Tracker()
        stitching = graphs.build(count, tracker.submodule, unused=True)
        peaks: dict[str, int] = {}
        retained: dict[str, int] = {}
        for name, fn in contenders(stitching).items():
            tracker.reset()
            result = fn(torch.empty(1), torch.empty(1), 7)
            del result
            peaks[name] = tracker.peak
            # The interpreter keeps results nobody read in its environment until its next run.
            retained[name] = tracker.live
        rows.append(
            {
                "layers": count,
                "submodules": stitching.submodules,
                "nodes": stitching.nodes,
                "peak_bytes": peaks,
                "retained_after_call_bytes": retained,
                "ratio_to_astgen": {name: peak / peaks[ASTGEN] for name, peak in peaks.items()},
            }
        )
    return rows
