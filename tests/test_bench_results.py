"""`benchmarks/results/` is one run: the table text is what run.py renders from the JSON beside it."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import run


def test_committed_table_is_the_committed_json() -> None:
    results = json.loads((run.RESULTS / "bench.json").read_text())
    assert (run.RESULTS / "bench.txt").read_text() == run.report(results)


def test_a_run_writes_every_file_of_results(tmp_path: Path, capsys) -> None:
    results = run.main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bench.json", "bench.png", "bench.txt"]
    text = (tmp_path / "bench.txt").read_text()
    assert text == run.report(json.loads((tmp_path / "bench.json").read_text())) == run.report(results)
    assert printed.startswith(text)
