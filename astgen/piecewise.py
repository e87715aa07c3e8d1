"""A piecewise `torch.compile` backend: split at attention, compile the pieces, stitch them with astgen.

    torch.compile(model, backend="astgen")                       # the package's entry point
    torch.compile(model, backend="astgen", options={"piece_backend": "eager"})
    torch.compile(model, backend=astgen.backend(split_at={F.scaled_dot_product_attention}))

Dynamo hands over each graph it captures. `astgen.split.split_graph` splits
it; each piece between two splitting ops is compiled with the piece backend,
while the splitting ops stay eager, as vLLM keeps attention out of its
compiled pieces. astgen compiles the stitching graph that calls the pieces
into a plain Python function, and that function is what Dynamo calls.

The module is `astgen.piecewise`: `astgen.backend` is the factory function.
"""

from __future__ import annotations

import functools
import logging
import operator
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import torch
import torch.fx
from torch.fx._lazy_graph_module import _LazyGraphModule

from astgen import trace
from astgen.compiled import CompiledGraph, compile_graph
from astgen.lower import fast_callable
from astgen.split import ATTENTION_OPS, Split, SplitAt, selector, split_graph

log = logging.getLogger("astgen")

CompilerFn: TypeAlias = Callable[[torch.fx.GraphModule, list[Any]], Callable[..., Any]]
PieceBackend: TypeAlias = str | CompilerFn
"""A registered `torch.compile` backend's name ("eager", "inductor", "aot_eager", ...) or a backend callable."""

OPTIONS = ("split_at", "piece_backend")


def piece_inputs(split: Split, example_inputs: Sequence[object]) -> dict[str, list[Any]]:
    """The example inputs each piece is compiled for.

    A piece's input that is an input of the whole graph gets what Dynamo
    passed for it, so a piece sees exactly what a whole-graph compile would
    (this matters: from a real tensor AOT autograd can specialize a float
    Dynamo made a tensor, and ask Dynamo to restart, as it does for
    `backend="inductor"`). Any other input gets the fake value Dynamo recorded
    on its node, which `split_module` copies onto the piece's placeholder: the
    shapes, strides and symbols it will see at run time, nothing computed.
    A graph without recorded values (one not from Dynamo) is run instead.
    """
    graph_inputs = {node: index for index, node in enumerate(split.stitching.graph.find_nodes(op="placeholder"))}
    recorded: dict[str, list[Any]] = {}
    for call in split.stitching.graph.find_nodes(op="call_module"):
        values: list[Any] = []
        placeholders = split.pieces[call.target].graph.find_nodes(op="placeholder")
        for argument, placeholder in zip(call.args, placeholders, strict=True):
            if argument in graph_inputs:
                values.append(example_inputs[graph_inputs[argument]])
            elif "example_value" in placeholder.meta or "val" in placeholder.meta:
                values.append(placeholder.meta.get("example_value", placeholder.meta.get("val")))
            else:
                return _run_recording(split.stitching, example_inputs)
        recorded[call.target] = values
    return recorded


def _run_recording(stitching: torch.fx.GraphModule, example_inputs: Sequence[object]) -> dict[str, list[Any]]:
    """Run `stitching` on `example_inputs`, under their fake mode if they have one, recording each piece's inputs."""
    from torch._guards import detect_fake_mode

    recorded: dict[str, list[Any]] = {}

    class Recorder(torch.fx.Interpreter):
        def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
            recorded[target] = list(args)
            return super().call_module(target, args, kwargs)

    fake_mode = detect_fake_mode(example_inputs)
    if fake_mode is None:
        Recorder(stitching).run(*example_inputs)
    else:
        fake_inputs = [fake_mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in example_inputs]
        with fake_mode:
            Recorder(stitching).run(*fake_inputs)
    return recorded


def _compiler(piece_backend: PieceBackend, inductor_config: Mapping[str, Any]) -> CompilerFn:
    if not isinstance(piece_backend, str):
        return piece_backend
    # Imported here: torch._dynamo takes a second to import, and `import
    # astgen` must not pay for it.
    from torch._dynamo.backends.registry import lookup_backend
    from torch._dynamo.exc import InvalidBackend

    try:
        compiler = lookup_backend(piece_backend)
    except InvalidBackend:
        raise ValueError(
            f"piece_backend {piece_backend!r} is not a registered torch.compile backend "
            "(torch._dynamo.list_backends() names them)"
        ) from None
    if not inductor_config:
        return compiler
    # As torch.compile hands `mode` and `options` to its inductor backend: config patches for each piece.
    inductor: Callable[..., Any] = compiler  # inductor's backend takes config patches besides (gm, inputs)
    return functools.partial(inductor, config_patches=dict(inductor_config))


def _inductor_config(mode: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The inductor config patches that `mode` and the inductor keys of `options` stand for."""
    import torch._inductor

    config: dict[str, Any] = {}
    if mode is not None and mode != "default":
        modes = torch._inductor.list_mode_options()
        if mode not in modes:
            raise ValueError(f"unknown mode {mode!r}; torch.compile's modes are {sorted(modes)}")
        config.update(torch._inductor.list_mode_options(mode))
    known = set(torch._inductor.list_options())
    unknown = sorted(key for key in options if key.replace("-", "_") not in known)
    if unknown:
        raise ValueError(
            f"unknown astgen backend options {unknown}; known: {list(OPTIONS)} "
            "and, for inductor pieces, the options torch._inductor.list_options() names"
        )
    config.update((key.replace("-", "_"), value) for key, value in options.items())
    return config


def _unwrapped(compiled_piece: Callable[..., Any]) -> Callable[..., Any]:
    """What a piece backend returned, with a lazy GraphModule's stub `forward` replaced by the module's call.

    The eager backend returns `gm.forward`, which for Dynamo's lazy modules is
    bound before the module is compiled: the stub compiles it, then calls the
    module through `nn.Module.__call__`, on every call. The stub does nothing
    but call the module, so the module is bound instead, through
    `fast_callable` (its generated `forward` when nothing else would run).
    """
    owner = getattr(compiled_piece, "__self__", None)
    if (
        isinstance(owner, _LazyGraphModule)
        and getattr(compiled_piece, "__func__", None) is _LazyGraphModule._lazy_forward
    ):
        return fast_callable(owner)
    return compiled_piece


def _check(split_at: SplitAt, piece_backend: PieceBackend) -> None:
    if not (isinstance(piece_backend, str) or callable(piece_backend)):
        raise ValueError(f"piece_backend must be a backend name or a callable, not {type(piece_backend).__name__}")
    selector(split_at)


def _return_tuples(split: Split) -> None:
    """Make each piece but the splitting ones return a tuple, as every graph Dynamo hands a backend does.

    `split_module` returns a piece's one output bare, and AOT autograd
    (`aot_eager`, and backends built on it) refuses a graph that does not
    return a tuple. The stitching graph takes the one element back out
    (`x = piece(...)[0]`), so no wrapper stands between Dynamo and the piece.
    """
    graph = split.stitching.graph
    for call in list(graph.find_nodes(op="call_module")):
        if call.target in split.splitting:
            continue
        piece = split.pieces[call.target]
        (output,) = piece.graph.find_nodes(op="output")
        # The compiled piece returns its graph's tuple: saying so on the call
        # lets astgen unpack it (`a, b = piece(...)`), which it does not do
        # for a replacement piece on trust.
        results = output.args[0] if isinstance(output.args[0], tuple) else (output.args[0],)
        call.meta["example_value"] = tuple(example_value(result) for result in results)
        if isinstance(output.args[0], tuple):
            continue
        output.args = ((output.args[0],),)
        piece.recompile()
        users = list(call.users)
        with graph.inserting_after(call):
            first = graph.call_function(operator.getitem, (call, 0))
        for user in users:
            user.replace_input_with(call, first)
    split.stitching.recompile()


def example_value(result: object) -> object:
    """What FX recorded for one output of a piece (a fake tensor, a SymInt), or None."""
    if isinstance(result, torch.fx.Node):
        return result.meta.get("example_value", result.meta.get("val"))
    return result


# Where a compiled function keeps its CompiledGraph: the backend holds the
# function only weakly, so this attribute is what keeps the CompiledGraph alive
# exactly as long as Dynamo keeps the function.
COMPILED_ATTRIBUTE = "_astgen_compiled_graph"


class Backend:
    """A `torch.compile` backend, `(gm, example_inputs) -> callable`, for `split_at` and `piece_backend`.

    `compiled` holds the `CompiledGraph` of each stitching graph made whose
    function is still in use, in order: one per graph Dynamo captures, so
    graph breaks and recompiles add more. A graph goes from it when Dynamo
    lets go of its function (`torch._dynamo.reset()`, the model deleted) and
    the garbage collector has run, so a long-lived backend does not keep every
    graph it ever made. `sources` is their Python source.

    `torch.compile(..., options=...)` overrides `split_at` and `piece_backend`
    for one `torch.compile` call; its other keys are inductor options
    (`torch._inductor.list_options()`), which inductor pieces are compiled
    with, as is `torch.compile`'s `mode`. Other piece backends take neither:
    inductor options are refused for them, and `mode` is accepted and not
    used, as torch's `eager` and `aot_eager` backends do.

    A copy (`copy.copy`, `copy.deepcopy`) has the same settings and no graphs.
    """

    def __init__(self, split_at: SplitAt = ATTENTION_OPS, piece_backend: PieceBackend = "inductor") -> None:
        _check(split_at, piece_backend)
        self.split_at = split_at
        self.piece_backend = piece_backend
        self._functions: list[weakref.ref[Callable[..., Any]]] = []
        self._ignored_modes: set[str] = set()
        self._lock = threading.Lock()

    @property
    def compiled(self) -> list[CompiledGraph]:
        """The `CompiledGraph`s still in use, oldest first."""
        with self._lock:
            alive = [function for function in (reference() for reference in self._functions) if function is not None]
            self._functions = [weakref.ref(function) for function in alive]
        return [getattr(function, COMPILED_ATTRIBUTE) for function in alive]

    @property
    def sources(self) -> list[str]:
        """The Python source of each stitching graph in `compiled`."""
        return [compiled.source for compiled in self.compiled]

    def compile(
        self,
        gm: torch.fx.GraphModule,
        example_inputs: Sequence[object],
        *,
        mode: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CompiledGraph:
        """Split `gm`, compile its pieces and stitch them: the `CompiledGraph` of the stitching graph.

        `mode` and `options` are `torch.compile`'s (see the class). The graph
        stays in `compiled` while its `.fn` is alive.
        """
        options = dict(options or {})
        split_at = options.pop("split_at", self.split_at)
        piece_backend = options.pop("piece_backend", self.piece_backend)
        _check(split_at, piece_backend)
        if piece_backend == "inductor":
            inductor_config = _inductor_config(mode, options)
        elif options:
            raise ValueError(
                f"unknown astgen backend options {sorted(options)}; known: {list(OPTIONS)}, "
                f"and inductor options for piece_backend 'inductor', not {piece_backend!r}"
            )
        else:
            inductor_config = {}
            self._ignore(mode, piece_backend)
        with trace.timed("astgen.split"):
            split = split_graph(gm, split_at)
            _return_tuples(split)
        trace.split_done(gm, split, split_at, piece_backend)
        compile_piece = _compiler(piece_backend, inductor_config)
        inputs = piece_inputs(split, example_inputs)
        compiled_pieces: dict[str, Callable[..., Any]] = {}
        with trace.timed("astgen.compile_pieces"):
            for name, piece in split.pieces.items():
                # A splitting op runs as it is, in eager mode.
                if name in split.splitting:
                    compiled_pieces[name] = piece
                else:
                    compiled_pieces[name] = _unwrapped(compile_piece(piece, inputs[name]))
        compiled = compile_graph(split.stitching, compiled_pieces)
        trace.stitched(compiled, compiled_pieces)
        setattr(compiled.fn, COMPILED_ATTRIBUTE, compiled)
        with self._lock:
            self._functions.append(weakref.ref(compiled.fn))
        return compiled

    def __call__(
        self,
        gm: torch.fx.GraphModule,
        example_inputs: list[Any],
        *,
        mode: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Callable[..., Any]:
        return self.compile(gm, example_inputs, mode=mode, options=options).fn

    def _ignore(self, mode: str | None, piece_backend: PieceBackend) -> None:
        """Say once per mode that a piece backend other than inductor does not use it."""
        if mode is None or mode == "default":
            return
        with self._lock:
            if mode in self._ignored_modes:
                return
            self._ignored_modes.add(mode)
        log.warning(
            "the astgen backend ignores mode=%r for piece_backend %r, as torch's eager backend does: "
            "only inductor pieces take a mode",
            mode,
            piece_backend,
        )

    def __copy__(self) -> Backend:
        return Backend(self.split_at, self.piece_backend)

    def __deepcopy__(self, memo: dict[int, Any]) -> Backend:
        # Ops, functions and backends are shared, not copied: they are
        # singletons, and a lock or a compiled graph is no setting to copy.
        return Backend(self.split_at, self.piece_backend)

    def __repr__(self) -> str:
        return f"<astgen Backend piece_backend={self.piece_backend!r}, {len(self.compiled)} graphs compiled>"


def backend(split_at: SplitAt = ATTENTION_OPS, piece_backend: PieceBackend = "inductor") -> Backend:
    """A piecewise `torch.compile` backend: split at `split_at`, pieces compiled by `piece_backend`.

    `split_at` defaults to `astgen.split.ATTENTION_OPS`.
    """
    return Backend(split_at, piece_backend)


astgen_backend = Backend()
"""The backend `torch.compile(model, backend="astgen")` finds through the package's entry point."""
