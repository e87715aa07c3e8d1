"""What the package ships and says about itself: version, py.typed, LICENSE, CHANGELOG, `python -m astgen`."""

from __future__ import annotations

import configparser
import email
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import astgen
from astgen import __main__ as astgen_main

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_version_is_the_one_in_pyproject() -> None:
    assert astgen.__version__ == PROJECT["version"]


def test_license_file_matches_pyproject() -> None:
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_changelog_names_the_current_version() -> None:
    headings = [line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    assert f"## {PROJECT['version']}" in headings


def test_python_dash_m_astgen_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "astgen"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
    for command in ("python -m astgen.dump", "python -m astgen.fuzz", 'backend="astgen"', astgen.__version__):
        assert command in result.stdout
    assert len(result.stdout.splitlines()) < 20


def test_python_dash_m_astgen_version_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert astgen_main.main(["--version"]) == 0
    assert capsys.readouterr().out == f"astgen {astgen.__version__}\n"
    assert astgen_main.main(["dump"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "python -m astgen" in err


def test_wheel_ships_py_typed_license_and_metadata(tmp_path: Path) -> None:
    # Built from a copy, as in test_backend_wheel: no build/ or egg-info in the shared tree.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "astgen", source / "astgen", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    # Verbose, so the build backend's warnings are in the output.
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(wheels), str(source)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert "adding license file 'LICENSE'" in build.stdout + build.stderr
    assert "DeprecationWarning" not in build.stdout + build.stderr
    (wheel,) = wheels.glob("astgen-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert "astgen/py.typed" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(archive.read(metadata_name))
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata.get_all("Classifier") == PROJECT["classifiers"]
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert metadata["Summary"] == PROJECT["description"]
    assert metadata["Requires-Python"] == ">=3.11"
    assert sorted(metadata.get_all("Provides-Extra")) == ["dev", "docs", "fuzz", "test"]
    (entry_points_name,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    entry_points = configparser.ConfigParser()
    entry_points.read_string(archive.read(entry_points_name).decode())
    assert dict(entry_points["sglang.srt.plugins"]) == {"astgen": "astgen.sglang:register"}
    assert dict(entry_points["vllm.general_plugins"]) == {"astgen": "astgen.vllm:register"}
