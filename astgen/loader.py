"""Stage 5b: lifted code text becomes a function: emit, compile, cache, bind.

`load(artifact, pieces)` rebuilds a compiled graph from its portable form in
any process. The text is lifted into astgen's IR and verified
(`astgen.lift`); the function is emitted from that IR and compiled, so the
text's own tree never is and nothing of it runs. Binding puts each global
the function reads (a piece, a constant, a named torch object) in its
namespace, so a call reads plain globals, as a function `compile_graph`
made does.

Lifting a large text costs more than `exec` of it, so the compiled code is
kept, content-addressed, as `__pycache__` keeps a module's: in this process,
and in a directory (`ASTGEN_CACHE_DIR`, else `$XDG_CACHE_HOME/astgen`, else
`~/.cache/astgen`; `ASTGEN_CACHE_DIR=off` turns it off). An entry is
trusted as `__pycache__` is, and written as it is:

* it is opened without following links, and the open file must belong to
  the user running astgen and be writable by nobody else (`fstat`), as must
  the directories above it; otherwise it is not used;
* it is written to a temporary file in the same directory and renamed over
  the entry, so a reader in another process sees the old entry, the new one
  or none, never part of one;
* its key names the text, the entry, the trusted operator namespaces,
  astgen's version, this loader's format, torch's version and the
  interpreter's magic number: an entry made before a fix is never reused
  after it.

The logger `astgen` says at DEBUG where the cache is and whether each load
hit it.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import hashlib
import importlib.util
import linecache
import logging
import marshal
import os
import re
import stat
import sys
import tempfile
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from astgen import importable, lift, trace
from astgen._version import __version__
from astgen.emit import emit
from astgen.errors import CodegenError
from astgen.lower import fast_callable
from astgen.render import unparse

log = logging.getLogger("astgen")

# Bumped whenever the language, the tables or the cached layout changes.
FORMAT = 4
_MEMORY_ENTRIES = 256
_MAX_ENTRY_BYTES = 256 << 20


def _import_imported(
    name: str, globals: object = None, locals: object = None, fromlist: object = (), level: int = 0
) -> types.ModuleType:
    """`__import__` for torch's C functions, which import through the calling frame's builtins
    (`torch.clamp` imports `torch`): a module imported already, never a new one."""
    module = sys.modules.get(name)
    if level or module is None:
        raise ImportError(f"a loaded function imports nothing new, not {name!r}")
    return module if fromlist else sys.modules[name.partition(".")[0]]


# The builtins a loaded function runs with: those the text may call, nothing else.
BUILTINS: dict[str, Any] = {name: vars(builtins)[name] for name in sorted(lift.CALLABLE_BUILTINS)}
BUILTINS["__import__"] = _import_imported


@dataclass(frozen=True)
class Verified:
    """A lifted text, compiled: the code of a module that only defines the entry, and what it reads.

    The globals the function reads, by where the caller finds them: `pieces`
    (name, slot of the pieces table), `consts` (name, slot of the consts
    table, whether the text calls it, whether it gives it to an operator as
    a dtype, layout or memory format), `named` (name, dotted path). Plain
    tuples, as marshal writes them. `source` is the text of the emitted
    module, shown in tracebacks.
    """

    module_code: types.CodeType
    entry: str
    pieces: tuple[tuple[str, int], ...]
    consts: tuple[tuple[str, int, bool, bool], ...]
    named: tuple[tuple[str, str], ...]
    piece_hints: tuple[tuple[int, str], ...]
    source: str
    filename: str


def compile_text(code: str, entry: str | None, trusted_namespaces: tuple[str, ...], filename: str) -> Verified:
    """`code` lifted, emitted from its IR and compiled, uncached."""
    lifted = lift.lift(code, entry, trusted_namespaces=trusted_namespaces, filename=filename)
    function = lifted.function
    try:
        module = emit(function)
        module_code = compile(ast.Module(body=[module.body[-1]], type_ignores=[]), filename, "exec", dont_inherit=True)
        source = unparse(module) + "\n"
    except (SyntaxError, ValueError, RecursionError) as error:
        raise CodegenError(f"lifted code text does not compile: {error}") from None
    sources = [(g.name, lifted.sources[g.slot]) for g in function.globals]
    return Verified(
        module_code,
        function.name,
        tuple((name, s.index) for name, s in sources if isinstance(s, lift.PieceSlot)),
        tuple((name, s.index, s.called, s.enum) for name, s in sources if isinstance(s, lift.ConstSlot)),
        tuple((name, s.path) for name, s in sources if isinstance(s, lift.Named)),
        lifted.piece_hints,
        source,
        filename,
    )


# ---------------------------------------------------------------- the code cache


def cache_directory() -> Path | None:
    """Where compiled code is kept between processes, or None when that is off."""
    setting = os.environ.get("ASTGEN_CACHE_DIR")
    if setting is not None:
        return None if setting.strip().lower() in ("", "off", "0", "none") else Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "astgen"


def _trusted(status: os.stat_result) -> bool:
    """Whether a file or directory is this user's and writable by nobody else."""
    owner_ok = not hasattr(os, "geteuid") or status.st_uid == os.geteuid()
    return owner_ok and not status.st_mode & 0o022


def _private_directory(root: Path) -> Path | None:
    """`root/code/<interpreter>-v<format>`, made private if new; None if it is not the user's alone."""
    folder = root / "code" / f"{sys.implementation.cache_tag}-v{FORMAT}"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (root, root / "code", folder):
            status = os.lstat(path)
            if not stat.S_ISDIR(status.st_mode) or not _trusted(status):
                log.warning("astgen: not using code cache %s: it is writable by others, a link or not yours", path)
                return None
    except OSError as error:
        log.warning("astgen: not using code cache %s: %s", root, error)
        return None
    return folder


def _key(code: str, entry: str | None, trusted_namespaces: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for part in (
        __version__,
        str(FORMAT),
        torch.__version__,
        importlib.util.MAGIC_NUMBER.hex(),
        entry or "",
        ",".join(trusted_namespaces),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(code.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _read_entry(path: Path) -> Verified | None:
    """The entry at `path`, opened without following a link and trusted only if this user's alone."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or not _trusted(status) or status.st_size > _MAX_ENTRY_BYTES:
            log.warning("astgen: not using code cache entry %s: not a plain file of yours alone", path)
            return None
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read()
    except OSError:
        return None
    finally:
        os.close(descriptor)
    try:
        # Trusted as a `__pycache__` file is, once its owner and mode are: its layout is checked, not its items.
        entry, pieces, consts, named, hints, source, module_code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None  # a foreign or damaged file: lift the text again
    if not (isinstance(module_code, types.CodeType) and isinstance(entry, str) and isinstance(source, str)):
        return None
    if not all(isinstance(part, tuple) for part in (pieces, consts, named, hints)):
        return None
    return Verified(module_code, entry, pieces, consts, named, hints, source, module_code.co_filename)


def _write_entry(path: Path, verified: Verified) -> None:
    entry: Any = (
        verified.entry,
        verified.pieces,
        verified.consts,
        verified.named,
        verified.piece_hints,
        verified.source,
        verified.module_code,
    )
    data = marshal.dumps(entry)
    temporary = None
    try:
        # Written whole, then renamed: a reader sees the old file, the new one or none.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        log.warning("astgen: could not write code cache entry %s: %s", path, error)
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


class _CodeCache:
    """Compiled lifted texts by content: a bounded map in memory over an optional directory."""

    def __init__(self) -> None:
        self.memory: OrderedDict[str, Verified] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, code: str, entry: str | None, trusted_namespaces: tuple[str, ...]) -> Verified:
        if not isinstance(code, str):
            raise TypeError(f"code text must be a str, not {type(code).__name__}")
        key = _key(code, entry, trusted_namespaces)
        with self.lock:
            found = self.memory.get(key)
            if found is not None:
                self.memory.move_to_end(key)
                log.debug("astgen: code cache hit in memory (%s)", key[:16])
                return found
        root = cache_directory()
        folder = None if root is None else _private_directory(root)
        log.debug("astgen: code cache directory: %s", folder if folder is not None else "off")
        verified = None if folder is None else _read_entry(folder / key)
        if verified is not None:
            log.debug("astgen: code cache hit on disk: %s", folder / key)  # type: ignore[operator]
        else:
            log.debug("astgen: code cache miss (%s): lifting the text", key[:16])
            # Not ending in ">": linecache skips such names before asking a lazy loader.
            verified = compile_text(code, entry, trusted_namespaces, f"<astgen:load>.{key[:16]}")
            if folder is not None:
                _write_entry(folder / key, verified)
        # Tracebacks and pdb show the lines of the function that runs.
        linecache.cache[verified.filename] = (functools.partial(str, verified.source),)
        with self.lock:
            self.memory[key] = verified
            while len(self.memory) > _MEMORY_ENTRIES:
                self.memory.popitem(last=False)
        return verified

    def clear(self) -> None:
        with self.lock:
            self.memory.clear()


code_cache = _CodeCache()


def verified(code: str, entry: str | None = None, *, trusted_namespaces: Sequence[str] = ()) -> Verified:
    """`code` lifted, verified and compiled; from the cache when seen before.

    Raises `CodegenError` naming the line of the first form the loader's language lacks.
    """
    return code_cache.get(code, entry, _namespaces(trusted_namespaces))


def _namespaces(trusted_namespaces: Sequence[str]) -> tuple[str, ...]:
    if isinstance(trusted_namespaces, str) or not all(isinstance(n, str) for n in trusted_namespaces):
        raise TypeError("trusted_namespaces is a sequence of operator namespace names, such as ('vllm',)")
    return tuple(sorted(set(trusted_namespaces)))


# ---------------------------------------------------------------- binding


def _piece_names(piece_names: object) -> list[str]:
    if isinstance(piece_names, str):
        raise TypeError(
            f"piece_names must be a sequence of names, not one str ({piece_names!r}); "
            f"for one piece write [{piece_names!r}]"
        )
    if not isinstance(piece_names, Sequence) or not all(isinstance(name, str) for name in piece_names):
        raise TypeError("piece_names must be a sequence of str, as the artifact gives it")
    return list(piece_names)


def _pieces(pieces: object) -> dict[str, Callable[..., Any]]:
    if pieces is None:
        return {}
    if not isinstance(pieces, Mapping):
        raise TypeError(
            f"pieces must be a mapping from piece name to callable, not {type(pieces).__name__}: "
            "for example {name: split_gm.get_submodule(name) for name in artifact.piece_names}"
        )
    return dict(pieces)


_NOT_WORD = re.compile(r"\W")


def _normalized(name: str) -> str:
    return _NOT_WORD.sub("_", name)


def _check_piece_order(found: Verified, piece_names: list[str]) -> None:
    """Refuse `piece_names` in another order than the text's, where the text's names tell.

    astgen's prelude binds `__astgen_pieces__[i]` to `<target>_fn`: where
    such a name is that of another given piece and not of its own, the names
    are out of order. vLLM's text tells nothing of the kind.
    """
    given: dict[str, int] | None = None
    for index, hint in found.piece_hints:
        if index >= len(piece_names) or piece_names[index] == hint:
            continue
        if given is None:
            given = {_normalized(name): position for position, name in enumerate(piece_names)}
        other = given.get(_normalized(hint))
        if other is not None and other != index and _normalized(piece_names[index]) != _normalized(hint):
            raise CodegenError(
                f"piece_names[{index}] is {piece_names[index]!r}, but the text calls that slot as "
                f"{hint!r}, which is piece_names[{other}]: piece_names are not in the text's order"
            )


def callable_const(obj: object, trusted_namespaces: tuple[str, ...] = ()) -> bool:
    """Whether the text may call the constant `obj`.

    Constants are the caller's objects, as pieces are. One the tables could
    name (a builtin, an `operator` function, a torch operator, function or
    method) is judged by the tables, however the text reaches it; so is a
    method bound to a module or to `torch.ops` (`torch.ops.load_library`).
    A namedtuple class and FX's input and output processing (what astgen
    writes for pytree graphs) are accepted, as is any other callable of the
    caller's own (a function its graph calls).
    """
    if isinstance(obj, type) and issubclass(obj, tuple) and isinstance(vars(obj).get("_fields"), tuple):
        return True
    if obj is torch.fx._pytree.tree_flatten_spec:
        return True
    if isinstance(obj, types.MethodType) and isinstance(obj.__self__, torch.fx.graph.CodeGen):
        return obj.__func__ in (torch.fx.graph.CodeGen.process_inputs, torch.fx.graph.CodeGen.process_outputs) or (
            obj.__func__
            in (torch.fx.graph._PyTreeCodeGen.process_inputs, torch.fx.graph._PyTreeCodeGen.process_outputs)
        )
    bound_to = getattr(obj, "__self__", None) if isinstance(obj, (types.MethodType, types.BuiltinMethodType)) else None
    if isinstance(bound_to, types.ModuleType) or bound_to is torch.ops:
        return importable.public_name(obj, trusted_namespaces) is not None
    if id(obj) in _covered_ids(len(sys.modules)) or isinstance(
        obj, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)
    ):
        if importable.is_safe_builtin(obj):
            return getattr(obj, "__name__", None) in lift.CALLABLE_BUILTINS
        name = importable.public_name(obj, trusted_namespaces)
        return name is not None and (not name.startswith("torch.ops.") or _namespace_trusted(name, trusted_namespaces))
    return callable(obj)


def _namespace_trusted(name: str, trusted_namespaces: tuple[str, ...]) -> bool:
    return name.split(".")[2] in (*importable.OPERATOR_NAMESPACES, *trusted_namespaces)


@functools.lru_cache(maxsize=1)
def _covered_ids(module_count: int) -> frozenset[int]:
    """The ids of every object in `builtins`, `operator`, `torch.Tensor` and torch's imported modules;
    made again when a module has been imported since (`module_count`, the size of `sys.modules`)."""
    import operator

    spaces: list[Mapping[str, object]] = [vars(builtins), vars(operator), vars(torch.Tensor)]
    spaces += [vars(m) for name, m in list(sys.modules.items()) if name == "torch" or name.startswith("torch.")]
    # Kept alive by the modules themselves; ids of live objects are unique.
    return frozenset(id(obj) for space in spaces for obj in list(space.values()))


# What an operator's dtype, layout and memory-format arguments may be: an int there crashes torch.
_ENUMS = (torch.dtype, torch.layout, torch.memory_format)


@functools.cache
def _resolved(path: str, trusted_namespaces: tuple[str, ...]) -> object:
    return importable.resolve(path, trusted_namespaces)


Arguments = tuple[dict[str, Callable[..., Any]], list[str], tuple[str, ...]]
"""The pieces, the piece names and the trusted namespaces a caller gave, checked (`checked`)."""


def checked(pieces: object, piece_names: object, trusted_namespaces: Sequence[str]) -> Arguments:
    """The caller's pieces, piece names and namespaces, each checked for its kind: `TypeError` if not."""
    namespaces = _namespaces(trusted_namespaces)
    names = _piece_names(piece_names)
    return _pieces(pieces), names, namespaces


def bind_tables(
    bound: dict[str, Any],
    slots: Sequence[tuple[str, int]],
    const_slots: Sequence[tuple[str, int, bool, bool]],
    named: Sequence[tuple[str, str]],
    arguments: Arguments,
    consts: Sequence[Any] | None,
) -> None:
    """Put in `bound` each global a verified function reads: pieces by slot (name, index of
    the piece names), constants by slot (name, index, called, enum), named objects by path."""
    callables, names, namespaces = arguments
    missing: list[str] = []
    for name, index in slots:
        if index >= len(names):
            raise CodegenError(f"code text reads piece slot {index}, but only {len(names)} piece names are given")
        piece = names[index]
        if piece in callables:
            bound[name] = fast_callable(callables[piece])
        else:
            missing.append(piece)
    for name, index, called, enum in const_slots:
        if consts is None:
            raise CodegenError(f"code text reads const {index}, but no consts are given")
        if index >= len(consts):
            raise CodegenError(f"code text reads const {index}, but only {len(consts)} consts are given")
        obj = consts[index]
        if called and not callable_const(obj, namespaces):
            raise CodegenError(
                f"code text calls const {index} ({type(obj).__name__}), which is no function it may call"
            )
        if enum and not (obj is None or isinstance(obj, _ENUMS)):
            raise CodegenError(
                f"code text gives const {index} ({type(obj).__name__}) to an operator as a dtype, layout or memory format"
            )
        bound[name] = obj
    for name, path in named:
        try:
            bound[name] = _resolved(path, namespaces)
        except LookupError as error:
            raise CodegenError(f"code text names {path!r}: {error}") from None
    if missing:
        raise CodegenError(f"code text calls piece(s) {', '.join(map(repr, missing))}, but no callable is given")


def bind_verified(
    found: Verified,
    pieces: Mapping[str, Callable[..., Any]],
    piece_names: Sequence[str],
    consts: Sequence[Any] | None,
    trusted_namespaces: Sequence[str] = (),
) -> Callable[..., Any]:
    """The entry function of a verified text, its globals bound; see `load`."""
    arguments = checked(pieces, piece_names, trusted_namespaces)
    _check_piece_order(found, arguments[1])
    bound: dict[str, Any] = {"__builtins__": BUILTINS, "__name__": "astgen.loaded"}
    bind_tables(bound, found.pieces, found.consts, found.named, arguments, consts)
    # Defines the function and nothing else: its defaults are literals and bound globals.
    exec(found.module_code, bound)
    fn = bound[found.entry]
    # Keeps the traceback text as long as the function.
    bound["__astgen_source__"] = found.source
    return fn  # type: ignore[no-any-return]


def load(
    artifact: object,
    pieces: Mapping[str, Callable[..., Any]] | None = None,
    *,
    entry: str | None = None,
    trusted_namespaces: Sequence[str] = (),
) -> Callable[..., Any]:
    """The function `artifact` describes, calling `pieces[name]` for each piece it names.

    `artifact` is `(code, piece_names, consts)`: a `CompiledGraph.artifact()`,
    or the same triple unpickled in another process. `pieces` maps piece
    names to callables; it may hold more than the text calls, and may lack
    pieces the text never calls. `trusted_namespaces` names operator
    namespaces the text may call besides `aten` and `prims` (`("vllm",)`).
    The text is lifted into the IR before anything of it runs; a refusal, a
    missing piece or constant, or piece names out of the text's order is a
    `CodegenError`; arguments of the wrong kind are a `TypeError`.
    """
    if isinstance(artifact, str) or not isinstance(artifact, Sequence) or len(artifact) != 3:
        raise TypeError("an artifact is a (code, piece_names, consts) triple")
    code, piece_names, consts = artifact
    names = _piece_names(piece_names)
    callables = _pieces(pieces)
    trace.loaded(code)
    with trace.timed("astgen.load"):
        found = verified(code, entry, trusted_namespaces=trusted_namespaces)
        return bind_verified(found, callables, names, consts, trusted_namespaces)
