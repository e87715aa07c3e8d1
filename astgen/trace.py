"""What astgen does, in torch's own tools: structured-trace artifacts, `dynamo_timed` stages, the `astgen` logger.

Artifacts (`torch._logging.trace_structured`), which `TORCH_TRACE=<dir>` writes
and `tlparse` shows beside Dynamo's and Inductor's:

- "astgen_source": the module of every graph compiled (`CompiledGraph.source`),
  through `compile_graph`, the backend and the vLLM drop-in alike;
- "astgen_ir": its IR after the passes (`astgen.format_function`);
- "astgen_loaded_source": text `astgen.load` or `compile_execution_fn` is given,
  logged before it is checked, so a refused text is in the trace too.

Payloads are functions torch calls only while tracing is on: with it off,
nothing is unparsed or formatted.

Stages run under `torch._dynamo.utils.dynamo_timed`: "astgen.lower",
"astgen.passes", "astgen.emit", "astgen.compile" (Python's `compile()`),
"astgen.bind", "astgen.load", and in the backend "astgen.split" and
"astgen.compile_pieces". Their times land in
`torch._dynamo.utils.compilation_time_metrics` and tlparse's chromium events.

The backend says at INFO on the `astgen` logger what it split and compiled.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import torch.fx
from torch._logging import trace_structured
from torch._logging._internal import trace_log

from astgen import ir
from astgen.errors import CodegenError
from astgen.split import selector

if TYPE_CHECKING:
    from astgen.compiled import CompiledGraph, GeneratedCode
    from astgen.split import Split, SplitAt

log = logging.getLogger("astgen")

SOURCE = "astgen_source"
IR = "astgen_ir"
LOADED_SOURCE = "astgen_loaded_source"

_UNTIMED = contextlib.nullcontext()


def timed(key: str) -> AbstractContextManager[Any]:
    """`dynamo_timed(key)` once `torch._dynamo` is imported; nothing before.

    Importing `torch._dynamo` takes seconds, which `compile_graph` in a
    process that never uses Dynamo must not pay; under `torch.compile` and
    vLLM it is always there.
    """
    utils = sys.modules.get("torch._dynamo.utils")
    if utils is None:
        return _UNTIMED
    timer: AbstractContextManager[Any] = utils.dynamo_timed(key)
    return timer


def tracing() -> bool:
    """Whether torch's structured trace writes anywhere: `TORCH_TRACE` is set, or a handler was added.

    torch's own check (any handler on its trace log) is true in every
    process: with `TORCH_TRACE` unset, its lazy handler removes itself only
    at the first record, after that record was built, payload and all, and
    its stack symbolized, which imports inductor and Dynamo (seconds). A
    lazy handler with no directory and no file yet counts as off (torch's
    fallback to /logs, on Meta's own machines only, is not followed).
    """
    for handler in trace_log.handlers:
        lazy = type(handler).__name__ == "LazyTraceHandler"
        if not (lazy and getattr(handler, "root_dir", None) is None and getattr(handler, "stream", None) is None):
            return True
    return False


def _artifact(name: str, payload: Callable[[], str]) -> None:
    if not tracing():
        return
    trace_structured("artifact", metadata_fn=lambda: {"name": name, "encoding": "string"}, payload_fn=payload)


def generated(code: GeneratedCode) -> None:
    """Log the source and IR of `code`; rendered only if tracing is on.

    Tracing never changes what compiles: a graph whose source cannot be
    rendered (`CodegenError` from nesting too deep) compiles as it would
    untraced, and its artifacts are left out with a warning.
    """
    if not tracing():
        return
    try:
        source = code.source
        with ir.too_deep_is_an_error(code.function, "format the IR of"):
            text = ir.format_function(code.function)
    except CodegenError as error:
        log.warning("astgen: no trace artifacts for %s: %s", code.filename, error)
        return
    _artifact(SOURCE, lambda: source)
    _artifact(IR, lambda: text)


def generated_source(source: str, function: ir.Function) -> None:
    """Log `source` and the IR it was written from; rendered only if tracing is on."""
    _artifact(SOURCE, lambda: source)
    _artifact(IR, lambda: ir.format_function(function))


def loaded(text: object) -> None:
    """Log code text about to be loaded."""
    if isinstance(text, str):
        _artifact(LOADED_SOURCE, lambda: text)


def _compile_id() -> str:
    from torch._guards import CompileContext

    compile_id = CompileContext.current_compile_id()
    return "" if compile_id is None else f"[{compile_id}] "


def _op_name(target: object) -> str:
    if isinstance(target, str):
        return target
    if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return str(target)
    try:
        return torch.fx.node._get_qualified_name(target)  # type: ignore[arg-type]
    except Exception:
        return repr(target)


def _backend_name(piece_backend: object) -> str:
    if isinstance(piece_backend, str):
        return repr(piece_backend)
    return str(getattr(piece_backend, "__qualname__", None) or piece_backend)


def split_done(
    gm: torch.fx.GraphModule,
    split: Split,
    split_at: SplitAt,
    piece_backend: object,
) -> None:
    """Say at INFO how the backend split `gm`: at which ops, into which pieces, for which piece backend."""
    if not log.isEnabledFor(logging.INFO):
        return
    is_splitting = selector(split_at)
    counts = collections.Counter(
        _op_name(node.target)
        for name in split.splitting
        for node in split.pieces[name].graph.nodes
        if node.op == "call_function" and is_splitting(node)
    )
    ops = ", ".join(f"{count} x {op}" for op, count in sorted(counts.items())) or "no op"
    compiled = [name for name in split.pieces if name not in split.splitting]
    as_they_are = [name for name in split.pieces if name in split.splitting]
    log.info(
        "%sbackend split a graph of %d nodes at %s into %d %s: %s compiled by piece backend %s%s",
        _compile_id(),
        len(gm.graph.nodes),
        ops,
        len(split.pieces),
        "piece" if len(split.pieces) == 1 else "pieces",
        ", ".join(compiled) or "none",
        _backend_name(piece_backend),
        f"; {', '.join(as_they_are)} run as they are" if as_they_are else "",
    )


def stitched(compiled: CompiledGraph, pieces: Mapping[str, object]) -> None:
    """Say at INFO which function the backend compiled to stitch `pieces`."""
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "%sbackend compiled the stitching graph to %s: %d pieces, %d IR instructions",
        _compile_id(),
        compiled.filename,
        len(pieces),
        len(compiled.ir.body),
    )
