"""Interleaved timing: every contender runs once per round, so drift hits them all alike."""

from __future__ import annotations

import gc
import statistics
import time
import timeit
from collections.abc import Callable, Mapping
from typing import Any


def _timer(fn: Callable[..., Any], args: tuple[Any, ...]) -> timeit.Timer:
    # Positional arguments named one by one: `f(*args)` would time the star-call too.
    names = [f"a{i}" for i in range(len(args))]
    namespace: dict[str, Any] = {"f": fn, **dict(zip(names, args, strict=True))}
    return timeit.Timer(f"f({', '.join(names)})", globals=namespace)


def per_call(
    contenders: Mapping[str, tuple[Callable[..., Any], tuple[Any, ...]]],
    *,
    rounds: int,
    target_s: float,
) -> dict[str, list[float]]:
    """Seconds per call of each contender, one sample per round.

    Each sample runs the contender enough times to last about `target_s`
    (calibrated once, before the first round); `timeit` turns the garbage
    collector off while it times.
    """
    timers = {name: _timer(fn, args) for name, (fn, args) in contenders.items()}
    numbers: dict[str, int] = {}
    for name, timer in timers.items():
        timer.timeit(1)  # warm-up: first-call costs (caches, lazy imports) are not per-call costs
        once = max(timer.timeit(1), 1e-9)
        numbers[name] = max(1, int(target_s / once))
        numbers[name] = max(1, int(numbers[name] * target_s / max(timer.timeit(numbers[name]), 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            samples[name].append(timer.timeit(numbers[name]) / numbers[name])
    return samples


def once(
    fn: Callable[[], Any], *, rounds: int, number: int = 1, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    """Seconds per call of `fn`, one sample per round, each sample the mean of
    `number` back-to-back calls; the collector is off while a sample runs.

    `clock=time.thread_time` counts the CPU time of this thread alone: on a
    shared machine, time the scheduler gave to other processes is not counted.
    """
    samples = []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = clock()
            for _ in range(number):
                fn()
            samples.append((clock() - start) / number)
        finally:
            gc.enable()
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)
