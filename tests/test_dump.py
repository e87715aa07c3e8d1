"""`python -m astgen.dump`: every example in every format, and one clear line for bad input."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest
import torch
import torch.fx

import astgen
from astgen import dump, examples
from tests.helpers import build_raw, example

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = dump.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# Factories for `package.module:factory` targets.


def make_toy() -> torch.fx.GraphModule:
    return example("toy")


def make_module() -> torch.nn.Module:
    return torch.nn.Linear(1, 1)


def make_exported() -> torch.export.ExportedProgram:
    return torch.export.export(torch.nn.Linear(1, 1), (torch.randn(1, 1),))


def make_exported_module() -> torch.fx.GraphModule:
    return make_exported().module()


def make_raising() -> torch.fx.GraphModule:
    raise RuntimeError("factory broke\nover two lines")


def make_unlowerable() -> torch.fx.GraphModule:
    return build_raw(lambda g: g.output(g.create_node("call_module", "missing", (g.placeholder("x"),))))


class Doubler(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        doubled = x * 2
        return doubled.relu()


def make_traced() -> torch.fx.GraphModule:
    tracer = torch.fx.Tracer()
    tracer.record_stack_traces = True
    model = Doubler()
    return torch.fx.GraphModule(model, tracer.trace(model))


NOT_CALLABLE = 3
TOY_GRAPH = example("toy")


class Namespace:
    @staticmethod
    def nested() -> torch.fx.GraphModule:
        return example("toy")


# ---------------------------------------------------------------- examples and formats


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_source_of_every_example(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, err = run(capsys, "--example", name)
    assert (status, err) == (0, "")
    assert out == astgen.compile_graph(example(name)).source
    # Bound objects may come first; the function is the last statement.
    assert isinstance(ast.parse(out).body[-1], ast.FunctionDef)


def test_default_example(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys)
    assert (status, err) == (0, "")
    assert out == astgen.compile_graph(example(examples.DEFAULT_EXAMPLE)).source


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_ir_format(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, _ = run(capsys, "--example", name, "--format", "ir")
    compiled = astgen.compile_graph(example(name))
    assert status == 0 and out == astgen.format_function(compiled.ir) + "\n"
    lines = out.splitlines()
    assert lines[0].startswith("func forward(") and "}" in lines
    assert len([line for line in lines if line.startswith("  ")]) == len(compiled.ir.body)


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_ast_format(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, _ = run(capsys, "--example", name, "--format", "ast")
    assert status == 0 and out.startswith("Module(") and "FunctionDef(" in out
    assert out == ast.dump(astgen.compile_graph(example(name)).tree, indent=2) + "\n"


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_astor_renderer_gives_the_same_program(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, _ = run(capsys, "--example", name, "--renderer", "astor")
    assert status == 0
    expected = astgen.compile_graph(example(name)).tree
    assert ast.dump(ast.parse(out)) == ast.dump(ast.parse(ast.unparse(expected)))


def make_wide() -> torch.fx.GraphModule:
    """A graph whose one call takes twelve long-named inputs: a line far past 100 characters."""
    graph = torch.fx.Graph()
    inputs = [graph.placeholder(f"hidden_states_of_layer_{index}") for index in range(12)]
    graph.output(graph.call_function(torch.stack, (inputs,)))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def test_astor_wraps_long_lines(capsys: pytest.CaptureFixture[str]) -> None:
    _, unparsed, _ = run(capsys, "tests.test_dump:make_wide")
    _, wrapped, _ = run(capsys, "tests.test_dump:make_wide", "--renderer", "astor")
    assert max(map(len, unparsed.splitlines())) > 100
    assert max(map(len, wrapped.splitlines())) < max(map(len, unparsed.splitlines()))


@pytest.mark.parametrize("renderer", ["unparse", "astor"])
@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_annotate_names_each_node(capsys: pytest.CaptureFixture[str], name: str, renderer: str) -> None:
    status, out, _ = run(capsys, "--example", name, "--annotate", "--renderer", renderer)
    assert status == 0
    # Comments only: the program is unchanged.
    assert ast.dump(ast.parse(out)) == ast.dump(ast.parse(astgen.compile_graph(example(name)).source))
    # A comment names the nodes of its line (`# a, b <- user line` where one statement stands for two).
    commented = set()
    for line in out.splitlines():
        if "  # " in line:
            commented.update(line.split("  # ", 1)[1].split(" <- ")[0].split(", "))
    compiled = astgen.compile_graph(example(name))
    origins = {i.origin.node for i in compiled.ir.body if getattr(i, "origin", None) is not None}  # type: ignore[union-attr]
    assert origins and origins <= commented


def test_annotate_names_a_node_once_per_statement(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tests.test_dump:make_exported_module", "--annotate")
    # The return is the output processing's call and the return: both the output node's.
    assert status == 0
    assert out.splitlines()[-1].startswith("    return process_outputs(")
    assert out.splitlines()[-1].endswith(")  # output")


def test_annotate_shows_user_source_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tests.test_dump:make_traced", "--annotate")
    assert status == 0
    (line,) = [line for line in out.splitlines() if "doubled = x * 2" in line]
    assert line.startswith("    mul = x * 2  # mul <- ") and "test_dump.py" in line


def test_factory_target(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "tests.test_dump:make_toy", "--format", "source")
    assert (status, err) == (0, "")
    assert out == astgen.compile_graph(example("toy")).source


def test_nested_factory_and_plain_graph_targets(capsys: pytest.CaptureFixture[str]) -> None:
    expected = astgen.compile_graph(example("toy")).source
    assert run(capsys, "tests.test_dump:Namespace.nested") == (0, expected, "")
    assert run(capsys, "tests.test_dump:TOY_GRAPH") == (0, expected, "")


# ---------------------------------------------------------------- bad input


def assert_one_line_error(status: int, out: str, err: str, *fragments: str) -> None:
    assert status == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("no_such_module_anywhere:make", "no_such_module_anywhere"),
        ("tests.test_dump:no_such_factory", "no_such_factory"),
        ("tests.test_dump:Namespace.missing", "Namespace.missing"),
        ("tests.test_dump:make_module", "gave a Linear, not a torch.fx.GraphModule; trace it to one first"),
        ("tests.test_dump:make_exported", "gave an ExportedProgram, not a torch.fx.GraphModule; its .module() is"),
        ("tests.test_dump:NOT_CALLABLE", "int"),
        ("tests.test_dump", "package.module:factory"),
        ("tests.test_dump:", "package.module:factory"),
        (":make_toy", "package.module:factory"),
        ("tests.test_dump:make_raising", "factory broke"),
        ("tests.test_dump:make_unlowerable", "missing"),
    ],
)
def test_bad_target_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str], target: str, fragment: str) -> None:
    assert_one_line_error(*run(capsys, target), fragment)


def test_module_failing_at_import(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "astgen_broken_module.py").write_text("raise ValueError('broken at import')\n")
    (tmp_path / "astgen_bad_syntax.py").write_text("def (:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert_one_line_error(*run(capsys, "astgen_broken_module:make"), "astgen_broken_module")
    assert_one_line_error(*run(capsys, "astgen_bad_syntax:make"), "astgen_bad_syntax")


def test_target_and_example_together(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run(capsys, "tests.test_dump:make_toy", "--example", "toy"))


@pytest.mark.parametrize(
    "argv", [("--example", "nope"), ("--format", "yaml"), ("--renderer", "black"), ("--no-such-flag",)]
)
def test_bad_option_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    assert_one_line_error(*run(capsys, *argv), argv[-1])


# ---------------------------------------------------------------- as a program


def test_python_dash_m_runs_in_a_fresh_process() -> None:
    good = subprocess.run(
        [sys.executable, "-m", "astgen.dump", "--example", "toy"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert good.returncode == 0 and good.stderr == ""
    assert good.stdout == astgen.compile_graph(example("toy")).source
    bad = subprocess.run(
        [sys.executable, "-m", "astgen.dump", "no_such_module_anywhere:make"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1


# ---------------------------------------------------------------- options that do not fit, and paths


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("--format", "ir", "--annotate"), "--annotate applies to --format source"),
        (("--format", "ast", "--annotate"), "--annotate applies to --format source"),
        (("--format", "ir", "--renderer", "astor"), "--renderer applies to --format source"),
        (("--format", "ast", "--renderer", "unparse"), "--renderer applies to --format source"),
    ],
)
def test_source_options_with_another_format(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], fragment: str
) -> None:
    assert_one_line_error(*run(capsys, "--example", "toy", *argv), fragment)


def test_python_file_gets_the_target_to_write_instead(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run(capsys, "mymodel.py"), "mymodel.py is a Python file", "astgen.dump mymodel:make_graph")
    assert_one_line_error(*run(capsys, "models/mymodel.py:build"), "astgen.dump models.mymodel:build")
    assert_one_line_error(
        *run(capsys, str(ROOT / "tests" / "test_dump.py") + ":make_toy"),
        "astgen.dump test_dump:make_toy, run from " + str(ROOT / "tests"),
    )


def test_directory_and_other_paths(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    assert_one_line_error(*run(capsys, str(tmp_path)), "is a directory")
    (tmp_path / "model.pt2").mkdir()
    assert_one_line_error(*run(capsys, str(tmp_path / "model.pt2")), "is a directory")
    assert_one_line_error(*run(capsys, str(ROOT / "README.md")), "not of a .pt2 file")
    for suffix in (".pt", ".pkl"):
        # No such file is what is wrong, with or without --trust-pickle.
        assert_one_line_error(*run(capsys, str(tmp_path / f"missing{suffix}")), "no such file")


def make_relu() -> torch.fx.GraphModule:
    return torch.fx.symbolic_trace(Doubler())


def test_split_at_a_python_function(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "tests.test_dump:make_split_at_function", "--split-at", "torch.relu")
    assert (status, err) == (0, "")
    assert len([line for line in out.splitlines() if "submod_" in line and "_fn(" in line]) == 3
    # Doubler calls the `relu` method, which is no call of torch.relu.
    assert_one_line_error(*run(capsys, "tests.test_dump:make_relu", "--split-at", "torch.relu"), "no node")


def make_split_at_function() -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.output(
        graph.call_function(torch.neg, (graph.call_function(torch.relu, (graph.call_function(torch.neg, (x,)),)),))
    )
    return torch.fx.GraphModule(torch.nn.Module(), graph)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("aten.cos.default", "no node of the graph calls it"),
        ("torch.cos", "no node of the graph calls it"),
        ("no_such_package_anywhere.fn", "nor a Python function"),
        ("torch.no_such_function", "nor a Python function"),
    ],
)
def test_split_at_that_matches_nothing(capsys: pytest.CaptureFixture[str], name: str, fragment: str) -> None:
    assert_one_line_error(*run(capsys, "tests.test_dump:make_split_at_function", "--split-at", name), fragment)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "--version")
    assert (status, out, err) == (0, f"astgen {astgen.__version__}\n", "")
