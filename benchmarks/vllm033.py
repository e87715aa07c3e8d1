"""vLLM 0.33.0's own code generator as a contender, and the stitching graphs it is measured on.

The generator is `vllm/compilation/codegen.py` of the installed vLLM wheel
(`make bench` installs it into `.venv-vllm` with `--no-deps`); the module
imports only torch, so it is loaded by path into this process, under a
private name, and runs beside astgen on the very same graphs. Set
`ASTGEN_VLLM_CODEGEN` to read the file from elsewhere, e.g. one extracted
from the wheel:

    unzip -p vllm-0.33.0-*.whl vllm/compilation/codegen.py > /tmp/codegen.py
    ASTGEN_VLLM_CODEGEN=/tmp/codegen.py python -m benchmarks.run

Without the file, the rows that need it are skipped and say why.

Two shapes of the same decoder, as vLLM's backend hands it over:

- all pieces compiled: every piece a callable in the module's `__dict__`
  (vLLM's `PiecewiseBackend` install);
- attention inlined: the attention pieces stay plain `GraphModule`s, which
  both generators splice into the function.
"""

from __future__ import annotations

import builtins
import importlib.util
import operator
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.fx

from benchmarks import graphs

ENVIRONMENT = "ASTGEN_VLLM_CODEGEN"
INSTALLED = (
    Path(__file__).resolve().parent.parent / ".venv-vllm/lib/python3.11/site-packages/vllm/compilation/codegen.py"
)
_MODULE_NAME = "_astgen_bench_vllm033_codegen"

COMPILED = "all pieces compiled"
INLINED = "attention inlined"
SHAPES = (COMPILED, INLINED)


def location() -> Path:
    """Where vLLM 0.33's generator is read from: `$ASTGEN_VLLM_CODEGEN`, else the installed wheel."""
    setting = os.environ.get(ENVIRONMENT)
    return Path(setting) if setting else INSTALLED


def load() -> tuple[types.ModuleType | None, str]:
    """vLLM 0.33's `codegen` module and where it came from, or None and why it is missing."""
    path = location()
    if not path.is_file():
        return None, (
            f"vLLM 0.33 generator not found at {path} (run `make bench`, which installs it, "
            f"or set {ENVIRONMENT}): its rows are skipped"
        )
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    if spec is None or spec.loader is None:
        return None, f"vLLM 0.33 generator at {path} cannot be loaded: its rows are skipped"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, str(path)


def attention_piece(arity: int) -> torch.fx.GraphModule:
    """An eager attention stand-in taking `arity` inputs (the last the size): one op on the size, its first input returned."""
    graph = torch.fx.Graph()
    inputs = [graph.placeholder(name) for name in ("q", "k", "v", "out")[: arity - 1]]
    s0 = graph.placeholder("s0")
    graph.call_function(builtins.max, (s0, s0))
    graph.output(inputs[0])
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def _make(shape: str, arity: int, make: Callable[[graphs.Piece], Any]) -> Callable[[graphs.Piece], Any]:
    def piece(spec: graphs.Piece) -> Any:
        if shape == INLINED and spec.kind == "attention":
            return attention_piece(arity)
        return make(spec)

    return piece


def tiny(shape: str, make: Callable[[graphs.Piece], Any] = graphs.trivial) -> graphs.Stitching:
    """The smallest split decoder, 8 FX nodes: `x, s0`; a piece returning `(q, residual)`; attention; the final piece."""
    graph = torch.fx.Graph()
    x, s0 = graph.placeholder("x"), graph.placeholder("s0")
    pieces = (
        graphs.Piece("submod_0", 2, "piece"),
        graphs.Piece("submod_1", 0, "attention"),
        graphs.Piece("submod_2", 0, "final"),
    )
    first = graph.call_module("submod_0", (x, s0))
    first.meta["val"] = (graphs._META, graphs._META)
    q, residual = (graph.call_function(operator.getitem, (first, i)) for i in range(2))
    attention = graph.call_module("submod_1", (q, s0))
    graph.output(graph.call_module("submod_2", (attention, residual, s0)))
    make_piece = _make(shape, 2, make)
    root = torch.nn.Module()
    for spec in pieces:
        # As `graphs.build` installs them: a GraphModule becomes a child, anything else sits in `__dict__`.
        setattr(root, spec.name, make_piece(spec))
    gm = torch.fx.GraphModule(root, graph)
    for spec in pieces:
        gm.__dict__[spec.name] = getattr(root, spec.name)
    return graphs.Stitching(gm, pieces, 1)


def decoder(nodes: int, shape: str, make: Callable[[graphs.Piece], Any] = graphs.trivial) -> graphs.Stitching:
    """The decoder of `benchmarks.graphs` nearest `nodes` FX nodes (`tiny` for 8), in `shape`."""
    if nodes <= 8:
        return tiny(shape, make)
    return graphs.build(graphs.layers_for_nodes(nodes), _make(shape, 5, make))


def callables(stitching: graphs.Stitching) -> dict[str, Any]:
    """The pieces a caller hands `compile_execution_fn`: every piece that is not a `GraphModule`."""
    return {
        piece.name: stitching.gm.__dict__[piece.name]
        for piece in stitching.pieces
        if not isinstance(stitching.gm.__dict__[piece.name], torch.fx.GraphModule)
    }


def inputs(stitching: graphs.Stitching) -> tuple[object, ...]:
    """Arguments for the stitching function: `x, s0` for `tiny`, `x, positions, s0` otherwise."""
    if len(stitching.gm.graph.find_nodes(op="placeholder")) == 2:
        return (object(), 7)
    return graphs.trivial_inputs()
