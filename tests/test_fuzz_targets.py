"""`python -m astgen.fuzz --target`: campaigns against other code generators, and the testing package's layout."""

from __future__ import annotations

import operator
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.fx

from astgen.compiled import compile_graph
from astgen.testing import campaign, targets
from astgen.testing.checks import PropertyFailure, check_target
from astgen.testing.oracles import expected_liveness
from astgen.testing.recipe import KINDS, Piece

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "vllm-api:benchmarks.string_baseline"


def python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def findings(stdout: str) -> dict[str, str]:
    """The summary's root causes: root cause -> reproducer path."""
    found = {}
    for line in stdout.splitlines():
        if line.startswith("  ") and " -> " in line:
            cause, path = line.strip().rsplit(" -> ", 1)
            found[cause.rsplit(" [", 1)[0]] = path
    return found


# ---------------------------------------------------------------- layout


def test_import_astgen_imports_no_hypothesis() -> None:
    code = (
        "import sys\n"
        "import astgen, astgen.vllm, astgen.piecewise, astgen.dump\n"
        "assert 'hypothesis' not in sys.modules, sorted(m for m in sys.modules if m.startswith('hypothesis'))\n"
        # What a reproducer needs runs with Hypothesis missing altogether.
        "sys.modules['hypothesis'] = None\n"
        "from astgen.testing import checks, oracles, recipe, targets\n"
        "print('ok')\n"
    )
    result = python("-c", code)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stdout + result.stderr


# ---------------------------------------------------------------- the example target


def test_a_seeded_campaign_sorts_the_string_template_generators_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Hostile input asked for (the names kind); which failures 300 graphs reach varies with the
    # time each minimization takes, so what is asserted is how they are sorted.
    distinct = campaign.campaign(
        seconds=240, max_examples=300, workers=1, database=None, out=tmp_path, seed=1, fuzzed=[EXAMPLE], kinds=KINDS
    )
    out = capsys.readouterr().out
    found = findings(out)
    assert distinct == len(found) >= 3, found
    assert all(cause.startswith(f"{EXAMPLE} ") for cause in found)
    # What it refuses by design (any call_function but getitem: "Unsupported node") is counted
    # apart, by construct, and is never a root cause.
    assert re.search(rf"^  {re.escape(EXAMPLE)}: call_function: \d+ graphs$", out, re.MULTILINE), out
    assert not [cause for cause in found if "Unsupported node" in cause], found
    # Hostile names are a class of their own, under their own heading.
    hostile = [cause for cause in found if " on hostile input: " in cause]
    assert hostile, found
    assert out.index("hostile input (--kinds names):") < min(out.index(cause) for cause in hostile)
    # The reproducer imports the target by name and runs where Hypothesis is not installed.
    script = found[hostile[0]]
    assert f"TARGETS = ['{EXAMPLE}']" in Path(script).read_text()
    code = f"import runpy, sys\nsys.modules['hypothesis'] = None\nrunpy.run_path({script!r}, run_name='__main__')\n"
    result = python("-c", code)
    assert result.returncode == 1, result.stdout + result.stderr
    # It fails as the campaign saw it: the same target and check.
    assert "FAILS: " + hostile[0].split(": ", 1)[0] + ": " in result.stdout
    assert "torch.fx.Interpreter: " in result.stdout and f"{EXAMPLE}: " in result.stdout


def test_the_cli_runs_a_target_by_name_and_counts_its_refusals(tmp_path: Path) -> None:
    result = python(
        "-m", "astgen.fuzz", "--target", EXAMPLE, "--max-examples", "40", "--seed", "3", "--db", "none",
        "--kinds", "get_attr", "--out", str(tmp_path),
    )  # fmt: skip
    # Every graph of buffers alone is refused by design: nothing was checked (status 3), nothing failed.
    assert result.returncode == campaign.NOTHING_CHECKED, result.stdout + result.stderr
    assert not findings(result.stdout), result.stdout
    assert re.search(rf"^  {re.escape(EXAMPLE)}: get_attr: 40 graphs$", result.stdout, re.MULTILINE), result.stdout


# ---------------------------------------------------------------- built-in targets


@pytest.mark.parametrize("name", ["interpreter", "vllm-api:astgen.vllm"])
def test_targets_that_hold_find_nothing(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # astgen's drop-in returns (code, names, consts); the example above (code, names): both shapes run.
    distinct = campaign.campaign(
        seconds=240, max_examples=60, workers=1, database=None, out=tmp_path, seed=0, fuzzed=[name]
    )
    assert distinct == 0, capsys.readouterr().out


def test_graphmodule_target_installs_the_pieces() -> None:
    calls: list[str] = []
    gm = _tuple_graph()
    pieces = {name: _recording(name, module, calls) for name, module in gm.named_children()}
    function = targets.resolve("graphmodule").compile(gm, pieces)
    function(torch.ones(2))
    assert calls == ["submod_0", "submod_1", "submod_2"]


def _recording(name: str, module: Callable[..., Any], calls: list[str]) -> Callable[..., Any]:
    def piece(*args: Any) -> Any:
        calls.append(name)
        return module(*args)

    return piece


# ---------------------------------------------------------------- targets of your own, and differential runs


def negating(gm: torch.fx.GraphModule, pieces: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A target with a bug: astgen's function, with floating tensor results negated."""
    function = compile_graph(gm, pieces).fn

    def run(*args: Any) -> Any:
        result = function(*args)
        return torch.neg(result) if isinstance(result, torch.Tensor) and result.is_floating_point() else result

    return run


def test_a_differential_run_compares_two_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = f"{__name__}:negating"
    distinct = campaign.campaign(
        seconds=240,
        max_examples=80,
        workers=1,
        database=None,
        out=tmp_path,
        seed=0,
        fuzzed=["interpreter", mine],
        kinds=["call_module", "getitem"],
    )
    found = findings(capsys.readouterr().out)
    # Where both return, disagreeing is what a differential run reports first; the interpreter target holds.
    assert distinct == len(found) >= 1, found
    assert any(cause.startswith(f"interpreter+{mine} agree: interpreter and {mine} differ on ") for cause in found)
    assert not any(signature.startswith("interpreter ") for signature in found)
    # Alone, the same target fails its own check against the interpreter.
    capsys.readouterr()
    campaign.campaign(
        seconds=240, max_examples=150, workers=1, database=None, out=tmp_path / "alone", seed=0, fuzzed=[mine]
    )
    alone = findings(capsys.readouterr().out)
    assert any(cause.startswith(f"{mine} interpreter: differs from the interpreter on ") for cause in alone), alone


@pytest.mark.parametrize(
    "argv",
    [
        ["--target", "nosuch"],
        ["--target", "vllm-api:no_such_module_anywhere"],
        ["--target", "vllm-api:json"],
        ["--target", "astgen", "--target", "interpreter", "--target", "graphmodule"],
        ["--target", "astgen", "--target", "astgen"],
        ["--target", "interpreter", "--checks", "verifier"],
        ["--target", "astgen", "--checks", "agree"],
    ],
)
def test_bad_targets_are_one_line_and_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = campaign.main([*argv, "--max-examples", "5", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 2, captured
    assert captured.err.startswith("python -m astgen.fuzz: error: ") and captured.err.count("\n") == 1, captured.err


# ---------------------------------------------------------------- the liveness oracle


def _tuple_graph() -> torch.fx.GraphModule:
    """x -> t = submod_0(x) (a 3-tuple); submod_1(t[0]); submod_2(t[1]); t[2] is never read."""
    root = torch.nn.Module()
    for index in range(3):
        root.add_module(f"submod_{index}", Piece("tuple", arity=3) if index == 0 else Piece("tensor"))
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    t = graph.call_module("submod_0", (x,))
    first = graph.call_function(operator.getitem, (t, 0))
    one = graph.call_module("submod_1", (first,))
    second = graph.call_function(operator.getitem, (t, 1))
    two = graph.call_module("submod_2", (second,))
    graph.output((one, two))
    return torch.fx.GraphModule(root, graph)


def test_the_liveness_oracle_takes_either_way_of_reading_a_tuple_and_nothing_else() -> None:
    liveness = expected_liveness(_tuple_graph(), (torch.ones(2),))
    a, b, c = ((0, (index,)) for index in range(3))
    one = (1, ())
    # Read by index: the tuple, all three elements, lives until its last getitem.
    by_index = {0: frozenset(), 1: frozenset({a, b, c}), 2: frozenset({one, b})}
    # Unpacked at the call: each element read lives on its own, the unread one is freed at once.
    unpacked = {0: frozenset(), 1: frozenset({a, b}), 2: frozenset({one, b})}
    assert liveness.mismatch(by_index) is None
    assert liveness.mismatch(unpacked) is None
    leaked = {**unpacked, 2: frozenset({one, b, c})}
    assert "alive but dead in the graph [(0, (2,))]" in str(liveness.mismatch(leaked))
    early = {**by_index, 2: frozenset({one})}
    assert "needed but freed [(0, (1,))]" in str(liveness.mismatch(early))
    # The oracle needs no compiled code: nothing of astgen's IR decides what it expects.
    assert liveness.choices and all(len(choice) == 3 for choice in liveness.choices.values())


def test_liveness_is_checked_where_a_target_claims_it() -> None:
    # torch.fx.Interpreter never frees a result nobody reads: claimed for it, liveness says so.
    root = torch.nn.Module()
    root.add_module("submod_0", Piece("tensor"))
    root.add_module("submod_1", Piece("tensor"))
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.call_module("submod_0", (x,))
    graph.output(graph.call_module("submod_1", (x,)))
    gm = torch.fx.GraphModule(root, graph)
    interpreter = targets.resolve("interpreter")
    claiming = targets.Target("interpreter", interpreter.compile, frozenset({"liveness"}))
    args = (torch.ones(2),)
    expected = torch.fx.Interpreter(gm).run(*args)
    with pytest.raises(PropertyFailure, match="alive but dead in the graph \\[\\(0, \\(\\)\\)\\]"):
        check_target(claiming, gm, args, {"liveness"}, expected)
    # astgen frees it at once; as the interpreter target claims no liveness, it is not held to it.
    check_target(targets.resolve("vllm-api:astgen.vllm"), gm, args, {"liveness"}, expected)
    check_target(interpreter, gm, args, {"liveness", "interpreter"}, expected)
