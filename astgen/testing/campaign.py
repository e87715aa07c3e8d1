"""Campaigns: worker processes drawing graphs until one breaks a check, and the command line.

`python -m astgen.fuzz` runs the checks of `astgen.testing.checks` as a
campaign: worker processes, a live progress line, a shared Hypothesis example
database (a directory or Redis) and a standalone reproducer script per
distinct failure. `--target` picks what is fuzzed (`astgen.testing.targets`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import importlib.metadata
import math
import multiprocessing
import os
import queue
import sys
import time
import unittest
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase, ReadOnlyDatabase

from astgen.testing import drawing, findings, minimize, targets
from astgen.testing import recipe as recipes
from astgen.testing.checks import (
    ALL_CHECKS,
    CHECK_DESCRIPTIONS,
    CHECKS,
    PropertyFailure,
    check_recipe,
    kind,
    signature,
)
from astgen.testing.reproducers import write_reproducer

# ---------------------------------------------------------------- campaigns


class UsageError(ValueError):
    """Options no campaign can run with; the CLI prints the message on one line and exits 2."""


def open_database(spec: str | None) -> ExampleDatabase | None:
    """`redis://host:port[/db]` for Hypothesis's Redis database, a directory path, or None for none."""
    if spec is None or spec == "none":
        return None
    if spec.startswith(_REDIS_SCHEMES):
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase

        return RedisExampleDatabase(redis.Redis.from_url(spec, socket_connect_timeout=5))
    return DirectoryBasedExampleDatabase(spec)


_REDIS_SCHEMES = ("redis://", "rediss://")


def check_database(spec: str | None, replay: bool = False) -> None:
    """Raise `UsageError` unless `spec` names a database a campaign can use now (a Redis server is asked)."""
    if spec is None or spec == "none":
        if replay:
            raise UsageError("--replay replays a database: give one with --db DIR or --db redis://host:port")
        return
    if spec.startswith(_REDIS_SCHEMES):
        try:
            import redis
        except ImportError:
            raise UsageError(f"--db {spec} needs the redis package: pip install 'astgen[fuzz]'") from None
        try:
            redis.Redis.from_url(spec, socket_connect_timeout=5).ping()
        except (ValueError, redis.RedisError) as error:
            raise UsageError(f"--db {spec}: cannot reach Redis: {error}") from None
        return
    path = Path(spec)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--db {spec} is not a directory")
    if replay and not path.exists():
        raise UsageError(f"--db {spec} does not exist: there is nothing to replay")


def check_options(
    *,
    seconds: float | None,
    max_examples: int | None,
    workers: int,
    database: str | None,
    out: Path,
    replay: bool,
    kinds: Sequence[str],
    max_nodes: int,
    checks: Sequence[str],
    seed: int | None,
    fuzzed: Sequence[str] = (targets.ASTGEN,),
) -> None:
    """Raise `UsageError` for options `campaign` cannot run with, before any worker starts."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if seconds is not None and not seconds > 0:
        raise UsageError(f"--seconds must be more than 0, not {seconds}")
    if max_examples is not None and max_examples < 1:
        raise UsageError(f"--max-examples must be at least 1, not {max_examples}")
    if max_nodes < 1:
        raise UsageError(f"--max-nodes must be at least 1, not {max_nodes}")
    unknown = [check for check in checks if check not in ALL_CHECKS]
    if unknown or not checks:
        named = f"unknown checks: {', '.join(unknown)}" if unknown else "no check given"
        raise UsageError(f"{named}; the checks are {', '.join(ALL_CHECKS)}")
    resolved = resolve_targets(fuzzed)
    claimed = set().union(*(claims(target, len(resolved)) for target in resolved))
    unclaimed = [check for check in checks if check not in claimed]
    if unclaimed:
        named = ", ".join(target.name for target in resolved)
        raise UsageError(f"no target claims {', '.join(unclaimed)}: {named} claim {', '.join(sorted(claimed))}")
    unknown = [kind for kind in kinds if kind not in recipes.KINDS]
    if unknown:
        raise UsageError(f"unknown kinds: {', '.join(unknown)}; the kinds are {', '.join(recipes.KINDS)}")
    try:
        drawing.recipes(kinds=kinds, max_nodes=max_nodes)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if seed is not None and database not in (None, "none"):
        raise UsageError("a seeded campaign saves nothing to the example database: give --seed or --db, not both")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a directory")
    check_database(database, replay)


def resolve_targets(names: Sequence[str]) -> list[targets.Target]:
    """The targets `--target` names (one, or two for a differential run); `UsageError` otherwise."""
    if not 1 <= len(names) <= 2:
        raise UsageError(f"give one --target, or two for a differential run, not {len(names)}")
    if len(set(names)) != len(names):
        raise UsageError(f"--target {names[0]} given twice")
    try:
        return [targets.resolve(name) for name in names]
    except ValueError as error:
        raise UsageError(str(error)) from None


def claims(target: targets.Target, count: int) -> set[str]:
    """The checks `target` claims in a run of `count` targets: astgen's own, or the target's, and `agree` with two."""
    claimed = set(CHECKS) if target.name == targets.ASTGEN else set(target.claims)
    return claimed | {"agree"} if count == 2 else claimed


def default_checks(names: Sequence[str]) -> list[str]:
    """Every check the targets claim."""
    resolved = resolve_targets(names)
    claimed = set().union(*(claims(target, len(resolved)) for target in resolved))
    return [check for check in ALL_CHECKS if check in claimed]


class _OutOfTime(BaseException):
    """Raised from the property at the deadline. Not an Exception, so Hypothesis stops at once
    instead of taking it for a failure to shrink."""


class _Found(AssertionError):
    """A failure as the campaign raises it to Hypothesis: one subclass per signature (`_found`), so
    Hypothesis shrinks each failure on its own instead of all raised at one line as one."""


@functools.cache
def _found(failure_signature: str) -> type[_Found]:
    return type("_Found", (_Found,), {"signature": failure_signature})


@dataclass
class _Raw:
    """One signature as a worker saw it: the smallest recipe failing with it, and how many graphs did."""

    recipe: recipes.Recipe
    signature: str
    scope: str
    error: str
    site: str
    occurrences: int = 0
    construct: str | None = None

    @property
    def kind(self) -> str:
        return f"{self.scope}: {self.error}"


@dataclass
class Tally:
    """What a campaign saw, summed over workers: graphs checked and refused, coverage and root causes."""

    graphs: int = 0
    checked: int = 0
    failing: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # "target: construct" -> graphs
    observed: dict[str, int] = field(default_factory=dict)  # "target check" -> graphs it observed
    runs: dict[str, int] = field(default_factory=dict)  # "target check" -> graphs it ran on
    found: dict[str, findings.Finding] = field(default_factory=dict)  # group -> its runs and signatures
    signatures: int = 0

    def add(self, other: Tally) -> None:
        self.graphs += other.graphs
        self.checked += other.checked
        self.failing += other.failing
        self.signatures += other.signatures
        for mine, theirs in (
            (self.refused, other.refused),
            (self.observed, other.observed),
            (self.runs, other.runs),
        ):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        for key, found in other.found.items():
            known = self.found.get(key)
            self.found[key] = found if known is None else known.joined(found)


# Seconds the delta-debugging of one new failure may take; a deadline closer than that cuts it short.
_MINIMIZE_SECONDS = 8.0
# Drawing stops this long before the workers must report, for the last failures to be minimized.
_GROUPING_SECONDS = 1.0


@dataclass
class _Worker:
    """One campaign process: Hypothesis runs in batches until the deadline or its share of examples."""

    index: int
    deadline: float
    examples: int
    database: str | None
    out: Path
    report: Any
    replay: bool
    kinds: tuple[str, ...]
    max_nodes: int
    checks: tuple[str, ...]
    seed: int | None = None
    fuzzed: tuple[str, ...] = (targets.ASTGEN,)
    count: int = 0
    raw: dict[str, _Raw] = field(default_factory=dict)
    #: The constructs found so far for each signature (see `triage`).
    constructs: dict[str, set[str]] = field(default_factory=dict)
    groups: dict[str, str | None] = field(default_factory=dict)
    #: What each group's minimal reproducer fails with once one more feature is out (`findings.Diagnosis`).
    becomes: dict[str, frozenset[str]] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    last_report: float = 0.0

    def run(self) -> None:
        # The loader keeps each new text's checked code on disk for later
        # processes (~/.cache/astgen): a file written for every graph, of
        # thousands that nothing loads again. A campaign keeps them in memory.
        saved = os.environ.get(_CODE_CACHE_SETTING)
        os.environ[_CODE_CACHE_SETTING] = "off"
        try:
            self._run()
        finally:
            # What `settle_heap` froze goes back to the collector: worker 0 runs in the caller's process.
            gc.unfreeze()
            if saved is None:
                del os.environ[_CODE_CACHE_SETTING]
            else:
                os.environ[_CODE_CACHE_SETTING] = saved

    def observe(self, seen: dict[str, Any], resolved: Sequence[targets.Target]) -> None:
        tally = self.tally
        refused = seen.get("refused", {})
        for name, construct in refused.items():
            key = f"{name}: {construct}"
            tally.refused[key] = tally.refused.get(key, 0) + 1
        if len(refused) < len(resolved):
            tally.checked += 1
        for key, observed in seen.get("coverage", {}).items():
            tally.runs[key] = tally.runs.get(key, 0) + 1
            tally.observed[key] = tally.observed.get(key, 0) + observed

    def _run(self) -> None:
        torch.set_num_threads(1)
        # Drawn graphs call torch in every legal and deprecated way; its
        # warnings are not findings and would bury the progress line.
        warnings.simplefilter("ignore")
        database = open_database(self.database)
        strategy = drawing.recipes(kinds=self.kinds, max_nodes=self.max_nodes)
        resolved = resolve_targets(self.fuzzed)
        failing_runs = 0

        def campaign_property(recipe: recipes.Recipe) -> None:
            nonlocal failing_runs
            if time.monotonic() >= self.deadline:
                raise _OutOfTime
            self.count += 1
            self.tick()
            try:
                seen = check_recipe(recipe, self.checks, resolved)
            except Exception as error:
                failing_runs += 1
                failure_signature = signature(error)
                key = self.triage(failure_signature, recipe)
                known = self.raw.get(key)
                if known is None:
                    known = self.raw[key] = _Raw(recipe, failure_signature, *failure_scope(error))
                elif minimize.size(recipe) < minimize.size(known.recipe):
                    known.recipe = recipe
                known.occurrences += 1
                self.tally.failing += 1
                if isinstance(error, PropertyFailure):
                    # The check that failed observed the target; the others did not run.
                    observed = f"{error.target} {error.check}"
                    self.tally.runs[observed] = self.tally.runs.get(observed, 0) + 1
                    self.tally.observed[observed] = self.tally.observed.get(observed, 0) + 1
                raise _found(failure_signature)(failure_signature) from error
            self.observe(seen, resolved)

        # Saved failures are replayed first, and through a read-only view:
        # one that no longer fails here may still fail for the worker that
        # saved it (other code, other checks), so a campaign deletes nothing.
        read_only: ExampleDatabase | None = ReadOnlyDatabase(database) if database is not None else None
        replaying = read_only is not None
        batches = 0
        started = time.monotonic()
        while time.monotonic() < self.deadline and self.count < self.examples:
            if replaying:
                phases = [Phase.explicit, Phase.reuse]
                batch_database = read_only
            else:
                phases = [Phase.generate, Phase.shrink]
                batch_database = database
            # Batches sized to end near the deadline, so failures are reported as they come.
            elapsed = time.monotonic() - started
            rate = self.count / elapsed if self.count and elapsed > 0 else 20.0
            left = rate * (self.deadline - time.monotonic())
            batch = max(5, min(200, self.examples - self.count, int(min(left, 200))))
            test = settings(
                database=batch_database,
                max_examples=batch,
                deadline=None,
                phases=phases,
                suppress_health_check=list(HealthCheck),
                report_multiple_bugs=True,
                print_blob=False,
            )(given(strategy)(campaign_property))
            if self.seed is not None:
                # One seed per worker and batch: each batch draws new graphs,
                # and the same campaign draws the same ones.
                test = seed(f"{self.seed}:{self.index}:{batches}")(test)
            batches += 1
            # Hypothesis reports falsifying examples on stdout; the reproducers say it better.
            failing = failing_runs
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                try:
                    test()
                except unittest.SkipTest:
                    # Hypothesis had nothing to run: a replay of an empty database.
                    pass
                except BaseException as error:
                    # The deadline, or failures (one or a group, the deadline among
                    # them), are what a campaign expects; anything else (a broken
                    # strategy, bad settings) must not spin silently.
                    if not _expected(error) or (failing_runs == failing and not _timed_out(error)):
                        raise
            self.group_new_failures(resolved)
            if batches == 1:
                settle_heap()
            if self.replay:
                break
            replaying = False
        self.report.put(("done", self.index, self.count, self.snapshot()))

    def snapshot(self) -> Tally:
        """The tally so far: sent with every progress report, so a worker stopped at the deadline still counts."""
        found: dict[str, findings.Finding] = {}
        for entry in self.raw.values():
            if entry.construct is not None:
                finding = findings.Finding(
                    entry.scope,
                    entry.error,
                    entry.construct,
                    frozenset({entry.signature}),
                    runs=entry.occurrences,
                    site=entry.site,
                )
                finding = dataclasses.replace(finding, becomes=self.becomes.get(finding.key, frozenset()))
                known = found.get(finding.key)
                found[finding.key] = finding if known is None else known.joined(finding)
        signatures = len({entry.signature for entry in self.raw.values()})
        return dataclasses.replace(
            self.tally,
            graphs=self.count,
            signatures=signatures,
            found=found,
            refused=dict(self.tally.refused),
            observed=dict(self.tally.observed),
            runs=dict(self.tally.runs),
        )

    def triage(self, failure_signature: str, recipe: recipes.Recipe) -> str:
        """Where a failing graph is counted: under its signature and its most specific construct.

        One signature can have several causes (a SyntaxError's: a hostile
        name, an object without a literal form), so graphs of another most
        specific construct are kept apart and minimized on their own, unless
        they hold a construct already found for the signature."""
        held = findings.features(recipe)
        return f"{failure_signature} | {held[0].label}" if held else failure_signature

    def group_new_failures(self, resolved: Sequence[targets.Target]) -> None:
        """Minimize each new failure's smallest recipe, find its construct, and report each new root cause once."""
        for entry in list(self.raw.values()):
            if entry.construct is not None:
                continue
            failure_signature = entry.signature
            known = self.constructs.get(failure_signature, set())
            held = [feature.label for feature in findings.features(entry.recipe) if feature.label in known]
            if held:
                # A graph of a construct already found for its signature: that root cause again.
                entry.construct = held[0]
                continue

            def still_fails(candidate: recipes.Recipe, wanted: str = failure_signature) -> bool:
                return fails_with(candidate, wanted, self.checks, resolved)

            budget = min(self.deadline + _GROUPING_SECONDS, time.monotonic() + _MINIMIZE_SECONDS)
            minimal = minimize.minimize(entry.recipe, still_fails, deadline=budget)
            # A few runs more, past the deadline if it came: a root cause without its construct is no report.
            diagnosis = findings.diagnose(minimal, functools.partial(outcome, checks=self.checks, resolved=resolved))
            entry.construct = diagnosis.construct
            group = findings.group_key(entry.kind, diagnosis.construct)
            self.becomes[group] = self.becomes.get(group, frozenset()) | diagnosis.becomes
            known.add(diagnosis.construct)
            self.constructs[failure_signature] = known
            if group not in self.groups:
                path = write_reproducer(self.out, minimal, failure_signature, self.fuzzed, group)
                self.groups[group] = str(path) if path else None
                self.report.put(("failure", self.index, group, self.groups[group]))

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_report > 0.25:
            self.last_report = now
            self.report.put(("progress", self.index, self.count, self.snapshot()))


def failure_scope(error: BaseException) -> tuple[str, str, str]:
    """A failure's target and check, its kind of error there (`checks.kind`, split in two), and where
    in the target's own code it was raised (`targets.Target.site`; "" for none)."""
    if isinstance(error, PropertyFailure):
        return f"{error.target} {error.check}", error.kind, error.site
    scope, _, rest = kind(error).partition(": ")
    return scope, rest, ""


def settle_heap() -> None:
    """Keep what a worker has set up (torch, Hypothesis, the checks' tables, all imported by the first
    batch) out of the garbage collector's passes: a graph's cycles make a collection about once per
    graph, and traversing torch's objects in the older generations was 0.5 ms of each graph's 8."""
    gc.collect()
    gc.freeze()


def fails_with(
    recipe: recipes.Recipe, failure_signature: str, checks: Sequence[str], resolved: Sequence[targets.Target]
) -> bool:
    """Whether the graph `recipe` describes fails with `failure_signature` (any other outcome: no)."""
    try:
        check_recipe(recipe, checks, resolved)
    except Exception as error:
        return signature(error) == failure_signature
    return False


def outcome(recipe: recipes.Recipe, checks: Sequence[str], resolved: Sequence[targets.Target]) -> str:
    """What the graph `recipe` describes does: `findings.PASSES` (a refusal by design passes too),
    `findings.INVALID` where it is no graph the interpreter runs, or the signature it fails with."""
    try:
        gm, args = recipes.build(recipe)
        torch.fx.Interpreter(gm).run(*args)
    except Exception:
        return findings.INVALID
    try:
        check_recipe(recipe, checks, resolved)
    except Exception as error:
        return signature(error)
    return findings.PASSES


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _expected(error: BaseException) -> bool:
    """A failure the property raised, the deadline, or a group of those (Hypothesis's report of several bugs)."""
    return all(isinstance(leaf, (_Found, _OutOfTime)) for leaf in _leaves(error))


def _timed_out(error: BaseException) -> bool:
    return any(isinstance(leaf, _OutOfTime) for leaf in _leaves(error))


#: The loader's setting for its code cache on disk (`astgen.loader.cache_directory`).
_CODE_CACHE_SETTING = "ASTGEN_CACHE_DIR"


def _work(worker: _Worker) -> None:
    worker.run()


class _Progress:
    """The live progress line on stderr, fed by every worker's reports."""

    def __init__(self, workers: int, stream: Any, start: float) -> None:
        self.start = start
        self.counts = [0] * workers
        self.finished = [False] * workers
        self.signatures: dict[str, str | None] = {}
        self.tallies: list[Tally] = [Tally() for _ in range(workers)]
        self.stream = stream
        # On a terminal the line redraws in place; in a log, a line every few seconds.
        self.interval = 0.25 if getattr(stream, "isatty", lambda: False)() else 10.0
        self.shown = 0.0

    def put(self, message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind in ("progress", "done"):
            self.counts[index] = message[2]
            if not self.finished[index]:
                self.tallies[index] = message[3]
            self.finished[index] = self.finished[index] or kind == "done"
        elif kind == "failure" and message[2] not in self.signatures:
            self.signatures[message[2]] = message[3]
            where = f"\n  reproducer: {message[3]}" if message[3] else ""
            self.stream.write(f"failure: {message[2]}{where}\n")
        now = time.monotonic()
        if now - self.shown >= self.interval or all(self.finished):
            self.shown = now
            end = "\r" if self.interval < 1 else "\n"
            self.stream.write(f"[astgen.fuzz] {self.line()}{end}")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        total = sum(self.counts)
        return (
            f"{elapsed:6.1f}s  graphs: {total} ({total / max(elapsed, 1e-9):.0f}/s)"
            f"  findings: {len(self.signatures)}  workers: {len(self.counts)}"
        )


class _Relay:
    """Worker 0's report channel in a campaign of several: its reports and the queued ones of the others."""

    def __init__(self, progress: _Progress, reports: Any) -> None:
        self.progress = progress
        self.reports = reports

    def put(self, message: tuple[Any, ...]) -> None:
        self.progress.put(message)
        self.drain()

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.progress.put(self.reports.get_nowait())


# Time kept after the last graph for the workers to report and exit and the
# summary to print; measured on 2 busy cores, with margin.
_SHUTDOWN_SECONDS = 0.5


def _run_several(workers: int, worker: Callable[[int, Any], _Worker], progress: _Progress, end: float) -> None:
    """Worker 0 here, the others spawned; all stopped by `end`."""
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    processes = [context.Process(target=_work, args=(worker(index, reports),)) for index in range(1, workers)]
    for process in processes:
        process.start()
    # This process, torch imported, is worker 0 while the others start
    # (their first seconds go to importing torch), and relays their reports.
    relay = _Relay(progress, reports)
    worker(0, relay).run()
    # A worker still starting (torch's import, on a busy machine) or
    # inside one long check at the end is stopped there: the deadline
    # holds. What it found and reported stays; the database keeps the rest.
    stop = end - _SHUTDOWN_SECONDS / 2
    while not all(progress.finished) and time.monotonic() < stop:
        try:
            progress.put(reports.get(timeout=max(0.0, min(0.5, stop - time.monotonic()))))
        except queue.Empty:
            if not any(process.is_alive() for process in processes):
                break
    stopped = 0
    for index, process in enumerate(processes, start=1):
        process.join(timeout=max(0.0, min(10.0, stop - time.monotonic())))
        if process.is_alive():
            # One that has reported is only finalizing torch's modules; the others lose their last graphs.
            process.terminate()
            process.join()
            stopped += not progress.finished[index]
        elif process.exitcode != 0:
            progress.put(("failure", 0, f"campaign: a worker process exited with {process.exitcode}", None))
    if stopped:
        # Not drained: a stopped worker may have left half a message in the queue.
        progress.stream.write(f"astgen.fuzz: {stopped} worker(s) still busy at the deadline were stopped\n")
    else:
        relay.drain()
    # Hypothesis keeps worker 0's property, and through it the relay: unhooked,
    # the queue can go, and its semaphores with it (see `os._exit` below).
    relay.reports = None


@dataclass
class Summary:
    """A campaign's outcome: the tally of every worker and the root causes, with their reproducers."""

    tally: Tally
    reproducers: dict[str, str | None]  # group -> its reproducer, as workers reported them
    elapsed: float
    workers: int

    @property
    def causes(self) -> list[findings.RootCause]:
        """The root causes: the workers' groups, merged where one masks another (`findings.root_causes`)."""
        return findings.root_causes(self.tally.found.values())

    @property
    def root_causes(self) -> dict[str, str | None]:
        """Each root cause and its reproducer: the one of the group it is named after, else a member's."""
        made = {}
        for cause in self.causes:
            paths = [self.reproducers[key] for key in cause.members if self.reproducers.get(key)]
            made[cause.key] = self.reproducers.get(cause.key) or (paths[0] if paths else None)
        return made

    @property
    def status(self) -> int:
        """The exit status: 0 graphs checked and none failed, 1 a root cause found, 3 no graph checked."""
        if self.root_causes:
            return 1
        return NOTHING_CHECKED if not self.tally.checked else 0


#: The exit status of a campaign that checked no graph (start-up took the time given, or every graph was refused).
NOTHING_CHECKED = 3


def campaign(**options: Any) -> int:
    """Run a campaign (`run_campaign`, same options); return the number of distinct root causes."""
    return len(run_campaign(**options).root_causes)


def run_campaign(
    *,
    seconds: float | None,
    max_examples: int | None,
    workers: int,
    database: str | None,
    out: Path,
    replay: bool = False,
    kinds: Sequence[str] = recipes.DEFAULT_KINDS,
    max_nodes: int = 8,
    checks: Sequence[str] | None = None,
    stream: Any = None,
    seed: int | None = None,
    started: float | None = None,
    fuzzed: Sequence[str] = (targets.ASTGEN,),
) -> Summary:
    """Run a campaign, with a progress line on `stream` (stderr) and a summary on stdout.

    One worker runs in this process; more run as spawned processes, sharing
    the example database and the reproducer directory. `seconds` counts from
    `started` (a `time.monotonic()` value; default now) and covers the
    workers' start and exit. With a `seed` the campaign draws the same graphs
    every time it runs; Hypothesis saves nothing from a seeded run, so a seed
    and a database exclude each other. The database only ever gains entries:
    saved failures are replayed read-only (`replay` does nothing else).
    `fuzzed` names the targets (`astgen.testing.targets`): one, or two for
    a differential run; `checks` defaults to every check they claim.
    Each new failure is delta-debugged (`astgen.testing.minimize`) and
    grouped by root cause (`astgen.testing.findings`): one reproducer each.
    Raises `UsageError` for options it cannot run with, before anything runs.
    """
    out = Path(out)
    checks = default_checks(fuzzed) if checks is None else checks
    check_options(
        seconds=seconds,
        max_examples=max_examples,
        workers=workers,
        database=database,
        out=out,
        replay=replay,
        kinds=kinds,
        max_nodes=max_nodes,
        checks=checks,
        seed=seed,
        fuzzed=fuzzed,
    )
    stream = stream or sys.stderr
    progress = _Progress(workers, stream, time.monotonic() if started is None else started)
    end = progress.start + seconds if seconds is not None else math.inf
    deadline = end - _SHUTDOWN_SECONDS - _GROUPING_SECONDS
    share = math.ceil(max_examples / workers) if max_examples is not None else sys.maxsize

    def worker(index: int, report: Any) -> _Worker:
        return _Worker(
            index,
            deadline,
            share,
            database,
            out,
            report,
            replay,
            tuple(kinds),
            max_nodes,
            tuple(checks),
            seed,
            tuple(fuzzed),
        )

    if workers == 1:
        worker(0, progress).run()
    else:
        _run_several(workers, worker, progress, end)
    tally = Tally()
    for each in progress.tallies:
        tally.add(each)
    summary = Summary(tally, dict(progress.signatures), time.monotonic() - progress.start, workers)
    summary.tally.graphs = max(summary.tally.graphs, sum(progress.counts))
    if not summary.tally.graphs:
        stream.write(
            "astgen.fuzz: the database holds no failure saved by this campaign property\n"
            if replay
            else f"astgen.fuzz: no graph checked: start-up took the {seconds}s given\n"
        )
    print_summary(summary)
    return summary


def print_summary(summary: Summary) -> None:
    """The summary on stdout: graphs, refusals by construct, root causes (hostile input apart) and coverage."""
    tally = summary.tally
    graphs, elapsed = tally.graphs, summary.elapsed
    refused = graphs - tally.checked - tally.failing
    print(
        f"astgen.fuzz: {graphs} graphs in {elapsed:.1f}s ({graphs / max(elapsed, 1e-9):.0f} graphs/s,"
        f" {summary.workers} worker{'s' if summary.workers > 1 else ''}), {len(summary.root_causes)} root causes"
    )
    print(
        f"  checked {tally.checked}, refused by design {max(refused, 0)}; {tally.failing} failing runs"
        f" (shrink steps included) with {tally.signatures} distinct messages"
    )
    paths = summary.root_causes
    reachable = [cause for cause in summary.causes if not _hostile(cause.key)]
    hostile = [cause for cause in summary.causes if _hostile(cause.key)]
    for title, causes in (("root causes", reachable), ("hostile input (--kinds names)", hostile)):
        if causes:
            print(f"{title}:")
            for cause in causes:
                path = paths.get(cause.key)
                print(f"  {cause.label}" + (f" -> {path}" if path else ""))
    if tally.refused:
        print("refused by design:")
        for key, count in sorted(tally.refused.items(), key=lambda item: -item[1]):
            print(f"  {key}: {count} graphs")
    if tally.runs:
        print("coverage (graphs each check could observe the target on, of those it ran on):")
        for key in sorted(tally.runs):
            observed, runs = tally.observed.get(key, 0), tally.runs[key]
            note = "  covered nothing" if not observed else ""
            print(f"  {key}: {observed}/{runs}{note}")
        blind = [key for key in sorted(tally.runs) if not tally.observed.get(key)]
        if blind:
            print(f"astgen.fuzz: covered nothing: {', '.join(blind)}")


def _hostile(root_cause: str) -> bool:
    return f" on {findings.HOSTILE}" in root_cause


# ---------------------------------------------------------------- the command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _version() -> str:
    import astgen

    found = getattr(astgen, "__version__", None)
    return str(found) if found else importlib.metadata.version("astgen")


def _epilog() -> str:
    width = max(map(len, (*recipes.KINDS, *CHECKS)))
    kinds = "\n".join(f"  {kind:<{width}}  {text}" for kind, text in recipes.KIND_DESCRIPTIONS.items())
    checks = "\n".join(f"  {check:<{width}}  {text}" for check, text in CHECK_DESCRIPTIONS.items())
    foreign = "\n".join(f"  {check:<{width}}  {text}" for check, text in targets.FOREIGN_CHECKS.items())
    built_in = "\n".join(f"  {name:<{width}}  {make().description}" for name, make in targets.BUILTIN.items())
    shaping = ", ".join(kind for kind in recipes.KINDS if kind not in recipes.NODE_KINDS)
    return (
        f"kinds (--kinds, default: all but names, which is hostile input):\n{kinds}\n"
        f"  ({shaping} only shape nodes: give them with a kind that makes nodes)\n\n"
        f"checks of astgen (--checks, default: all of them):\n{checks}\n\n"
        f"checks of other targets (default: all the target claims):\n{foreign}\n\n"
        f"targets (--target, default: astgen; twice for a differential run):\n{built_in}\n"
        "  vllm-api:MODULE       a module with vLLM's generate_execution_code and compile_execution_fn\n"
        "                        (the example: vllm-api:benchmarks.string_baseline); what vLLM refuses by\n"
        "                        design (Unsupported node: get_attr, call_method) is counted as refused\n"
        "  package.module:NAME   a Target, a function returning one, or a function (gm, pieces) -> callable\n\n"
        "The database holds the failing graphs Hypothesis saved (the shrunk one and the\n"
        "steps toward it), never a passing one; campaigns and --replay only add to it.\n\n"
        "exit status: 0 graphs checked and no failure, 1 a failure found (a reproducer per root cause in --out),\n"
        f"2 bad usage or no Hypothesis installed, {NOTHING_CHECKED} no graph checked (start-up took the time\n"
        "given, or the targets refused every graph)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m astgen.fuzz",
        description=(__doc__ or "").splitlines()[0],
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"astgen {_version()}")
    parser.add_argument(
        "--seconds",
        type=float,
        help="stop after this long, start-up and shutdown included (default: 60; none with --max-examples)",
    )
    parser.add_argument(
        "--max-examples", type=int, help="stop after this many graphs, over all workers (default: none)"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    parser.add_argument("--db", help="example database: a directory, redis://host:port[/db], or none (default: none)")
    parser.add_argument(
        "--out", type=Path, default=Path("fuzz-out"), help="where reproducers go (default: %(default)s)"
    )
    parser.add_argument(
        "--replay", action="store_true", help="only replay the failures saved in --db, read-only; draw nothing new"
    )
    parser.add_argument(
        "--kinds", default=",".join(recipes.DEFAULT_KINDS), help="kinds to draw, comma-separated (below)"
    )
    parser.add_argument("--max-nodes", type=int, default=8, help="nodes a graph has at most (default: %(default)s)")
    parser.add_argument("--checks", help="checks to run, comma-separated (below; default: all the targets claim)")
    parser.add_argument(
        "--target",
        action="append",
        dest="targets",
        metavar="TARGET",
        help="what to fuzz (below; default: astgen); twice for a differential run",
    )
    parser.add_argument("--seed", type=int, help="draw the same graphs on every run (default: random); not with --db")
    return parser


def main(argv: Sequence[str] | None = None, *, started: float | None = None) -> int:
    """The command line; returns the exit status. `started`: what `campaign` counts `--seconds` from."""
    parser = _parser()
    try:
        options = parser.parse_args(argv)
        seconds = options.seconds if options.seconds is not None or options.max_examples is not None else 60.0
        summary = run_campaign(
            seconds=seconds,
            max_examples=options.max_examples,
            workers=options.workers,
            database=options.db,
            out=options.out,
            replay=options.replay,
            kinds=[kind for kind in options.kinds.split(",") if kind],
            max_nodes=options.max_nodes,
            checks=None if options.checks is None else [check for check in options.checks.split(",") if check],
            fuzzed=options.targets or [targets.ASTGEN],
            seed=options.seed,
            started=started,
        )
    except UsageError as error:
        print(f"{parser.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return summary.status


def _process_age() -> float:
    """Seconds since this process started, as Linux's /proc tells; 0 where it cannot."""
    try:
        with open("/proc/self/stat", encoding="ascii", errors="replace") as stat:
            # Field 22 is the start in clock ticks after boot; field 2, the
            # command name in parentheses, may hold spaces: count from its end.
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def run_cli() -> NoReturn:
    """`python -m astgen.fuzz`: `main` on the process's arguments, then exit at once."""
    # `--seconds` is the whole run: the interpreter's start and torch's import count.
    status = main(started=time.monotonic() - _process_age())
    # All is written, and finalizing torch's modules would add half a second
    # past the deadline. The report queue sits in a reference
    # cycle; collected, its semaphores are released instead of reported leaked.
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
