"""The code blocks of README.md and docs/ run as written, and each output shown is what its code prints.

A page's fenced blocks, in order:

- ```` ```python ````: the page's Python blocks run in order as one script, in a
  fresh directory (a block may use what an earlier one defined or wrote).
- ```` ```text ```` right after a Python block: what that block prints.
- ```` ```console ````: commands (lines starting with `$ `), each followed by
  what it prints (stdout and stderr, as a terminal shows them); they run after the page's Python
  blocks, in the same directory, so they may read the files those wrote.
  (Commands shown without their output are ```` ```sh ```` blocks.)

A line `<!-- recorded: WHY -->` just before an output or console block marks
output that differs from run to run (timings, campaigns): `python -m
scripts.docs_outputs` writes it afresh, the check leaves it alone. A line
`<!-- not run: WHY -->` before a block leaves it out of both, and
`<!-- file: NAME -->` before a block writes it to the file NAME for the
console commands, instead of running it.

    python -m scripts.docs_outputs            # run every page, rewrite every output block in place
    python -m scripts.docs_outputs --check    # run every page, list each output that differs (exit 1)
    python -m scripts.docs_outputs PAGE ...   # only these pages

`tests/test_docs.py` runs the check on each page.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(
    r"^(?:<!-- (?P<kind>recorded|not run|file): (?P<note>[^\n]*?) -->\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$",
    re.S | re.M,
)
# What separates the output of one Python block from the next in the page's script's stdout.
BLOCK_SEPARATOR = "\x00astgen-docs-block\x00"


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where its body lies in the text, its language and its marker."""

    lang: str
    body: str
    start: int
    end: int
    marker: str | None
    note: str | None

    @property
    def runs(self) -> bool:
        return self.marker not in ("not run", "file")

    @property
    def checked(self) -> bool:
        return self.marker is None


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(text: str) -> list[Block]:
    return [
        Block(match["lang"], match["body"], match.start("body"), match.end("body"), match["kind"], match["note"])
        for match in FENCE.finditer(text)
    ]


def outputs_of_python(page_blocks: list[Block]) -> dict[int, int]:
    """Output block index -> index of the Python block it shows the output of."""
    shown = {}
    for index, (block, following) in enumerate(itertools.pairwise(page_blocks)):
        if block.lang == "python" and block.runs and following.lang == "text":
            shown[index + 1] = index
    return shown


def environment() -> dict[str, str]:
    # `python` in a console block is this interpreter, as in the reader's activated environment.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}


def run_python(page_blocks: list[Block], workdir: Path) -> dict[int, str]:
    """Run the page's Python blocks in order, in one namespace; what each printed, by block index."""
    for block in page_blocks:
        if block.marker == "file" and block.note is not None:
            (workdir / block.note).write_text(block.body)
    indices = [index for index, block in enumerate(page_blocks) if block.lang == "python" and block.runs]
    if not indices:
        return {}
    files = []
    for index in indices:
        files.append(workdir / f"block_{index:02d}.py")
        files[-1].write_text(page_blocks[index].body)
    result = subprocess.run(
        [sys.executable, "-m", "scripts.docs_outputs", "--run-blocks", *map(str, files)],
        cwd=workdir,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the page's Python blocks failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    printed = result.stdout.split(BLOCK_SEPARATOR)[1:]
    return dict(zip(indices, printed, strict=True))


def run_blocks(files: list[Path]) -> None:
    """Each file in turn in one `__main__` namespace, as one script pasted from the blocks would run."""
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    for file in files:
        print(BLOCK_SEPARATOR, end="", flush=True)
        exec(compile(file.read_text(), str(file), "exec"), module.__dict__)
        sys.stdout.flush()


def run_console(body: str, workdir: Path) -> str:
    """The console block again: each `$ ` command with what it prints now."""
    lines = []
    for command in (line[2:] for line in body.splitlines() if line.startswith("$ ")):
        result = subprocess.run(
            command,
            shell=True,
            cwd=workdir,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=900,
        )
        lines.append(f"$ {command}\n{result.stdout}")
    return "".join(lines)


@dataclass(frozen=True)
class Difference:
    """An output block whose text is not what its code prints."""

    page: str
    block: int
    shown: str
    printed: str


def check_or_rewrite(page: Path, *, rewrite: bool) -> list[Difference]:
    text = page.read_text()
    page_blocks = blocks(text)
    produced: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="astgen-docs-") as workdir:
        printed = run_python(page_blocks, Path(workdir))
        for output, source in outputs_of_python(page_blocks).items():
            produced[output] = printed[source]
        for index, block in enumerate(page_blocks):
            if block.lang == "console" and "\n$ " in f"\n{block.body}" and block.runs and (rewrite or block.checked):
                produced[index] = run_console(block.body, Path(workdir))
    differences = [
        Difference(page.name, index, page_blocks[index].body, output)
        for index, output in produced.items()
        if (rewrite or page_blocks[index].checked) and page_blocks[index].body != output
    ]
    if rewrite and differences:
        for difference in sorted(differences, key=lambda found: -page_blocks[found.block].start):
            block = page_blocks[difference.block]
            text = text[: block.start] + difference.printed + text[block.end :]
        page.write_text(text)
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 where an output differs")
    parser.add_argument("--run-blocks", nargs="+", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("pages", nargs="*", type=Path, help="default: README.md and every docs/*.md")
    arguments = parser.parse_args(argv)
    if arguments.run_blocks:
        run_blocks(arguments.run_blocks)
        return 0
    differences = []
    for page in arguments.pages or pages():
        differences += check_or_rewrite(page, rewrite=not arguments.check)
    for difference in differences:
        verb = "differs" if arguments.check else "rewritten"
        print(f"{difference.page}: block {difference.block} {verb}:\n{difference.printed}", file=sys.stderr)
    return 1 if arguments.check and differences else 0


if __name__ == "__main__":
    sys.exit(main())
