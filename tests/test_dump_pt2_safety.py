"""A crafted .pt2 runs nothing without --trust-pickle.

Each archive below is a real `torch.export.save` output with one part
replaced by a payload that creates a marker file. `torch.export.load` runs
every one of them (the trusted runs show it); `python -m astgen.dump` without
`--trust-pickle` refuses each in one line and the marker never appears.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from astgen import dump

Files = dict[str, bytes]


class Marker:
    """Unpickling this creates a file: proof that the pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).relu()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A dynamic size, so the archive holds a shape expression.
    rows = torch.export.Dim("rows", min=2, max=64)
    exported = torch.export.export(Small(), (torch.randn(3, 4),), dynamic_shapes=({0: rows},))
    path = tmp_path_factory.mktemp("saved") / "small.pt2"
    torch.export.save(exported, path)
    return path


def rewrite(source: Path, target: Path, edit: Callable[[Files], None]) -> Path:
    """`source` with its files (named inside the archive folder) changed by `edit`."""
    with zipfile.ZipFile(source) as archive:
        entries = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    folder = next(iter(entries)).split("/")[0] + "/"
    files = {name.removeprefix(folder): data for name, data in entries.items()}
    edit(files)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            # A name starting "/" goes at the top of the zip, outside the archive folder.
            archive.writestr(name[1:] if name.startswith("/") else folder + name, data)
    return target


def pickled_weight(payload: bytes) -> Callable[[Files], None]:
    def edit(files: Files) -> None:
        config = json.loads(files["data/weights/model_weights_config.json"])
        entry = next(iter(config["config"].values()))
        entry["use_pickle"] = True
        files["data/weights/" + entry["path_name"]] = payload
        files["data/weights/model_weights_config.json"] = json.dumps(config).encode()

    return edit


def sample_inputs(payload: bytes) -> Callable[[Files], None]:
    def edit(files: Files) -> None:
        files["data/sample_inputs/model.pt"] = payload

    return edit


def shape_expression(marker: Path) -> Callable[[Files], None]:
    # torch.export.load gives `expr_str` to sympy.sympify, which evaluates it.
    def edit(files: Files) -> None:
        text = files["models/model.json"].decode()
        expression = re.search(r'"expr_str": "([^"]*)"', text)
        assert expression is not None
        hostile = f"{expression[1]} + 0*len(str(open('{marker}', 'w')))"
        files["models/model.json"] = text.replace(expression[0], f'"expr_str": "{hostile}"').encode()

    return edit


def opaque_constant(payload: bytes) -> Callable[[Files], None]:
    def edit(files: Files) -> None:
        files["data/constants/opaque_obj_0"] = payload
        config = {
            "config": {"c": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}
        }
        files["data/constants/model_constants_config.json"] = json.dumps(config).encode()

    return edit


ATTACKS: dict[str, Callable[[Path], Callable[[Files], None]]] = {
    "pickled-weight": lambda marker: pickled_weight(pickle.dumps(Marker(marker))),
    "sample-inputs": lambda marker: sample_inputs(pickle.dumps(Marker(marker))),
    "shape-expression": shape_expression,
    "opaque-constant": lambda marker: opaque_constant(pickle.dumps(Marker(marker))),
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = dump.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_crafted_archive_is_refused_and_runs_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, saved: Path, attack: str
) -> None:
    marker = tmp_path / "ran"
    crafted = rewrite(saved, tmp_path / "crafted.pt2", ATTACKS[attack](marker))
    status, out, err = run(capsys, str(crafted))
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and "refusing" in err and "--trust-pickle" in err
    assert not marker.exists()


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_payload_is_real(tmp_path: Path, saved: Path, attack: str) -> None:
    # The same file given to torch.export.load runs its payload: the refusal above is what stops it.
    marker = tmp_path / "ran"
    crafted = rewrite(saved, tmp_path / "crafted.pt2", ATTACKS[attack](marker))
    # Where the payload stands for a tensor, loading fails after it ran.
    with contextlib.suppress(Exception):
        torch.export.load(crafted)
    assert marker.exists()


@pytest.mark.parametrize(
    "edit",
    [
        lambda files: files.update({"data/aotinductor/model/model.so": b"\x7fELF"}),
        lambda files: files.update({"/version": b"1"}),
        lambda files: files.update(
            {
                "data/constants/model_constants_config.json": b'{"config": {"c": '
                b'{"path_name": "custom_obj_0", "is_param": false, "use_pickle": false}}}'
            }
        ),
        lambda files: files.update({"archive_version": b"99"}),
        lambda files: files.update({"notes.txt": b"hello"}),
    ],
    ids=["compiled-code", "outside-the-folder", "custom-object", "other-version", "unknown-file"],
)
def test_archive_torch_export_save_does_not_write_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, saved: Path, edit: Callable[[Files], None]
) -> None:
    crafted = rewrite(saved, tmp_path / "odd.pt2", edit)
    status, out, err = run(capsys, str(crafted))
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and "refusing" in err and "--trust-pickle" in err


def test_a_pickled_tensor_weight_loads_weights_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, saved: Path
) -> None:
    # torch.export.save pickles some weights (use_pickle): a plain tensor loads weights-only.
    weight = tmp_path / "weight.pt"
    torch.save(torch.nn.Parameter(torch.ones(4, 4)), weight)
    crafted = rewrite(saved, tmp_path / "pickled.pt2", pickled_weight(weight.read_bytes()))
    assert run(capsys, str(crafted))[0] == 0


def test_a_saved_program_loads_and_leaves_the_environment_alone(
    capsys: pytest.CaptureFixture[str], saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    status, out, _ = run(capsys, str(saved))
    assert status == 0 and "def forward(" in out
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ
    assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"


def test_trusted_archive_is_loaded_as_torch_loads_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, saved: Path
) -> None:
    crafted = rewrite(saved, tmp_path / "odd.pt2", lambda files: files.update({"notes.txt": b"hello"}))
    status, out, _ = run(capsys, str(crafted), "--trust-pickle")
    assert status == 0 and "def forward(" in out


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "Symbol('x').__class__",
        "Max(Symbol('x'), exit)",
        "Max('x + 1', Integer(2))",
        "Symbol('x; y')",
        "Symbol(name='x')",
        "[Symbol('x')]",
        "Symbol('x', positive=__import__('os'))",
        # Plain, but numbers no shape needs: evaluating them would not finish or would exhaust memory.
        "Pow(Symbol('s0'), Integer(1000000000))",
        "Pow(Integer(10), 100000000)",
        "PowByNatural(Symbol('s0'), Integer(65))",
        "Mul(Integer(100000000000000000000000000000), Symbol('s0'))",
        "Add(Symbol('s0'), -100000000000000000000000000000)",
        "Float('1e999999999', precision=53)",
        "Add(" * 2000 + "Symbol('s0')" + ")" * 2000,
    ],
)
def test_shape_expressions_other_than_plain_sympy_are_refused(expression: str) -> None:
    with pytest.raises(dump.UnsafeArchive):
        dump._check_expression(expression, "models/model.json")


@pytest.mark.parametrize(
    "expression",
    [
        "Symbol('s77', positive=True, integer=True)",
        "Mul(Integer(-2), Symbol('s0', integer=True))",
        "FloorDiv(Add(Symbol('s0'), Integer(1)), Integer(2))",
        "Float('1.5', precision=53)",
        "StrictLessThan(Symbol('u0'), oo)",
        "Pow(Symbol('s0'), Integer(2))",
        "Mul(Integer(18446744073709551616), Symbol('s0'))",
        "Float('1e300', precision=53)",
    ],
)
def test_plain_sympy_shape_expressions_pass(expression: str) -> None:
    dump._check_expression(expression, "models/model.json")
