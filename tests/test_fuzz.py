"""`astgen.testing` (strategies, checks, campaigns and reproducers), `python -m astgen.fuzz`, and the atheris entry point."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from astgen import fuzz
from astgen.testing import campaign as campaign_module
from astgen.testing import drawing as strategies
from astgen.testing import recipe as recipes
from tests.test_fuzz_teeth import planted

ROOT = Path(__file__).resolve().parent.parent


def python(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run Python from the repository root, where `tests` imports (for planting bugs)."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


# ---------------------------------------------------------------- strategies


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(strategies.split_graphs(kinds=strategies.VLLM_KINDS, max_nodes=6))
def test_split_graphs_gives_runnable_vllm_shaped_pairs(graph: tuple[torch.fx.GraphModule, tuple]) -> None:
    gm, args = graph
    ops = {node.op for node in gm.graph.nodes}
    assert ops <= {"placeholder", "call_module", "call_function", "output"}
    targets = {node.target for node in gm.graph.nodes if node.op == "call_function"}
    assert targets <= {recipes.FUNCTIONS["getitem"]}
    torch.fx.Interpreter(gm).run(*args)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(strategies.recipes())
def test_a_recipe_is_json_and_rebuilds_the_same_graph(recipe: recipes.Recipe) -> None:
    again = json.loads(json.dumps(recipe))
    (gm, args), (gm2, args2) = recipes.build(recipe), recipes.build(again)
    assert str(gm.graph) == str(gm2.graph)
    assert fuzz.difference(torch.fx.Interpreter(gm).run(*args), torch.fx.Interpreter(gm2).run(*args2)) is None


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        strategies.recipes(kinds=["call_module", "goto"])


def _draw_and_run(kinds: list[str], max_nodes: int) -> None:
    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategies.split_graphs(kinds=kinds, min_nodes=min(1, max_nodes), max_nodes=max_nodes))
    def draws(graph: tuple[torch.fx.GraphModule, tuple]) -> None:
        gm, args = graph
        torch.fx.Interpreter(gm).run(*args)
        made = [node for node in gm.graph.nodes if node.op not in ("placeholder", "output")]
        assert bool(made) == bool(max_nodes)

    draws()


@pytest.mark.parametrize("kind", strategies.KINDS)
def test_every_single_kind_draws_graphs_or_is_refused_when_asked_for(kind: str) -> None:
    if kind in strategies.NODE_KINDS:
        _draw_and_run([kind], max_nodes=8)
        return
    # Refused at the call, naming what makes nodes, not at the first draw with Hypothesis's InvalidArgument.
    with pytest.raises(ValueError, match="make no node") as refused:
        strategies.recipes(kinds=[kind])
    assert all(node_kind in str(refused.value) for node_kind in strategies.NODE_KINDS)
    _draw_and_run([kind], max_nodes=0)
    for node_kind in strategies.NODE_KINDS:
        _draw_and_run([kind, node_kind], max_nodes=8)


def test_difference_is_exact() -> None:
    assert fuzz.difference(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0])) is None
    assert "values differ" in str(fuzz.difference(torch.tensor([0.0]), torch.tensor([-0.0])))
    assert "dtype" in str(fuzz.difference(torch.tensor([1.0]), torch.tensor([1.0], dtype=torch.float64)))
    assert fuzz.difference(float("nan"), float("nan")) is None
    assert fuzz.difference(0.0, -0.0) is not None
    assert fuzz.difference(1, True) is not None
    assert fuzz.difference({"a": 1, "b": 2}, {"b": 2, "a": 1}) is not None


# ---------------------------------------------------------------- atheris / HypoFuzz entry


def test_fuzz_one_input_drives_the_property_from_bytes() -> None:
    from property_tests.test_properties import test_result_equals_interpreter_and_graphmodule as prop

    entry = prop.hypothesis.fuzz_one_input
    rng = random.Random(0)
    buffers = [rng.randbytes(rng.randrange(16, 400)) for _ in range(60)]
    for buffer in buffers:
        entry(buffer)  # main: every graph these bytes make passes
    failures = 0
    with planted("two call arguments swapped"):
        for buffer in buffers:
            try:
                entry(buffer)
            except Exception:
                failures += 1
    assert failures > 0


# ---------------------------------------------------------------- campaigns and reproducers


def test_campaign_finds_a_planted_bug_and_writes_a_reproducer_that_replays_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with planted("dropped keyword argument"):
        distinct = fuzz.campaign(
            seconds=60,
            max_examples=150,
            workers=1,
            database=None,
            out=out,
            checks=["interpreter"],
            seed=0,
        )
    assert distinct >= 1
    scripts = sorted(out.glob("repro_*.py"))
    assert len(scripts) == distinct
    script = scripts[0]
    text = script.read_text()
    assert "def graph():" in text and "g = torch.fx.Graph()" in text
    assert "sys.exit(checks.report(graph, TARGETS, SIGNATURE))" in text
    # The dropped keyword shows as a different result or as a piece that
    # raises, whichever graph the unseeded campaign draws first; either way
    # the interpreter check found it, and the script records which.
    (recorded,) = [
        statement.value.value
        for statement in ast.parse(text).body
        if isinstance(statement, ast.Assign) and getattr(statement.targets[0], "id", None) == "SIGNATURE"
    ]
    assert recorded.startswith("astgen interpreter: ")
    # The reproducer is standalone: on the real pipeline the graph passes...
    fixed = python(str(script))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"passes (it failed with: {recorded})" in fixed.stdout
    # ...and with the bug planted again it fails, printing the graph, the code and the difference.
    code = (
        "import runpy, sys; from tests.test_fuzz_teeth import planted\n"
        "with planted('dropped keyword argument'):\n"
        f"    try: runpy.run_path({str(script)!r}, run_name='__main__')\n"
        "    except SystemExit as exit: sys.exit(exit.code)\n"
    )
    broken = python("-c", code)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "FX graph:" in broken.stdout and "astgen generates:" in broken.stdout
    assert f"FAILS: {recorded}" in broken.stdout
    if recorded == "astgen interpreter: astgen differs from the interpreter":
        assert "keys [" in broken.stdout or "values differ" in broken.stdout or "length" in broken.stdout
    else:
        assert "Traceback (most recent call last)" in broken.stdout and " raises " in recorded


def test_a_seed_and_a_database_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seeded campaign saves nothing"):
        fuzz.campaign(seconds=1, max_examples=1, workers=1, database=str(tmp_path / "db"), out=tmp_path / "out", seed=0)
    assert fuzz.main(["--seed", "0", "--db", str(tmp_path / "db"), "--max-examples", "1"]) == 2


SMALL: recipes.Recipe = {
    "inputs": [{"kind": "tensor", "dtype": "float32", "shape": [2], "fill": "arange", "offset": 0}],
    "passed": 1,
    "modules": [],
    "targets": [],
    "buffers": [],
    "nodes": [{"op": "call_function", "function": "torch.add", "args": [["ref", 0], ["float", "inf"]]}],
    "output": ["ref", 1],
}


def test_reproducers_are_deduplicated_by_root_cause(tmp_path: Path) -> None:
    first = fuzz.write_reproducer(tmp_path, SMALL, "interpreter: astgen differs from the interpreter")
    second = fuzz.write_reproducer(tmp_path, SMALL, "interpreter: astgen differs from the interpreter")
    other = fuzz.write_reproducer(tmp_path, SMALL, "liveness: something else")
    assert first is not None and second is None and other is not None and other != first


def test_reproducer_text_never_splices_the_recipe_into_code() -> None:
    hostile = "'''); import os; ('"
    recipe = json.loads(json.dumps(SMALL))
    recipe["nodes"].append({"op": "call_function", "function": "pack", "args": [["str", hostile]]})
    recipe["names"] = {"1": recipes.PAYLOADS[0]}
    recipe["labels"] = {"0": "torch"}
    recipe["output"] = ["tuple", [["ref", 1], ["ref", 2], ["pair", ["float", "nan"], ["float", "-0.0"]]]]
    text = fuzz.reproducer_source(recipe, 'sig"; import os')
    tree = ast.parse(text)
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    assert constants["SIGNATURE"] == 'sig"; import os'
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert hostile in strings and recipes.PAYLOADS[0] in strings
    # `graph()` builds the very graph the recipe does, hostile names and all, and no payload runs.
    namespace: dict[str, Any] = {"__name__": "reproducer"}
    recipes.clear_payload_canary()
    exec(compile(tree, "reproducer", "exec"), namespace)
    gm, args = namespace["graph"]()
    built, built_args = recipes.build(recipe)
    assert str(gm.graph) == str(built.graph) and not recipes.payload_executed()
    assert fuzz.difference(torch.fx.Interpreter(built).run(*built_args), torch.fx.Interpreter(gm).run(*args)) is None


def test_cli_on_main_finds_nothing_and_reports_graphs_per_second(tmp_path: Path) -> None:
    result = python(
        "-m", "astgen.fuzz", "--max-examples", "60", "--workers", "2", "--out", str(tmp_path / "out"), "--db", "none"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "astgen.fuzz: 60 graphs in" in result.stdout and "graphs/s, 2 workers), 0 root causes" in result.stdout
    assert "[astgen.fuzz]" in result.stderr and "findings: 0" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_exits_1_on_a_failure(tmp_path: Path) -> None:
    # Seeded, so the same graphs come every run; seed 1 finds the bug and shrinks it in seconds.
    code = (
        "import sys; from tests.test_fuzz_teeth import planted; from astgen import fuzz\n"
        "with planted('getitem index off by one'):\n"
        f"    sys.exit(fuzz.main(['--max-examples', '200', '--out', {str(tmp_path)!r}, '--db', 'none',"
        " '--checks', 'interpreter', '--seed', '1']))\n"
    )
    result = python("-c", code)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failure: " in result.stderr and "reproducer: " in result.stderr
    assert list(tmp_path.glob("repro_*.py"))


# ---------------------------------------------------------------- the command line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "argv",
    [
        ["--checks", "nosuch"],
        ["--checks", ","],
        ["--kinds", "nosuch"],
        ["--kinds", "meta"],
        ["--max-nodes", "0"],
        ["--db", "redis://127.0.0.1:PORT"],
        ["--workers", "0"],
        ["--workers", "-1"],
        ["--workers", "two"],
        ["--seconds", "-5"],
        ["--seconds", "0"],
        ["--max-examples", "0"],
        ["--replay"],
        ["--replay", "--db", "none"],
        ["--replay", "--db", "MISSING"],
        ["--no-such-option"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A free port nobody listens on: an unreachable Redis server.
    argv = [arg.replace("PORT", str(_free_port())).replace("MISSING", str(tmp_path / "missing")) for arg in argv]
    out = tmp_path / "out"
    status = fuzz.main([*argv, "--max-examples", "5", "--out", str(out)] if "--max-examples" not in argv else argv)
    captured = capsys.readouterr()
    assert status == 2, captured
    assert captured.err.startswith("python -m astgen.fuzz: error: ") and captured.err.count("\n") == 1, captured.err
    assert captured.out == "" and not out.exists()


def test_the_cli_exits_2_without_a_traceback() -> None:
    result = python("-m", "astgen.fuzz", "--kinds", "nosuch")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("python -m astgen.fuzz: error: unknown kinds: nosuch; the kinds are call_module")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_version_is_astgen_s(capsys: pytest.CaptureFixture[str]) -> None:
    import astgen

    with pytest.raises(SystemExit) as exit:
        fuzz.main(["--version"])
    assert exit.value.code == 0
    expected = getattr(astgen, "__version__", None) or importlib.metadata.version("astgen")
    assert capsys.readouterr().out == f"astgen {expected}\n"


def test_help_lists_the_kinds_checks_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        fuzz.main(["--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, description in [*recipes.KIND_DESCRIPTIONS.items(), *fuzz.CHECK_DESCRIPTIONS.items()]:
        assert f"{name} {description}" in text, name
    for option, default in [("--workers", "1"), ("--max-nodes", "8"), ("--out", "fuzz-out"), ("--seconds", "60")]:
        help_of = text.split(option, 2)[-1]
        assert f"(default: {default}" in help_of.split(" --")[0], option
    assert "exit status: 0 graphs checked and no failure, 1 a failure found" in text and "2 bad usage" in text
    assert f"{campaign_module.NOTHING_CHECKED} no graph checked" in text


# ---------------------------------------------------------------- the example database


def _contents(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def test_saved_failures_survive_replays_and_campaigns_on_fixed_code(tmp_path: Path) -> None:
    db = tmp_path / "db"
    options: dict[str, Any] = {"workers": 1, "database": str(db), "checks": ["interpreter"]}

    def broken(recipe: recipes.Recipe, checks: Any, targets: Any = None) -> None:
        raise fuzz.PropertyFailure("interpreter", "planted: every graph fails")

    # Patched where the campaign calls it: the database's handling, not astgen, is on trial here.
    with mock.patch.object(campaign_module, "check_recipe", broken):
        assert fuzz.campaign(seconds=60, max_examples=20, out=tmp_path / "a", **options) == 1
    saved = _contents(db)
    assert saved, "the failure was not saved"
    with mock.patch.object(campaign_module, "check_recipe", lambda *arguments: {}):
        # A worker on fixed code replays everything and finds nothing...
        assert fuzz.campaign(seconds=60, max_examples=None, replay=True, out=tmp_path / "b", **options) == 0
        assert _contents(db) == saved, "a replay changed the shared database"
        # ...and a campaign on fixed code, which replays first, only adds.
        assert fuzz.campaign(seconds=60, max_examples=20, out=tmp_path / "c", **options) == 0
        after = _contents(db)
        assert {name: after.get(name) for name in saved} == saved, "a campaign deleted saved failures"
    # The entries still replay as the failure they were.
    with mock.patch.object(campaign_module, "check_recipe", broken):
        assert fuzz.campaign(seconds=60, max_examples=None, replay=True, out=tmp_path / "d", **options) == 1


# ---------------------------------------------------------------- the deadline


def test_the_cli_counts_seconds_from_the_process_start() -> None:
    # `run_cli` hands `main` the process's own start, as /proc tells it, so
    # the interpreter's start and torch's import count towards --seconds. A
    # lower bound only: a loaded machine can make the age larger, never smaller.
    result = python(
        "-c", "import time; time.sleep(1.0); from astgen.testing.campaign import _process_age; print(_process_age())"
    )  # fmt: skip
    assert float(result.stdout) >= 1.0, result.stdout + result.stderr


def test_a_start_up_that_took_all_the_seconds_checks_no_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--seconds", "5", "--workers", "1", "--db", "none", "--checks", "verifier", "--out", str(tmp_path)]
    campaign_module.main(argv, started=time.monotonic() - 6)
    captured = capsys.readouterr()
    assert "no graph checked" in captured.err
    assert "astgen.fuzz: 0 graphs in " in captured.out


class _Clock:
    """A `time` module whose clock moves a fixed step at every reading: the campaign's time, not the machine's."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step
        self.readings: list[float] = []

    def monotonic(self) -> float:
        self.now += self.step
        self.readings.append(self.now)
        return self.now


def test_the_campaign_stops_within_its_seconds_by_its_own_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With an injected clock the run is exact whatever the machine's load:
    # started 2 s before the campaign was called (start-up), given 5 s, it
    # checks graphs and never reads its clock past the 5 s it was given.
    clock = _Clock(step=0.01)
    monkeypatch.setattr(campaign_module, "time", clock)
    started = clock.monotonic() - 2.0
    seconds = 5.0
    campaign_module.campaign(
        seconds=seconds, max_examples=None, workers=1, database=None, out=tmp_path, checks=["verifier"],
        started=started,
    )  # fmt: skip
    captured = capsys.readouterr()
    checked = int(captured.out.split("astgen.fuzz: ", 1)[1].split(" graphs", 1)[0])
    assert checked > 0, captured.out + captured.err
    # The last reading is the report's; every reading of the run is before the end.
    assert max(clock.readings) <= started + seconds, (max(clock.readings) - started, captured.out)
