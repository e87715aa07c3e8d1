"""An oracle for the loader that no text can talk around: CPython's audit hooks (PEP 578).

`audit(cases)` loads and calls each case's text in one fresh subprocess
whose first act is `sys.addaudithook`: from then on every `open`, `import`,
`exec`, `compile`, `os.*`, `subprocess.*`, `socket.*`, `ctypes.*`,
`mmap.*`, `pickle`, `marshal` ... event is recorded, whatever code raises
it, and a hook cannot be removed. Each case reports what happened (refused,
ran, or raised when called) and every event beyond `EXPECTED`: what loading
a text and calling its function raises for any text, the compile and the
exec of the module emitted from the lifted IR. A refused text must also
leave `sys.modules` as it found it: checking a text imports nothing.

The victim's side is fixed here, not drawn: pieces (`VICTIM_PIECES`, by
name) and consts (`victim_consts`), as the threat model has it: the text is
the attacker's, the pieces and consts are the victim's. The code cache is
off in the subprocess; the cache has tests of its own.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Events any load and call raises: the parse of the text (a `compile` event
# naming the loader's file; a syntax error also tries to `open` that file,
# which does not exist), the compile of the tree emitted from the IR (a
# tree: CPython names no file for it) and the exec of its module, which only
# defines the function (naming the loader's file).
EXPECTED = frozenset({"compile", "exec"})
# Events that reach nothing outside the process: `id()`, which the tables use to find an object.
HARMLESS = frozenset({"builtins.id"})
LOADER_FILENAME = "<astgen:load>"


@dataclass(frozen=True)
class Case:
    """One text to load and call, with the victim's piece names (from `VICTIM_PIECES`) and consts."""

    code: str
    piece_names: tuple[str, ...] = ()
    consts: str = "default"  # a key of `victim_consts`
    entry: str | None = None
    vllm: bool = False


@dataclass(frozen=True)
class Report:
    outcome: str  # "refused", "ran", "raised"
    detail: str
    events: tuple[str, ...]  # unexpected events, as "event: args"
    imported: tuple[str, ...]  # modules a refused text left imported


def _relu(x: Any) -> Any:
    return x.relu()


def _pair(x: Any) -> Any:
    return (x + 1, x * 2)


def _identity(x: Any) -> Any:
    return x


def _opens(x: Any) -> Any:
    """A piece that opens a file: what the oracle must see, to show it sees anything."""
    with open(os.devnull):
        return x


VICTIM_PIECES = {"relu": _relu, "pair": _pair, "identity": _identity, "opens": _opens}


def victim_consts(name: str) -> list[Any] | None:
    import torch

    if name == "none":
        return None
    return [torch.float16, torch.device("cpu"), torch.ones(2), 3.5, "text"]


def victim_args() -> tuple[Any, ...]:
    import torch

    return (torch.arange(4.0) - 1,)


def _child(cases_path: str, out_path: str) -> None:
    """The subprocess: hook first, then each case."""
    recorded: list[tuple[str, str]] = []
    recording = [False]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if recording[0]:
            recording[0] = False  # repr below may raise events of its own
            try:
                recorded.append((event, _describe(event, args)))
            finally:
                recording[0] = True

    import torch  # noqa: F401  (imported before the hook: the victim's process has it)

    import astgen
    from astgen.errors import CodegenError
    from astgen.vllm import compile_execution_fn

    with open(cases_path, "rb") as file:
        cases: list[Case] = pickle.load(file)
    args = victim_args()
    # Printing a tensor imports a module of torch's the first time: the victim's process has done it.
    str(args)
    sys.addaudithook(hook)
    reports = []
    for case in cases:
        recorded.clear()
        before = set(sys.modules)
        recording[0] = True
        outcome, detail = "ran", ""
        try:
            pieces = {name: VICTIM_PIECES[name] for name in case.piece_names if name in VICTIM_PIECES}
            consts = victim_consts(case.consts)
            if case.vllm:
                fn = compile_execution_fn(case.code, pieces, list(case.piece_names), consts)
            else:
                fn = astgen.load((case.code, case.piece_names, consts), pieces, entry=case.entry)
        except (CodegenError, TypeError) as error:
            outcome, detail = "refused", str(error).splitlines()[0]
        else:
            try:
                fn(*args)
            except BaseException as error:  # the function's own failure: what matters is what it did
                outcome, detail = "raised", f"{type(error).__name__}: {str(error)[:200]}"
        recording[0] = False
        unexpected = tuple(f"{event}: {text}" for event, text in recorded if not _expected(event, text))
        imported = tuple(sorted(set(sys.modules) - before)) if outcome == "refused" else ()
        reports.append((outcome, detail, unexpected, imported))
    with open(out_path, "w") as file:
        json.dump(reports, file)


def _describe(event: str, args: tuple[Any, ...]) -> str:
    if event == "exec":
        return f"filename={getattr(args[0], 'co_filename', None)!r}"
    if event == "compile":
        # CPython names no file when it compiles a tree: the loader compiles only the tree emitted from the IR.
        source, filename = (args + (None, None))[:2]
        return f"filename={LOADER_FILENAME!r}, a tree" if isinstance(source, ast.AST) else f"filename={filename!r}"
    try:
        return repr(args)[:200]
    except Exception:
        return "<unprintable>"


def _expected(event: str, text: str) -> bool:
    if event == "open":
        # A SyntaxError looks for its line in the file the parse named: the loader's, which does not exist.
        return text.startswith(f"('{LOADER_FILENAME}")
    return event in HARMLESS or (event in EXPECTED and text.startswith(f"filename='{LOADER_FILENAME}"))


def audit(cases: Sequence[Case], *, timeout: float = 300) -> list[Report]:
    """Load and call every case in one subprocess with an audit hook; a report per case, in order."""
    with tempfile.TemporaryDirectory() as directory:
        cases_path, out_path = Path(directory) / "cases.pkl", Path(directory) / "reports.json"
        cases_path.write_bytes(pickle.dumps(list(cases)))
        environment = {**os.environ, "ASTGEN_CACHE_DIR": "off"}
        completed = subprocess.run(
            [sys.executable, "-c", "import sys; from astgen.testing.audit import _child; _child(*sys.argv[1:])"]
            + [str(cases_path), str(out_path)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if completed.returncode != 0 or not out_path.exists():
            raise RuntimeError(f"the audit subprocess failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
        raw = json.loads(out_path.read_text())
    return [Report(outcome, detail, tuple(events), tuple(imported)) for outcome, detail, events, imported in raw]


def violations(cases: Sequence[Case], reports: Sequence[Report]) -> list[str]:
    """What the oracle objects to: an unexpected event, or a refusal that imported a module."""
    found = []
    for case, report in zip(cases, reports, strict=True):
        if report.events or report.imported:
            found.append(f"{case.code!r}\n  -> {report.outcome} {report.detail}\n  events: {report.events}\n  imported: {report.imported}")
    return found
