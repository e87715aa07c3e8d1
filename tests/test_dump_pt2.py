"""`python -m astgen.dump` on saved programs: .pt2 split and printed, pickles refused unless trusted."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from astgen import dump
from astgen.split import split_graph


class Layer(nn.Module):
    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.mlp = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).transpose(1, 3).unbind(2)
        x = x + F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(-2)
        return x + self.mlp(x).relu()


class Model(nn.Module):
    def __init__(self, layers: int = 3) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(Layer() for _ in range(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    seq = torch.export.Dim("seq", min=2, max=128)
    exported = torch.export.export(Model(layers=3), (torch.randn(2, 5, 8),), dynamic_shapes=({1: seq},))
    path = tmp_path_factory.mktemp("programs") / "model.pt2"
    torch.export.save(exported, path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = dump.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def piece_calls(source: str) -> list[str]:
    """The submodules the printed function calls, in order."""
    function = ast.parse(source).body[-1]
    assert isinstance(function, ast.FunctionDef)
    return [
        node.func.id
        for statement in function.body
        for node in ast.walk(statement)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("submod_")
    ]


def test_pt2_is_split_at_attention_by_default(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    status, default, err = run(capsys, str(program))
    assert status == 0 and err == ""
    # Three layers: a piece before, each attention, a piece between and after.
    assert len(piece_calls(default)) == 7
    status, explicit, _ = run(capsys, str(program), "--split-at", "aten.scaled_dot_product_attention.default")
    assert status == 0 and explicit == default


def test_split_at_is_repeatable_and_changes_the_pieces(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    status, out, _ = run(capsys, str(program), "--split-at", "aten.relu", "--split-at", "aten::linear")
    assert status == 0
    # Per layer: qkv linear, the attention between, mlp linear, relu, the residual add.
    # torch.export may put an input check before the first linear: a piece of its own.
    nodes = list(torch.export.load(program).module().graph.nodes)
    first_linear = next(i for i, node in enumerate(nodes) if node.target is torch.ops.aten.linear.default)
    leading = any(node.op not in ("placeholder", "get_attr") for node in nodes[:first_linear])
    calls = piece_calls(out)
    assert len(calls) == len(set(calls)) == 3 * 5 + leading


def test_pt2_ir_format(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    status, out, _ = run(capsys, str(program), "--format", "ir")
    assert status == 0 and out.startswith("func forward(")
    # The dynamic sequence length reaches the printed types.
    assert "[2, s" in out


def test_the_module_runs_as_a_command(program: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "astgen.dump", str(program), "--split-at", "aten.scaled_dot_product_attention.default"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(piece_calls(result.stdout)) == 7


class Marker:
    """Unpickling this creates a file: proof that the pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


@pytest.mark.parametrize("suffix", [".pt", ".pkl"])
def test_pickle_is_refused_without_trust_and_never_loaded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / f"graph{suffix}"
    path.write_bytes(pickle.dumps(Marker(marker)))
    status, out, err = run(capsys, str(path))
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and "arbitrary code" in err and "--trust-pickle" in err
    assert not marker.exists()


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 4)

    # No annotations: with `from __future__ import annotations` FX records the
    # string "torch.Tensor" as the placeholder's type, and torch.save of the
    # traced GraphModule then fails in torch.package's importer.
    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.second(torch.relu(self.first(x))) + x


def test_trusted_pickled_graph_module_is_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A stitching graph saved elsewhere: printed as it is, its pieces called in order.
    stitching = split_graph(torch.fx.symbolic_trace(Small()), {torch.relu}).stitching
    path = tmp_path / "stitching.pt"
    torch.save(stitching, path)
    status, out, err = run(capsys, str(path), "--trust-pickle")
    assert status == 0 and err == ""
    assert piece_calls(out) == ["submod_0_fn", "submod_1_fn", "submod_2_fn"]


def bad_pt2(tmp_path: Path) -> list[str]:
    path = tmp_path / "corrupt.pt2"
    path.write_bytes(b"not a zip archive")
    return [str(path)]


def trusted_non_graph(tmp_path: Path) -> list[str]:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.ones(2)}, path)
    return [str(path), "--trust-pickle"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (lambda tmp, program: [str(tmp / "missing.pt2")], "no such file"),
        (lambda tmp, program: bad_pt2(tmp), "cannot load"),
        (lambda tmp, program: [str(program), "--split-at", "aten.no_such_op_anywhere.default"], "no op named"),
        (lambda tmp, program: [str(program), "--split-at", "not an op"], "not an op name"),
        (lambda tmp, program: [str(program), "--split-at", "aten.cos.default"], "no node of the graph calls it"),
        (lambda tmp, program: [str(tmp / "missing.pkl")], "no such file"),
        (lambda tmp, program: [str(tmp)], "is a directory"),
        (lambda tmp, program: trusted_non_graph(tmp), "not a torch.fx.GraphModule"),
        (lambda tmp, program: [str(tmp / "missing.pkl"), "--trust-pickle"], "no such file"),
        (lambda tmp, program: [str(program), "--format", "nope"], "invalid choice"),
        (lambda tmp, program: [str(program), "--example", "toy"], "not both"),
    ],
    ids=[
        "missing",
        "corrupt",
        "unknown-op",
        "malformed-op",
        "matches-nothing",
        "missing-untrusted-pickle",
        "directory",
        "pickle-not-a-graph",
        "missing-pickle",
        "format",
        "both",
    ],
)
def test_bad_input_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, program: Path, arguments: object, message: str
) -> None:
    status, out, err = run(capsys, *arguments(tmp_path, program))  # type: ignore[operator]
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("astgen.dump: ") and message in err


def test_split_at_the_python_function_of_an_aten_op(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    # What a user writes in the model names the op torch.export recorded.
    _, default, _ = run(capsys, str(program))
    status, out, err = run(capsys, str(program), "--split-at", "torch.nn.functional.scaled_dot_product_attention")
    assert (status, err) == (0, "")
    assert out == default


def test_program_without_attention_prints_one_piece_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "small.pt2"
    torch.export.save(torch.export.export(Small(), (torch.randn(2, 4),)), path)
    status, out, err = run(capsys, str(path))
    assert status == 0 and piece_calls(out) == ["submod_0_fn"]
    assert len(err.splitlines()) == 1 and "no attention op" in err
