"""vLLM's dialect: a split graph's stitching function as vLLM 0.33's own generator writes it, built as a tree.

    import torch
    import operator

    def __vllm_inlined_submods__1(getitem):
        relu = torch.ops.aten.relu.default(getitem)
        return (relu,)

    def execution_fn(x, *, __vllm_submods__):
        submod_0 = __vllm_submods__[0](x, __vllm_consts__[0])
        del x
        getitem = submod_0[0]
        ...

Pieces that are not plain `GraphModule`s are called as `__vllm_submods__[i]`,
`i` their index in `submod_names`; plain `GraphModule` children become
functions of their own, `__vllm_inlined_submods__<i>`, defined before
`execution_fn` (one that itself calls a module, which vLLM refuses to
inline, is called through `__vllm_submods__` too); objects that are not literals are `__vllm_consts__[i]`,
numbered in the order vLLM's walk meets them; callees are written by their
dotted path, operators as `operator.<name>(...)`. Stock
`vllm.compilation.codegen.compile_execution_fn` runs the text.

Where vLLM's generator writes text that fails, this module writes what it
meant: `inf` and `nan` (a literal and a const), `operator.add` (vLLM writes
`_operator.add`, which the text never imports), a result nobody reads deleted
at once (vLLM holds it to the return), and `get_attr`, `call_method` and
attribute reads, which vLLM refuses.

The stage starts from the IR `astgen.lower` makes of each graph, without
inlining; `astgen.passes.insert_deletes` places the `del`s and
`astgen.emit.definition` builds each `def`, reading its globals by name, as
it compiles; this module says what vLLM's text writes for each of them
(`Stitched.written`), which `render.unparse` writes in their place.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, replace
from typing import Any

import torch.fx

from astgen import ir, lift
from astgen.emit import definition
from astgen.lower import lower
from astgen.passes import assign_names, insert_deletes

SUBMODS = "__vllm_submods__"
CONSTS = "__vllm_consts__"
INLINED_PREFIX = "__vllm_inlined_submods__"
IMPORTS = ("torch", "operator")

_LOAD = ast.Load()
# Operands that are one name or literal, and so hold no namedtuple to rebuild.
_LEAVES = (ir.Value, ir.Const, ir.Global, ir.Builtin)


class UnnamedCallee(Exception):
    """The graph calls a function no dotted path names: vLLM's dialect could call it only as a
    `__vllm_consts__[i](...)`, which astgen's loader refuses (it calls no object from a table)."""


@dataclass(frozen=True)
class Stitched:
    """One def of vLLM's text, as astgen emits it: its globals read by name, and for each what vLLM writes.

    `tree` compiles to a function that reads each global by name, as
    astgen's loader binds them; the text writes `written[name]` in its place
    (`unparse(..., names=written)`), and the entry takes `__vllm_submods__`
    (`module` adds it). `sources` says where each global comes from: a
    `lift.PieceSlot` or `lift.ConstSlot` of the tables, a `lift.Named` path,
    or an `Inlined` def of the same text.
    """

    tree: ast.FunctionDef
    function: ir.Function
    written: dict[str, ast.expr]
    sources: tuple[tuple[str, Source], ...]
    takes_submods: bool
    # An earlier def lowered to the same IR, whose body this one's
    # tree shares: its positions are that def's, so this one is compiled as
    # that one's code moved to this def's line.
    copy_of: Stitched | None = None


@dataclass(frozen=True)
class Inlined:
    """The def at `index` of the same text, an `__vllm_inlined_submods__<i>` function."""

    index: int


Source = lift.PieceSlot | lift.ConstSlot | lift.Named | Inlined


def stitching_functions(
    split_gm: torch.fx.GraphModule,
    fn_name: str,
    with_submod: bool,
    consts: list[Any],
    const_index: dict[int, int],
    first_line: int = 1,
    seen: dict[ir.Function, Stitched] | None = None,
) -> tuple[list[Stitched], list[str], ir.Function]:
    """The defs for `split_gm` (its inlined pieces' first, `fn_name` last), `submod_names`, and `fn_name`'s IR.

    New constants are appended to `consts`, and `const_index` (object id ->
    index) records them, so graphs that share the two share slots. The first
    def is at line `first_line` of the text, each next one after a blank line.
    `seen` holds the inlined defs made so far, by the IR lowering made of
    them: a piece lowered to one of those shares its def's passes and tree
    body (a decoder's attention pieces are one graph, many times).
    """
    seen = {} if seen is None else seen
    calls = split_gm.graph.find_nodes(op="call_module")
    if not with_submod and calls:
        raise RuntimeError(f"call_module is not allowed for codegen target {calls[0].target}.")
    submod_names = list(dict.fromkeys(str(node.target) for node in calls))
    submod_index = {name: index for index, name in enumerate(submod_names)}
    # `lower` names its function with an identifier of its own rules, which
    # refuse a leading underscore; the def is renamed below.
    lowered = lower(split_gm, name="stitching", inline=False, unpack=False)
    # An inlined piece lowered to an IR seen before takes that def's passes and tree. The
    # passes never read the def's name: every name they keep is clean, and no clean name
    # starts with `__` as the inlined defs' names do.
    earlier = None if with_submod else seen.get(lowered.function)
    if earlier is None:
        function = _renamed(lowered.function, fn_name)
        function = assign_names(insert_deletes(_subscripted_reads(_operators_as_calls(function))))
    else:
        function = _renamed(earlier.function, fn_name)
    # Most instructions of a stitching function read a value at a literal key (`_plain_read`):
    # they call nothing and hold no global, and are skipped here and below.
    body = [instruction for instruction in function.body if not _plain_read(instruction)]
    called = [
        instruction.function
        for instruction in body
        if isinstance(instruction, ir.CallFunction) and isinstance(instruction.function, ir.Global)
    ]
    # A namedtuple the text rebuilds is a call of its class. Most operands are names and literals, holding none.
    called += [
        cls
        for instruction in body
        for operand in instruction.operands
        if type(operand) not in _LEAVES
        for cls in _classes(operand)
    ]
    for callee in called:
        if callee.path is None:
            raise UnnamedCallee(callee.name)
    callees = {callee.slot for callee in called}
    written: dict[str, ast.expr] = {}
    sources: dict[str, Source] = {}
    inlined: list[Stitched] = []
    line = [first_line]

    def refer(bound: ir.Global) -> None:
        if bound.name in written:
            return
        if bound.piece is not None:
            index = submod_index[bound.piece]
            # The module itself, not the callable lowering bound for it; vLLM
            # reads it with getattr, which finds a PiecewiseBackend put in the
            # instance's __dict__ before the original child.
            module = getattr(split_gm, bound.piece)
            if _inlinable(module):
                name = INLINED_PREFIX + str(index)
                defs, _, _ = stitching_functions(module, name, False, consts, const_index, line[0], seen)
                inlined.extend(defs)
                line[0] = _next_line(defs[-1].tree)
                written[bound.name] = ast.Name(id=name, ctx=_LOAD)
                sources[bound.name] = Inlined(len(inlined) - 1)
            else:
                written[bound.name] = _indexed(SUBMODS, index)
                sources[bound.name] = lift.PieceSlot(index)
        elif bound.path is not None and bound.slot in callees:
            written[bound.name] = _dotted(bound.path)
            sources[bound.name] = lift.Named(bound.path)
        else:
            obj = lowered.bindings[bound.slot]
            if id(obj) not in const_index:
                const_index[id(obj)] = len(consts)
                consts.append(obj)
            written[bound.name] = _indexed(CONSTS, const_index[id(obj)])
            sources[bound.name] = lift.ConstSlot(const_index[id(obj)])

    # vLLM numbers constants as it writes each node's arguments, and writes
    # an inlined piece's body after the arguments of the call to it.
    for instruction in body:
        piece = instruction.module if isinstance(instruction, ir.CallModule) else None
        for operand in instruction.operands:
            kind = type(operand)
            if kind is ir.Value or kind is ir.Const or operand is piece:
                continue
            if kind is ir.Global:
                refer(operand)  # type: ignore[arg-type]
                continue
            for bound in ir.operand_globals(operand):
                refer(bound)
        if piece is not None:
            refer(piece)
    for param in function.params:
        if isinstance(param.default, ir.Global):
            refer(param.default)

    if earlier is None:
        made = Stitched(definition(function, line[0]), function, written, tuple(sources.items()), with_submod)
        if not with_submod:
            seen[lowered.function] = made
    else:
        tree = copy.copy(earlier.tree)
        tree.name, tree.lineno = fn_name, line[0]
        made = Stitched(tree, function, written, tuple(sources.items()), with_submod, earlier)
    return [*inlined, made], submod_names, function


def _plain_read(instruction: ir.Instruction) -> bool:
    """Whether `instruction` is `name = value[N]`."""
    return (
        type(instruction) is ir.GetItem
        and type(instruction.container) is ir.Value
        and type(instruction.key) is ir.Const
    )


def _renamed(function: ir.Function, name: str) -> ir.Function:
    # `dataclasses.replace`, without its walk over the fields: once per inlined piece.
    return ir.Function(name, function.params, function.body, function.globals)


def _next_line(tree: ast.FunctionDef) -> int:
    """The line of the def after `tree`: `unparse` writes one line per statement, then a blank one."""
    return tree.lineno + len(tree.body) + 2


def _inlinable(module: object) -> bool:
    # vLLM inlines every plain GraphModule and then refuses one that calls a
    # module of its own; such a piece is called as the others are instead.
    return isinstance(module, torch.fx.GraphModule) and not module.graph.find_nodes(op="call_module")


def module(functions: list[Stitched]) -> ast.Module:
    """`import torch`, `import operator`, then `functions`: what `generate_execution_code` returns, as a tree.

    Rendered with `names=names(functions, len(IMPORTS))`. The entry's def gains the
    keyword-only `__vllm_submods__` vLLM passes its pieces by; the trees
    themselves stay as they compile.
    """
    imports: list[ast.stmt] = [ast.Import(names=[ast.alias(name=root)]) for root in IMPORTS]
    return ast.Module(body=[*imports, *defs(functions)], type_ignores=[])


def defs(functions: list[Stitched]) -> list[ast.stmt]:
    """The defs of `functions` as the text writes them: an entry that takes the pieces gains `__vllm_submods__`."""
    made: list[ast.stmt] = []
    for stitched in functions:
        tree = stitched.tree
        if stitched.takes_submods:
            tree = copy.copy(tree)
            args = tree.args
            tree.args = ast.arguments(
                posonlyargs=args.posonlyargs,
                args=args.args,
                vararg=args.vararg,
                kwonlyargs=[*args.kwonlyargs, ast.arg(arg=SUBMODS)],
                kw_defaults=[*args.kw_defaults, None],
                kwarg=args.kwarg,
                defaults=args.defaults,
            )
        made.append(tree)
    return made


def names(functions: list[Stitched], before: int = 0) -> list[dict[str, ast.expr]]:
    """`unparse`'s `names` for a module of `before` statements, then `functions`' defs."""
    return [*([{}] * before), *[stitched.written for stitched in functions]]


def _operators_as_calls(function: ir.Function) -> ir.Function:
    """Each `Operator` as the call of its `operator` function, the way vLLM writes `call_function` nodes."""
    if not any(isinstance(instruction, ir.Operator) for instruction in function.body):
        return function
    slots = len(function.globals) and 1 + max(g.slot for g in function.globals)
    taken = {g.name for g in function.globals}
    made: dict[str, ir.Global] = {}
    body: list[ir.Instruction] = []
    for instruction in function.body:
        if not isinstance(instruction, ir.Operator):
            body.append(instruction)
            continue
        bound = made.get(instruction.op)
        if bound is None:
            name = "operator_" + instruction.op.rstrip("_")
            while name in taken:
                name += "_"
            taken.add(name)
            bound = made[instruction.op] = ir.Global(name, slots + len(made), path="operator." + instruction.op)
        body.append(ir.CallFunction(instruction.result, bound, instruction.args, (), instruction.origin))
    return replace(function, body=tuple(body), globals=(*function.globals, *made.values()))


def _subscripted_reads(function: ir.Function) -> ir.Function:
    """A tuple unpacked (`a, b = flat`, as a graph with its own input processing takes its
    arguments) as vLLM writes it: one `name = source[N]` per item.

    Lowering leaves a piece's tuple as it is read, one `GetItem` per `getitem`
    node (`lower(..., unpack=False)`), so only such an `Unpack` is left to split.
    """
    if not any(type(instruction) is ir.Unpack for instruction in function.body):
        return function
    body: list[ir.Instruction] = []
    for instruction in function.body:
        if isinstance(instruction, ir.Unpack):
            body.extend(
                ir.GetItem(value, instruction.source, ir.Const(index), instruction.origin)
                for index, value in enumerate(instruction.results)
            )
        else:
            body.append(instruction)
    return replace(function, body=tuple(body))


def _classes(operand: ir.Operand) -> list[ir.Global]:
    """The classes of the namedtuples `operand` rebuilds, at any depth."""
    match operand:
        case ir.NamedTupleOf():
            return [operand.cls, *[cls for item in operand.items for cls in _classes(item)]]
        case ir.TupleOf() | ir.ListOf():
            return [cls for item in operand.items for cls in _classes(item)]
        case ir.DictOf():
            return [cls for pair in operand.items for item in pair for cls in _classes(item)]
        case ir.SliceOf():
            return [cls for item in (operand.start, operand.stop, operand.step) for cls in _classes(item)]
        case _:
            return []


def _indexed(table: str, index: int) -> ast.expr:
    return ast.Subscript(value=ast.Name(id=table, ctx=_LOAD), slice=ast.Constant(value=index), ctx=_LOAD)


def _dotted(path: str) -> ast.expr:
    root, *attributes = path.split(".")
    value: ast.expr = ast.Name(id=root, ctx=_LOAD)
    for attribute in attributes:
        value = ast.Attribute(value=value, attr=attribute, ctx=_LOAD)
    return value
