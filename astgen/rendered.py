"""Stage 5c: astgen's own vLLM text, recalled by its exact characters: the code of the trees it was rendered from.

`generate_execution_code` renders its text from trees that compile as they
stand (`vllm_form.Stitched`: each global read by name, vLLM's expression for
it written in its place). For the last few texts it keeps the text itself
and the code compiled from those trees; `compile_execution_fn`, given a
`str` equal to one of them character for character, binds that code and
skips parsing and lifting the text. Any other text, one character changed
included, and any object that is not exactly a `str`, is lifted
(`astgen.lift`) as before.

Binding checks what the loader checks at bind (`loader.bind_verified`): a
piece slot names a given callable, a const slot is in range, a const an
operator takes as a dtype, layout or memory format is one, a named path
resolves. A text is kept only where the lift would accept it: each method,
attribute, builtin and dotted name is one the loader's language has, no
builtin or method is given `key=`, each local name is one the text may
bind, and an operator's dtype, layout or memory-format argument is named,
None or a const. So a text runs here exactly where a later process, lifting
it from vLLM's cache, would run it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import linecache
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from astgen import importable, ir, lift, loader, vllm_form
from astgen.compiled import function_code as compiled_function

# A text is recalled by the compile right after its generation: a few suffice,
# and each holds its text (about 50 bytes per FX node) and its code.
ENTRIES = 16


@dataclass(frozen=True)
class _Def:
    """One def of a remembered text: the code of a module defining it (or, for a def with
    no defaults, the function's own code), and what each global it reads is."""

    code: types.CodeType
    is_module: bool
    name: str
    pieces: tuple[tuple[str, int], ...]
    consts: tuple[tuple[str, int, bool, bool], ...]
    named: tuple[tuple[str, str], ...]
    inlined: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Remembered:
    """A text astgen rendered, and the code of its defs, the entry last."""

    text: str
    defs: tuple[_Def, ...]


class _Memory:
    """The last `ENTRIES` texts rendered, by the text itself."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, Remembered] = OrderedDict()
        self.lock = threading.Lock()

    def remember(self, entry: Remembered) -> None:
        with self.lock:
            self.entries[entry.text] = entry
            self.entries.move_to_end(entry.text)
            while len(self.entries) > ENTRIES:
                self.entries.popitem(last=False)

    def recall(self, text: object) -> Remembered | None:
        # Exactly a str: a subclass could compare equal to a text it is not.
        if type(text) is not str:
            return None
        with self.lock:
            found = self.entries.get(text)
        # The dict found an equal key; the entry's own text is compared again, character for character.
        return found if found is not None and found.text == text else None

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


memory = _Memory()


def remember(text: str, functions: list[vllm_form.Stitched], trusted_namespaces: tuple[str, ...]) -> None:
    """Keep `text`, rendered from `functions`, with their code, where the lift would accept the text."""
    namespaces = tuple(sorted(set(trusted_namespaces)))
    # By def, the consts its operators take as dtypes: a copy's are its original's.
    checked: dict[int, set[str]] = {}
    tables = [_tables(stitched, namespaces, checked) for stitched in functions]
    if any(table is None for table in tables):
        return
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    filename = f"<astgen:vllm>.{digest}"
    defs: list[_Def] = []
    # By the def compiled, its function's code: a copy of it (`Stitched.copy_of`) is that code moved.
    compiled: dict[int, types.CodeType] = {}
    for stitched, table in zip(functions, tables, strict=True):
        assert table is not None
        earlier = stitched.copy_of
        if earlier is not None:
            # An inlined def: its parameters are plain (`_tables`), so its code alone makes the function.
            code = compiled[id(earlier)]
            name = stitched.tree.name
            # Line numbers are kept as offsets from the first line: moving it moves every one.
            moved = code.replace(
                co_name=name,
                co_qualname=name,
                co_firstlineno=code.co_firstlineno + stitched.tree.lineno - earlier.tree.lineno,
            )
            defs.append(_Def(moved, False, name, *table))
            continue
        with ir.too_deep_is_an_error(stitched.function, "compile"):
            module_code = compile(
                ast.Module(body=[stitched.tree], type_ignores=[]), filename, "exec", dont_inherit=True
            )
        compiled[id(stitched)] = compiled_function(module_code)
        defs.append(_Def(module_code, True, stitched.tree.name, *table))
    # Tracebacks and pdb show the text's lines: the trees carry them.
    linecache.cache[filename] = (functools.partial(str, text),)
    memory.remember(Remembered(text, tuple(defs)))


_Tables = tuple[
    tuple[tuple[str, int], ...],
    tuple[tuple[str, int, bool, bool], ...],
    tuple[tuple[str, str], ...],
    tuple[tuple[str, int], ...],
]


def _tables(stitched: vllm_form.Stitched, namespaces: tuple[str, ...], checked: dict[int, set[str]]) -> _Tables | None:
    """The def's globals by where they come from, or None where the lift would refuse the text.

    A copy of a def checked already (`Stitched.copy_of`) is the same IR, its
    globals of the same kinds: only its own name is checked again.
    """
    params = stitched.function.params
    plain = all(param.default is None and not param.variadic for param in params)
    if not stitched.takes_submods and not plain:
        return None  # the lift splices an inlined piece into the entry: its parameters must be plain
    sources = dict(stitched.sources)
    for param in params:
        # A default is a literal or a const: the lift runs nothing when the def is made.
        if isinstance(param.default, ir.Global) and not isinstance(sources.get(param.default.name), lift.ConstSlot):
            return None
    earlier = stitched.copy_of
    enums = checked.get(id(earlier)) if earlier is not None else None
    if enums is None:
        enums = set()
        for instruction in stitched.function.body:
            if not _in_the_language(instruction, sources, enums, namespaces):
                return None
        names = [param.value.name for param in stitched.function.params]
        names += [value.name for instruction in stitched.function.body for value in instruction.results]
        if not all(map(lift.bindable, names)):
            return None
        checked[id(stitched)] = enums
    if not lift.bindable(stitched.tree.name):
        return None
    pieces, consts, named, inlined = [], [], [], []
    for name, source in stitched.sources:
        if isinstance(source, lift.PieceSlot):
            pieces.append((name, source.index))
        elif isinstance(source, lift.ConstSlot):
            consts.append((name, source.index, False, name in enums))
        elif isinstance(source, lift.Named):
            try:
                importable.resolve(source.path, namespaces)
            except LookupError:
                return None
            named.append((name, source.path))
        else:
            inlined.append((name, source.index))
    return tuple(pieces), tuple(consts), tuple(named), tuple(inlined)


def _in_the_language(
    instruction: ir.Instruction, sources: Mapping[str, vllm_form.Source], enums: set[str], namespaces: tuple[str, ...]
) -> bool:
    """Whether the lift accepts the statement `instruction` is written as; records the consts given as dtypes."""
    # Most statements of a stitching function, which the checks below accept: `del`s,
    # reads of a value at a literal key, calls of a piece on values.
    if type(instruction) is ir.Delete:
        return True
    if type(instruction) is ir.GetItem:
        if type(instruction.container) is ir.Value and type(instruction.key) is ir.Const:
            return True
    elif (
        type(instruction) is ir.CallModule
        and not instruction.kwargs
        and all([type(arg) is ir.Value for arg in instruction.args])
    ):
        return True
    piece = instruction.module if type(instruction) is ir.CallModule else None
    for operand in instruction.operands:
        kind = type(operand)
        if kind is ir.Value or kind is ir.Const or operand is piece:
            continue
        for leaf in ir.operand_leaves(operand):
            if type(leaf) is ir.Builtin and leaf.name not in lift.CALLABLE_BUILTINS:
                return False
            # A piece is only called: the text would read `__vllm_submods__[i]` as a value.
            if type(leaf) is ir.Global and isinstance(sources.get(leaf.name), lift.PieceSlot):
                return False
    if isinstance(instruction, ir.GetAttr):
        return instruction.attribute in importable.TENSOR_ATTRIBUTES and _receiver(instruction.obj, sources)
    if isinstance(instruction, ir.CallMethod):
        keys = {key for key, _ in instruction.kwargs}
        return (
            instruction.method in importable.TENSOR_METHODS
            and "key" not in keys
            and _receiver(instruction.receiver, sources)
        )
    if isinstance(instruction, ir.GetItem):
        container = instruction.container
        return isinstance(container, (ir.TupleOf, ir.ListOf, ir.DictOf)) or _receiver(container, sources)
    if not isinstance(instruction, ir.CallFunction):
        return True
    callee = instruction.function
    if isinstance(callee, ir.Builtin):
        keys = {key for key, _ in instruction.kwargs}
        return callee.name in lift.CALLABLE_BUILTINS and "key" not in keys
    source = sources.get(callee.name)
    if not isinstance(source, lift.Named) or not source.path.startswith("torch.ops."):
        return True
    try:
        positions, names = lift._enum_parameters(source.path, namespaces)
    except LookupError:
        return False
    given = [arg for index, arg in enumerate(instruction.args) if index in positions]
    given += [value for key, value in instruction.kwargs if key in names]
    if (positions or names) and any(isinstance(arg, ir.Starred) for arg in instruction.args):
        return False
    for operand in given:
        if isinstance(operand, ir.Const) and operand.value is None:
            continue
        if isinstance(operand, ir.Global) and isinstance(sources.get(operand.name), lift.ConstSlot):
            enums.add(operand.name)
            continue
        if isinstance(operand, ir.Global) and isinstance(sources.get(operand.name), lift.Named):
            continue
        return False
    return True


def _receiver(operand: ir.Operand, sources: Mapping[str, vllm_form.Source]) -> bool:
    """What the lift lets an attribute, method or item be read on: a value, or a const the caller supplies."""
    if isinstance(operand, ir.Global):
        return isinstance(sources.get(operand.name), lift.ConstSlot)
    return isinstance(operand, ir.Value)


def recall(text: object) -> Remembered | None:
    """The remembered entry for exactly `text`, or None."""
    return memory.recall(text)


def bind(
    entry: Remembered,
    pieces: Mapping[str, Callable[..., Any]],
    piece_names: Sequence[str],
    consts: Sequence[Any] | None,
    trusted_namespaces: Sequence[str],
) -> Callable[..., Any]:
    """The entry function of a remembered text, each def's globals bound as `loader.bind_verified` binds them."""
    arguments = loader.checked(pieces, piece_names, trusted_namespaces)
    functions: list[Callable[..., Any]] = []
    for made in entry.defs:
        bound: dict[str, Any] = {"__builtins__": loader.BUILTINS, "__name__": "astgen.loaded"}
        loader.bind_tables(bound, made.pieces, made.consts, made.named, arguments, consts)
        for name, index in made.inlined:
            bound[name] = functions[index]
        if made.is_module:
            # Defines the function and nothing else: its defaults are literals and bound globals.
            exec(made.code, bound)
            functions.append(bound[made.name])
        else:
            functions.append(types.FunctionType(made.code, bound, made.name))
    return functions[-1]
