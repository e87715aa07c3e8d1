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
included). Not a test: a number to read, on a machine that may be busy.
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


def draw(count: int, at: int) -> tuple[list[recipe.Recipe], float]:
    """`count` recipes as a campaign draws them, and the seconds Hypothesis took per recipe."""
    drawn: list[recipe.Recipe] = []

    @seed(at)
    @settings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(drawing.recipes(kinds=recipe.DEFAULT_KINDS))
    def collect(made: recipe.Recipe) -> None:
        drawn.append(made)

    begun = time.perf_counter()
    collect()
    return drawn, (time.perf_counter() - begun) / max(len(drawn), 1)


def stages(recipes: list[recipe.Recipe]) -> dict[str, float]:
    """Seconds per graph of each stage, over graphs that pass every check."""
    totals: dict[str, float] = {}

    def timed(name: str, run: Callable[[], Any]) -> Any:
        begun = time.perf_counter()
        result = run()
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - begun
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
    return {name: seconds / len(recipes) for name, seconds in totals.items()}


def passing(recipes: list[recipe.Recipe]) -> list[recipe.Recipe]:
    kept = []
    for made in recipes:
        try:
            checks.check_recipe(made, checks.CHECKS)
        except Exception:
            continue
        kept.append(made)
    return kept


def loop(recipes: list[recipe.Recipe]) -> float:
    """Seconds per graph of `check_recipe` with every check, as a worker runs it."""
    begun = time.perf_counter()
    for made in recipes:
        checks.check_recipe(made, checks.CHECKS)
    return (time.perf_counter() - begun) / len(recipes)


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
    drawn, draw_seconds = draw(options.graphs, options.seed)
    kept = passing(drawn)
    cold()
    per_stage = {"draw": draw_seconds, **stages(kept)}
    cold()
    checking = loop(kept)
    total = sum(per_stage.values())
    nodes = sum(len(made["nodes"]) for made in kept) / max(len(kept), 1)
    print(
        f"fuzz throughput: {len(drawn)} graphs drawn, {len(kept)} passing every check ({nodes:.1f} nodes each), 1 core"
    )
    print(f"{'stage':<18} {'ms/graph':>9} {'share':>6}")
    for name, seconds in per_stage.items():
        print(f"{name:<18} {seconds * 1e3:9.3f} {seconds / total:6.1%}")
    print(f"{'sum of stages':<18} {total * 1e3:9.3f}  -> {1 / total:.0f} graphs/s per core")
    real = draw_seconds + checking
    print(f"draw + check_recipe (every check): {real * 1e3:.3f} ms/graph -> {1 / real:.0f} graphs/s per core")


if __name__ == "__main__":
    main()
