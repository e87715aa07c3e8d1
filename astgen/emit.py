"""Stage 3: an IR `Function` becomes an `ast.Module`: a prelude, then one `ast.FunctionDef`.

`emit` builds the module; `definition` its `def` alone, at the same lines,
for a caller that binds the globals itself (`astgen.compiled` does, and
builds the prelude only when the text is asked for).

The prelude binds each global the function reads, one line each, from where
a loader finds it: `submod_0_fn = __astgen_pieces__[0]` (a piece the caller
supplies by target), `device_cpu = __astgen_consts__[0]` (an object that
travels beside the text), `aten_mm_default = torch.ops.aten.mm.default` (a
name in torch or `operator`, resolved at load). So the text, with the two
tables, determines the function in any process.

The function body holds only `Assign`, `Delete` and `Return`. Statements are
built through `_Builder`, whose helpers stamp every node with the line the
statement will have in `ast.unparse` output (the prelude's lines, a blank
line, the `def`, then body statement i on the def's line + 1 + i), so
tracebacks and `.source` agree.

Literals are written as the tree `ast.parse` would give for their unparsed
text (`-1.5` is `USub(1.5)`, `inf` is `1e309`), so unparse -> parse gives an
equal tree. No code text is ever built here.

Names are the IR's, except in a function with more than 256 local names:
there a value takes the name of a dead value of the same stem (see
`_reused_names`), so the tree's names are fewer than the IR's.
"""

from __future__ import annotations

import ast
import math
from collections import deque
from typing import Any, TypeVar, assert_never

from astgen import ir
from astgen.names import SUFFIX_CHARACTERS, is_identifier

# The AST operator for each `ir.Operator` op, by the `operator` function's name.
_BINARY: dict[str, type[ast.operator]] = {
    "add": ast.Add,
    "sub": ast.Sub,
    "mul": ast.Mult,
    "truediv": ast.Div,
    "floordiv": ast.FloorDiv,
    "mod": ast.Mod,
    "pow": ast.Pow,
    "matmul": ast.MatMult,
    "lshift": ast.LShift,
    "rshift": ast.RShift,
    "and_": ast.BitAnd,
    "or_": ast.BitOr,
    "xor": ast.BitXor,
}
_UNARY: dict[str, type[ast.unaryop]] = {"neg": ast.USub, "pos": ast.UAdd, "invert": ast.Invert, "not_": ast.Not}
_COMPARE: dict[str, type[ast.cmpop]] = {
    "eq": ast.Eq,
    "ne": ast.NotEq,
    "lt": ast.Lt,
    "le": ast.LtE,
    "gt": ast.Gt,
    "ge": ast.GtE,
}

# Columns are marked unknown (-1, as CPython's position tables mark them):
# exact ones would cost an unparse before compile(), and a made-up span makes
# tracebacks draw a misleading caret row. Lines are exact.
_UNKNOWN_COLUMN = -1

_Node = TypeVar("_Node", bound=ast.AST)

# Context nodes carry no position, so one of each serves every name, as in
# the trees CPython's own parser builds.
_LOAD, _STORE, _DEL = ast.Load(), ast.Store(), ast.Del()

# A node made without `__init__`, its attributes then set as one dict: the
# same node as the constructor makes (optional fields left out read None,
# from the class), at about half the cost. A stitching module is thousands
# of nodes, and building them was most of `emit`'s time.
_new = ast.AST.__new__


# CPython addresses the first 256 locals with a one-byte operand. Past that
# every load, store and delete of a local takes an EXTENDED_ARG prefix and the
# frame outgrows its data-stack chunk: a 500-layer stitching function with a
# name per value ran 1.7x slower than the same code with reused names.
_ONE_BYTE_LOCALS = 256


def _reused_names(function: ir.Function) -> dict[str, str]:
    """For a function with more than 256 local names: value name -> the dead name it reuses.

    A value defined after a `Delete` takes the longest-dead name of the same
    stem (`getitem_907` becomes a free `getitem_3`, `submod_12` a free
    `submod_1`), so names stay readable and the count of locals stays at the
    most values of one stem alive at once. Only `Delete` frees a name, so
    a reused name is never read again under its old meaning.
    """
    count = len(function.params) + sum([len(instruction.results) for instruction in function.body])
    if count <= _ONE_BYTE_LOCALS:
        return {}
    names: dict[str, str] = {}
    free: dict[str, deque[str]] = {}
    # `names.stem`, spelled out: it runs twice per value.
    suffix = SUFFIX_CHARACTERS
    for instruction in function.body:
        if type(instruction) is ir.Delete:
            for value in instruction.values:
                name = names.get(value.name, value.name)
                stem = name.rstrip(suffix)
                dead = free.get(stem)
                if dead is None:
                    free[stem] = dead = deque()
                dead.append(name)
            continue
        if type(instruction) is ir.GetItem:
            # Most instructions of a stitching function: one result, read without building `results`.
            name = instruction.result.name
            dead = free.get(name.rstrip(suffix))
            if dead:
                names[name] = dead.popleft()
            continue
        for value in instruction.results:
            dead = free.get(value.name.rstrip(suffix))
            if dead:
                names[value.name] = dead.popleft()
    return names


class _Builder:
    """Node factories for one statement; every node they make carries its line."""

    def __init__(self, line: int, names: dict[str, str] | None = None) -> None:
        self.line = line
        self.names = names

    def at(self, node: _Node) -> _Node:
        # End positions stay None (unknown), like the columns.
        node.lineno = self.line  # type: ignore[attr-defined]
        node.col_offset = _UNKNOWN_COLUMN  # type: ignore[attr-defined]
        return node

    def node(self, cls: type[_Node], **fields: Any) -> _Node:
        """`cls(**fields)` at this line: the same attributes as `at(cls(**fields))`, set in one go."""
        fields["lineno"] = self.line
        fields["col_offset"] = _UNKNOWN_COLUMN
        made = _new(cls)
        made.__dict__ = fields
        return made

    def name(self, identifier: str, ctx: ast.expr_context = _LOAD) -> ast.Name:
        if self.names:
            identifier = self.names.get(identifier, identifier)
        made = _new(ast.Name)
        made.__dict__ = {"id": identifier, "ctx": ctx, "lineno": self.line, "col_offset": _UNKNOWN_COLUMN}
        return made

    def names_of(self, operands: tuple[ir.Operand, ...], ctx: ast.expr_context = _LOAD) -> list[ast.expr]:
        """`[self.operand(o) for o in operands]`, with the names (most operands) made in this loop:
        a call per name was a tenth of `emit`'s time."""
        line, renames = self.line, self.names
        made: list[ast.expr] = []
        for operand in operands:
            kind = type(operand)
            if kind is ir.Value or kind is ir.Global or kind is ir.Builtin:
                identifier = operand.name  # type: ignore[union-attr]
                if renames:
                    identifier = renames.get(identifier, identifier)
                node = _new(ast.Name)
                node.__dict__ = {"id": identifier, "ctx": ctx, "lineno": line, "col_offset": _UNKNOWN_COLUMN}
                made.append(node)
            else:
                made.append(self.operand(operand))
        return made

    def const(self, value: Any) -> ast.expr:
        return self.node(ast.Constant, value=value)

    def negate(self, operand: ast.expr) -> ast.expr:
        return self.node(ast.UnaryOp, op=ast.USub(), operand=operand)

    def call(self, function: ast.expr, args: list[ast.expr], keywords: list[ast.keyword] | None = None) -> ast.expr:
        return self.node(ast.Call, func=function, args=args, keywords=keywords or [])

    def assign(self, target: ast.expr, value: ast.expr) -> ast.stmt:
        return self.node(ast.Assign, targets=[target], value=value)

    # ------------------------------------------------------------ literals

    def literal(self, value: object) -> ast.expr:
        """The tree `ast.parse` gives for the unparsed literal, evaluating to an identical value."""
        if isinstance(value, float):
            return self.real(value)
        if isinstance(value, complex):
            return self.complex(value)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            return self.negate(self.const(-value))
        return self.const(value)

    def real(self, value: float) -> ast.expr:
        if math.copysign(1.0, value) < 0:
            return self.negate(self.const(-value))
        return self.const(value)

    def complex(self, value: complex) -> ast.expr:
        # `ir.is_exact_literal` admits only finite parts without a negative zero.
        imaginary = self.const(complex(0.0, abs(value.imag)))
        if value.real == 0.0 and value.imag >= 0:
            return imaginary
        # `-2j` is `-(0+2j)`, whose real part is -0.0: a negative imaginary part
        # is written `0.0 - 2j` to keep the real part's sign.
        op = ast.Add() if value.imag >= 0 else ast.Sub()
        return self.node(ast.BinOp, left=self.real(value.real), op=op, right=imaginary)

    # ------------------------------------------------------------ operands

    def operand(self, operand: ir.Operand) -> ast.expr:
        if isinstance(operand, (ir.Value, ir.Global, ir.Builtin)):
            return self.name(operand.name)
        if isinstance(operand, ir.Const):
            return self.literal(operand.value)
        if isinstance(operand, ir.TupleOf):
            return self.node(ast.Tuple, elts=[self.operand(item) for item in operand.items], ctx=_LOAD)
        if isinstance(operand, ir.ListOf):
            return self.node(ast.List, elts=[self.operand(item) for item in operand.items], ctx=_LOAD)
        if isinstance(operand, ir.NamedTupleOf):
            return self.call(self.name(operand.cls.name), [self.operand(item) for item in operand.items])
        if isinstance(operand, ir.DictOf):
            keys: list[ast.expr | None] = [self.operand(key) for key, _ in operand.items]
            values = [self.operand(value) for _, value in operand.items]
            return self.node(ast.Dict, keys=keys, values=values)
        if isinstance(operand, ir.SliceOf):
            parts = [self.operand(part) for part in (operand.start, operand.stop, operand.step)]
            return self.call(self.name("slice"), parts)
        if isinstance(operand, ir.Starred):
            return self.node(ast.Starred, value=self.name(operand.value.name), ctx=_LOAD)
        assert_never(operand)

    def subscript_key(self, key: ir.Operand) -> ast.expr:
        """A key as written inside `[]`: slices become `a:b:c`, also inside a tuple key."""
        if isinstance(key, ir.SliceOf):
            parts = [None if _is_none(part) else self.operand(part) for part in (key.start, key.stop, key.step)]
            return self.node(ast.Slice, lower=parts[0], upper=parts[1], step=parts[2])
        if isinstance(key, ir.TupleOf) and key.items:
            return self.node(ast.Tuple, elts=[self.subscript_key(item) for item in key.items], ctx=_LOAD)
        return self.operand(key)

    def call_arguments(
        self, args: tuple[ir.Operand, ...], kwargs: ir.Kwargs
    ) -> tuple[list[ast.expr], list[ast.keyword]]:
        positional = self.names_of(args)
        keywords: list[ast.keyword] = []
        for key, value in kwargs:
            if is_identifier(key):
                keywords.append(self.node(ast.keyword, arg=key, value=self.operand(value)))
                continue
            # A key that is no identifier can only be passed through `**{...}`,
            # written where it stands: the callee sees keywords in call order.
            last = keywords[-1] if keywords else None
            if last is not None and last.arg is None and isinstance(last.value, ast.Dict):
                last.value.keys.append(self.const(key))
                last.value.values.append(self.operand(value))
            else:
                mapping = self.node(ast.Dict, keys=[self.const(key)], values=[self.operand(value)])
                keywords.append(self.node(ast.keyword, arg=None, value=mapping))
        return positional, keywords

    def attribute(self, obj: ast.expr, attribute: str) -> ast.expr:
        if is_identifier(attribute):
            return self.node(ast.Attribute, value=obj, attr=attribute, ctx=_LOAD)
        return self.call(self.name("getattr"), [obj, self.const(attribute)])

    # ------------------------------------------------------------ statements

    def statement(self, instruction: ir.Instruction) -> ast.stmt:
        kind = type(instruction)
        if kind is ir.GetItem or kind is ir.CallModule:
            # Most statements of a stitching function, `v = t[0]` and `v = piece(a, b)`, built
            # here node by node: through the general helpers they were a third of `definition`.
            fast = self.read_or_call(instruction)  # type: ignore[arg-type]
            if fast is not None:
                return fast
        match instruction:
            case ir.Delete():
                return self.node(ast.Delete, targets=self.names_of(instruction.values, _DEL))
            case ir.Return():
                return self.node(ast.Return, value=self.operand(instruction.value))
            case ir.Unpack():
                return self.assign(self.target(instruction.results), self.name(instruction.source.name))
            case ir.CallModule() | ir.CallFunction() | ir.CallMethod() | ir.Operator() | ir.GetAttr() | ir.GetItem():
                return self.assign(self.target(instruction.result), self.expression(instruction))
            case _:
                assert_never(instruction)

    def read_or_call(self, instruction: ir.GetItem | ir.CallModule) -> ast.stmt | None:
        """`statement`'s tree for a read of a value at a non-negative int, or a call of a piece
        with positional arguments into one value; None for any other form of the two."""
        result = instruction.result
        if type(result) is not ir.Value:
            return None
        value: ast.expr
        if type(instruction) is ir.GetItem:
            container, key = instruction.container, instruction.key
            if type(container) is not ir.Value or type(key) is not ir.Const:
                return None
            index = key.value
            if type(index) is not int or index < 0:
                return None
            constant = _new(ast.Constant)
            constant.__dict__ = {"value": index, "lineno": self.line, "col_offset": _UNKNOWN_COLUMN}
            value = _new(ast.Subscript)
            value.__dict__ = {
                "value": self.name(container.name),
                "slice": constant,
                "ctx": _LOAD,
                "lineno": self.line,
                "col_offset": _UNKNOWN_COLUMN,
            }
        else:
            if instruction.kwargs:  # type: ignore[union-attr]
                return None
            value = _new(ast.Call)
            value.__dict__ = {
                "func": self.name(instruction.module.name),  # type: ignore[union-attr]
                "args": self.names_of(instruction.args),  # type: ignore[union-attr]
                "keywords": [],
                "lineno": self.line,
                "col_offset": _UNKNOWN_COLUMN,
            }
        target = self.name(result.name, _STORE)
        statement = _new(ast.Assign)
        statement.__dict__ = {"targets": [target], "value": value, "lineno": self.line, "col_offset": _UNKNOWN_COLUMN}
        return statement

    def target(self, result: ir.Result) -> ast.expr:
        if type(result) is ir.Value:
            return self.name(result.name, _STORE)
        return self.node(ast.Tuple, elts=self.names_of(result, _STORE), ctx=_STORE)  # type: ignore[arg-type]

    def expression(self, instruction: ir.Computation) -> ast.expr:
        match instruction:
            case ir.CallModule() | ir.CallFunction():
                callee = instruction.module if isinstance(instruction, ir.CallModule) else instruction.function
                args, keywords = self.call_arguments(instruction.args, instruction.kwargs)
                return self.call(self.name(callee.name), args, keywords)
            case ir.CallMethod():
                args, keywords = self.call_arguments(instruction.args, instruction.kwargs)
                receiver = self.operand(instruction.receiver)
                return self.call(self.attribute(receiver, instruction.method), args, keywords)
            case ir.GetItem():
                key = self.subscript_key(instruction.key)
                return self.node(ast.Subscript, value=self.operand(instruction.container), slice=key, ctx=_LOAD)
            case ir.GetAttr():
                return self.attribute(self.operand(instruction.obj), instruction.attribute)
            case ir.Operator():
                return self.operator(instruction)
            case _:
                assert_never(instruction)

    def operator(self, instruction: ir.Operator) -> ast.expr:
        op = instruction.op
        operands = [self.operand(operand) for operand in instruction.args]
        if op in _UNARY:
            return self.node(ast.UnaryOp, op=_UNARY[op](), operand=operands[0])
        if op in _COMPARE:
            return self.node(ast.Compare, left=operands[0], ops=[_COMPARE[op]()], comparators=[operands[1]])
        return self.node(ast.BinOp, left=operands[0], op=_BINARY[op](), right=operands[1])


def _is_none(operand: ir.Operand) -> bool:
    return isinstance(operand, ir.Const) and operand.value is None


def _arguments(function: ir.Function, header: _Builder) -> ast.arguments:
    """Parameters in graph order; those after a starred one are keyword-only, as in Python."""
    starred = ir.starred_index(function.params)
    positional = function.params[:starred]
    keyword_only = function.params[starred + 1 :]
    vararg = header.at(ast.arg(arg=function.params[starred].value.name)) if starred < len(function.params) else None
    return ast.arguments(
        posonlyargs=[],
        args=[header.at(ast.arg(arg=param.value.name)) for param in positional],
        vararg=vararg,
        kwonlyargs=[header.at(ast.arg(arg=param.value.name)) for param in keyword_only],
        kw_defaults=[None if param.default is None else header.operand(param.default) for param in keyword_only],
        kwarg=None,
        defaults=[header.operand(param.default) for param in positional if param.default is not None],
    )


def _returned_computation(function: ir.Function) -> ir.Computation | None:
    """The last computation where the body ends `v = <expr>; return v`, which is written `return <expr>`."""
    if len(function.body) < 2:
        return None
    last, returned = function.body[-2], function.body[-1]
    if (
        isinstance(returned, ir.Return)
        and isinstance(last, ir.COMPUTATIONS)
        and isinstance(last.result, ir.Value)
        and returned.value == last.result
    ):
        return last
    return None


def prelude(function: ir.Function, const_index: dict[int, int] | None = None) -> list[ast.stmt]:
    """`import` lines for the modules named, then one assignment per global, in slot order.

    `const_index` maps a constant's slot to its index in the consts table
    where that is not its position among the constants (consts shared with
    other functions, as vLLM's `generate_execution_code_with_name` shares them).
    """
    pieces, consts = ir.tables(function)
    piece_of = {g.slot: index for index, g in enumerate(pieces)}
    const_of = {g.slot: index for index, g in enumerate(consts)} if const_index is None else const_index
    roots = _imported_roots(function)
    statements: list[ast.stmt] = []
    for root in roots:
        line = _Builder(len(statements) + 1)
        statements.append(line.at(ast.Import(names=[line.at(ast.alias(name=root))])))
    # One builder, moved from line to line, as in `definition`: a text has a prelude line per piece.
    line = _Builder(len(statements) + 1)
    for g in function.globals:
        if g.path is not None:
            root, *attributes = g.path.split(".")
            value: ast.expr = line.name(root)
            for attribute in attributes:
                value = line.node(ast.Attribute, value=value, attr=attribute, ctx=_LOAD)
        else:
            table, index = (
                (ir.PIECES_TABLE, piece_of[g.slot]) if g.piece is not None else (ir.CONSTS_TABLE, const_of[g.slot])
            )
            value = line.node(ast.Subscript, value=line.name(table), slice=line.const(index), ctx=_LOAD)
        statements.append(line.assign(line.name(g.name, _STORE), value))
        line.line += 1
    return statements


def _imported_roots(function: ir.Function) -> list[str]:
    return sorted({g.path.partition(".")[0] for g in function.globals if g.path is not None})


def emit(function: ir.Function, const_index: dict[int, int] | None = None) -> ast.Module:
    """The module `<prelude> def <name>(params): <body>` for `function`; positions set on every node.

    Statement i of the body stands for instruction i, except that
    `v = <expr>; return v` at the end becomes one `return <expr>` on the line
    of `<expr>`.
    """
    return ast.Module(body=[*prelude(function, const_index), definition(function)], type_ignores=[])


def definition(function: ir.Function, def_line: int | None = None) -> ast.FunctionDef:
    """The module's last statement, `def <name>(params): <body>`, each node at its line in the whole module.

    Compiling it alone gives the function `emit`'s module defines, with the
    same lines; what the prelude would bind must then be bound by the caller.
    `def_line` puts the def at that line instead, for a module laid out
    otherwise (vLLM's dialect).
    """
    if def_line is None:
        prelude_lines = len(_imported_roots(function)) + len(function.globals)
        # `ast.unparse` puts a blank line between a prelude and the def.
        def_line = prelude_lines + 2 if prelude_lines else 1
    header = _Builder(def_line)
    names = _reused_names(function)
    instructions = function.body
    fused_return = _returned_computation(function)
    if fused_return is not None:
        instructions = instructions[:-1]
    first = def_line + 1
    # One builder, moved from line to line: a statement's nodes are made before the next one starts.
    builder = _Builder(first, names)
    body: list[ast.stmt] = []
    for line, instruction in enumerate(instructions, first):
        builder.line = line
        body.append(builder.statement(instruction))
    if fused_return is not None:
        last = _Builder(first + len(body) - 1, names)
        body[-1] = last.at(ast.Return(value=last.expression(fused_return)))
    made = header.at(
        ast.FunctionDef(
            name=function.name, args=_arguments(function, header), body=body, decorator_list=[], returns=None
        )
    )
    made.end_lineno = def_line + len(body)  # type: ignore[attr-defined]
    return made
