"""Per-call stitching overhead on vLLM-shaped graphs with trivial submodules, and bytecode size.

Every submodule returns constant objects, so a call's time is the stitching
alone. Contenders, all calling the very same submodule callables:

- `torch.fx.Interpreter`: `Interpreter(gm).run(...)`, node by node.
- `GraphModule.__call__`: FX's own generated `forward`, through `nn.Module.__call__`,
  reaching the callables in its `__dict__` as vLLM installs them.
- `GraphModule.__call__ (nn.Module pieces)`: the same graph with each callable
  wrapped in an `nn.Module` child, as `split_module` leaves pieces: every piece
  call then also pays `nn.Module.__call__`.
- string baseline: the seed's f-string code, `exec` and `functools.partial`.
- astgen .fn: the bare generated function, what compilers put on the hot path.
- astgen load(artifact): the same function rebuilt by `astgen.load` from the
  compiled graph's portable artifact, as a later process rebuilds it.
- astgen CompiledGraph: `CompiledGraph.__call__`, `.fn` inside a try that adds error notes.
- hand-written: the ideal a careful person writes (`hand_written.py`).
"""

from __future__ import annotations

import dis
import types
from collections.abc import Callable
from typing import Any

import torch.fx

import astgen
import astgen.vllm as astgen_vllm
from benchmarks import graphs, hand_written, string_baseline, timing

INTERPRETER = "torch.fx.Interpreter"
GRAPH_MODULE = "GraphModule.__call__"
GRAPH_MODULE_MODULES = "GraphModule.__call__ (nn.Module pieces)"
STRING = "string baseline"
ASTGEN_FN = "astgen .fn"
ASTGEN_CG = "astgen CompiledGraph"
ASTGEN_LOADED = "astgen load(artifact)"
HAND = "hand-written"
CONTENDERS = (INTERPRETER, GRAPH_MODULE_MODULES, GRAPH_MODULE, STRING, ASTGEN_FN, ASTGEN_LOADED, ASTGEN_CG, HAND)

LAYERS = (1, 2, 4, 8, 16, 32, 80, 160, 250, 500)


class _Piece(torch.nn.Module):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def with_module_pieces(stitching: graphs.Stitching) -> torch.fx.GraphModule:
    root = torch.nn.Module()
    for name, fn in graphs.submodule_callables(stitching).items():
        root.add_module(name, _Piece(fn))
    return torch.fx.GraphModule(root, stitching.gm.graph)


def contenders(stitching: graphs.Stitching) -> dict[str, Callable[..., Any]]:
    gm = stitching.gm
    callables = graphs.submodule_callables(stitching)
    compiled = astgen.compile_graph(gm)
    return {
        INTERPRETER: torch.fx.Interpreter(gm).run,
        GRAPH_MODULE_MODULES: with_module_pieces(stitching),
        GRAPH_MODULE: gm,
        STRING: string_baseline.compile_graph(gm, callables),
        ASTGEN_FN: compiled.fn,
        ASTGEN_LOADED: astgen.load(compiled.artifact(), callables),
        ASTGEN_CG: compiled,
        HAND: hand_written.compile_hand_written(stitching),
    }


def code_of(name: str, fn: Callable[..., Any]) -> types.CodeType | None:
    """The code object each contender runs per call (the interpreter has none)."""
    if name == INTERPRETER:
        return None
    if name in (GRAPH_MODULE, GRAPH_MODULE_MODULES):
        return type(fn).forward.__code__  # type: ignore[attr-defined]
    if name == STRING:
        return fn.func.__code__  # type: ignore[attr-defined]
    if name == ASTGEN_CG:
        return fn.fn.__code__  # type: ignore[attr-defined]
    return fn.__code__  # type: ignore[attr-defined]


def instruction_count(code: types.CodeType | None) -> int | None:
    return None if code is None else sum(1 for _ in dis.get_instructions(code))


def check_agree(fns: dict[str, Callable[..., Any]], inputs: tuple[Any, ...]) -> None:
    """Every contender returns the very object the last submodule returned."""
    results = {name: fn(*inputs) for name, fn in fns.items()}
    first = results[ASTGEN_FN]
    wrong = [name for name, result in results.items() if result is not first]
    if wrong:
        raise AssertionError(f"contenders disagree with astgen: {wrong}")


def measure(
    layers: tuple[int, ...] = LAYERS, *, rounds: int = 21, target_s: float = 0.01, quick: bool = False
) -> list[dict[str, Any]]:
    rows = []
    inputs = graphs.trivial_inputs()
    for count in layers:
        stitching = graphs.build(count, graphs.trivial)
        fns = contenders(stitching)
        check_agree(fns, inputs)
        # Small graphs are the noisiest and carry the tightest targets: more rounds there.
        size_rounds = rounds if quick or count > 16 else rounds * 2
        samples = timing.per_call(
            {name: (fn, inputs) for name, fn in fns.items()}, rounds=size_rounds, target_s=target_s
        )
        medians = {name: timing.median(values) for name, values in samples.items()}
        rows.append(
            {
                "layers": count,
                "submodules": stitching.submodules,
                "nodes": stitching.nodes,
                "rounds": size_rounds,
                "median_s": medians,
                "min_s": {name: min(values) for name, values in samples.items()},
                "ratio_to_astgen_fn": {name: medians[name] / medians[ASTGEN_FN] for name in fns},
                "bytecode_instructions": {name: instruction_count(code_of(name, fn)) for name, fn in fns.items()},
            }
        )
    return rows


# ---------------------------------------------------------------- class-instance pieces, against vLLM 0.33

VLLM033 = "vLLM 0.33 (partial, __vllm_submods__[i])"
ASTGEN_CONTRACT = "astgen (vLLM contract)"
CLASS_CONTENDERS = (VLLM033, ASTGEN_CONTRACT)
CLASS_LAYERS = (1, 16, 80)


class Backend:
    """A piece as vLLM installs a compiled one: an instance of a plain class whose `__call__`
    (as `PiecewiseBackend.__call__`) takes the inputs and returns the piece's result."""

    def __init__(self, result: object) -> None:
        self.result = result

    def __call__(self, *args: Any) -> Any:
        return self.result


def backend(piece: graphs.Piece) -> Backend:
    trivial = graphs.trivial(piece)
    return Backend(trivial())


def measure_class_pieces(
    generator: Any, layers: tuple[int, ...] = CLASS_LAYERS, *, rounds: int = 21, target_s: float = 0.01
) -> list[dict[str, Any]]:
    """Per call, pieces that are `Backend` instances: astgen's function against vLLM 0.33's,
    both built through vLLM's contract; the ratio is the median of per-round ratios."""
    rows = []
    for count in layers:
        stitching = graphs.build(count, backend)
        gm, callables = stitching.gm, graphs.submodule_callables(stitching)
        code, names, consts = generator.generate_execution_code(gm)
        theirs = generator.compile_execution_fn(code, callables, names, consts)
        code, names, consts = astgen_vllm.generate_execution_code(gm)
        ours = astgen_vllm.compile_execution_fn(code, callables, names, consts)
        inputs = graphs.trivial_inputs()
        if theirs(*inputs) is not ours(*inputs):
            raise AssertionError(f"vLLM 0.33 and astgen disagree at {count} layers")
        samples = timing.per_call(
            {VLLM033: (theirs, inputs), ASTGEN_CONTRACT: (ours, inputs)}, rounds=rounds, target_s=target_s
        )
        ratios = [a / v for a, v in zip(samples[ASTGEN_CONTRACT], samples[VLLM033], strict=True)]
        rows.append(
            {
                "layers": count,
                "submodules": stitching.submodules,
                "rounds": rounds,
                "median_s": {name: timing.median(values) for name, values in samples.items()},
                "ratio_to_vllm033": timing.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
            }
        )
    return rows
