"""The typed IR between an FX graph and a Python function.

A `Function` is a straight-line list of instructions over SSA `Value`s. Every
value has a `Type` taken from FX metadata. Objects the function needs but that
are not literals (submodules, callables, dtypes, get_attr tensors, ...) are not
in the IR at all: a `Global` names a slot in the binding table that travels
beside the IR, so the IR stays hashable and can key the code cache.

Everything here is a small frozen dataclass. `verify` checks the invariants
every pass must keep; `format_function` prints the IR one instruction a line.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, assert_never

from astgen.errors import CodegenError, VerifyError

# ---------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: str | None = None
    shape: tuple[int | str, ...] | None = None

    def __str__(self) -> str:
        dtype = self.dtype or "tensor"
        if self.shape is None:
            return dtype
        return f"{dtype}[{', '.join(str(size) for size in self.shape)}]"


@dataclass(frozen=True, slots=True)
class IntType:
    symbolic: bool = False

    def __str__(self) -> str:
        return "SymInt" if self.symbolic else "int"


@dataclass(frozen=True, slots=True)
class TupleType:
    elements: tuple[Type, ...]

    def __str__(self) -> str:
        return f"({', '.join(str(element) for element in self.elements)}{',' if len(self.elements) == 1 else ''})"


@dataclass(frozen=True, slots=True)
class ListType:
    elements: tuple[Type, ...] | None = None

    def __str__(self) -> str:
        if self.elements is None:
            return "list"
        return f"[{', '.join(str(element) for element in self.elements)}]"


@dataclass(frozen=True, slots=True)
class DictType:
    def __str__(self) -> str:
        return "dict"


@dataclass(frozen=True, slots=True)
class OpaqueType:
    """A Python object of a known class that is not a tensor, size or container."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class UnknownType:
    def __str__(self) -> str:
        return "?"


Type = TensorType | IntType | TupleType | ListType | DictType | OpaqueType | UnknownType
UNKNOWN = UnknownType()

# ---------------------------------------------------------------- operands


# The classes lowering makes once or more per FX node or piece (`Value`, `Origin`,
# `Param`, `Global`, `GetItem`, `CallModule`, `CallFunction`, and `Delete`,
# which liveness makes) set their fields
# in an `__init__` of their own, through the slots' setters: still frozen
# (assignment raises), but a dataclass's frozen `__init__` goes through
# `object.__setattr__` per field at twice the cost, and these are a tenth
# of a cold compile.
def _setters(cls: type, *names: str) -> tuple[Any, ...]:
    return tuple(vars(cls)[name].__set__ for name in names)


@dataclass(frozen=True, slots=True, init=False)
class Value:
    """An SSA value: defined once, by a parameter or an instruction."""

    name: str
    type: Type

    def __init__(self, name: str, type: Type = UNKNOWN) -> None:
        _VALUE[0](self, name)
        _VALUE[1](self, type)


_VALUE = _setters(Value, "name", "type")


LITERAL_TYPES = (bool, int, float, complex, str, bytes, type(None), type(Ellipsis))

# The most digits an int written as a literal may have: `repr` and
# `ast.unparse` refuse more than `sys.int_max_str_digits` (which a user may
# lower), so bigger ones are bound by reference.
_MAX_LITERAL_DIGITS = 1000


def _max_literal_int() -> int:
    return _power_of_ten(sys.get_int_max_str_digits())


@functools.cache
def _power_of_ten(limit: int) -> int:
    # Once per limit: a thousand-digit power is most of the time of checking an int.
    return 10 ** (min(_MAX_LITERAL_DIGITS, limit - 1) if limit else _MAX_LITERAL_DIGITS)


def is_exact_literal(value: object) -> bool:
    """Whether the emitter writes `value` as a literal that evaluates back to an identical object.

    NaN (whose sign bit no expression keeps), complex numbers with non-finite
    or negative-zero parts, and huge ints are bound by reference instead.
    Lowering makes a `Const` only of these; the verifier refuses any other.
    """
    if isinstance(value, bool) or value is None or value is Ellipsis or isinstance(value, (str, bytes)):
        return type(value) in (bool, str, bytes, type(None), type(Ellipsis))
    if type(value) is int:
        return abs(value) < _max_literal_int()
    if type(value) is float:
        return not math.isnan(value)
    if type(value) is complex:
        parts = (value.real, value.imag)
        return all(math.isfinite(part) and not (part == 0 and math.copysign(1, part) < 0) for part in parts)
    return False


@dataclass(frozen=True, slots=True)
class Const:
    """A literal the emitter writes into the tree.

    Equality and hash go by (class, repr), not by value: `0.0 == -0.0` and
    `1 == 1.0 == True`, but code for one must never be reused for another.
    """

    value: object

    def __post_init__(self) -> None:
        if not isinstance(self.value, LITERAL_TYPES):
            raise TypeError(f"not a literal: {type(self.value).__name__}")

    def _key(self) -> tuple[type, str]:
        return (type(self.value), repr(self.value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Const) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True, slots=True, init=False)
class Global:
    """An object bound by reference: slot `slot` of the binding table, read as `name`.

    Where a portable artifact finds the object in another process: `piece`,
    the `call_module` target it is the callable for (the loader's caller
    supplies it by that name); `path`, a dotted name the text writes
    (`torch.ops.aten.mm.default`, see `astgen.importable`); neither, a
    constant that travels beside the text.
    """

    name: str
    slot: int
    piece: str | None = None
    path: str | None = None

    def __init__(self, name: str, slot: int, piece: str | None = None, path: str | None = None) -> None:
        set_name, set_slot, set_piece, set_path = _GLOBAL
        set_name(self, name)
        set_slot(self, slot)
        set_piece(self, piece)
        set_path(self, path)


_GLOBAL = _setters(Global, "name", "slot", "piece", "path")


@dataclass(frozen=True, slots=True)
class Builtin:
    """A builtin read by its own name (`len`, `list`): no binding, and never shadowed,
    since no generated name is a builtin's."""

    name: str


@dataclass(frozen=True, slots=True)
class TupleOf:
    items: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class DictOf:
    items: tuple[tuple[Operand, Operand], ...]


@dataclass(frozen=True, slots=True)
class SliceOf:
    start: Operand
    stop: Operand
    step: Operand


@dataclass(frozen=True, slots=True)
class NamedTupleOf:
    """A namedtuple rebuilt from its items, as FX's `map_arg` rebuilds it."""

    cls: Global
    items: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class Starred:
    """`*value` in a call's positional arguments."""

    value: Value


Operand = Value | Const | Global | Builtin | TupleOf | ListOf | DictOf | SliceOf | NamedTupleOf | Starred
Kwargs = tuple[tuple[str, Operand], ...]
# What a call binds: one value, or a tuple of known arity unpacked straight
# from the call (`a, b = f(x)`), written by `passes.unpack_tuples`.
Result = Value | tuple[Value, ...]

# ---------------------------------------------------------------- instructions


@dataclass(frozen=True, slots=True, init=False)
class Origin:
    """Where an instruction came from: the FX node and the user line that made it."""

    node: str
    source_line: str | None

    def __init__(self, node: str, source_line: str | None = None) -> None:
        _ORIGIN[0](self, node)
        _ORIGIN[1](self, source_line)


_ORIGIN = _setters(Origin, "node", "source_line")


@dataclass(frozen=True, slots=True, init=False)
class Param:
    value: Value
    default: Const | Global | None = None
    variadic: bool = False
    origin: Origin | None = None

    def __init__(
        self, value: Value, default: Const | Global | None = None, variadic: bool = False, origin: Origin | None = None
    ) -> None:
        set_value, set_default, set_variadic, set_origin = _PARAM
        set_value(self, value)
        set_default(self, default)
        set_variadic(self, variadic)
        set_origin(self, origin)


_PARAM = _setters(Param, "value", "default", "variadic", "origin")


# Every instruction has the same three things to say about itself, as
# jaxpr's `outvars`/`invars` and tinygrad's `src`: `results`, the values it
# defines; `operands`, everything it reads, the callee included; `origin`.
# Passes and the verifier read only these, so a new kind cannot be read as
# defining or reading nothing by accident: `Instruction` is a closed union,
# and mypy checks each member against `InstructionShape` below.


def _as_results(result: Result) -> tuple[Value, ...]:
    return result if type(result) is tuple else (result,)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True, init=False)
class CallModule:
    result: Result
    module: Global
    target: str
    args: tuple[Operand, ...]
    kwargs: Kwargs
    origin: Origin | None

    def __init__(
        self,
        result: Result,
        module: Global,
        target: str,
        args: tuple[Operand, ...],
        kwargs: Kwargs,
        origin: Origin | None = None,
    ) -> None:
        set_result, set_module, set_target, set_args, set_kwargs, set_origin = _CALL_MODULE
        set_result(self, result)
        set_module(self, module)
        set_target(self, target)
        set_args(self, args)
        set_kwargs(self, kwargs)
        set_origin(self, origin)

    @property
    def results(self) -> tuple[Value, ...]:
        return _as_results(self.result)

    @property
    def operands(self) -> tuple[Operand, ...]:
        if not self.kwargs:
            return (self.module, *self.args)
        return (self.module, *self.args, *[value for _, value in self.kwargs])

    def verify_(self) -> None:
        _verify_call(self.args, self.kwargs)


@dataclass(frozen=True, slots=True, init=False)
class CallFunction:
    result: Result
    function: Global | Builtin
    args: tuple[Operand, ...]
    kwargs: Kwargs
    origin: Origin | None = None

    def __init__(
        self,
        result: Result,
        function: Global | Builtin,
        args: tuple[Operand, ...],
        kwargs: Kwargs,
        origin: Origin | None = None,
    ) -> None:
        set_result, set_function, set_args, set_kwargs, set_origin = _CALL_FUNCTION
        set_result(self, result)
        set_function(self, function)
        set_args(self, args)
        set_kwargs(self, kwargs)
        set_origin(self, origin)

    @property
    def results(self) -> tuple[Value, ...]:
        return _as_results(self.result)

    @property
    def operands(self) -> tuple[Operand, ...]:
        if not self.kwargs:
            return (self.function, *self.args)
        return (self.function, *self.args, *[value for _, value in self.kwargs])

    def verify_(self) -> None:
        _verify_call(self.args, self.kwargs)


@dataclass(frozen=True, slots=True)
class CallMethod:
    result: Result
    receiver: Operand
    method: str
    args: tuple[Operand, ...]
    kwargs: Kwargs
    origin: Origin | None = None

    @property
    def results(self) -> tuple[Value, ...]:
        return _as_results(self.result)

    @property
    def operands(self) -> tuple[Operand, ...]:
        if not self.kwargs:
            return (self.receiver, *self.args)
        return (self.receiver, *self.args, *[value for _, value in self.kwargs])

    def verify_(self) -> None:
        _verify_operand(self.receiver)
        _verify_call(self.args, self.kwargs)


@dataclass(frozen=True, slots=True)
class Operator:
    """A Python operator applied to `args`: `op` names the `operator` function
    (`"add"`, `"not_"`), a key of `OPERATORS`."""

    result: Value
    op: str
    args: tuple[Operand, ...]
    origin: Origin | None = None

    @property
    def results(self) -> tuple[Value, ...]:
        return (self.result,)

    @property
    def operands(self) -> tuple[Operand, ...]:
        return self.args

    def verify_(self) -> None:
        if self.op not in OPERATORS:
            raise VerifyError(f"{self.op!r} is not an operator")
        arity = operator_arity(self.op)
        if len(self.args) != arity:
            raise VerifyError(f"operator {self.op!r} takes {arity} operand(s), not {len(self.args)}")
        for arg in self.args:
            _verify_operand(arg)


@dataclass(frozen=True, slots=True)
class GetAttr:
    """Attribute fetch `obj.attribute`, e.g. FX's `call_function getattr(x, 'shape')`."""

    result: Value
    obj: Operand
    attribute: str
    origin: Origin | None = None

    @property
    def results(self) -> tuple[Value, ...]:
        return (self.result,)

    @property
    def operands(self) -> tuple[Operand, ...]:
        return (self.obj,)

    def verify_(self) -> None:
        _verify_operand(self.obj)


@dataclass(frozen=True, slots=True, init=False)
class GetItem:
    result: Value
    container: Operand
    key: Operand
    origin: Origin | None

    def __init__(self, result: Value, container: Operand, key: Operand, origin: Origin | None = None) -> None:
        set_result, set_container, set_key, set_origin = _GET_ITEM
        set_result(self, result)
        set_container(self, container)
        set_key(self, key)
        set_origin(self, origin)

    @property
    def results(self) -> tuple[Value, ...]:
        return (self.result,)

    @property
    def operands(self) -> tuple[Operand, ...]:
        return (self.container, self.key)

    def verify_(self) -> None:
        _verify_operand(self.container)
        _verify_operand(self.key)


@dataclass(frozen=True, slots=True)
class Unpack:
    """`a, b, c = source`: every position gets a value, read or not."""

    results: tuple[Value, ...]
    source: Value
    origin: Origin | None = None

    @property
    def operands(self) -> tuple[Operand, ...]:
        return (self.source,)

    def verify_(self) -> None:
        if isinstance(self.source.type, TupleType) and len(self.source.type.elements) != len(self.results):
            raise VerifyError(f"unpacks {len(self.results)} value(s) from a tuple of {len(self.source.type.elements)}")


@dataclass(frozen=True, slots=True, init=False)
class Delete:
    """`del a, b`: ends the values' lives. Deleting is not reading, so `operands` is empty;
    the verifier checks `values` on its own."""

    values: tuple[Value, ...]
    origin: Origin | None

    def __init__(self, values: tuple[Value, ...], origin: Origin | None = None) -> None:
        _DELETE[0](self, values)
        _DELETE[1](self, origin)

    @property
    def results(self) -> tuple[Value, ...]:
        return ()

    @property
    def operands(self) -> tuple[Operand, ...]:
        return ()

    def verify_(self) -> None:
        if not self.values:
            raise VerifyError("deletes nothing")


@dataclass(frozen=True, slots=True)
class Return:
    value: Operand
    origin: Origin | None = None

    @property
    def results(self) -> tuple[Value, ...]:
        return ()

    @property
    def operands(self) -> tuple[Operand, ...]:
        return (self.value,)

    def verify_(self) -> None:
        _verify_operand(self.value)


_CALL_FUNCTION = _setters(CallFunction, "result", "function", "args", "kwargs", "origin")
_CALL_MODULE = _setters(CallModule, "result", "module", "target", "args", "kwargs", "origin")
_GET_ITEM = _setters(GetItem, "result", "container", "key", "origin")
_DELETE = _setters(Delete, "values", "origin")

# The instructions that compute one expression and bind it (`result = <expr>`).
Computation = CallModule | CallFunction | CallMethod | Operator | GetAttr | GetItem
COMPUTATIONS = (CallModule, CallFunction, CallMethod, Operator, GetAttr, GetItem)
Instruction = Computation | Unpack | Delete | Return


class InstructionShape(Protocol):
    """What every instruction says about itself."""

    @property
    def results(self) -> tuple[Value, ...]: ...

    @property
    def operands(self) -> tuple[Operand, ...]: ...

    @property
    def origin(self) -> Origin | None: ...

    def verify_(self) -> None:
        """Check what the instruction alone must hold; raise `VerifyError` if it does not."""


def _shape(instruction: Instruction) -> InstructionShape:
    # Never called: mypy checks here that every member of `Instruction` has the shape.
    return instruction


# The `operator` functions `lower` writes as Python syntax, by name, with the
# symbol the IR printer shows for each.
BINARY_OPERATORS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "truediv": "/",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "matmul": "@",
    "lshift": "<<",
    "rshift": ">>",
    "and_": "&",
    "or_": "|",
    "xor": "^",
}
UNARY_OPERATORS = {"neg": "-", "pos": "+", "invert": "~", "not_": "not"}
COMPARE_OPERATORS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
OPERATORS = {**BINARY_OPERATORS, **UNARY_OPERATORS, **COMPARE_OPERATORS}


def operator_arity(op: str) -> int:
    """How many operands the operator `op` takes."""
    return 1 if op in UNARY_OPERATORS else 2


def _verify_call(args: tuple[Operand, ...], kwargs: Kwargs) -> None:
    for arg in args:
        # `*value` is written only where Python takes it: a call's positional arguments.
        if type(arg) is not Starred:
            _verify_operand(arg)
    for _, value in kwargs:
        _verify_operand(value)


def _safe_repr(value: object) -> str:
    """`repr(value)`, or a stand-in for an int too long for `sys.int_max_str_digits`."""
    try:
        return repr(value)
    except ValueError:
        return f"<{type(value).__name__} too long to print>"


def _verify_operand(operand: Operand) -> None:
    """Refuse a `Starred` anywhere in `operand` and a `Const` that is not written exactly."""
    match operand:
        case Value() | Global() | Builtin():
            pass
        case Const():
            if not is_exact_literal(operand.value):
                raise VerifyError(
                    f"constant {_safe_repr(operand.value)} ({type(operand.value).__name__}) is not an exact literal"
                )
        case TupleOf() | ListOf() | NamedTupleOf():
            for item in operand.items:
                _verify_operand(item)
        case DictOf():
            for key, item in operand.items:
                _verify_operand(key)
                _verify_operand(item)
        case SliceOf():
            _verify_operand(operand.start)
            _verify_operand(operand.stop)
            _verify_operand(operand.step)
        case Starred():
            raise VerifyError(f"*%{operand.value.name} outside a call's positional arguments")
        case _:
            assert_never(operand)


@dataclass(frozen=True, slots=True)
class Function:
    """One generated function: parameters, then a body that ends in its one `Return`."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Instruction, ...]
    globals: tuple[Global, ...] = field(default=())


# ---------------------------------------------------------------- queries

# The tables a loader hands the text, as the text's prelude reads them:
# `name = __astgen_pieces__[0]`. Dunders, so no generated name can be one.
PIECES_TABLE = "__astgen_pieces__"
CONSTS_TABLE = "__astgen_consts__"


def tables(function: Function) -> tuple[tuple[Global, ...], tuple[Global, ...]]:
    """The globals a loader supplies, pieces and constants, each in slot order.

    A global's index in its table is its position here; globals with a
    `path` are named by the text and in neither table.
    """
    pieces = tuple(g for g in function.globals if g.piece is not None)
    consts = tuple(g for g in function.globals if g.piece is None and g.path is None)
    return pieces, consts


def starred_index(params: tuple[Param, ...] | list[Param]) -> int:
    """The index of the starred parameter, or `len(params)`: those before it are
    positional, those after it keyword-only, as in a Python signature."""
    return next((index for index, param in enumerate(params) if param.variadic), len(params))


def operand_leaves(operand: Operand) -> Iterator[Value | Const | Global | Builtin]:
    """Every value, literal, global and builtin an operand holds, in order."""
    if isinstance(operand, (TupleOf, ListOf)):
        for item in operand.items:
            yield from operand_leaves(item)
    elif isinstance(operand, NamedTupleOf):
        yield operand.cls
        for item in operand.items:
            yield from operand_leaves(item)
    elif isinstance(operand, DictOf):
        for key, item in operand.items:
            yield from operand_leaves(key)
            yield from operand_leaves(item)
    elif isinstance(operand, SliceOf):
        yield from operand_leaves(operand.start)
        yield from operand_leaves(operand.stop)
        yield from operand_leaves(operand.step)
    elif isinstance(operand, Starred):
        yield operand.value
    else:
        yield operand


def nesting(instruction: Instruction) -> int:
    """How deeply the instruction's operands nest (tuples in lists in dicts ...).

    Counted with a stack of its own, not by recursion: it names the culprit
    when recursing over a deep operand (hashing, emitting, unparsing,
    compiling) has already run out of stack.
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(operand, 1) for operand in instruction.operands]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, (TupleOf, ListOf, NamedTupleOf)):
            stack.extend((child, depth + 1) for child in item.items)
        elif isinstance(item, DictOf):
            stack.extend((child, depth + 1) for pair in item.items for child in pair)
        elif isinstance(item, SliceOf):
            stack.extend((child, depth + 1) for child in (item.start, item.stop, item.step))
    return deepest


@contextlib.contextmanager
def too_deep_is_an_error(function: Function | None, doing: str) -> Iterator[None]:
    """A `RecursionError` or `MemoryError` inside becomes a `CodegenError` naming the node to blame.

    Hashing, emitting, compiling and unparsing all recurse over operands, so
    each can run out of stack on a graph that lowering (under a higher
    recursion limit, as Dynamo sets) accepted. The culprit is the
    instruction whose operands nest deepest, found without recursing.
    """
    try:
        yield
    except (RecursionError, MemoryError) as error:
        culprit = None if function is None else max(function.body, key=nesting, default=None)
        origin = None if culprit is None else culprit.origin
        deepest = "" if culprit is None else f"; the deepest arguments nest {nesting(culprit)} levels"
        raise CodegenError(
            f"cannot {doing} this graph: {type(error).__name__}{deepest}",
            node=None if origin is None else origin.node,
            source_line=None if origin is None else origin.source_line,
        ) from None


def operand_values(operand: Operand) -> Iterator[Value]:
    """The SSA values an operand reads, in order."""
    return (leaf for leaf in operand_leaves(operand) if isinstance(leaf, Value))


def operand_globals(operand: Operand) -> Iterator[Global]:
    return (leaf for leaf in operand_leaves(operand) if isinstance(leaf, Global))


def uses(instruction: Instruction) -> list[Value]:
    """The SSA values an instruction reads (a `Delete` reads none)."""
    found: list[Value] = []
    for operand in instruction.operands:
        # Plain values and leaves are most operands: skip the generator for them.
        kind = type(operand)
        if kind is Value:
            found.append(operand)  # type: ignore[arg-type]
        elif kind not in _LEAF_OPERANDS:
            found.extend(operand_values(operand))
    return found


_LEAF_OPERANDS = (Const, Global, Builtin)


def defines(instruction: Instruction) -> tuple[Value, ...]:
    """The SSA values an instruction defines."""
    return instruction.results


# ---------------------------------------------------------------- verifier


def verify(function: Function) -> Function:
    """Check the invariants every stage keeps; return `function` unchanged.

    Each instruction checks itself (`verify_`, as xDSL's operations do):
    operator arity, unpacking arity against the tuple type, `*value` only
    in call arguments, every `Const` an exact literal. Across the body:
    names are unique across parameters, values and globals; every use comes
    after its definition and before any `Delete` of it; the body ends in its
    only `Return`. A failure is a bug in astgen: `VerifyError`, carrying the
    failing instruction's origin.
    """
    live: set[str] = set()
    seen: set[str] = set()
    global_names = {g.name: g.slot for g in function.globals}
    if len(global_names) != len(function.globals):
        raise VerifyError("IR verifier: two globals share a name")

    def define(value: Value, where: str, origin: Origin | None) -> None:
        if value.name in seen or value.name in global_names:
            raise VerifyError(f"IR verifier: {value.name!r} is defined twice (at {where})", origin=origin)
        seen.add(value.name)
        live.add(value.name)

    for param in function.params:
        define(param.value, "parameters", param.origin)
        if param.default is not None:
            try:
                _verify_operand(param.default)
            except VerifyError as error:
                raise VerifyError(
                    f"IR verifier: parameter {param.value.name!r}: {error.reason}", origin=param.origin
                ) from None
    last = len(function.body) - 1
    for index, instruction in enumerate(function.body):
        try:
            _verify_instruction(instruction, index, last, live, seen, global_names)
        except VerifyError as error:
            raise VerifyError(
                f"IR verifier: {error.reason} (instruction {index})",
                origin=instruction.origin,
                instruction=format_instruction(instruction),
            ) from None
        for value in instruction.results:
            define(value, f"instruction {index}", instruction.origin)
    if not function.body or not isinstance(function.body[-1], Return):
        raise VerifyError("IR verifier: the function does not end in a Return")
    return function


def _verify_instruction(
    instruction: Instruction, index: int, last: int, live: set[str], seen: set[str], global_names: dict[str, int]
) -> None:
    instruction.verify_()
    for operand in instruction.operands:
        for g in operand_globals(operand):
            if global_names.get(g.name) != g.slot:
                raise VerifyError(f"global {g.name!r} is not bound")
    for value in uses(instruction):
        if value.name not in live:
            state = "after it was deleted" if value.name in seen else "before it is defined"
            raise VerifyError(f"{value.name!r} is used {state}")
    if isinstance(instruction, Delete):
        for value in instruction.values:
            if value.name not in live:
                raise VerifyError(f"{value.name!r} is deleted while not live")
            live.discard(value.name)
    if isinstance(instruction, Return) and index != last:
        raise VerifyError("a Return is not the last instruction")


# ---------------------------------------------------------------- printer


def format_operand(operand: Operand) -> str:
    if isinstance(operand, Value):
        return f"%{operand.name}"
    if isinstance(operand, Const):
        value = operand.value
        if isinstance(value, float) and not math.isfinite(value):
            return f"float('{value}')"
        return _safe_repr(value)
    if isinstance(operand, Global):
        return f"@{operand.name}"
    if isinstance(operand, Builtin):
        return operand.name
    if isinstance(operand, TupleOf):
        items = ", ".join(format_operand(item) for item in operand.items)
        return f"({items},)" if len(operand.items) == 1 else f"({items})"
    if isinstance(operand, ListOf):
        return f"[{', '.join(format_operand(item) for item in operand.items)}]"
    if isinstance(operand, NamedTupleOf):
        return f"@{operand.cls.name}({', '.join(format_operand(item) for item in operand.items)})"
    if isinstance(operand, DictOf):
        items = ", ".join(f"{format_operand(k)}: {format_operand(v)}" for k, v in operand.items)
        return f"{{{items}}}"
    if isinstance(operand, SliceOf):
        parts = [operand.start, operand.stop, operand.step]
        return "slice(" + ", ".join(format_operand(part) for part in parts) + ")"
    if isinstance(operand, Starred):
        return f"*%{operand.value.name}"
    assert_never(operand)


def _format_call(args: tuple[Operand, ...], kwargs: Kwargs) -> str:
    parts = [format_operand(arg) for arg in args]
    parts += [f"{key}={format_operand(value)}" for key, value in kwargs]
    return ", ".join(parts)


def _typed(value: Value | tuple[Value, ...]) -> str:
    if isinstance(value, tuple):
        return ", ".join(_typed(item) for item in value)
    return f"%{value.name}: {value.type}"


def format_instruction(instruction: Instruction) -> str:
    match instruction:
        case CallModule():
            call = f"call_module {instruction.target} @{instruction.module.name}({_format_call(instruction.args, instruction.kwargs)})"
            return f"{_typed(instruction.result)} = {call}"
        case CallFunction():
            call = f"call {format_operand(instruction.function)}({_format_call(instruction.args, instruction.kwargs)})"
            return f"{_typed(instruction.result)} = {call}"
        case CallMethod():
            receiver = format_operand(instruction.receiver)
            call = f"{receiver}.{instruction.method}({_format_call(instruction.args, instruction.kwargs)})"
            return f"{_typed(instruction.result)} = call_method {call}"
        case Operator():
            # The verifier prints what it refuses: an unknown op shows as its name.
            symbol = OPERATORS.get(instruction.op, instruction.op)
            operands = f" {symbol} ".join(format_operand(operand) for operand in instruction.args)
            if len(instruction.args) == 1:
                operands = f"{symbol} {operands}"
            return f"{_typed(instruction.result)} = {operands}"
        case GetAttr():
            return f"{_typed(instruction.result)} = getattr {format_operand(instruction.obj)}.{instruction.attribute}"
        case GetItem():
            item = f"{format_operand(instruction.container)}[{format_operand(instruction.key)}]"
            return f"{_typed(instruction.result)} = getitem {item}"
        case Unpack():
            targets = ", ".join(_typed(value) for value in instruction.results)
            return f"{targets} = unpack %{instruction.source.name}"
        case Delete():
            return "del " + ", ".join(f"%{value.name}" for value in instruction.values)
        case Return():
            return f"return {format_operand(instruction.value)}"
        case _:
            assert_never(instruction)


def format_function(function: Function) -> str:
    """The IR as text: a signature line, then one instruction a line."""
    params = []
    for param in function.params:
        text = ("*" if param.variadic else "") + _typed(param.value)
        if param.default is not None:
            text += f" = {format_operand(param.default)}"
        params.append(text)
    lines = [f"func {function.name}({', '.join(params)}) {{"]
    lines += [f"  {format_instruction(instruction)}" for instruction in function.body]
    lines.append("}")
    if function.globals:
        lines.append("bound: " + ", ".join(f"@{g.name} ({_source(g)})" for g in function.globals))
    return "\n".join(lines)


def _source(bound: Global) -> str:
    if bound.piece is not None:
        return f"piece {bound.piece}"
    return bound.path or "const"
