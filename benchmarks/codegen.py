"""Codegen latency: graph in, callable out, from 50 to 30,000 FX nodes.

- astgen: `compile_graph(gm, cache=False)`: lower, passes, emit, `compile()`, bind.
- string baseline: the seed's `generate_execution_code` + `compile_execution_fn`.
- `GraphModule.recompile()`: FX's own Python codegen and `exec`.
"""

from __future__ import annotations

from typing import Any

import astgen
from benchmarks import graphs, string_baseline, timing

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
