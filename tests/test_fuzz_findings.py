"""Findings a maintainer accepts: root causes, reachable graphs, refusals, minimal reproducers, coverage, exit codes."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import keyword
import math
import operator
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.fx
from hypothesis import HealthCheck, given, seed, settings

from astgen.testing import campaign, checks, drawing, findings, minimize, targets
from astgen.testing import recipe as recipes

ROOT = Path(__file__).resolve().parent.parent
#: The string-template generator, vLLM's logic line for line: it names `inf` and `nan` it never defines.
EXAMPLE = "vllm-api:benchmarks.string_baseline"


def python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def tensor_input(**extra: Any) -> recipes.InputSpec:
    return {"kind": "tensor", "dtype": "float32", "shape": [2], "fill": "arange", "offset": 0, **extra}  # type: ignore[typeddict-item]


def recipe_of(nodes: list[Any], output: Any, inputs: int = 1, **more: Any) -> recipes.Recipe:
    made = {
        "inputs": [tensor_input() for _ in range(inputs)],
        "passed": inputs,
        "modules": [],
        "targets": [],
        "buffers": [],
        "nodes": nodes,
        "output": output,
    }
    return {**made, **more}  # type: ignore[return-value]


# ---------------------------------------------------------------- what varies between occurrences


def test_normalized_messages_are_one_signature_per_bug() -> None:
    pairs = [
        ("File <eval_with_key>.12, line 7", "File <eval_with_key>.3, line 9"),
        (
            "forward() missing 1 required positional argument: 'x'",
            "forward() missing 2 required positional arguments: 'x' and 'y'",
        ),
        ("object at 0x7f00aa12 is not callable", "object at 0xdeadbeef is not callable"),
    ]
    for first, second in pairs:
        assert findings.normalized(first, ["x", "y"]) == findings.normalized(second, ["x", "y"]), (first, second)
    assert findings.normalized("name 'inf' is not defined") != findings.normalized("name 'nan' is not defined")
    # Python's wording of unparsable text changes with the text; the finding is a SyntaxError either way.
    worded = [
        SyntaxError("invalid syntax"),
        SyntaxError("cannot assign to None"),
        IndentationError("unexpected indent"),
    ]
    assert {findings.error_summary(error, [], "<string>:f") for error in worded} == {"SyntaxError in <string>:f"}


# ---------------------------------------------------------------- root causes


NOISY_INF = recipe_of(
    [
        {"op": "call_function", "function": "torch.mul", "args": [["ref", 0], ["int", 3]]},
        {
            "op": "call_function",
            "function": "torch.clamp",
            "args": [["ref", 1]],
            "kwargs": [["min", ["float", "-inf"]], ["max", ["float", "1.5"]]],
        },
        {"op": "call_function", "function": "torch.add", "args": [["ref", 2], ["complex", "1.5", "-2.5"]]},
    ],
    ["tuple", [["ref", 3], ["ref", 1], ["str", "a"]]],
)
PLAIN_NAN = recipe_of(
    [{"op": "call_function", "function": "torch.add", "args": [["ref", 0], ["float", "nan"]]}], ["ref", 1]
)


def pastes_floats(gm: torch.fx.GraphModule, pieces: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A target with vLLM's float bug, modelled: a graph passing inf or nan anywhere raises NameError as its code would."""
    found: list[float] = []
    for node in gm.graph.nodes:
        torch.fx.node.map_aggregate(
            (node.args, dict(node.kwargs)),
            lambda value: found.append(value) if isinstance(value, float) and not math.isfinite(value) else None,
        )

    def run(*args: Any) -> Any:
        if found:
            raise NameError(f"name {'nan' if math.isnan(found[0]) else 'inf'!r} is not defined")
        return torch.fx.Interpreter(gm).run(*args)

    return run


FLOATS = f"{__name__}:pastes_floats"


def _failure(recipe: recipes.Recipe, target: targets.Target) -> BaseException:
    with pytest.raises(checks.PropertyFailure) as failed:
        checks.check_recipe(recipe, ["interpreter"], [target])
    return failed.value


def test_two_graphs_failing_on_inf_and_nan_are_one_root_cause_with_a_minimal_reproducer(tmp_path: Path) -> None:
    target = targets.resolve(FLOATS)
    causes = []
    minimal = []
    for recipe in (NOISY_INF, PLAIN_NAN):
        wanted = checks.signature(_failure(recipe, target))

        def still_fails(candidate: recipes.Recipe, wanted: str = wanted) -> bool:
            return campaign.fails_with(candidate, wanted, ["interpreter"], [target])

        smallest = minimize.minimize(recipe, still_fails)
        minimal.append(smallest)
        outcome = functools.partial(campaign.outcome, checks=["interpreter"], resolved=[target])
        causes.append(
            findings.group_key(checks.kind(_failure(smallest, target)), findings.construct(smallest, outcome))
        )
    assert causes[0] == causes[1]
    # The model raises at a line of its own: the site is that line.
    raising = (
        (ROOT / "tests" / "test_fuzz_findings.py")
        .read_text()
        .splitlines()
        .index("            raise NameError(f\"name {'nan' if math.isnan(found[0]) else 'inf'!r} is not defined\")")
    )
    assert causes[0].endswith(
        f"raises NameError at tests/test_fuzz_findings.py:{raising + 1} where the interpreter returns"
        " on a non-finite float constant (inf, nan)"
    )
    # The noise is gone: one node, one input, no keyword the failure does not need, no complex constant.
    noisy = minimal[0]
    assert len(noisy["nodes"]) == 1 and len(noisy["inputs"]) == 1, noisy
    text = json.dumps(noisy)
    assert "complex" not in text and "torch.mul" not in text and '"max"' not in text, noisy
    # Its reproducer reads as a few lines of FX API and exits 1 while the bug is there.
    path = campaign.write_reproducer(tmp_path, noisy, checks.signature(_failure(noisy, target)), [FLOATS], causes[0])
    assert path is not None
    source = path.read_text()
    assert "g.placeholder(" in source and "math.inf" in source and "g.output(" in source
    result = python(str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "torch.fx.Interpreter: returns " in result.stdout
    assert f"{FLOATS}: raises NameError: name 'inf' is not defined" in result.stdout
    assert "FAILS: " in result.stdout


def test_the_construct_is_the_feature_the_failure_needs() -> None:
    target = targets.resolve(EXAMPLE)
    # The defaults are the bug (the string template drops them), not the int constant the default is.
    defaulted = recipe_of([], ["ref", 1], inputs=2)
    defaulted["inputs"][1] = {"kind": "int", "value": ["int", 2], "default": ["int", 2]}
    defaulted["passed"] = 1
    _failure(defaulted, target)
    outcome = functools.partial(campaign.outcome, checks=["interpreter"], resolved=[target])
    assert findings.construct(defaulted, outcome) == "a placeholder left to its default"
    # Two bugs overlap: the slice (a bare assert) and the default (dropped) that alone gives the
    # sliced tuple. Taking the default out leaves no valid graph; taking the getitem out fails otherwise.
    overlapping = recipe_of(
        [
            {
                "op": "call_function",
                "function": "getitem",
                "args": [["ref", 0], ["slice", ["int", 1], ["int", 1], ["int", 1]]],
            }
        ],
        ["ref", 1],
    )
    overlapping["inputs"][0] = tensor_input(shape=[], default=["tuple", []])
    overlapping["passed"] = 0
    _failure(overlapping, target)
    assert findings.construct(overlapping, outcome) == "getitem by a slice or tuple key"
    # The key is the getitem's construct, not a str constant's: taking the str out of the
    # default dict and leaving the key leaves no valid graph, it does not make another failure.
    by_key = recipe_of(
        [{"op": "call_function", "function": "getitem", "args": [["ref", 0], ["str", "out"]]}], ["ref", 1]
    )
    by_key["inputs"][0] = tensor_input(default=["dict", [[["str", "out"], ["int", 1]]]])
    by_key["passed"] = 0
    _failure(by_key, target)
    assert "a str constant" in {feature.label for feature in findings.features(by_key)}
    assert findings.construct(by_key, outcome) == "getitem by a str key"
    operators = [
        recipe_of([{"op": "call_function", "function": name, "args": [["ref", 0], ["int", 2]]}], ["ref", 1])
        for name in ("mul", "sub")
    ]
    assert {findings.function_label(recipe["nodes"][0]["function"]) for recipe in operators} == {
        "call_function operator.*"
    }


def names_operator_module(gm: torch.fx.GraphModule, pieces: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A target with vLLM's operator bug, modelled: its code calls `_operator.mul`, a NameError, and where
    FX named a value `_operator` that value shadows the name: an UnboundLocalError instead."""
    calls = [
        node for node in gm.graph.nodes if node.op == "call_function" and node.target in (operator.mul, operator.sub)
    ]
    shadowed = any(node.name == "_operator" for node in gm.graph.nodes)

    def run(*args: Any) -> Any:
        if calls and shadowed:
            raise UnboundLocalError("cannot access local variable '_operator' where it is not associated with a value")
        if calls:
            raise NameError("name '_operator' is not defined")
        return torch.fx.Interpreter(gm).run(*args)

    return run


OPERATORS = f"{__name__}:names_operator_module"


def _finding(recipe: recipes.Recipe, target_name: str) -> findings.Finding:
    """What a campaign worker reports for one failing graph: minimized, diagnosed, one run."""
    target = targets.resolve(target_name)
    error = _failure(recipe, target)
    wanted = checks.signature(error)

    def still_fails(candidate: recipes.Recipe) -> bool:
        return campaign.fails_with(candidate, wanted, ["interpreter"], [target])

    smallest = minimize.minimize(recipe, still_fails)
    outcome = functools.partial(campaign.outcome, checks=["interpreter"], resolved=[target])
    diagnosis = findings.diagnose(smallest, outcome)
    scope, kind, site = campaign.failure_scope(error)
    return findings.Finding(scope, kind, diagnosis.construct, frozenset({wanted}), diagnosis.becomes, runs=1, site=site)


def test_one_bug_under_several_exception_types_is_one_root_cause(capsys: pytest.CaptureFixture[str]) -> None:
    mul = {"op": "call_function", "function": "mul", "args": [["ref", 0], ["int", 2]]}
    plain = recipe_of([mul], ["ref", 1])
    # FX's namespace gives the product the name `_operator` (it is no builtin): same bug, another exception.
    shadowing = recipe_of([mul], ["ref", 1], labels={"1": "_operator"})
    found = [_finding(plain, OPERATORS), _finding(shadowing, OPERATORS), _finding(shadowing, OPERATORS)]
    assert [finding.construct for finding in found] == ["call_function operator.*"] * 3
    assert found[0].key != found[1].key
    # Without the name, the shadowing graph fails as the plain one does: it masks that failure.
    assert found[1].masks(found[0]) and not found[0].masks(found[1])
    (cause,) = findings.root_causes(found)
    assert cause.key == found[0].key and cause.runs == 3
    assert cause.errors == (("NameError", 1), ("UnboundLocalError", 2))
    # The summary prints it once, with its exception types and their counts.
    tally = campaign.Tally(graphs=3, checked=0, failing=3, found={finding.key: finding for finding in found[:2]})
    summary = campaign.Summary(tally, {found[1].key: "repro_b.py", found[0].key: "repro_a.py"}, 1.0, 1)
    assert summary.root_causes == {found[0].key: "repro_a.py"}
    campaign.print_summary(summary)
    out = capsys.readouterr().out
    assert "1 root causes" in out
    assert f"  {found[0].key} [2 runs: NameError 1, UnboundLocalError 1] -> repro_a.py" in out
    assert found[1].key not in out


def test_distinct_root_causes_stay_apart() -> None:
    mul = {"op": "call_function", "function": "mul", "args": [["ref", 0], ["int", 2]]}
    operators = _finding(recipe_of([mul], ["ref", 1]), OPERATORS)
    # The same exception type (NameError, where the interpreter returns) on another construct,
    # raised at another line: another bug.
    floats = _finding(PLAIN_NAN, FLOATS)
    assert floats.error.partition(" at ")[0] == operators.error.partition(" at ")[0] == "raises NameError"
    assert floats.construct != operators.construct and floats.site != operators.site
    assert len(findings.root_causes([operators, floats])) == 2
    # With no site, one kind of error on two constructs is two causes too.
    unsited = [
        dataclasses.replace(
            finding, scope="t interpreter", error="raises NameError where the interpreter returns", site=""
        )
        for finding in (operators, floats)
    ]
    assert len(findings.root_causes(unsited)) == 2
    # On one check and construct, two kinds of error are two causes unless one masks the other.
    other = dataclasses.replace(operators, error="differs from the interpreter", signatures=frozenset({"t: differs"}))
    assert {cause.key for cause in findings.root_causes([operators, other])} == {operators.key, other.key}
    # What one fails with once a feature is out counts on its own check only.
    elsewhere = dataclasses.replace(other, scope="t liveness", becomes=operators.signatures)
    assert len(findings.root_causes([operators, elsewhere])) == 2
    # The same group from two workers is one finding, its runs summed.
    (cause,) = findings.root_causes([operators, operators])
    assert cause.runs == 2 and cause.errors == (("NameError", 2),)


SLICE_KEY = recipe_of(
    [
        {
            "op": "call_function",
            "function": "getitem",
            "args": [["ref", 0], ["slice", ["int", 1], ["int", 1], ["int", 1]]],
        }
    ],
    ["ref", 1],
)
STR_KEY = recipe_of([{"op": "call_function", "function": "getitem", "args": [["ref", 0], ["str", "out"]]}], ["ref", 1])
STR_KEY["inputs"][0] = tensor_input(default=["dict", [[["str", "out"], ["int", 1]]]])
STR_KEY["passed"] = 0
TUPLE_KEY = recipe_of([{"op": "call_function", "function": "getitem", "args": [["ref", 0], ["tuple", []]]}], ["ref", 1])


def test_one_line_reached_by_two_constructs_is_one_root_cause(capsys: pytest.CaptureFixture[str]) -> None:
    # The string template's `assert isinstance(index, int)`, vLLM's line for line: a slice key and a str key reach it.
    by_slice, by_str = _finding(SLICE_KEY, EXAMPLE), _finding(STR_KEY, EXAMPLE)
    assert (by_slice.construct, by_str.construct) == ("getitem by a slice or tuple key", "getitem by a str key")
    line = (
        (ROOT / "benchmarks" / "string_baseline.py")
        .read_text()
        .splitlines()
        .index("            assert isinstance(index, int)")
    )
    assert by_slice.site == by_str.site == f"benchmarks/string_baseline.py:{line + 1}"
    assert by_slice.error == by_str.error == f"compiling raises AssertionError at {by_slice.site}"
    assert not by_slice.masks(by_str) and not by_str.masks(by_slice) and by_slice.shares_site(by_str)
    (cause,) = findings.root_causes([by_str, by_slice, by_slice])
    assert cause.key == by_slice.key and cause.runs == 3 and set(cause.members) == {by_slice.key, by_str.key}
    assert cause.parts == (("getitem by a slice or tuple key", 2), ("getitem by a str key", 1))
    # The summary prints it once, with its constructs and their counts, and one reproducer.
    tally = campaign.Tally(graphs=3, checked=0, failing=3, found={by_slice.key: by_slice, by_str.key: by_str})
    summary = campaign.Summary(tally, {by_str.key: "repro_b.py", by_slice.key: "repro_a.py"}, 1.0, 1)
    assert summary.root_causes == {by_slice.key: "repro_a.py"}
    campaign.print_summary(summary)
    out = capsys.readouterr().out
    assert "1 root causes" in out and by_str.key not in out
    assert f"  {by_slice.key} [2 runs: getitem by a slice or tuple key 1, getitem by a str key 1] -> repro_a.py" in out


def asserts_by_key(gm: torch.fx.GraphModule, pieces: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A target refusing a slice key at one line and a tuple key at the next: one construct, two lines to fix."""
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is operator.getitem:
            assert not isinstance(node.args[1], slice)
            assert not isinstance(node.args[1], tuple)
    return lambda *args: torch.fx.Interpreter(gm).run(*args)


def test_one_construct_raised_at_two_lines_is_two_root_causes() -> None:
    target = f"{__name__}:asserts_by_key"
    by_slice, by_tuple = _finding(SLICE_KEY, target), _finding(TUPLE_KEY, target)
    assert by_slice.construct == by_tuple.construct == "getitem by a slice or tuple key"
    first, second = (int(finding.site.rpartition(":")[2]) for finding in (by_slice, by_tuple))
    assert by_slice.site.endswith(f"test_fuzz_findings.py:{first}") and second == first + 1, (by_slice, by_tuple)
    assert by_slice.key != by_tuple.key and not by_slice.shares_site(by_tuple)
    assert len(findings.root_causes([by_slice, by_tuple])) == 2
    # Another check, or another exception type, at the same line is another cause too.
    elsewhere = dataclasses.replace(by_slice, scope=by_slice.scope.replace("interpreter", "liveness"))
    assert len(findings.root_causes([by_slice, elsewhere])) == 2


def calls_generated_code(gm: torch.fx.GraphModule, pieces: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    """The string template's function, called from a line of this target's own: what raises is generated code."""
    function = targets.resolve(EXAMPLE).compile(gm, pieces)
    return lambda *args: function(*args)


def test_failures_in_generated_code_never_join_at_a_site() -> None:
    target = targets.resolve(f"{__name__}:calls_generated_code")
    floats = _finding(recipe_of([], ["float", "inf"]), target.name)
    devices = _finding(recipe_of([], ["device", "cpu"]), target.name)
    assert "raises NameError where" in floats.error and floats.error == devices.error
    assert floats.construct != devices.construct
    # The last frame of the target's own code is the call into the text it generated: no site.
    assert floats.site == devices.site == ""
    assert len(findings.root_causes([floats, devices])) == 2
    # Nor has a SyntaxError (the text is at fault, not the line that compiled it), or a target without own code.
    assert target.site(_raised(SyntaxError("invalid syntax"))) == ""
    assert dataclasses.replace(targets.resolve(EXAMPLE), code=()).site(_raised(AssertionError())) == ""


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


# ---------------------------------------------------------------- reachable by default


def test_default_graphs_are_what_fx_builds_for_a_tracer() -> None:
    assert "names" not in recipes.DEFAULT_KINDS and "labels" in recipes.DEFAULT_KINDS
    seen = {"labels": 0, "no input": 0}

    @seed(0)
    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(drawing.recipes(kinds=recipes.DEFAULT_KINDS))
    def drawn(recipe: recipes.Recipe) -> None:
        assert "names" not in recipe
        gm, args = recipes.build(recipe)
        for node in gm.graph.nodes:
            assert node.name.isidentifier() and not keyword.iskeyword(node.name), node.name
            for key in node.kwargs:
                assert not recipes.hostile_keyword(key), key
        assert not any(recipes.hostile_attribute(name) for name in recipe["targets"])
        seen["labels"] += bool(recipe.get("labels"))
        seen["no input"] += not recipe["inputs"]
        torch.fx.Interpreter(gm).run(*args)

    drawn()
    # Tracer names and zero-input graphs are both in reach.
    assert seen["labels"] and seen["no input"], seen


def test_zero_input_graphs_pass_astgens_checks() -> None:
    recipe = recipe_of(
        [{"op": "get_attr", "buffer": 0}, {"op": "call_function", "function": "pack", "args": [["float", "inf"]]}],
        ["tuple", [["ref", 0], ["ref", 1]]],
        inputs=0,
        buffers=[{"name": "buf0", "dtype": "float32", "shape": [2], "fill": "special", "offset": 1}],
    )
    checks.check_recipe(recipe)


def test_hostile_input_is_a_class_of_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    hostile = recipe_of([], ["ref", 0], names={"0": "class"})
    assert findings.features(hostile)[0].label.startswith(findings.HOSTILE)
    reachable = "t interpreter: compiling raises SyntaxError on call_function operator.*"
    unreachable = findings.group_key("t interpreter: compiling raises SyntaxError", findings.features(hostile)[0].label)
    found = {
        key: findings.Finding(
            "t interpreter", "compiling raises SyntaxError", key.split(" on ", 1)[1], frozenset(), runs=1
        )
        for key in (reachable, unreachable)
    }
    tally = campaign.Tally(graphs=3, checked=3, found=found)
    campaign.print_summary(campaign.Summary(tally, {reachable: None, unreachable: None}, 1.0, 1))
    out = capsys.readouterr().out
    before, after = out.split("hostile input (--kinds names):\n")
    assert reachable in before and unreachable not in before and unreachable in after


# ---------------------------------------------------------------- refusals


def test_a_declared_refusal_is_counted_by_construct_not_failed() -> None:
    recipe = recipe_of(
        [{"op": "get_attr", "buffer": 0}],
        ["ref", 1],
        buffers=[{"name": "buf0", "dtype": "float32", "shape": [2]}],
    )
    target = targets.resolve(EXAMPLE)
    assert checks.check_recipe(recipe, ["interpreter"], [target])["refused"] == {EXAMPLE: "get_attr"}
    # Undeclared, the same refusal is a failure.
    bare = targets.Target("bare", target.compile, target.claims)
    with pytest.raises(checks.PropertyFailure, match="Unsupported node"):
        checks.check_recipe(recipe, ["interpreter"], [bare])


# ---------------------------------------------------------------- coverage


def inlining(gm: torch.fx.GraphModule, pieces: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A target that runs the graph's own modules, never the pieces it is given: exceptions and liveness see nothing."""
    return lambda *args: torch.fx.Interpreter(gm).run(*args)


inlining.claims = ("interpreter", "exceptions", "liveness")  # type: ignore[attr-defined]


def test_a_check_that_covered_nothing_is_named(tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        summary = campaign.run_campaign(
            seconds=240,
            max_examples=30,
            workers=1,
            database=None,
            out=tmp_path,
            seed=0,
            fuzzed=[f"{__name__}:inlining"],
            kinds=["call_module", "getitem"],
            stream=io.StringIO(),
        )
    text = out.getvalue()
    name = f"{__name__}:inlining"
    assert summary.status == 0 and summary.tally.observed.get(f"{name} interpreter") == summary.tally.checked > 0
    assert f"  {name} exceptions: 0/" in text and f"  {name} liveness: 0/" in text
    assert f"astgen.fuzz: covered nothing: {name} exceptions, {name} liveness" in text


# ---------------------------------------------------------------- exit codes


def refusing(gm: torch.fx.GraphModule, pieces: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    raise targets.Unsupported("refuses every graph")


def test_nothing_checked_is_its_own_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--max-examples", "10", "--db", "none", "--seed", "0", "--out", str(tmp_path)]
    assert campaign.main([*argv, "--target", f"{__name__}:refusing"]) == campaign.NOTHING_CHECKED == 3
    assert "refused by design" in capsys.readouterr().out
    assert campaign.main([*argv, "--target", "interpreter"]) == 0


@pytest.mark.parametrize("argv", [[], ["--help"]])
def test_without_hypothesis_the_cli_names_the_extra_and_exits_2(argv: list[str]) -> None:
    code = (
        "import runpy, sys\n"
        "sys.modules['hypothesis'] = None\n"
        f"sys.argv = ['astgen.fuzz', *{argv!r}]\n"
        "runpy.run_module('astgen.fuzz', run_name='__main__', alter_sys=True)\n"
    )
    result = python("-c", code)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'astgen[fuzz]'" in result.stderr and "Traceback" not in result.stderr


def test_a_parameter_named_like_a_constant_is_not_normalized_out() -> None:
    # FX names the node `inf_1` for a parameter `inf`; the NameError is about the constant, as on any graph.
    labelled = recipe_of(PLAIN_NAN["nodes"], ["ref", 1], labels={"0": "inf"})
    labelled["nodes"] = [{"op": "call_function", "function": "torch.add", "args": [["ref", 0], ["float", "inf"]]}]
    plain = recipe_of(labelled["nodes"], ["ref", 1])
    target = targets.resolve(FLOATS)
    assert checks.signature(_failure(labelled, target)) == checks.signature(_failure(plain, target))
    assert "name 'inf' is not defined" in checks.signature(_failure(plain, target))
