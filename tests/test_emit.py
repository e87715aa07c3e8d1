"""Stage 3, emission: the shape of the tree, literals that round-trip, positions that match the source."""

from __future__ import annotations

import ast
import builtins
import math
import operator
from typing import Any

import pytest
import torch
import torch.fx

import astgen
from astgen import examples, ir
from tests.helpers import assert_same, build, build_raw, check, same_float, statement_kinds


def identity(*args: object, **kwargs: object) -> object:
    return args[0] if len(args) == 1 and not kwargs else (args, kwargs)


def keywords(**kwargs: object) -> dict[str, object]:
    return kwargs


def returning(value: ir.Operand) -> ir.Function:
    return ir.Function("forward", (), (ir.Return(value),))


def run_tree(tree: ast.Module) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(tree, "<test>", "exec"), namespace)
    return namespace["forward"]()


def assert_round_trip(tree: ast.Module) -> str:
    """`ast.unparse` then `ast.parse` gives the same tree; returns the source."""
    source = ast.unparse(tree)
    assert ast.dump(ast.parse(source)) == ast.dump(tree), source
    return source


def assert_identical(actual: object, expected: object) -> None:
    assert type(actual) is type(expected)
    assert repr(actual) == repr(expected)
    if isinstance(expected, float):
        assert same_float(actual, expected)  # type: ignore[arg-type]
    elif isinstance(expected, complex):
        assert same_float(actual.real, expected.real) and same_float(actual.imag, expected.imag)  # type: ignore[attr-defined]
    elif isinstance(expected, (tuple, list)):
        for a, e in zip(actual, expected, strict=True):  # type: ignore[call-overload]
            assert_identical(a, e)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)  # type: ignore[call-overload]
        for key in expected:
            assert_identical(actual[key], expected[key])  # type: ignore[index]
    else:
        assert actual == expected


# ---------------------------------------------------------------- tree shape


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_examples_hold_one_function_of_assign_delete_return(name: str) -> None:
    tree = astgen.compile_graph(examples.EXAMPLES[name]()).tree
    *prelude, definition = tree.body
    assert isinstance(definition, ast.FunctionDef)
    assert all(isinstance(statement, (ast.Import, ast.Assign)) for statement in prelude)
    assert statement_kinds(tree) <= {ast.Assign, ast.Delete, ast.Return}
    assert isinstance(definition.body[-1], ast.Return)


def test_every_statement_kind_is_allowed() -> None:
    sub = build(lambda g: (g.placeholder("a"), g.placeholder("b")))

    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        unused = g.call_function(operator.neg, (x,))
        pair = g.call_module("sub", (x, unused))
        first = g.call_function(operator.getitem, (pair, 0))
        second = g.call_function(operator.getitem, (pair, 1))
        size = g.call_function(builtins.getattr, (first, "shape"))
        return g.call_method("sum", (second,)), size

    tree = check(build(body, sub=sub), torch.ones(2)).tree
    statements = tree.body[-1].body  # type: ignore[attr-defined]
    assert {type(s) for s in statements} == {ast.Assign, ast.Delete, ast.Return}
    assert any(isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Tuple) for s in statements)


def test_function_name_and_parameters() -> None:
    def body(g: torch.fx.Graph) -> object:
        return (g.placeholder("a"), g.placeholder("b", default_value=2.5), g.placeholder("*rest"))

    # A starred placeholder last: positional parameters, then `*rest`.
    gm = build_raw(lambda g: g.output(body(g)))
    definition = astgen.compile_graph(gm, name="stitch").tree.body[0]
    assert isinstance(definition, ast.FunctionDef) and definition.name == "stitch"
    assert [a.arg for a in definition.args.args] == ["a", "b"]
    assert definition.args.vararg is not None and "rest" in definition.args.vararg.arg
    assert len(definition.args.defaults) == 1


# ---------------------------------------------------------------- literals

LITERALS = [
    0,
    -1,
    -(10**999),
    10**999,
    0.0,
    -0.0,
    1.5,
    -1.5,
    -1e-300,
    5e-324,
    math.inf,
    -math.inf,
    0j,
    2j,
    complex(0, -2),
    complex(1, 2),
    complex(-1, -2),
    complex(-1.5, 0),
    complex(1e300, 1e-300),
    True,
    False,
    None,
    ...,
    "",
    "'\"\\\n\t\x00é",
    b"",
    b"\x00'\"\xff",
    (),
    (1,),
    [],
    (-0.0, [math.inf, (-1, {})], {"k": (complex(0, -1),), 2: None}),
    {-1: -0.0, "": [b""], (1, -2): ...},
]


@pytest.mark.parametrize("value", LITERALS, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(LITERALS)])
def test_literal_round_trips_and_evaluates_identically(value: object) -> None:
    gm = build_raw(lambda g: g.output(g.call_function(identity, (value,))))
    compiled = astgen.compile_graph(gm)
    assert_round_trip(compiled.tree)
    assert_identical(compiled(), value)


@pytest.mark.parametrize("value", [-0.0, -1, -math.inf, complex(0, -2), complex(-1, 2), -(10**50)])
def test_negative_literal_is_unary_minus_as_parse_gives(value: object) -> None:
    tree = astgen.emit(returning(ir.Const(value)))
    source = assert_round_trip(tree)
    assert_identical(run_tree(tree), value)
    # A negative literal parses as a unary minus (or a difference), never as a negative Constant.
    assert not any(
        isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and str(node.value).startswith("-")
        for node in ast.walk(tree)
    ), source


def test_inf_is_written_as_an_overflowing_literal() -> None:
    source = assert_round_trip(astgen.emit(returning(ir.TupleOf((ir.Const(math.inf), ir.Const(-math.inf))))))
    assert "inf" not in source.replace("def forward", "")


def test_return_of_one_tuple_keeps_the_comma() -> None:
    tree = astgen.emit(returning(ir.TupleOf((ir.Const(1),))))
    assert_round_trip(tree)
    assert run_tree(tree) == (1,)


# ---------------------------------------------------------------- keywords and names


@pytest.mark.parametrize("key", ["class", "a-b", "1x", "é", "with space", "", "None", "lambda"])
def test_kwarg_that_is_no_identifier_goes_through_double_star(key: str) -> None:
    gm = build(lambda g: g.call_function(keywords, (), {"ok": g.placeholder("x"), key: 2}), recompile=False)
    compiled = check(gm, 1)
    assert compiled(1) == {"ok": 1, key: 2}
    calls = [node for node in ast.walk(compiled.tree) if isinstance(node, ast.Call)]
    spread = [kw for call in calls for kw in call.keywords if kw.arg is None]
    assert len(spread) == 1 and isinstance(spread[0].value, ast.Dict)
    assert [k.value for k in spread[0].value.keys] == [key]  # type: ignore[union-attr]
    assert_round_trip(compiled.tree)


def test_identifier_kwargs_stay_plain_keywords() -> None:
    gm = build(lambda g: g.call_function(keywords, (), {"alpha": 1, "beta_2": g.placeholder("x")}))
    compiled = check(gm, 3)
    call = next(node for node in ast.walk(compiled.tree) if isinstance(node, ast.Call))
    assert [kw.arg for kw in call.keywords] == ["alpha", "beta_2"]


class Odd:
    def __init__(self) -> None:
        setattr(self, "class", lambda *args: ("class", args))
        setattr(self, "a-b", lambda: "a-b")
        self.ok = 5


@pytest.mark.parametrize("method", ["class", "a-b"])
def test_method_name_that_is_no_identifier_goes_through_getattr(method: str) -> None:
    args = (1,) if method == "class" else ()
    gm = build(lambda g: g.call_method(method, (g.placeholder("obj"), *args)), recompile=False)
    compiled = check(gm, Odd())
    call = next(node for node in ast.walk(compiled.tree) if isinstance(node, ast.Call))
    assert isinstance(call.func, ast.Call) and isinstance(call.func.func, ast.Name) and call.func.func.id == "getattr"
    assert_round_trip(compiled.tree)


def test_attribute_that_is_a_keyword_goes_through_getattr() -> None:
    gm = build(lambda g: g.call_function(builtins.getattr, (g.placeholder("obj"), "class")), recompile=False)
    compiled = check(gm, Odd())
    assert "getattr" in compiled.source
    assert_round_trip(compiled.tree)


def test_plain_attribute_is_an_attribute_node() -> None:
    gm = build(lambda g: g.call_function(builtins.getattr, (g.placeholder("obj"), "ok")))
    compiled = check(gm, Odd())
    assert any(isinstance(node, ast.Attribute) and node.attr == "ok" for node in ast.walk(compiled.tree))


# ---------------------------------------------------------------- operators and subscripts


@pytest.mark.parametrize(
    ("function", "args"),
    [
        (operator.pow, (-2, "x")),
        (operator.pow, ("x", -2)),
        (operator.neg, (-1,)),
        (operator.neg, ("x",)),
        (operator.sub, ("x", -3)),
        (operator.mul, ("x", complex(0, -2))),
        (operator.mul, ("x", complex(1, 2))),
        (operator.truediv, (-0.0, "x")),
        (operator.not_, ("x",)),
        (operator.invert, (-5,)),
        (operator.lt, (-math.inf, "x")),
    ],
)
def test_operator_precedence_survives_unparse(function: object, args: tuple[object, ...]) -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        return g.call_function(function, tuple(x if arg == "x" else arg for arg in args))  # type: ignore[arg-type]

    gm = build(body)
    compiled = check(gm, 3)
    assert_round_trip(compiled.tree)
    namespace: dict[str, Any] = {}
    exec(compiled.source, namespace)
    assert_same(namespace["forward"](3), compiled(3))


@pytest.mark.parametrize(
    "key",
    [
        -1,
        slice(None, None, -1),
        slice(1, None),
        (slice(None), 0),
        (Ellipsis, slice(0, 1)),
        (),
        (None, slice(None)),
        "key",
    ],
    ids=repr,
)
def test_subscript_keys(key: object) -> None:
    gm = build(lambda g: g.call_function(operator.getitem, (g.placeholder("x"), key)))
    data: object = torch.arange(12).reshape(3, 4)
    if key == "key":
        data = {"key": 1}
    elif key == slice(None, None, -1):
        data = list(range(5))  # tensors refuse a negative step
    compiled = check(gm, data)
    source = assert_round_trip(compiled.tree)
    if isinstance(key, slice) or (isinstance(key, tuple) and any(isinstance(k, slice) for k in key)):
        assert ":" in source and "slice(" not in source


def test_slice_outside_a_subscript_is_a_slice_call() -> None:
    gm = build(lambda g: g.call_function(identity, (slice(g.placeholder("n"), None, -1),)))
    compiled = check(gm, 2)
    assert compiled(2) == slice(2, None, -1)
    assert_round_trip(compiled.tree)


def test_starred_argument() -> None:
    gm = build_raw(lambda g: g.output(g.call_function(identity, (g.placeholder("*args"),))))
    compiled = astgen.compile_graph(gm)
    assert compiled(1, 2) == [1, 2]
    assert_round_trip(compiled.tree)


# ---------------------------------------------------------------- positions


def _all_graphs() -> list[torch.fx.GraphModule]:
    return [factory() for factory in examples.EXAMPLES.values()]


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_statement_lineno_is_its_line_in_source(name: str) -> None:
    compiled = astgen.compile_graph(examples.EXAMPLES[name]())
    lines = compiled.source.splitlines()
    *prelude, definition = compiled.tree.body
    assert isinstance(definition, ast.FunctionDef)
    assert lines[definition.lineno - 1].startswith(f"def {definition.name}(")
    for statement in prelude:
        assert lines[statement.lineno - 1] == ast.unparse(statement)
    for statement in definition.body:
        assert lines[statement.lineno - 1] == "    " + ast.unparse(statement)
        # An end position, where one is set, must not contradict the one-line statement.
        assert statement.end_lineno in (None, statement.lineno)
    assert definition.end_lineno in (None, len(lines))


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_every_node_has_a_position(name: str) -> None:
    tree = astgen.compile_graph(examples.EXAMPLES[name]()).tree
    for node in ast.walk(tree):
        if isinstance(node, (ast.expr, ast.stmt, ast.arg, ast.keyword)):
            assert isinstance(getattr(node, "lineno", None), int), ast.dump(node)


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_examples_round_trip(name: str) -> None:
    assert_round_trip(astgen.compile_graph(examples.EXAMPLES[name]()).tree)


def test_emit_uses_no_name_it_does_not_define_or_bind() -> None:
    compiled = astgen.compile_graph(examples.constants())
    fn = compiled.ir
    known = {p.value.name for p in fn.params} | {g.name for g in fn.globals}
    for instruction in fn.body:
        known |= {value.name for value in ir.defines(instruction)}
    read = {node.id for node in ast.walk(compiled.tree) if isinstance(node, ast.Name)}
    # The prelude reads the loader's two tables and the modules it imports.
    outside = {ir.PIECES_TABLE, ir.CONSTS_TABLE, "torch", "operator"}
    assert read - known - outside <= set(dir(builtins)), read - known
