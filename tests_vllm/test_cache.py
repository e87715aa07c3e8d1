"""vLLM's AOT mega artifact written by either generator and read by either loader, each in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = ("vllm", "astgen")


def _run(mode: str, directory: Path, generator: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests_vllm.cache_roundtrip", mode, str(directory), generator]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    caches = {}
    for generator in GENERATORS:
        directory = tmp_path_factory.mktemp(f"written-by-{generator}")
        done = _run("write", directory, generator)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.splitlines()[-1] == f"written by {generator}"
        caches[generator] = directory
    return caches


@pytest.mark.parametrize("reader", GENERATORS)
@pytest.mark.parametrize("writer", GENERATORS)
def test_either_loader_runs_either_generators_cache(written: dict[str, Path], writer: str, reader: str) -> None:
    done = _run("read", written[writer], reader)
    assert done.stdout.splitlines()[-1:] == [f"loaded by {reader} same"], done.stderr[-3000:]
    assert done.returncode == 0


def test_a_cache_written_with_astgen_loads_after_uninstall(tmp_path: Path) -> None:
    done = _run("write-uninstall-read", tmp_path, "astgen")
    assert done.stdout.splitlines()[-2:] == ["written by astgen", "loaded by vllm same"], done.stderr[-3000:]
    assert done.returncode == 0
