"""The hand-written ideal: the stitching function a careful person would write for a `graphs.build` decoder.

Submodules are globals, each piece's tuple is unpacked straight from the
call, names are reused from layer to layer (rebinding frees the old value),
and the only `del`s are the ones that free memory earlier than rebinding
would: the attention inputs once attention has run, and the attention output
once the next piece has read it. For one layer it reads:

    def forward(x, positions, s0):
        q, k, v, residual, out = submod_0(x, s0, positions)
        attention = submod_1(q, k, v, out, s0)
        del q, k, v, out
        return submod_2(attention, residual, s0)

Graphs with hundreds of layers are not typed by hand, so this module writes
that same text for any layer count (string code is allowed in benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.graphs import INPUT_NAMES, Stitching, submodule_callables

SOURCE_FILE = "<hand-written>"


def source(stitching: Stitching) -> str:
    lines = [f"def forward({', '.join(INPUT_NAMES)}):"]
    unpacked = "q, k, v, residual, out"
    for piece in stitching.pieces:
        if piece.kind == "piece":
            extra = ", _" if piece.arity == 6 else ""
            args = "x, s0, positions" if piece.name == "submod_0" else "attention, residual, s0, positions"
            lines.append(f"    {unpacked}{extra} = {piece.name}({args})")
            if extra:
                lines.append("    del _")
            if piece.name != "submod_0":
                lines.append("    del attention")
        elif piece.kind == "aux":
            lines.append(f"    {piece.name}(q, s0)")
        elif piece.kind == "attention":
            lines.append(f"    attention = {piece.name}(q, k, v, out, s0)")
            lines.append("    del q, k, v, out")
        else:
            lines.append(f"    return {piece.name}(attention, residual, s0)")
    return "\n".join(lines) + "\n"


def compile_hand_written(stitching: Stitching) -> Callable[..., Any]:
    namespace: dict[str, Any] = dict(submodule_callables(stitching))
    exec(compile(source(stitching), SOURCE_FILE, "exec"), namespace)
    return namespace["forward"]
