"""Stage 2: passes from IR to IR.

Each pass is a function `Function -> Function` that keeps the invariants
`ir.verify` checks. `run_passes` applies them in their one valid order:

1. `unpack_tuples`: three `t[0]`, `t[1]`, `t[2]` reads of a tuple of known
   arity become one `a, b, c = t`.
2. `insert_deletes`: each value is deleted right after its last use, and a
   value nobody reads right after it is made, so memory is freed as early as
   the interpreter would free it, or earlier.
3. `assign_names`: every name becomes a valid ASCII identifier that is no
   keyword, builtin or dunder, unique across parameters, values and globals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import assert_never

from astgen import ir
from astgen.names import Namespace, clean_name, is_clean_name

# ---------------------------------------------------------------- unpacking


def unpack_tuples(function: ir.Function) -> ir.Function:
    """Replace constant-index reads of a known-arity tuple by one unpacking assignment.

    Only tuples qualify: they cannot change between the reads, so moving the
    later reads up to where the tuple is made is exact. A tuple made by a call
    and read only by these reads is unpacked straight from the call
    (`a, b = f(x)`) and never bound; otherwise an `Unpack` sits where the
    first read was. Positions nobody reads get a value of their own, which
    `insert_deletes` releases at once.
    """
    # Lowering unpacks most tuples itself (`lower.unpack_reads`): where it left
    # no read by index, the use counts below would be taken for nothing.
    if not any([type(item) is ir.GetItem and type(item.container) is ir.Value for item in function.body]):
        return function
    reads: dict[str, list[int]] = {}
    defined_by: dict[str, tuple[int, ir.CallModule | ir.CallFunction | ir.CallMethod]] = {}
    # Uses of each value besides its reads by `GetItem` (a key's included):
    # a tuple with none is unpacked straight from its call.
    other_uses: dict[str, int] = {}
    for index, instruction in enumerate(function.body):
        if type(instruction) is ir.GetItem and type(instruction.container) is ir.Value:
            reads.setdefault(instruction.container.name, []).append(index)
            if type(instruction.key) is not ir.Const:
                for value in ir.operand_values(instruction.key):
                    other_uses[value.name] = other_uses.get(value.name, 0) + 1
            continue
        if isinstance(instruction, _CALLS) and type(instruction.result) is ir.Value:
            defined_by[instruction.result.name] = (index, instruction)
        for value in ir.uses(instruction):
            other_uses[value.name] = other_uses.get(value.name, 0) + 1
    if not reads:
        return function

    names = _LazyNames(function)
    replaced: dict[int, ir.Instruction] = {}
    dropped: set[int] = set()
    for name, indices in reads.items():
        first = function.body[indices[0]]
        if not isinstance(first, ir.GetItem) or not isinstance(first.container, ir.Value):
            continue
        source = first.container
        if not isinstance(source.type, ir.TupleType) or len(indices) < 2:
            continue
        results = _unpacked(function, indices, source, source.type, names)
        if results is None:
            continue
        call = defined_by.get(name)
        if call is not None and name not in other_uses:
            replaced[call[0]] = _with_result(call[1], results)
            dropped.update(indices)
        else:
            replaced[indices[0]] = ir.Unpack(results, source, first.origin)
            dropped.update(indices[1:])
    if not replaced:
        return function
    body = [
        replaced.get(index, instruction)
        for index, instruction in enumerate(function.body)
        if index in replaced or index not in dropped
    ]
    return dataclasses.replace(function, body=tuple(body))


_CALLS = (ir.CallModule, ir.CallFunction, ir.CallMethod)


def _with_result(call: ir.CallModule | ir.CallFunction | ir.CallMethod, result: ir.Result) -> ir.Instruction:
    """`call` binding `result` instead (spelled out: `dataclasses.replace` costs microseconds a call)."""
    match call:
        case ir.CallModule():
            return ir.CallModule(result, call.module, call.target, call.args, call.kwargs, call.origin)
        case ir.CallFunction():
            return ir.CallFunction(result, call.function, call.args, call.kwargs, call.origin)
        case ir.CallMethod():
            return ir.CallMethod(result, call.receiver, call.method, call.args, call.kwargs, call.origin)
        case _:
            assert_never(call)


def _unpacked(
    function: ir.Function, indices: list[int], source: ir.Value, type_: ir.TupleType, names: _LazyNames
) -> tuple[ir.Value, ...] | None:
    """The unpacking targets for the reads at `indices`, or None when they are not one read per position."""
    arity = len(type_.elements)
    by_position: dict[int, ir.Value] = {}
    for index in indices:
        read = function.body[index]
        if not isinstance(read, ir.GetItem):
            return None
        position = _constant_index(read.key, arity)
        if position is None or position in by_position:
            return None
        by_position[position] = read.result
    return tuple(
        by_position.get(position) or ir.Value(names.fresh(f"{source.name}_{position}"), type_.elements[position])
        for position in range(arity)
    )


def _constant_index(key: ir.Operand, arity: int) -> int | None:
    if not isinstance(key, ir.Const) or type(key.value) is not int:
        return None
    position = key.value
    if position < 0:
        position += arity
    return position if 0 <= position < arity else None


# ---------------------------------------------------------------- liveness


def insert_deletes(function: ir.Function) -> ir.Function:
    """Delete each value right after the instruction that reads it last.

    A value read by the `Return` is left to the return; one never read is
    deleted right after it is defined (unused parameters before the first
    instruction). No `Delete` goes right before the `Return` when building the
    returned value runs no user code: returning frees the frame at the same
    moment. Deletes list names in definition order, so the output is
    deterministic.
    """
    # In definition order, which is the order deletes list names in.
    defined_at: dict[str, int] = {}
    values: dict[str, ir.Value] = {}
    for param in function.params:
        defined_at[param.value.name] = -1
        values[param.value.name] = param.value
    last_use: dict[str, int] = {}
    returned: set[str] = set()
    for index, instruction in enumerate(function.body):
        if (
            type(instruction) is ir.GetItem
            and type(instruction.container) is ir.Value
            and type(instruction.key) is ir.Const
        ):
            # Most instructions of a stitching function, `name = value[N]`: read here
            # without building `results` and `uses` (a tenth of this pass's time).
            value = instruction.result
            defined_at[value.name] = index
            values[value.name] = value
            last_use[instruction.container.name] = index
            continue
        if type(instruction) is ir.Delete:
            raise ValueError("insert_deletes runs once, on a body without deletes")
        for value in instruction.results:
            defined_at[value.name] = index
            values[value.name] = value
        if isinstance(instruction, ir.Return):
            returned.update(value.name for value in ir.uses(instruction))
        else:
            for value in ir.uses(instruction):
                last_use[value.name] = index

    dies_after: dict[int, list[ir.Value]] = {}
    for name, index in defined_at.items():
        if name in returned:
            continue
        dies_after.setdefault(last_use.get(name, index), []).append(values[name])
    returned_value = function.body[-1]
    if isinstance(returned_value, ir.Return) and _runs_no_code(returned_value.value):
        dies_after.pop(len(function.body) - 2, None)

    body: list[ir.Instruction] = []
    if -1 in dies_after:
        body.append(ir.Delete(tuple(dies_after[-1])))
    for index, instruction in enumerate(function.body):
        body.append(instruction)
        if index in dies_after:
            body.append(ir.Delete(tuple(dies_after[index])))
    return dataclasses.replace(function, body=tuple(body))


def _runs_no_code(operand: ir.Operand) -> bool:
    """Whether building `operand` can run no user code (a namedtuple class or a key's `__hash__` could)."""
    if isinstance(operand, (ir.TupleOf, ir.ListOf)):
        return all(_runs_no_code(item) for item in operand.items)
    if isinstance(operand, ir.DictOf):
        return all(isinstance(key, ir.Const) and _runs_no_code(value) for key, value in operand.items)
    if isinstance(operand, ir.SliceOf):
        return all(_runs_no_code(part) for part in (operand.start, operand.stop, operand.step))
    return not isinstance(operand, ir.NamedTupleOf)


# ---------------------------------------------------------------- names


class _LazyNames:
    """Clean fresh names beside the function's own, its namespace built only if one is asked for."""

    def __init__(self, function: ir.Function) -> None:
        self.function = function
        self.names: Namespace | None = None

    def fresh(self, base: str) -> str:
        if self.names is None:
            self.names = Namespace(_all_names(self.function))
        return self.names.fresh(clean_name(base))


def _all_names(function: ir.Function) -> list[str]:
    """Every name in definition order: parameters, values, then globals."""
    return [
        *[param.value.name for param in function.params],
        *[value.name for instruction in function.body for value in instruction.results],
        *[g.name for g in function.globals],
    ]


def assign_names(function: ir.Function) -> ir.Function:
    """Rename whatever `is_clean_name` rejects or another name already took.

    Names that are clean keep their spelling; the rest get the closest clean
    spelling with a numeric suffix where needed. When nothing needs renaming
    the function comes back as it is.
    """
    names = _all_names(function)
    if len(set(names)) == len(names) and all(map(is_clean_name, names)) and function.name not in names:
        return function
    namer = Namespace([function.name, *(name for name in names if is_clean_name(name))])
    # Keyed by (is a global, name): a value and a global may share a name,
    # and only one of them may keep it.
    first_global = len(names) - len(function.globals)
    renamed: dict[tuple[bool, str], str] = {}
    # The module defines the function under its name: nothing else keeps it.
    seen: set[str] = {function.name}
    for index, name in enumerate(names):
        if is_clean_name(name) and name not in seen:
            seen.add(name)
            continue
        renamed[(index >= first_global, name)] = namer.fresh(clean_name(name))

    def rename(value: ir.Value | ir.Global) -> ir.Value | ir.Global:
        new = renamed.get((isinstance(value, ir.Global), value.name))
        return value if new is None else dataclasses.replace(value, name=new)

    return _map_names(function, rename)


def _map_names(function: ir.Function, rename: Callable[[ir.Value | ir.Global], ir.Value | ir.Global]) -> ir.Function:
    leaves = (ir.Const, ir.Origin, str, int, float, type(None))

    def walk(obj: object) -> object:
        if isinstance(obj, (ir.Value, ir.Global)):
            return rename(obj)
        if isinstance(obj, tuple):
            return tuple(walk(item) for item in obj)
        if isinstance(obj, leaves) or not dataclasses.is_dataclass(obj):
            return obj
        changes = {f.name: walk(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]

    params = tuple(walk(param) for param in function.params)
    body = tuple(walk(instruction) for instruction in function.body)
    globals_ = tuple(walk(g) for g in function.globals)
    return dataclasses.replace(function, params=params, body=body, globals=globals_)  # type: ignore[arg-type]


# ---------------------------------------------------------------- pipeline

PASSES: tuple[Callable[[ir.Function], ir.Function], ...] = (unpack_tuples, insert_deletes, assign_names)


def run_passes(function: ir.Function, *, check: bool = False) -> ir.Function:
    """Apply every pass in order; with `check`, verify the IR after each one."""
    if check:
        ir.verify(function)
    for apply in PASSES:
        function = apply(function)
        if check:
            ir.verify(function)
    return function
