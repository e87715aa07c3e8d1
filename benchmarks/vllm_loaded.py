"""vLLM-written stitching text, loaded by stock vLLM and by astgen: seconds per call, and the ratio.

Needs the real vLLM (`.venv-vllm`, see docs/vllm.md):

    .venv-vllm/bin/python -m benchmarks.vllm_loaded

The text is what vLLM 0.33's own `generate_execution_code` writes for the
stitching graph of an n-layer decoder (`benchmarks.graphs`). Its pieces are
instances of a class with `__call__`, as vLLM's `PiecewiseBackend` is, each
returning constant objects, so a call times the stitching alone. Both loaders
get the same text, pieces and consts: stock `compile_execution_fn` (an `exec`
and a `functools.partial`, pieces read as `__vllm_submods__[i]`) and
`astgen.vllm.compile_execution_fn`. The target (issue 16, item 3) is astgen at
or under 0.8x stock.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

from vllm.compilation import codegen

import astgen.vllm
from benchmarks import graphs, timing

LAYERS = (1, 8, 32, 80)
TARGET_RATIO = 0.8


class PieceInstance:
    """A piece as vLLM's `PiecewiseBackend` is one: an object called through its class's `__call__`."""

    def __init__(self, piece: graphs.Piece) -> None:
        self.result: Any = tuple(object() for _ in range(piece.arity)) if piece.arity else object()

    def __call__(self, *args: Any) -> Any:
        return self.result


def rows(*, rounds: int = 15, target_s: float = 0.02) -> list[dict[str, Any]]:
    """Per layer count: stock vLLM's and astgen's seconds per call of the same vLLM-written text, and their ratio."""
    made: list[dict[str, Any]] = []
    for layers in LAYERS:
        stitching = graphs.build(layers, PieceInstance)
        code, names, consts = codegen.generate_execution_code(stitching.gm)
        pieces = graphs.submodule_callables(stitching)
        contenders = {
            "vllm": (codegen.compile_execution_fn(code, pieces, names, consts), graphs.trivial_inputs()),
            "astgen": (astgen.vllm.compile_execution_fn(code, pieces, names, consts), graphs.trivial_inputs()),
        }
        samples = timing.per_call(contenders, rounds=rounds, target_s=target_s)
        vllm_s, astgen_s = timing.median(samples["vllm"]), timing.median(samples["astgen"])
        made.append({"layers": layers, "vllm_s": vllm_s, "astgen_s": astgen_s, "ratio": astgen_s / vllm_s})
    return made


def main() -> None:
    print("vLLM-written text, pieces as class instances: per call, astgen-loaded / stock-vLLM-loaded")
    print(f"{'layers':>6} {'vLLM (us)':>10} {'astgen (us)':>12} {'ratio':>6}")
    for row in rows():
        verdict = "ok" if row["ratio"] <= TARGET_RATIO else f"over {TARGET_RATIO}"
        print(
            f"{row['layers']:>6} {row['vllm_s'] * 1e6:>10.2f} {row['astgen_s'] * 1e6:>12.2f} {row['ratio']:>6.2f} {verdict}"
        )


if __name__ == "__main__":
    main()
