"""README.md and every docs/ page: the code blocks run as written, and each output shown is what its code prints.

One test a page: the page's Python blocks run in order as one script in a
fresh directory, then its console commands, and every output block not
marked as recorded must equal what was printed (`scripts/docs_outputs.py`
holds the conventions, and rewrites the outputs). The benchmark tables are
checked against `benchmarks/results/`, which `make bench` writes.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
from pathlib import Path

import pytest

from benchmarks import gpu_llama, run
from scripts import docs_outputs

PAGES = docs_outputs.pages()


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_blocks_run_and_print_what_is_shown(page: Path) -> None:
    differences = docs_outputs.check_or_rewrite(page, rewrite=False)
    assert not differences, "\n".join(
        f"{page.name} block {found.block}:\n--- shown\n{found.shown}--- printed\n{found.printed}"
        for found in differences
    )


def test_every_page_is_in_the_site_navigation() -> None:
    navigation = (docs_outputs.ROOT / "mkdocs.yml").read_text()
    assert sorted(page.name for page in PAGES if page.parent.name == "docs") == sorted(
        re.findall(r":\s*(\S+\.md)$", navigation, re.M)
    )


def test_a_changed_output_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nprint(6 * 7)\n```\n\n```text\n41\n```\n\n```console\n$ python -c 'print(1)'\n2\n```\n")
    found = docs_outputs.check_or_rewrite(page, rewrite=False)
    assert [(difference.block, difference.printed) for difference in found] == [
        (1, "42\n"),
        (2, "$ python -c 'print(1)'\n1\n"),
    ]
    docs_outputs.check_or_rewrite(page, rewrite=True)
    assert docs_outputs.check_or_rewrite(page, rewrite=False) == []


def test_benchmark_numbers_are_the_committed_results() -> None:
    committed = set((run.RESULTS / "bench.txt").read_text().splitlines())
    gpu = json.loads((run.RESULTS / "gpu_llama_h100.json").read_text())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        gpu_llama.report(gpu)
    committed |= set(printed.getvalue().splitlines())
    page = (docs_outputs.ROOT / "docs" / "benchmarks.md").read_text().splitlines()
    measured = [line for line in page if re.match(r"^(\| ?[\d.,]|\| [A-Za-z].*\d|PASS |MISS |INFO )", line)]
    assert len(measured) > 40
    assert [line for line in measured if line not in committed] == []


def test_hostile_text_counts_are_the_suites() -> None:
    from tests.hostile_texts import HOSTILE

    for page in (docs_outputs.ROOT / "README.md", docs_outputs.ROOT / "docs" / "loading.md"):
        assert re.findall(r"(\d+) hostile texts", page.read_text()) == [str(len(HOSTILE))], page.name


def test_sglang_numbers_are_the_committed_results() -> None:
    from benchmarks import gpu_sglang

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        gpu_sglang.report(json.loads((run.RESULTS / "gpu_sglang_h200.json").read_text()))
    committed = set(printed.getvalue().splitlines())
    for page in (docs_outputs.ROOT / "docs" / "sglang.md", docs_outputs.ROOT / "README.md"):
        measured = [line for line in page.read_text().splitlines() if re.match(r"^\| (SGLang|astgen)", line)]
        assert [line for line in measured if line not in committed] == [], page.name
    assert (
        len([line for line in (docs_outputs.ROOT / "docs" / "sglang.md").read_text().splitlines() if line in committed])
        > 12
    )


def test_readme_why_numbers_are_the_committed_results() -> None:
    """Each timing in README's "Why" table measured on the CPU stands in benchmarks/results/bench.txt."""
    committed = (run.RESULTS / "bench.txt").read_text()
    readme = (docs_outputs.ROOT / "README.md").read_text()
    why = readme.split("## Why", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in why.splitlines() if line.startswith("| ") and not re.search(r"H100|H200", line)]
    timings = [number for row in rows for number in re.findall(r"(\d[\d,]*\.\d+) (?:µs|ms)", row)]
    assert len(timings) >= 10
    assert [number for number in timings if number not in committed] == []


def test_readme_vllm_findings_are_the_fuzzing_pages() -> None:
    """README's table of vLLM 0.33 root causes is docs/fuzzing.md's, which comes from the recorded campaign."""

    def table(text: str) -> list[str]:
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("| # | root cause"))
        return list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))

    readme = table((docs_outputs.ROOT / "README.md").read_text())
    page = (docs_outputs.ROOT / "docs" / "fuzzing.md").read_text()
    assert readme == table(page)
    assert f"{len(readme) - 2} root causes" in (docs_outputs.ROOT / "README.md").read_text()
    assert re.search(rf"\b{len(readme) - 2} root causes\b", page)
