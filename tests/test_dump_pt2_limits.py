"""`astgen.dump` bounds what a .pt2 may cost: inflated member size, shape-expression numbers, sympy's time."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from astgen import dump
from tests import test_dump_pt2_safety
from tests.test_dump_pt2_safety import Files, rewrite, run

# The safety tests' archive, made once per module by the same fixture.
saved = test_dump_pt2_safety.saved


def bomb(path: Path, target: Path, inflated: int) -> Path:
    """`path` with its first weight replaced by `inflated` zero bytes, deflated to a few kilobytes."""

    def edit(files: Files) -> None:
        weight = next(name for name in files if name.startswith("data/weights/") and not name.endswith(".json"))
        files[weight] = bytes(inflated)

    rewrite(path, target, edit)
    with zipfile.ZipFile(target) as archive:
        entries = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return target


@pytest.mark.parametrize("trusted", [False, True])
def test_a_member_that_inflates_past_the_cap_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, saved: Path, trusted: bool
) -> None:
    crafted = bomb(saved, tmp_path / "bomb.pt2", 64 << 20)
    assert crafted.stat().st_size < 1 << 20
    argv = [str(crafted), "--max-member-bytes", str(16 << 20), *(["--trust-pickle"] if trusted else [])]
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "")
    assert "inflates to 67108864 bytes" in err and "--max-member-bytes" in err


def test_the_cap_is_a_flag(capsys: pytest.CaptureFixture[str], saved: Path) -> None:
    assert run(capsys, str(saved))[0] == 0
    status, _, err = run(capsys, str(saved), "--max-member-bytes", "16")
    assert status == 2 and "past the cap of 16" in err


def test_the_default_cap_is_a_gigabyte() -> None:
    assert dump.DEFAULT_MAX_MEMBER_BYTES == 1 << 30
    assert "default: 1073741824" in dump._parser().format_help().replace("\n", " ").replace("  ", " ")


def test_sympy_parsing_is_time_boxed() -> None:
    # Within every bound, and still a number of about 10**9 digits: the time box refuses it.
    nested = "Integer(18446744073709551616)"
    for _ in range(5):
        nested = f"Pow({nested}, Integer(64))"
    dump._check_expression(nested, "models/model.json")
    with pytest.raises(dump.UnsafeArchive, match=r"longer than 0\.5s"):
        dump._parse_within([nested], 0.5)


def test_an_archive_with_a_huge_power_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, saved: Path
) -> None:
    def edit(files: Files) -> None:
        text = files["models/model.json"].decode()
        expression = re.search(r'"expr_str": "([^"]*)"', text)
        assert expression is not None
        files["models/model.json"] = text.replace(
            expression[0], f'"expr_str": "Pow({expression[1]}, Integer(1000000000))"'
        ).encode()

    crafted = rewrite(saved, tmp_path / "power.pt2", edit)
    status, out, err = run(capsys, str(crafted))
    assert (status, out) == (2, "") and "exponent" in err
