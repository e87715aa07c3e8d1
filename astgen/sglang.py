"""SGLang's piecewise `torch.compile` path, stitched by astgen instead of FX.

SGLang's `SGLangBackend.__call__` splits Dynamo's graph at its split ops,
installs a compiled piece object (`CUDAPiecewiseBackend`) per piece in the
split graph's `__dict__` and returns the split `GraphModule` itself, so every
forward step runs FX's generated `forward` through `nn.Module.__call__`.
Here the split graph SGLang returns is compiled by astgen, with the same piece
objects, and astgen's function is returned in its place.

Three ways in, each idempotent and none importing SGLang until used:

- `register`, SGLang's general-plugin entry point (`sglang.srt.plugins`
  group, named `astgen`): calls `install` when `ASTGEN_SGLANG=1`;
- `install` / `uninstall`: wrap `SGLangBackend.__call__` so it returns
  astgen's function, and put SGLang's own back;
- `backend_factory`: for `install_torch_compiled(backend_factory=...)`.

Only an SGLang whose version is in `KNOWN_VERSIONS` and whose modules hold
these names where SGLang 0.5.23 holds them is touched; any other is refused,
before anything is replaced, with a `RuntimeError` saying what differs.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import logging
import os
import types
from collections.abc import Callable
from typing import Any

import torch

from astgen.compiled import CompiledGraph, compile_graph
from astgen.piecewise import COMPILED_ATTRIBUTE, example_value

ENABLE_VARIABLE = "ASTGEN_SGLANG"
KNOWN_VERSIONS = ("0.5.23",)
BACKEND_MODULE = "sglang.srt.compilation.backend"
COMPILE_MODULE = "sglang.srt.compilation.compile"

_logger = logging.getLogger(__name__)

# SGLang's own `SGLangBackend.__call__` while astgen's is installed, else None.
_sglang_call: Callable[..., Any] | None = None


def stitch(split_gm: torch.fx.GraphModule) -> Callable[..., Any]:
    """astgen's function for a split graph as `SGLangBackend.__call__` returns it.

    Each `call_module` calls what SGLang installed for it: the piece object in
    `split_gm.__dict__`, or the submodule itself for a splitting op's piece.
    A piece object's call is typed by its piece graph's own output, which
    the object returns (SGLang's call nodes record no value), so a tuple is
    unpacked straight from the call; the type goes into the call node's
    `meta["example_value"]`, as `astgen.piecewise` records it. The
    `CompiledGraph` lives as long as the function does.
    """
    if not isinstance(split_gm, torch.fx.GraphModule):
        raise TypeError(f"astgen.sglang.stitch takes the split GraphModule SGLang made, not {type(split_gm).__name__}")
    _type_piece_calls(split_gm)
    compiled = compile_graph(split_gm)
    setattr(compiled.fn, COMPILED_ATTRIBUTE, compiled)
    _logger.info("astgen: stitched SGLang's split graph, %d pieces", len(split_gm._modules))
    return compiled.fn


def compiled_graph(function: Callable[..., Any]) -> CompiledGraph:
    """The `CompiledGraph` (`.source`, `.ir`) behind a function `stitch` returned."""
    found = getattr(function, COMPILED_ATTRIBUTE, None)
    if not isinstance(found, CompiledGraph):
        raise TypeError(f"{function!r} is not a function astgen.sglang made")
    return found


def _type_piece_calls(split_gm: torch.fx.GraphModule) -> None:
    """Record on each call of an installed piece object what its piece graph returns.

    Only a call whose piece graph returns a tuple is typed: astgen then
    unpacks it (`a, b = submod_0(...)`), which reads a list or tuple exactly
    as indexing it does. A call that already records a value keeps it.
    """
    installed = split_gm.__dict__
    for call in split_gm.graph.find_nodes(op="call_module"):
        target = call.target
        piece = split_gm._modules.get(target) if isinstance(target, str) else None
        if target not in installed or not isinstance(piece, torch.fx.GraphModule):
            continue
        if "val" in call.meta or "example_value" in call.meta:
            continue
        (output,) = piece.graph.find_nodes(op="output")
        if isinstance(output.args[0], tuple):
            call.meta["example_value"] = tuple(example_value(result) for result in output.args[0])


def backend_factory(compile_config: Any, graph_pool: Any) -> Callable[[torch.fx.GraphModule, list[Any]], Any]:
    """A `backend_factory` for SGLang's `install_torch_compiled`: SGLang's backend, astgen's stitching.

    `compile_config` and `graph_pool` are what `install_torch_compiled` would
    hand SGLang's own backend. Checks SGLang's layout at once.
    """
    backend_class = _checked_layout()

    def factory(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        backend = backend_class(compile_config, graph_pool)
        call = _sglang_call if _sglang_call is not None else backend_class.__call__
        return stitch(call(backend, gm, example_inputs))

    return factory


def register() -> None:
    """The `sglang.srt.plugins` entry point: installs astgen when `ASTGEN_SGLANG=1`, else does nothing."""
    if os.environ.get(ENABLE_VARIABLE) == "1":
        install()
    else:
        _logger.debug("astgen: %s is not 1; SGLang's own stitching stays", ENABLE_VARIABLE)


def install() -> str:
    """Make `SGLangBackend.__call__` return astgen's function for the split graph; the name wrapped.

    Idempotent. Refuses an SGLang it does not know before changing anything.
    """
    global _sglang_call
    backend_class = _checked_layout()
    name = f"{BACKEND_MODULE}.SGLangBackend.__call__"
    if _sglang_call is None:
        original = backend_class.__call__
        _sglang_call = original

        @functools.wraps(original)
        def stitched_by_astgen(self: Any, graph: torch.fx.GraphModule, example_inputs: Any) -> Callable[..., Any]:
            return stitch(original(self, graph, example_inputs))

        backend_class.__call__ = stitched_by_astgen  # type: ignore[method-assign]
        _logger.info("astgen: SGLang's piecewise stitching is astgen's (%s)", name)
    return name


def uninstall() -> None:
    """Put SGLang's own `SGLangBackend.__call__` back, if `install` replaced it."""
    global _sglang_call
    if _sglang_call is None:
        return
    backend_class = importlib.import_module(BACKEND_MODULE).SGLangBackend
    backend_class.__call__ = _sglang_call  # type: ignore[method-assign]
    _sglang_call = None
    _logger.info("astgen: SGLang's own stitching is back")


def _checked_layout() -> type:
    """SGLang's `SGLangBackend`, once this SGLang is one whose layout astgen knows."""
    try:
        version = importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("astgen.sglang needs SGLang, and no sglang distribution is installed") from None
    if version not in KNOWN_VERSIONS:
        raise RuntimeError(
            f"astgen does not know SGLang {version}'s layout; it knows SGLang {', '.join(KNOWN_VERSIONS)}. "
            f"Unset {ENABLE_VARIABLE} to keep SGLang's own stitching"
        )
    backend_module = importlib.import_module(BACKEND_MODULE)
    compile_module = importlib.import_module(COMPILE_MODULE)
    backend_class = getattr(backend_module, "SGLangBackend", None)
    problems = []
    if not isinstance(backend_class, type) or not isinstance(
        backend_class.__dict__.get("__call__"), types.FunctionType
    ):
        problems.append(f"{BACKEND_MODULE}.SGLangBackend has no __call__ of its own")
    if not callable(getattr(backend_module, "split_graph", None)):
        problems.append(f"{BACKEND_MODULE} has no split_graph")
    install_compiled = getattr(compile_module, "install_torch_compiled", None)
    if not callable(install_compiled) or "backend_factory" not in inspect.signature(install_compiled).parameters:
        problems.append(f"{COMPILE_MODULE}.install_torch_compiled takes no backend_factory")
    if problems:
        raise RuntimeError(f"astgen does not know this SGLang {version}'s layout: {'; '.join(problems)}")
    assert isinstance(backend_class, type)
    return backend_class
