"""Codegen latency: graph in, callable out, from 50 to 30,000 FX nodes.

- astgen: `compile_graph(gm, cache=False)`: lower, passes, emit, `compile()`, bind.
- string baseline: the seed's `generate_execution_code` + `compile_execution_fn`.
- `GraphModule.recompile()`: FX's own Python codegen and `exec`.

`measure_vllm` puts astgen beside vLLM 0.33's own generator (`benchmarks.vllm033`),
both through vLLM's contract: `generate_execution_code`, then
`compile_execution_fn` on the text it returned.
"""

from __future__ import annotations

import contextlib
import os
import time
import types
from collections.abc import Iterator
from typing import Any

import astgen
import astgen.vllm as astgen_vllm
from astgen import compiled, loader, rendered
from benchmarks import graphs, string_baseline, timing, vllm033

ASTGEN = "astgen compile (cache=False)"
STRING = "string baseline generate+compile"
RECOMPILE = "GraphModule.recompile()"
CONTENDERS = (ASTGEN, STRING, RECOMPILE)

NODES = (50, 150, 500, 1500, 3000, 10000, 30000)


def rounds_for(nodes: int, rounds: int) -> int:
    """Fewer rounds for the big graphs: their timings are long and steady."""
    if nodes >= 20000:
        return max(1, rounds // 5)
    if nodes >= 5000:
        return max(1, rounds // 2)
    return rounds


def measure(nodes: tuple[int, ...] = NODES, *, rounds: int = 9) -> list[dict[str, Any]]:
    rows = []
    for target in nodes:
        stitching = graphs.build(graphs.layers_for_nodes(target), graphs.trivial)
        gm = stitching.gm
        callables = graphs.submodule_callables(stitching)
        jobs = {
            ASTGEN: lambda: astgen.compile_graph(gm, cache=False),  # noqa: B023 (run in this iteration)
            STRING: lambda: string_baseline.compile_graph(gm, callables),  # noqa: B023
            RECOMPILE: gm.recompile,
        }
        for job in jobs.values():
            job()  # warm-up: lazy imports and first-use caches
        # A small graph compiles in about a millisecond: a sample repeats the
        # job to last about 20 ms, so one cold start or timer tick is not
        # what gets measured. Big graphs take one call a sample.
        numbers = {name: max(1, int(0.02 / timing.once(job, rounds=1)[0])) for name, job in jobs.items()}
        size_rounds = rounds_for(stitching.nodes, rounds)
        samples: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(size_rounds):
            for name, job in jobs.items():
                samples[name] += timing.once(job, rounds=1, number=numbers[name])
        medians = {name: timing.median(values) for name, values in samples.items()}
        rows.append(
            {
                "nodes": stitching.nodes,
                "layers": stitching.layers,
                "submodules": stitching.submodules,
                "rounds": size_rounds,
                "median_s": medians,
                "per_node_s": {name: value / stitching.nodes for name, value in medians.items()},
                "ratio_to_astgen": {name: value / medians[ASTGEN] for name, value in medians.items()},
            }
        )
    return rows


# ---------------------------------------------------------------- against vLLM 0.33's generator

VLLM033 = "vLLM 0.33 generate+compile"
ASTGEN_CONTRACT = "astgen generate+compile (vLLM contract)"
VLLM_CONTENDERS = (VLLM033, ASTGEN_CONTRACT)
VLLM_NODES = (8, 500, 3000)


def _cold_astgen(gm: Any, callables: dict[str, Any]) -> Any:
    """astgen through vLLM's contract, cold: its code caches and its memory of rendered texts emptied,
    so the text is new to each (`compile_execution_fn` binds the code `generate_execution_code` just made)."""
    compiled.code_cache.clear()
    loader.code_cache.clear()
    rendered.memory.clear()
    code, names, consts = astgen_vllm.generate_execution_code(gm)
    return astgen_vllm.compile_execution_fn(code, callables, names, consts)


def _cold_vllm(generator: types.ModuleType, gm: Any, callables: dict[str, Any]) -> Any:
    code, names, consts = generator.generate_execution_code(gm)
    return generator.compile_execution_fn(code, callables, names, consts)


def measure_vllm(
    generator: types.ModuleType, nodes: tuple[int, ...] = VLLM_NODES, *, rounds: int = 9
) -> list[dict[str, Any]]:
    """Cold generate+compile, graph in and callable out, of astgen and vLLM 0.33 through vLLM's
    contract, in both shapes, in CPU time; the ratio is the median of per-round ratios (the range beside it)."""
    rows = []
    with _disk_cache_off():
        for shape in vllm033.SHAPES:
            for target in nodes:
                stitching = vllm033.decoder(target, shape)
                gm, callables = stitching.gm, vllm033.callables(stitching)
                jobs = {
                    VLLM033: lambda: _cold_vllm(generator, gm, callables),  # noqa: B023 (run in this iteration)
                    ASTGEN_CONTRACT: lambda: _cold_astgen(gm, callables),  # noqa: B023
                }
                inputs = vllm033.inputs(stitching)
                results = {name: job()(*inputs) for name, job in jobs.items()}
                if results[VLLM033] is not results[ASTGEN_CONTRACT]:
                    raise AssertionError(f"vLLM 0.33 and astgen disagree at {target} nodes, {shape}")
                numbers = {name: max(1, int(0.02 / timing.once(job, rounds=1)[0])) for name, job in jobs.items()}
                samples: dict[str, list[float]] = {name: [] for name in jobs}
                size_rounds = rounds_for(stitching.nodes, rounds)
                for _ in range(size_rounds):
                    for name, job in jobs.items():
                        # CPU time: both generators are single-threaded Python, and on a shared
                        # machine wall time mostly measured the other processes (ratios 0.9 to 6).
                        samples[name] += timing.once(job, rounds=1, number=numbers[name], clock=time.thread_time)
                ratios = [a / v for a, v in zip(samples[ASTGEN_CONTRACT], samples[VLLM033], strict=True)]
                rows.append(
                    {
                        "shape": shape,
                        "nodes": stitching.nodes,
                        "rounds": size_rounds,
                        "median_s": {name: timing.median(values) for name, values in samples.items()},
                        "ratio_to_vllm033": timing.median(ratios),
                        "ratio_range": [min(ratios), max(ratios)],
                    }
                )
    return rows


@contextlib.contextmanager
def _disk_cache_off() -> Iterator[None]:
    """No code cache directory: a cold compile must not find the previous round's entry on disk."""
    previous = os.environ.get("ASTGEN_CACHE_DIR")
    os.environ["ASTGEN_CACHE_DIR"] = "off"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("ASTGEN_CACHE_DIR", None)
        else:
            os.environ["ASTGEN_CACHE_DIR"] = previous
