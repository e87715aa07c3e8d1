"""Stage 5: code text from elsewhere becomes a function: parse, verify, compile, bind.

`load(artifact, pieces)` rebuilds a compiled graph from its portable form in
any process. The text is parsed, checked against the allow-list
(`astgen.allowlist`) and compiled from the checked tree; nothing of it runs
before the check passes. Binding runs the module once, with the pieces and
constants as its tables, so the function reads them as plain globals.

Parsing and checking a large text costs more than `exec` of it, so a
checked text's code object is kept, content-addressed, as `__pycache__` keeps
a module's: in this process, and in a directory (`ASTGEN_CACHE_DIR`, else
`$XDG_CACHE_HOME/astgen`, else `~/.cache/astgen`; `ASTGEN_CACHE_DIR=off`
turns it off). A cached code object is trusted as `__pycache__` is: the
directory must belong to the user running astgen and be writable by nobody
else, or it is not used.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import linecache
import logging
import marshal
import os
import sys
import tempfile
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astgen import allowlist, ir, trace
from astgen.compiled import Artifact, run_module
from astgen.errors import CodegenError
from astgen.lower import fast_callable

log = logging.getLogger("astgen")

# Bumped whenever the allow-list or the cached layout changes: a code object
# checked by an older allow-list is never reused.
_FORMAT = 1
_MEMORY_ENTRIES = 256


@dataclass(frozen=True)
class Verified:
    """A checked text: its module's code object and what it reads from outside."""

    module_code: types.CodeType
    checked: allowlist.Checked


def _key(code: str, entry: str | None) -> str:
    return hashlib.sha256(f"{entry or ''}\0{code}".encode("utf-8", "surrogatepass")).hexdigest()


def _verify(code: str, entry: str | None, filename: str) -> Verified:
    if not isinstance(code, str):
        raise TypeError(f"code text must be a str, not {type(code).__name__}")
    try:
        tree = ast.parse(code, filename=filename)
    except SyntaxError as error:
        raise CodegenError(f"code text does not parse: {error.msg} (line {error.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise CodegenError(f"code text does not parse: {error}") from None
    checked = allowlist.check(tree, entry)
    try:
        module_code = compile(tree, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError) as error:
        raise CodegenError(f"checked code text does not compile: {error}") from None
    return Verified(module_code, checked)


# ---------------------------------------------------------------- the code cache


def cache_directory() -> Path | None:
    """Where checked code objects are kept between processes, or None when that is off."""
    setting = os.environ.get("ASTGEN_CACHE_DIR")
    if setting is not None:
        return None if setting.strip().lower() in ("", "off", "0", "none") else Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "astgen"


def _private_directory(root: Path) -> Path | None:
    """`root/code/<interpreter>-<format>`, made private if new; None if it is not the user's alone."""
    folder = root / "code" / f"{sys.implementation.cache_tag}-v{_FORMAT}"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (root, root / "code", folder):
            status = path.stat()
            if (hasattr(os, "geteuid") and status.st_uid != os.geteuid()) or status.st_mode & 0o022:
                log.warning("astgen: not using code cache %s: it is writable by others or not yours", path)
                return None
    except OSError as error:
        log.warning("astgen: not using code cache %s: %s", root, error)
        return None
    return folder


def _checked_to_tuple(checked: allowlist.Checked) -> tuple[Any, ...]:
    return (
        checked.entry,
        checked.takes_vllm_submods,
        sorted(checked.pieces),
        sorted(checked.consts),
        sorted(checked.vllm_submods),
        sorted(checked.vllm_consts),
    )


def _checked_from_tuple(fields: tuple[Any, ...]) -> allowlist.Checked:
    entry, takes, pieces, consts, vllm_submods, vllm_consts = fields
    return allowlist.Checked(entry, takes, set(pieces), set(consts), set(vllm_submods), set(vllm_consts))


class _CodeCache:
    """Checked code objects by content: a bounded map in memory over an optional directory."""

    def __init__(self) -> None:
        self.memory: OrderedDict[str, Verified] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, code: str, entry: str | None) -> Verified:
        key = _key(code, entry)
        with self.lock:
            found = self.memory.get(key)
            if found is not None:
                self.memory.move_to_end(key)
                return found
        # Not ending in ">": linecache skips such names before asking a lazy loader.
        filename = f"<astgen:load>.{key[:16]}"
        root = cache_directory()
        folder = None if root is None else _private_directory(root)
        verified = None if folder is None else self._read(folder / key)
        if verified is None:
            verified = _verify(code, entry, filename)
            if folder is not None:
                self._write(folder / key, verified)
        # Tracebacks and pdb show the text's lines.
        linecache.cache[filename] = (functools.partial(str, code),)
        with self.lock:
            self.memory[key] = verified
            while len(self.memory) > _MEMORY_ENTRIES:
                self.memory.popitem(last=False)
        return verified

    @staticmethod
    def _read(path: Path) -> Verified | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            fields, module_code = marshal.loads(data)
            if not isinstance(module_code, types.CodeType):
                return None
            return Verified(module_code, _checked_from_tuple(fields))
        except (EOFError, ValueError, TypeError):
            return None  # a torn or foreign file: check the text again

    @staticmethod
    def _write(path: Path, verified: Verified) -> None:
        data = marshal.dumps((_checked_to_tuple(verified.checked), verified.module_code))
        try:
            # Written whole, then renamed: a reader sees the old file or the new one.
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except OSError as error:
            log.warning("astgen: could not write code cache entry %s: %s", path, error)

    def clear(self) -> None:
        with self.lock:
            self.memory.clear()


code_cache = _CodeCache()


def verified(code: str, entry: str | None = None) -> Verified:
    """`code` parsed, checked against the allow-list and compiled; from the cache when seen before.

    Raises `CodegenError` naming the line of the first form the allow-list refuses.
    """
    return code_cache.get(code, entry)


# ---------------------------------------------------------------- binding


def _table(names: Sequence[str], callables: Mapping[str, Callable[..., Any]], read: set[int], table: str) -> list[Any]:
    """The callables for `names`, in order; a name the text never reads may lack one."""
    if not isinstance(names, Sequence) or isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError("piece names must be a sequence of str")
    out_of_range = sorted(index for index in read if index >= len(names))
    if out_of_range:
        raise CodegenError(f"code text reads {table}[{out_of_range[0]}], but only {len(names)} piece names are given")
    missing = [names[index] for index in sorted(read) if names[index] not in callables]
    if missing:
        raise CodegenError(f"code text calls piece(s) {', '.join(map(repr, missing))}, but no callable is given")
    return [fast_callable(callables[name]) if name in callables else None for name in names]


def _check_consts(consts: Sequence[Any] | None, read: set[int], table: str) -> None:
    if not read:
        return
    if consts is None:
        raise CodegenError(f"code text reads {table}[{min(read)}], but no consts are given")
    if max(read) >= len(consts):
        raise CodegenError(f"code text reads {table}[{max(read)}], but only {len(consts)} consts are given")


def bind_verified(
    found: Verified,
    pieces: Mapping[str, Callable[..., Any]],
    piece_names: Sequence[str],
    consts: Sequence[Any] | None,
) -> Callable[..., Any]:
    """The entry function of a checked module, with its tables filled; see `load`."""
    checked = found.checked
    piece_list = _table(piece_names, pieces, checked.pieces | checked.vllm_submods, "the pieces table")
    _check_consts(consts, checked.consts, ir.CONSTS_TABLE)
    _check_consts(consts, checked.vllm_consts, allowlist.VLLM_CONSTS)
    const_list = list(consts or ())
    tables: dict[str, object] = {ir.PIECES_TABLE: piece_list, ir.CONSTS_TABLE: const_list}
    kept = {allowlist.VLLM_CONSTS: const_list} if checked.vllm_consts else {}
    namespace = run_module(found.module_code, tables, "astgen.loaded", kept)
    fn = namespace[checked.entry]
    if checked.takes_vllm_submods:
        # vLLM's own text reads its pieces through a keyword-only parameter.
        return functools.partial(fn, __vllm_submods__=piece_list)
    return fn  # type: ignore[no-any-return]


def load(
    artifact: Artifact | tuple[str, Sequence[str], Sequence[Any] | None],
    pieces: Mapping[str, Callable[..., Any]] | None = None,
    *,
    entry: str | None = None,
) -> Callable[..., Any]:
    """The function `artifact` describes, calling `pieces[name]` for each piece it names.

    `artifact` is `(code, piece_names, consts)`: a `CompiledGraph.artifact()`,
    or the same triple unpickled in another process. `pieces` may hold more
    callables than the text calls, and may lack pieces the text never calls.
    The text is checked before anything of it runs; a refusal, a missing
    piece or a missing constant is a `CodegenError`.
    """
    try:
        code, piece_names, consts = artifact
    except (TypeError, ValueError):
        raise TypeError("an artifact is a (code, piece_names, consts) triple") from None
    trace.loaded(code)
    with trace.timed("astgen.load"):
        return bind_verified(verified(code, entry), dict(pieces or {}), list(piece_names), consts)
