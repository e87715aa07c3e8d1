"""Portable artifacts: warm load against vLLM's path, and per-call cost of inlined pieces.

Warm load is what a later process pays to turn a cached artifact back into a
callable, with the graph gone:

- vLLM's path: `exec` of its code text and a `functools.partial` binding the
  pieces (the seed generator's text, which vLLM's loader runs the same way);
- vLLM 0.33: its own `compile_execution_fn` on the text its own
  `generate_execution_code` wrote (`benchmarks.vllm033`), when it is installed;
- astgen warm load: `astgen.load` with the checked code object in the code
  cache directory, as a later process finds it (the in-memory cache is
  emptied before every load, so each one reads and unmarshals the file);
- astgen in-process: a second load in the same process (memory hit);
- astgen cold: parse, lift into the IR, emit, compile (first load on a machine).

Per call: a stitching graph whose attention pieces are plain `GraphModule`s
(eager, as vLLM keeps attention), called through `GraphModule.forward`
(`compile_graph`'s default) or spliced into the function (`inline=True`).
"""

from __future__ import annotations

import builtins
import os
import tempfile
import types
from typing import Any

import torch
import torch.fx

import astgen
from astgen import loader
from benchmarks import graphs, string_baseline, timing

VLLM = "vLLM path (exec + partial)"
VLLM033 = "vLLM 0.33 compile_execution_fn"
WARM = "astgen load, disk cache (later process)"
MEMORY = "astgen load, memory cache (same process)"
COLD = "astgen load, cold (parse + check + compile)"
LOAD_CONTENDERS = (VLLM, WARM, MEMORY, COLD)
LOAD_NODES = (500, 3000)

CALLED = "GraphModule pieces via .forward"
INLINED = "pieces inlined"
CALL_CONTENDERS = (CALLED, INLINED)
CALL_LAYERS = (1, 16, 80)


def measure_load(
    nodes: tuple[int, ...] = LOAD_NODES, *, rounds: int = 9, generator: types.ModuleType | None = None
) -> list[dict[str, Any]]:
    """Each load contender at each size; with `generator` (vLLM 0.33's codegen module) its loader too."""
    rows = []
    previous = os.environ.get("ASTGEN_CACHE_DIR")
    with tempfile.TemporaryDirectory() as directory:
        os.environ["ASTGEN_CACHE_DIR"] = directory
        try:
            for target in nodes:
                rows.append(_measure_load_one(target, rounds, generator))
        finally:
            if previous is None:
                os.environ.pop("ASTGEN_CACHE_DIR", None)
            else:
                os.environ["ASTGEN_CACHE_DIR"] = previous
    return rows


def _measure_load_one(target: int, rounds: int, generator: types.ModuleType | None) -> dict[str, Any]:
    stitching = graphs.build(graphs.layers_for_nodes(target), graphs.trivial)
    callables = graphs.submodule_callables(stitching)
    vllm_code, vllm_names = string_baseline.generate_execution_code(stitching.gm)
    artifact = astgen.compile_graph(stitching.gm, cache=False).artifact()
    # Each cold load must parse: a comment line makes the text new to every cache.
    cold_texts = iter(f"# {index}\n{artifact.code}" for index in range(10_000))

    def warm() -> Any:
        loader.code_cache.clear()
        return astgen.load(artifact, callables)

    def cold() -> Any:
        return loader.bind_verified(
            loader.compile_text(next(cold_texts), None, (), "<bench>"), callables, artifact.piece_names, artifact.consts
        )

    jobs = {
        VLLM: lambda: string_baseline.compile_execution_fn(vllm_code, callables, vllm_names),
        WARM: warm,
        MEMORY: lambda: astgen.load(artifact, callables),
        COLD: cold,
    }
    if generator is not None:
        their_code, their_names, their_consts = generator.generate_execution_code(stitching.gm)
        jobs[VLLM033] = lambda: generator.compile_execution_fn(their_code, callables, their_names, their_consts)
    inputs = graphs.trivial_inputs()
    for job in jobs.values():
        job()  # warm-up, and the disk cache gets its entry
    results = {name: job()(*inputs) for name, job in jobs.items()}
    if len({id(result) for result in results.values()}) != 1:
        raise AssertionError(f"contenders disagree at {target} nodes")
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            samples[name] += timing.once(job, rounds=1)
    medians = {name: timing.median(values) for name, values in samples.items()}
    return {
        "nodes": stitching.nodes,
        "text_bytes": {"vllm": len(vllm_code), "astgen": len(artifact.code)},
        "rounds": rounds,
        "median_s": medians,
        "ratio_to_vllm": {name: medians[name] / medians[VLLM] for name in jobs},
        "ratio_to_vllm033": {name: medians[name] / medians[VLLM033] for name in jobs} if generator else None,
    }


def _attention_piece() -> torch.fx.GraphModule:
    """An eager attention stand-in: one op on the size input, its first input returned."""
    graph = torch.fx.Graph()
    q, *_, s0 = (graph.placeholder(name) for name in ("q", "k", "v", "out", "s0"))
    graph.call_function(builtins.max, (s0, s0))
    graph.output(q)
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def _pieces(piece: graphs.Piece) -> Any:
    return _attention_piece() if piece.kind == "attention" else graphs.trivial(piece)


def measure_calls(
    layers: tuple[int, ...] = CALL_LAYERS, *, rounds: int = 9, target_s: float = 0.02
) -> list[dict[str, Any]]:
    rows = []
    for count in layers:
        stitching = graphs.build(count, _pieces)
        gm = stitching.gm
        called = astgen.compile_graph(gm, cache=False).fn
        inlined = astgen.compile_graph(gm, cache=False, inline=True).fn
        inputs = graphs.trivial_inputs()
        if called(*inputs) is not inlined(*inputs):
            raise AssertionError("inlined and called pieces disagree")
        samples = timing.per_call(
            {CALLED: (called, inputs), INLINED: (inlined, inputs)}, rounds=rounds, target_s=target_s
        )
        medians = {name: timing.median(values) for name, values in samples.items()}
        rows.append(
            {
                "layers": count,
                "submodules": stitching.submodules,
                "attention_pieces": count,
                "median_s": medians,
                "ratio_inlined_to_called": medians[INLINED] / medians[CALLED],
            }
        )
    return rows


def print_load(rows: list[dict[str, Any]]) -> None:
    print("\n## Warm load: cached artifact -> callable, graph gone (median ms; x: ratio to vLLM's path)\n")
    print("| FX nodes | " + " | ".join(LOAD_CONTENDERS) + " |")
    print("|---:|" + "---:|" * len(LOAD_CONTENDERS))
    for row in rows:
        cells = [f"{row['median_s'][name] * 1e3:,.2f} (x{row['ratio_to_vllm'][name]:.2f})" for name in LOAD_CONTENDERS]
        print(f"| {row['nodes']} | " + " | ".join(cells) + " |")
    with_vllm033 = [row for row in rows if row.get("ratio_to_vllm033")]
    if with_vllm033:
        print("\nAgainst vLLM 0.33's own `compile_execution_fn` on its own text (median ms; x: ratio to it):\n")
        names = (VLLM033, *LOAD_CONTENDERS[1:])
        print("| FX nodes | " + " | ".join(names) + " |")
        print("|---:|" + "---:|" * len(names))
        for row in with_vllm033:
            cells = [f"{row['median_s'][name] * 1e3:,.2f} (x{row['ratio_to_vllm033'][name]:.2f})" for name in names]
            print(f"| {row['nodes']} | " + " | ".join(cells) + " |")


def print_calls(rows: list[dict[str, Any]]) -> None:
    print("\n## Per call with eager attention pieces (median µs per call)\n")
    print("| layers (attention pieces) | " + " | ".join(CALL_CONTENDERS) + " | inlined / called |")
    print("|---:|" + "---:|" * (len(CALL_CONTENDERS) + 1))
    for row in rows:
        cells = [f"{row['median_s'][name] * 1e6:,.2f}" for name in CALL_CONTENDERS]
        print(f"| {row['layers']} | " + " | ".join(cells) + f" | {row['ratio_inlined_to_called']:.2f} |")
