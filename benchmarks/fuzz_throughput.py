"""Fuzzing throughput: graphs per second per core with every check on, and the time of each stage.

    python -m benchmarks.fuzz_throughput [--graphs 400] [--seed 0]

One process, one torch thread: a core. Stages, per graph on average:

- draw: Hypothesis drawing a recipe (`astgen.testing.drawing.recipes`, the campaign's default kinds);
- build: `recipe.build`, the GraphModule and its arguments;
- interpret: the liveness oracle's `torch.fx.Interpreter` run (it gives the expected result too);
- compile: astgen's lowering and compile, shared by the checks;
- each check of `astgen.testing.checks.CHECKS` on that compile.

It prints the rate the stages add up to, and the rate of the real loop
(`check_recipe` on each drawn recipe, as a campaign worker runs it, draw
included). Each is timed twice: by the clock (wall), and by the CPU time
spent, this process's and the audited subprocess's that the loader check
waits on (from `/proc/<pid>/schedstat`, where there is one). On a busy
machine the clock counts other processes' turns too; the CPU time is what
one core spends on the graph. Not a test: a number to read.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import HealthCheck, given, seed, settings

from astgen import loader
from astgen.compiled import code_cache, compile_lowered
from astgen.lower import lower
from astgen.passes import run_passes
from astgen.testing import campaign, checks, drawing, recipe
from astgen.testing.oracles import difference, expected_liveness


def _audit_seconds() -> float:
    """CPU seconds the loader check's audited subprocess has run, or 0 where none runs or Linux does not say."""
    if not checks._loader_server:
        return 0.0
    process = checks._loader_server[0].process
    try:
        with open(f"/proc/{process.pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, AttributeError, ValueError, IndexError):
        return 0.0


class Clocks:
    """Wall and CPU seconds, from `start()` on: the CPU this process's and the audited subprocess's."""

    def start(self) -> None:
        self.audit, self.cpu, self.wall = _audit_seconds(), time.process_time(), time.perf_counter()

    def stop(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return wall, cpu + _audit_seconds() - self.audit


def draw(count: int, at: int) -> tuple[list[recipe.Recipe], tuple[float, float]]:
    """`count` recipes as a campaign draws them, and the wall and CPU seconds Hypothesis took per recipe."""
    drawn: list[recipe.Recipe] = []

    @seed(at)
    @settings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(drawing.recipes(kinds=recipe.DEFAULT_KINDS))
    def collect(made: recipe.Recipe) -> None:
        drawn.append(made)

    clocks = Clocks()
    clocks.start()
    collect()
    wall, cpu = clocks.stop()
    return drawn, (wall / max(len(drawn), 1), cpu / max(len(drawn), 1))


def stages(recipes: list[recipe.Recipe]) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds per graph of each stage, over graphs that pass every check."""
    totals: dict[str, tuple[float, float]] = {}
    clocks = Clocks()

    def timed(name: str, run: Callable[[], Any]) -> Any:
        clocks.start()
        result = run()
        wall, cpu = clocks.stop()
        before = totals.get(name, (0.0, 0.0))
        totals[name] = (before[0] + wall, before[1] + cpu)
        return result

    for made in recipes:
        gm, args = timed("build", lambda made=made: recipe.build(made))
        liveness = timed("interpret", lambda gm=gm, args=args: expected_liveness(gm, args))
        lowered = timed("compile (lower)", lambda gm=gm: lower(gm))
        compiled = timed("compile", lambda lowered=lowered: compile_lowered(lowered))
        timed("verifier", lambda lowered=lowered: run_passes(lowered.function, check=True))
        actual = timed("interpreter", lambda c=compiled, a=args, e=liveness.result: (difference(e, c(*a)), c(*a))[1])
        work: dict[str, Callable[[], Any]] = {
            "statements": lambda c=compiled: checks.check_statements(c),
            "roundtrip": lambda c=compiled: checks.check_roundtrip(c),
            "deterministic": lambda c=compiled, gm=gm, m=made: checks.check_deterministic(
                c, gm, lambda: recipe.build(m)
            ),
            "liveness": lambda c=compiled, gm=gm, a=args, lv=liveness: checks.check_liveness(gm, a, c, lv),
            "traceback": lambda c=compiled, gm=gm, a=args: checks.check_traceback(gm, a, c),
            "vllm": lambda gm=gm, a=args, lv=liveness: checks.check_vllm(gm, a, lv.result),
            "artifact": lambda c=compiled, gm=gm, a=args, lv=liveness: checks.check_artifact(c, gm, a, lv.result),
            "graphmodule": lambda gm=gm, a=args, lv=liveness, r=actual: checks.check_graphmodule(gm, a, lv.result, r),
            "loader": lambda c=compiled: checks.check_loader(c),
        }
        for name, run in work.items():
            timed(name, run)
    return {name: (wall / len(recipes), cpu / len(recipes)) for name, (wall, cpu) in totals.items()}


def passing(recipes: list[recipe.Recipe]) -> list[recipe.Recipe]:
    kept = []
    for made in recipes:
        try:
            checks.check_recipe(made, checks.CHECKS)
        except Exception:
            continue
        kept.append(made)
    return kept


def loop(recipes: list[recipe.Recipe]) -> tuple[float, float]:
    """Wall and CPU seconds per graph of `check_recipe` with every check, as a worker runs it."""
    clocks = Clocks()
    clocks.start()
    for made in recipes:
        checks.check_recipe(made, checks.CHECKS)
    wall, cpu = clocks.stop()
    return wall / len(recipes), cpu / len(recipes)


def cold() -> None:
    """Forget the code that `passing` made for these graphs: a campaign's graphs are new to its caches."""
    code_cache.clear()
    loader.code_cache.memory.clear()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--graphs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    # As a campaign worker runs: no code cache on disk, a first batch that imports, then the heap settled.
    os.environ["ASTGEN_CACHE_DIR"] = "off"
    warm, _ = draw(20, options.seed + 1)
    loop(passing(warm))
    campaign.settle_heap()
    drawn, drawing_time = draw(options.graphs, options.seed)
    kept = passing(drawn)
    cold()
    per_stage = {"draw": drawing_time, **stages(kept)}
    cold()
    checking = loop(kept)
    wall, cpu = (sum(times[i] for times in per_stage.values()) for i in (0, 1))
    nodes = sum(len(made["nodes"]) for made in kept) / max(len(kept), 1)
    print(
        f"fuzz throughput: {len(drawn)} graphs drawn, {len(kept)} passing every check ({nodes:.1f} nodes each), 1 core"
    )
    print(f"{'stage':<18} {'wall ms':>8} {'cpu ms':>8} {'share':>6}")
    for name, (stage_wall, stage_cpu) in per_stage.items():
        print(f"{name:<18} {stage_wall * 1e3:8.3f} {stage_cpu * 1e3:8.3f} {stage_cpu / cpu:6.1%}")
    print(
        f"{'sum of stages':<18} {wall * 1e3:8.3f} {cpu * 1e3:8.3f}  -> {1 / wall:.0f} (wall), {1 / cpu:.0f} (cpu) graphs/s per core"
    )
    real_wall, real_cpu = drawing_time[0] + checking[0], drawing_time[1] + checking[1]
    print(
        f"draw + check_recipe (every check): {real_wall * 1e3:.3f} ms wall, {real_cpu * 1e3:.3f} ms cpu a graph"
        f" -> {1 / real_wall:.0f} (wall), {1 / real_cpu:.0f} (cpu) graphs/s per core"
    )


if __name__ == "__main__":
    main()
