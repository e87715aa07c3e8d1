"""`astgen.strategies`, `astgen.fuzz` campaigns and reproducers, and the atheris entry point."""

from __future__ import annotations

import ast
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from astgen import fuzz, strategies
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
    assert targets <= {strategies.FUNCTIONS["getitem"]}
    torch.fx.Interpreter(gm).run(*args)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(strategies.recipes())
def test_a_recipe_is_json_and_rebuilds_the_same_graph(recipe: strategies.Recipe) -> None:
    again = json.loads(json.dumps(recipe))
    (gm, args), (gm2, args2) = strategies.build(recipe), strategies.build(again)
    assert str(gm.graph) == str(gm2.graph)
    assert fuzz.difference(torch.fx.Interpreter(gm).run(*args), torch.fx.Interpreter(gm2).run(*args2)) is None


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        strategies.recipes(kinds=["call_module", "goto"])


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
    assert "RECIPE = '" in text and "fuzz.reproduce(json.loads(RECIPE), SIGNATURE)" in text
    # The dropped keyword shows as a different result or as a piece that
    # raises, whichever graph the unseeded campaign draws first; either way
    # the interpreter check found it, and the script records which.
    (recorded,) = [
        statement.value.value
        for statement in ast.parse(text).body
        if isinstance(statement, ast.Assign) and getattr(statement.targets[0], "id", None) == "SIGNATURE"
    ]
    assert recorded.startswith("interpreter: ")
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
    assert "FX graph:" in broken.stdout and "astgen source:" in broken.stdout
    assert f"FAILS: {recorded}" in broken.stdout
    if recorded == "interpreter: astgen differs from the interpreter":
        assert "keys [" in broken.stdout or "values differ" in broken.stdout or "length" in broken.stdout
    else:
        assert "Traceback (most recent call last)" in broken.stdout


def test_a_seed_and_a_database_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seeded campaign saves nothing"):
        fuzz.campaign(seconds=1, max_examples=1, workers=1, database=str(tmp_path / "db"), out=tmp_path / "out", seed=0)
    with pytest.raises(SystemExit):
        fuzz.main(["--seed", "0", "--db", str(tmp_path / "db"), "--max-examples", "1"])


def test_reproducers_are_deduplicated_by_signature(tmp_path: Path) -> None:
    recipe = {"inputs": [], "nodes": []}
    first = fuzz.write_reproducer(tmp_path, recipe, "interpreter: astgen differs from the interpreter")
    second = fuzz.write_reproducer(tmp_path, recipe, "interpreter: astgen differs from the interpreter")
    other = fuzz.write_reproducer(tmp_path, recipe, "liveness: something else")
    assert first is not None and second is None and other is not None and other != first


def test_reproducer_text_never_splices_the_recipe_into_code() -> None:
    recipe = {"inputs": [], "note": "'''); import os; ('"}
    text = fuzz.reproducer_source(recipe, 'sig"; import os')
    tree = ast.parse(text)
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert json.loads(constants["RECIPE"]) == recipe and constants["SIGNATURE"] == 'sig"; import os'
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds == ["Expr", "Import", "Import", "ImportFrom", "Assign", "Assign", "If"]


def test_cli_on_main_finds_nothing_and_reports_graphs_per_second(tmp_path: Path) -> None:
    result = python(
        "-m", "astgen.fuzz", "--max-examples", "60", "--workers", "2", "--out", str(tmp_path / "out"), "--db", "none"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "astgen.fuzz: 60 graphs in" in result.stdout and "graphs/s, 2 workers), 0 distinct failures" in result.stdout
    assert "[astgen.fuzz]" in result.stderr and "failures: 0" in result.stderr
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
