"""Stage 4: the tree is compiled and its objects are bound, giving a callable.

`compile()` runs once per distinct lowered graph: the code is cached by the
IR (which holds structure and names, never the bound objects), and each
`compile_graph` call binds its own objects by running the module's prelude
once in a fresh globals dict, with the pieces and constants as its two
tables. The function reads them as globals, so a call costs nothing beyond
the stitching itself: no `functools.partial`, no list indexing.

The same text and tables are a compiled graph's portable form (`Artifact`):
`astgen.load` binds them the same way in any process.

Each compiled tree gets a unique file name whose source `linecache` loads
lazily from `render.unparse` (`ast.unparse`'s text, written faster), so
tracebacks and pdb show the generated lines. The tree is compiled when the
function is first bound: text alone (vLLM's contract) never compiles it.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import linecache
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, NoReturn

import torch.fx

from astgen import importable, ir, trace
from astgen.emit import definition, prelude
from astgen.errors import CodegenError
from astgen.ir import Function
from astgen.lower import Lowered, lower
from astgen.passes import run_passes
from astgen.render import unparse

_CACHE_SIZE = 256
_file_numbers = itertools.count()


class GeneratedCode:
    """One compiled tree: shared by every `CompiledGraph` of the same lowered graph."""

    def __init__(self, function: ir.Function, tree: ast.Module | ast.FunctionDef) -> None:
        """`tree` is `emit(function)`, or only its `def` (`emit.definition`): the
        prelude is then built when `.tree` or `.source` is first asked for."""
        self.function = function
        self._tree = tree if isinstance(tree, ast.Module) else None
        definition = tree.body[-1] if isinstance(tree, ast.Module) else tree
        self.filename = f"<astgen:{function.name}>.{next(_file_numbers)}"
        self.def_line = definition.lineno
        self._definition = definition
        self._compiled_code: tuple[types.CodeType, types.CodeType] | None = None
        self._source: str | None = None
        self._lock = threading.Lock()
        # Lazy entry: `linecache` calls the loader only when a traceback or
        # pdb needs a line. The loader holds this object weakly, so the entry
        # goes when the last function bound to this code does.
        linecache.cache[self.filename] = (_source_loader(weakref.ref(self)),)
        weakref.finalize(self, linecache.cache.pop, self.filename, None)

    def _compiled(self) -> tuple[types.CodeType, types.CodeType]:
        """The module's code and the function's, compiled on first use: code that is
        only wanted as text (vLLM's `generate_execution_code`) is never compiled."""
        with self._lock:
            if self._compiled_code is None:
                # Only the `def` is compiled: `bind` puts each global in the
                # namespace itself, which is what the prelude's assignments would
                # do, so building, compiling and running them (a third of the
                # statements of a stitching module) buys nothing. The def's nodes
                # carry their lines in the whole module, so tracebacks still
                # match `source`.
                with trace.timed("astgen.compile"), ir.too_deep_is_an_error(self.function, "compile"):
                    module = ast.Module(body=[self._definition], type_ignores=[])
                    module_code = compile(module, self.filename, "exec", dont_inherit=True)
                self._compiled_code = (module_code, function_code(module_code))
            return self._compiled_code

    @property
    def module_code(self) -> types.CodeType:
        return self._compiled()[0]

    @property
    def code(self) -> types.CodeType:
        """The generated function's code object."""
        return self._compiled()[1]

    @property
    def tree(self) -> ast.Module:
        """The whole module: the prelude, then the compiled `def`."""
        with self._lock:
            if self._tree is None:
                self._tree = ast.Module(body=[*prelude(self.function), self._definition], type_ignores=[])
            return self._tree

    @property
    def source(self) -> str:
        tree = self.tree
        with self._lock:
            if self._source is None:
                with ir.too_deep_is_an_error(self.function, "render the source of"):
                    self._source = unparse(tree) + "\n"
            return self._source

    def origin_of_line(self, lineno: int) -> ir.Origin | None:
        """The origin of the instruction on line `lineno` of `source`."""
        index = lineno - self.def_line - 1
        if 0 <= index < len(self.function.body):
            return self.function.body[index].origin
        return None


def function_code(module_code: types.CodeType) -> types.CodeType:
    """The code object of the last function a compiled module defines."""
    return [c for c in module_code.co_consts if isinstance(c, types.CodeType)][-1]


def _import(
    name: str, globals: object = None, locals: object = None, fromlist: object = (), level: int = 0
) -> types.ModuleType:
    """The `__import__` generated modules run with: `import torch` and `import operator`, nothing else."""
    if level or fromlist or name not in importable.ROOTS:
        raise ImportError(f"generated code may import torch and operator only, not {name!r}")
    return importable.ROOTS[name]  # type: ignore[return-value]


# The builtins generated code runs with: what the loader lets text name.
# The verifier is what keeps text from reaching anything else; this keeps a
# mistake in it from reaching `open` or `eval`.
BUILTINS: dict[str, Any] = {name: getattr(builtins, name) for name in sorted(importable.SAFE_BUILTINS)}
BUILTINS["__import__"] = _import


def run_module(
    module_code: types.CodeType, tables: Mapping[str, object], name: str, kept: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """Run a verified module's prelude and definitions once, with `tables` and `kept` as globals; its namespace.

    The tables are gone from the namespace afterwards: the prelude copied
    what the function reads into globals of their own. `kept` stays, for
    text that reads a table at call time (vLLM's `__vllm_consts__[i]`).
    """
    # `torch` and `operator` are there already: text that names them without
    # importing them (older vLLM text reads `operator.` with no import) still runs.
    namespace: dict[str, Any] = {
        "__builtins__": BUILTINS,
        "__name__": name,
        **importable.ROOTS,
        **tables,
        **(kept or {}),
    }
    # A module compiled from a tree astgen made.
    exec(module_code, namespace)
    for table in tables:
        del namespace[table]
    return namespace


def _source_loader(reference: weakref.ref[GeneratedCode]) -> Callable[[], str | None]:
    def load() -> str | None:
        generated = reference()
        if generated is None:
            return None
        try:
            return generated.source
        except CodegenError:
            # Called while a traceback is printed or a note is made: a
            # source too deep to render shows no line, and the graph's own
            # exception goes on.
            return None

    return load


def generate(lowered_function: ir.Function) -> GeneratedCode:
    """Passes, emission and `compile()` for a lowered function, uncached."""
    with trace.timed("astgen.passes"):
        function = run_passes(lowered_function)
    with trace.timed("astgen.emit"):
        tree = definition(function)
    return GeneratedCode(function, tree)


class _Key:
    """A function as a cache key, hashed once.

    Hashing IR walks every instruction in Python; a lookup, `move_to_end` and
    an insertion would each walk it again.
    """

    __slots__ = ("function", "hash")

    def __init__(self, function: ir.Function) -> None:
        self.function = function
        self.hash = hash(function)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.hash == other.hash and self.function == other.function


class _CodeCache:
    """A bounded LRU map from lowered IR to its generated code."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[_Key, GeneratedCode] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, function: ir.Function) -> GeneratedCode:
        key = _Key(function)
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found
        generated = generate(function)
        with self.lock:
            self.entries[key] = generated
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return generated

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


code_cache = _CodeCache(_CACHE_SIZE)


def bind(generated: GeneratedCode, bindings: tuple[object, ...]) -> types.FunctionType:
    """The generated function with `bindings` as its globals and parameter defaults.

    Each global is bound to its object directly: what the module's prelude
    binds it to, from the tables or by its dotted name (which lowering
    writes only where it reads back as the very same object).
    """
    function = generated.function
    namespace = run_module(
        generated.module_code, {}, "astgen.generated", {g.name: bindings[g.slot] for g in function.globals}
    )
    # Keeps the tree and its linecache entry alive as long as the function:
    # no generated name is a dunder, so the code never reads it.
    namespace["__astgen_code__"] = generated
    fn: types.FunctionType = namespace[generated.function.name]
    return fn


class Artifact(NamedTuple):
    """A compiled graph's portable form: with its pieces, it determines the function in any process.

    `code` is the generated module's text; `piece_names` the `call_module`
    targets whose callables the loader's caller supplies, in the order the
    text indexes them; `consts` the objects that travel beside the text, in
    the order it indexes them (pickle them to store the artifact; operators
    and torch functions are named in the text, so nothing here needs them).
    A plain tuple, so `code, piece_names, consts = artifact` reads as vLLM's triple.
    """

    code: str
    piece_names: tuple[str, ...]
    consts: tuple[object, ...]


# The function is a code object bound to the very pieces and constants it
# calls: neither pickles, and a deep copy would call copies of live modules.
_NOT_COPIED = (
    "a CompiledGraph cannot be {what}: its function is bound to the pieces and constants it calls; "
    "store its .artifact() (code text, piece names, constants: a plain tuple) and rebuild the function "
    "with astgen.load(artifact, pieces)"
)


class CompiledGraph:
    """A graph compiled to a Python function.

    Calling it returns what `torch.fx.Interpreter(gm).run(*args)` returns. An
    exception raised by the graph gets a note (PEP 678) naming the FX node and
    the user's source line. `.fn` is the bare function, for the hottest paths
    that do without the note.
    """

    def __init__(self, generated: GeneratedCode, bindings: tuple[object, ...]) -> None:
        self.generated = generated
        self.bindings = bindings
        self.fn = bind(generated, bindings)

    @property
    def source(self) -> str:
        """The generated function as Python source: `ast.unparse` of `.tree`."""
        return self.generated.source

    @property
    def tree(self) -> ast.Module:
        return self.generated.tree

    @property
    def ir(self) -> Function:
        """The IR after every pass: what `.tree` was emitted from."""
        return self.generated.function

    @property
    def filename(self) -> str:
        return self.generated.filename

    def artifact(self) -> Artifact:
        """The portable form: `astgen.load(artifact, pieces)` rebuilds this function in any process."""
        pieces, consts = ir.tables(self.ir)
        piece_names = tuple(g.piece for g in pieces if g.piece is not None)
        return Artifact(self.source, piece_names, tuple(self.bindings[g.slot] for g in consts))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except BaseException as error:
            self._add_note(error)
            raise

    def _add_note(self, error: BaseException) -> None:
        traceback = error.__traceback__
        while traceback is not None and traceback.tb_frame.f_code is not self.generated.code:
            traceback = traceback.tb_next
        if traceback is None:
            return
        origin = self.generated.origin_of_line(traceback.tb_lineno)
        if origin is None:
            return
        note = f"astgen: raised by FX node {origin.node!r} ({self.filename}, line {traceback.tb_lineno})"
        # The generated line itself: Python 3.11's default hook shows no text
        # for a lazily loaded `linecache` entry, so the note carries it.
        line = linecache.getline(self.filename, traceback.tb_lineno).strip()
        if line:
            note += f"\n    {line}"
        if origin.source_line:
            note += f"\n  from: {origin.source_line}"
        try:
            error.add_note(note)
        except Exception:
            # A class that makes `__notes__` something else (a tuple) refuses
            # notes: the piece's own exception goes on unchanged, without one.
            return

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(_NOT_COPIED.format(what="pickled"))

    def __deepcopy__(self, memo: dict[int, Any]) -> NoReturn:
        raise TypeError(_NOT_COPIED.format(what="deep-copied"))

    def __copy__(self) -> CompiledGraph:
        # Nothing of it changes after it is made, so a shallow copy is itself,
        # as `copy.copy` of a function is.
        return self

    def __repr__(self) -> str:
        return f"<CompiledGraph {self.ir.name} {self.filename}>"


def compile_lowered(lowered: Lowered, *, cache: bool = True, check: bool = False) -> CompiledGraph:
    if check:
        # The verifier after lowering and after every pass: what the tests
        # run. It costs about 60% of a cold compile, so it is a flag.
        with ir.too_deep_is_an_error(lowered.function, "verify"):
            run_passes(lowered.function, check=True)
    with ir.too_deep_is_an_error(lowered.function, "compile"):
        generated = code_cache.get(lowered.function) if cache else generate(lowered.function)
    trace.generated(generated)
    with trace.timed("astgen.bind"):
        return CompiledGraph(generated, lowered.bindings)


def compile_graph(
    gm: torch.fx.GraphModule,
    submodules: Mapping[str, Callable[..., Any]] | None = None,
    *,
    cache: bool = True,
    name: str = "forward",
    inline: bool = False,
    check: bool = False,
) -> CompiledGraph:
    """Compile `gm`'s graph into a plain Python function.

    `submodules` maps `call_module` targets to callables that replace gm's own
    (a compiler's compiled pieces). With `cache=False` the code is generated
    afresh instead of reused from an earlier graph of the same structure.

    With `inline=True`, pieces that are plain `GraphModule`s are spliced into
    the function: no call frame, no callable needed to load its artifact.
    Off by default, because a piece is a live object: calling it sees a
    later `recompile()` or hook, a spliced copy of its graph does not.

    With `check=True` the IR is verified after lowering and after every pass,
    and a broken invariant (an astgen bug) raises `astgen.VerifyError` where
    it broke. Off by default: the tests and fuzz campaigns run with it on, and
    it costs more than half a cold compile again.

    Raises `astgen.CodegenError` for a graph it cannot compile.
    """
    with trace.timed("astgen.lower"):
        lowered = lower(gm, submodules, name=name, inline=inline)
    return compile_lowered(lowered, cache=cache, check=check)
