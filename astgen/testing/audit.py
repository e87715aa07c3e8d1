"""An oracle for the loader that no text can talk around: CPython's audit hooks (PEP 578).

`audit(cases)` loads and calls each case's text in one fresh subprocess
whose first act after setting up the victim's side is `sys.addaudithook`:
from then on every `open`, `import`, `exec`, `compile`, `os.*`,
`subprocess.*`, `socket.*`, `ctypes.*`, `mmap.*`, `pickle`, `marshal` ...
event is recorded, whatever code raises it, and a hook cannot be removed.
Each case reports what happened (refused, ran, or raised when called) and
every event beyond the expected ones: the parse of the text, the compile of
the tree emitted from its IR, and the exec of the module that only defines
the function (each naming the loader's file). A refused text must also
leave `sys.modules` as it found it: checking a text imports nothing.
`AuditServer` keeps one such subprocess for many batches (the property
suite and the fuzz check send thousands of texts through one).

The victim's side is fixed here, not drawn, as the threat model has it: the
text is the attacker's, the pieces, consts and arguments the victim's. A
case names its victim: `"default"` (the pieces of `VICTIM_PIECES`, the
consts of `victim_consts`, one tensor argument) or `"example:<name>"` (an
`astgen.examples` graph's pieces, consts and arguments). The code cache is
off in the subprocess; the cache has tests of its own.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import select
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from astgen.errors import CodegenError
from astgen.loader import load
from astgen.vllm import compile_execution_fn

# Events that reach nothing outside the process: `id()`, which the tables use to find an
# object, and a new `array.array` (sympy, behind some prims operators, makes its tables once).
HARMLESS = frozenset({"builtins.id", "array.__new__"})
LOADER_FILENAME = "<astgen:load>"
# A reply line starts with this: a text's function may print to the same stdout.
_REPLY = "\x00astgen-audit\x00"


@dataclass(frozen=True)
class Case:
    """One text to load and call, with the victim's piece names and which victim it runs against."""

    code: str
    piece_names: tuple[str, ...] = ()
    victim: str = "default"
    consts: str = "default"  # "none": load with consts=None, as the seed generator's text is
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


def victim_consts() -> list[Any]:
    import torch

    return [torch.float16, torch.device("cpu"), torch.ones(2), 3.5, "text"]


@dataclass(frozen=True)
class _Victim:
    pieces: dict[str, Any]
    consts: list[Any]
    args: tuple[Any, ...]


def _victims() -> dict[str, _Victim]:
    import torch

    import astgen
    from astgen import examples

    victims = {"default": _Victim(VICTIM_PIECES, victim_consts(), (torch.arange(4.0) - 1,))}
    arguments = {
        "toy": (torch.ones(2, 4), torch.full((2, 4), -2.0)),
        "constants": (torch.ones(2, 4), torch.full((2, 4), -2.0)),
    }
    for name, args in arguments.items():
        gm = examples.EXAMPLES[name]()
        artifact = astgen.compile_graph(gm).artifact()
        pieces = {target: gm.get_submodule(target) for target in artifact.piece_names}
        victims[f"example:{name}"] = _Victim(pieces, list(artifact.consts), args)
    return victims


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.on = False

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        # Harmless events are never reported: not described either (the tables' `id()`, ~75 a load).
        if self.on and event not in HARMLESS:
            self.on = False  # describing the event may raise events of its own
            try:
                self.events.append((event, _describe(event, args)))
            finally:
                self.on = True


def _serve() -> None:
    """The subprocess: the victim's side, then the hook, then batches of cases from stdin."""
    import torch

    # A mutant's call may warn (indexing a tensor by a str): not the oracle's business, nor the caller's log.
    warnings.simplefilter("ignore")
    victims = _victims()
    for victim in victims.values():
        # Printing a tensor imports a module of torch's the first time: the victim's process has done it.
        str(victim.args)
    del torch
    recorder = _Recorder()
    sys.addaudithook(recorder)
    requests, replies = sys.stdin.buffer, sys.stdout
    while True:
        header = requests.read(8)
        if len(header) < 8:
            return
        cases: list[Case] = pickle.loads(requests.read(int.from_bytes(header, "little")))
        reports = [_run(case, victims[case.victim], recorder) for case in cases]
        replies.write(_REPLY + json.dumps(reports) + "\n")
        replies.flush()


def _run(case: Case, victim: _Victim, recorder: _Recorder) -> tuple[str, str, list[str], list[str]]:
    """Load and call one case with the hook recording: (outcome, detail, unexpected events, modules imported)."""
    recorder.events.clear()
    before = list(sys.modules)
    recorder.on = True
    outcome, detail = "ran", ""
    try:
        consts = None if case.consts == "none" else victim.consts
        if case.vllm:
            fn = compile_execution_fn(case.code, victim.pieces, list(case.piece_names), consts)
        else:
            fn = load((case.code, case.piece_names, consts), victim.pieces)
    except (CodegenError, TypeError) as error:
        outcome, detail = "refused", str(error).splitlines()[0]
    else:
        try:
            fn(*victim.args)
        except BaseException as error:  # the function's own failure: what matters is what it did
            outcome, detail = "raised", f"{type(error).__name__}: {str(error)[:200]}"
    recorder.on = False
    unexpected = [f"{event}: {text}" for event, text in recorder.events if not _expected(event, text)]
    imported = _imported_since(before) if outcome == "refused" else []
    return outcome, detail, unexpected, imported


def _imported_since(before: list[str]) -> list[str]:
    """The modules `sys.modules` holds now and did not hold at `before` (its names then, in order), sorted."""
    now = list(sys.modules)
    # Where nothing came or went, the names are the same in the same order: a list compare of the same
    # objects, a few microseconds, against tens for two sets of a thousand names.
    if now == before:
        return []
    return sorted(set(now) - set(before))


def _describe(event: str, args: tuple[Any, ...]) -> str:
    if event == "exec":
        return f"filename={getattr(args[0], 'co_filename', None)!r}"
    if event == "compile":
        # CPython names no file when it compiles a tree: the loader compiles only the tree emitted from the IR.
        source, filename = (*args, None, None)[:2]
        return f"filename={LOADER_FILENAME!r}, a tree" if isinstance(source, ast.AST) else f"filename={filename!r}"
    try:
        return repr(args)[:200]
    except Exception:
        return "<unprintable>"


def _expected(event: str, text: str) -> bool:
    if event in HARMLESS:
        return True
    if event == "open":
        # A SyntaxError looks for its line in the file the parse named: the loader's, which does not exist.
        return text.startswith(f"('{LOADER_FILENAME}")
    return event in ("compile", "exec") and text.startswith(f"filename='{LOADER_FILENAME}")


class AuditServer:
    """One audited subprocess for many batches of cases; a context manager."""

    def __init__(self, timeout: float = 300) -> None:
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AuditServer:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from astgen.testing.audit import _serve; _serve()"],
            env={**os.environ, "ASTGEN_CACHE_DIR": "off"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def check(self, cases: Sequence[Case]) -> list[Report]:
        """Load and call every case; a report per case, in order."""
        process = self.process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError("AuditServer is used outside its `with`")
        payload = pickle.dumps(list(cases))
        process.stdin.write(len(payload).to_bytes(8, "little") + payload)
        process.stdin.flush()
        raw = _reply(process.stdout, self.timeout)
        if raw is None:
            process.kill()
            raise RuntimeError(f"the audit subprocess ended or took over {self.timeout}s (status {process.poll()})")
        return [Report(outcome, detail, tuple(events), tuple(imported)) for outcome, detail, events, imported in raw]


def _reply(stream: IO[bytes], timeout: float) -> Any:
    """The next reply on `stream`, past anything else printed there; None at its end or after `timeout`."""
    buffer = b""
    marker = _REPLY.encode()
    while True:
        ready, _, _ = select.select([stream], [], [], timeout)
        if not ready:
            return None
        chunk = os.read(stream.fileno(), 1 << 20)
        if not chunk:
            return None
        buffer += chunk
        start = buffer.find(marker)
        if start >= 0 and b"\n" in buffer[start:]:
            line = buffer[start + len(marker) :].split(b"\n", 1)[0]
            return json.loads(line.decode())


def audit(cases: Sequence[Case]) -> list[Report]:
    """Load and call every case in one fresh audited subprocess; a report per case, in order."""
    with AuditServer() as server:
        return server.check(cases)


def violations(cases: Sequence[Case], reports: Sequence[Report]) -> list[str]:
    """What the oracle objects to: an unexpected event, or a refusal that imported a module."""
    return [
        f"{case.code!r}\n  -> {report.outcome} {report.detail}\n  events: {report.events}\n  imported: {report.imported}"
        for case, report in zip(cases, reports, strict=True)
        if report.events or report.imported
    ]
