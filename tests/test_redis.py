"""Campaign workers on two "machines" share one corpus through a real Redis server.

Needs the `redis-server` binary (Debian package `redis-server`, which `make
test` installs when missing). Without it this test fails rather than skips:
the shared database is a feature, and CI must exercise it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from astgen.testing.campaign import NOTHING_CHECKED

ROOT = Path(__file__).resolve().parent.parent
BUG = "two call arguments swapped"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is not installed; `make test` installs it (apt-get install redis-server)"
    port = _free_port()
    process = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert process.poll() is None, f"redis-server exited with {process.returncode}"
                time.sleep(0.05)
        else:
            raise AssertionError("redis-server did not answer within 5 s")
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def distinct_failures(stdout: str) -> int:
    """The count in the summary line `astgen.fuzz: N graphs in ... , K root causes`."""
    (count,) = re.findall(r"^astgen\.fuzz: .*, (\d+) root causes$", stdout, re.MULTILINE)
    return int(count)


def fuzz_worker(*args: str, bug: str | None = BUG) -> subprocess.CompletedProcess[str]:
    """`python -m astgen.fuzz ARGS` as another machine would run it, with the planted bug (None: the real code)."""
    code = (
        "import contextlib, sys; from tests.test_fuzz_teeth import planted; from astgen import fuzz\n"
        f"with planted({bug!r}) if {bug!r} else contextlib.nullcontext():\n"
        f"    sys.exit(fuzz.main({list(args)!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )


def test_a_failure_found_by_one_worker_is_replayed_by_another(redis_url: str, tmp_path: Path) -> None:
    # Worker A draws graphs until it finds the bug, shrinks it, and saves it to Redis.
    found = fuzz_worker(
        "--db", redis_url, "--max-examples", "300", "--checks", "interpreter", "--out", str(tmp_path / "a")
    )
    assert found.returncode == 1, found.stdout + found.stderr
    client = redis.Redis.from_url(redis_url)
    assert client.keys("hypothesis-example:*"), "worker A saved nothing to Redis"

    # Worker B only replays the shared database, drawing nothing of its own: it fails all the same.
    replayed = fuzz_worker("--db", redis_url, "--replay", "--checks", "interpreter", "--out", str(tmp_path / "b"))
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    reproducers_a = sorted(path.name for path in (tmp_path / "a").glob("repro_*.py"))
    reproducers_b = sorted(path.name for path in (tmp_path / "b").glob("repro_*.py"))
    # The database also holds A's shrink steps, which can fail with a signature
    # A never wrote a reproducer for; what B must find is a failure A found.
    assert set(reproducers_b) & set(reproducers_a), (reproducers_a, reproducers_b)
    # B reports as many distinct failures as it wrote reproducers.
    assert distinct_failures(replayed.stdout) == len(reproducers_b) >= 1, replayed.stdout

    # Worker C runs code without the bug: its replay finds nothing and leaves
    # the shared corpus as it was, so A and B keep their failure.
    saved = {key: client.smembers(key) for key in client.keys("hypothesis-example:*")}
    fixed = fuzz_worker(
        "--db", redis_url, "--replay", "--checks", "interpreter", "--out", str(tmp_path / "c"), bug=None
    )
    assert distinct_failures(fixed.stdout) == 0, fixed.stdout + fixed.stderr
    assert {key: client.smembers(key) for key in client.keys("hypothesis-example:*")} == saved

    # The control: replaying an empty database (Redis database 1) finds nothing, so B's failure came from A;
    # it checked no graph either, which its exit status says apart from a clean run.
    empty = fuzz_worker("--db", redis_url + "/1", "--replay", "--checks", "interpreter", "--out", str(tmp_path / "d"))
    assert empty.returncode == NOTHING_CHECKED, empty.stdout + empty.stderr
    assert distinct_failures(empty.stdout) == 0, empty.stdout
