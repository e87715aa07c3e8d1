"""Stage 1, lowering: each FX opcode, each kind of constant, each way a graph can be malformed."""

from __future__ import annotations

import builtins
import collections
import enum
import functools
import gc
import math
import operator
import sys
import textwrap

import pytest
import torch
import torch.fx

import astgen
from astgen import ir
from astgen.errors import CodegenError
from astgen.lower import is_exact_literal
from tests.helpers import Root, assert_same, body_of, build, build_raw, check, interpret


def identity(*args: object, **kwargs: object) -> object:
    return args[0] if len(args) == 1 and not kwargs else (args, kwargs)


Pair = collections.namedtuple("Pair", ["first", "second"])


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


# ---------------------------------------------------------------- placeholder


def test_placeholder_becomes_param_in_order() -> None:
    gm = build(lambda g: (g.placeholder("a"), g.placeholder("b")))
    params = astgen.lower(gm).function.params
    assert [param.value.name for param in params] == ["a", "b"]
    assert all(param.default is None and not param.variadic for param in params)


def test_placeholder_default_is_const() -> None:
    gm = build(lambda g: g.call_function(operator.add, (g.placeholder("x"), g.placeholder("y", default_value=3))))
    (_, y) = astgen.lower(gm).function.params
    assert y.default == ir.Const(3)
    check(gm, 1)
    check(gm, 1, 10)


def test_placeholder_default_object_is_bound_by_reference() -> None:
    gm = build(lambda g: g.placeholder("dtype", default_value=torch.float16))
    lowered = astgen.lower(gm)
    (param,) = lowered.function.params
    assert isinstance(param.default, ir.Global)
    assert lowered.bindings[param.default.slot] is torch.float16
    assert astgen.compile_graph(gm)() is torch.float16


def test_default_before_required_placeholder_is_dropped() -> None:
    # Python rejects `def f(a=1, b)`; the interpreter can never use a's default anyway.
    def body(g: torch.fx.Graph) -> None:
        g.output((g.placeholder("a", default_value=1), g.placeholder("b")))

    gm = build_raw(body)
    params = astgen.lower(gm).function.params
    assert params[0].default is None
    check(gm, 5, 6)


def test_starred_placeholder_receives_a_list_like_the_interpreter() -> None:
    def body(g: torch.fx.Graph) -> object:
        first = g.placeholder("first")
        rest = g.placeholder("*rest")
        return (first, rest)

    gm = build(body)
    params = astgen.lower(gm).function.params
    assert [param.variadic for param in params] == [False, True]
    compiled = check(gm, 1, 2, 3)
    assert compiled(1, 2, 3) == (1, [2, 3])
    check(gm, 1)


def test_placeholder_after_starred_is_keyword_only_with_default() -> None:
    def body(g: torch.fx.Graph) -> object:
        rest = g.placeholder("*rest")
        flag = g.placeholder("flag", default_value=False)
        return (rest, flag)

    compiled = astgen.compile_graph(build(body))
    assert compiled(1, 2) == ([1, 2], False)


def test_double_star_placeholder_is_codegen_error() -> None:
    gm = build(lambda g: g.placeholder("**kwargs"))
    with pytest.raises(CodegenError) as raised:
        astgen.lower(gm)
    assert "kwargs" in str(raised.value.node)


def test_two_starred_placeholders_are_codegen_error() -> None:
    gm = build(lambda g: (g.placeholder("*a"), g.placeholder("*b")), recompile=False)
    with pytest.raises(CodegenError):
        astgen.lower(gm)


# ---------------------------------------------------------------- get_attr


def test_get_attr_binds_the_object_itself() -> None:
    weight = torch.randn(3)
    gm = build(lambda g: g.get_attr("weight"), weight=weight)
    lowered = astgen.lower(gm)
    returned = lowered.function.body[-1]
    assert isinstance(returned, ir.Return) and isinstance(returned.value, ir.Global)
    assert lowered.bindings[returned.value.slot] is gm.weight
    assert astgen.compile_graph(gm)() is gm.weight


def test_get_attr_dotted_path() -> None:
    inner = Root(scale=torch.nn.Parameter(torch.ones(2)))
    gm = build(lambda g: g.call_function(torch.mul, (g.placeholder("x"), g.get_attr("inner.scale"))), inner=inner)
    check(gm, torch.arange(2.0))


def test_get_attr_in_place_update_is_seen() -> None:
    gm = build(lambda g: g.call_function(torch.add, (g.placeholder("x"), g.get_attr("bias"))), bias=torch.zeros(2))
    compiled = astgen.compile_graph(gm)
    with torch.no_grad():
        gm.bias.add_(5)
    assert torch.equal(compiled(torch.zeros(2)), torch.full((2,), 5.0))


# ---------------------------------------------------------------- call_module


def test_call_module_of_graph_module_binds_forward() -> None:
    sub = build(lambda g: g.call_function(torch.neg, (g.placeholder("x"),)))
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=sub)
    lowered = astgen.lower(gm)
    (call, _) = lowered.function.body
    assert isinstance(call, ir.CallModule) and call.target == "sub"
    bound = lowered.bindings[call.module.slot]
    assert getattr(bound, "__self__", None) is gm.sub and getattr(bound, "__func__", None) is type(gm.sub).forward
    check(gm, torch.randn(3))


def test_lowering_leaves_no_cycle_for_the_collector() -> None:
    # A stitching text lowers a graph per inlined piece: each one left in a
    # cycle waited, with its whole IR, for the collector (a sixth of the text's time).
    sub = build(lambda g: g.call_function(operator.getitem, (g.placeholder("x"), 0)))
    gm = build(lambda g: g.call_module("sub", (g.call_function(torch.neg, (g.placeholder("x"),)),)), sub=sub)
    gc.collect()
    gc.disable()
    try:
        for inline in (False, True):
            astgen.lower(gm, inline=inline)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_call_module_of_plain_module_binds_the_module() -> None:
    linear = torch.nn.Linear(2, 2)
    gm = build(lambda g: g.call_module("linear", (g.placeholder("x"),)), linear=linear)
    lowered = astgen.lower(gm)
    call = lowered.function.body[0]
    assert isinstance(call, ir.CallModule)
    assert lowered.bindings[call.module.slot] is gm.linear
    check(gm, torch.randn(4, 2))


def test_call_module_kwargs() -> None:
    sub = build(lambda g: g.call_function(torch.sub, (g.placeholder("a"), g.placeholder("b"))))
    gm = build(lambda g: g.call_module("sub", (), {"b": g.placeholder("y"), "a": g.placeholder("x")}), sub=sub)
    check(gm, torch.tensor(1.0), torch.tensor(5.0))


def test_call_module_result_type_read_off_graph_module_output() -> None:
    sub = build(lambda g: (g.placeholder("x"), g.placeholder("y")))
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"), g.placeholder("y"))), sub=sub)
    call = body_of(gm)[0]
    assert isinstance(call, ir.CallModule)
    assert isinstance(call.result.type, ir.TupleType) and len(call.result.type.elements) == 2


def test_call_module_same_target_twice() -> None:
    sub = build(lambda g: g.call_function(operator.mul, (g.placeholder("x"), 2)))

    def body(g: torch.fx.Graph) -> object:
        first = g.call_module("sub", (g.placeholder("x"),))
        return g.call_module("sub", (first,))

    check(build(body, sub=sub), 3)


# ---------------------------------------------------------------- call_function


def test_getitem_becomes_getitem() -> None:
    gm = build(lambda g: g.call_function(operator.getitem, (g.placeholder("t"), 1)))
    (item, _) = body_of(gm)
    assert isinstance(item, ir.GetItem) and item.key == ir.Const(1)
    check(gm, (4, 5))


def test_getitem_str_key() -> None:
    gm = build(lambda g: g.call_function(operator.getitem, (g.placeholder("d"), "key")))
    assert isinstance(body_of(gm)[0], ir.GetItem)
    check(gm, {"key": 7})


def test_getitem_slice_key() -> None:
    gm = build(lambda g: g.call_function(operator.getitem, (g.placeholder("x"), slice(1, None, 2))))
    (item, _) = body_of(gm)
    assert isinstance(item, ir.GetItem)
    assert item.key == ir.SliceOf(ir.Const(1), ir.Const(None), ir.Const(2))
    check(gm, torch.arange(10))


def test_getitem_node_valued_slice_bounds() -> None:
    def body(g: torch.fx.Graph) -> object:
        x, n = g.placeholder("x"), g.placeholder("n")
        return g.call_function(operator.getitem, (x, (slice(None, n), slice(n, None, 2))))

    gm = build(body)
    item = body_of(gm)[0]
    assert isinstance(item, ir.GetItem) and isinstance(item.key, ir.TupleOf)
    first = item.key.items[0]
    assert isinstance(first, ir.SliceOf) and isinstance(first.stop, ir.Value) and first.stop.name == "n"
    check(gm, torch.arange(16).reshape(4, 4), 2)


def test_getitem_with_extra_argument_is_a_plain_call() -> None:
    gm = build(lambda g: g.call_function(operator.getitem, (g.placeholder("t"), g.placeholder("i"))))
    assert isinstance(body_of(gm)[0], ir.GetItem)
    check(gm, [1, 2, 3], -1)


def test_builtins_getattr_with_str_becomes_getattr() -> None:
    gm = build(lambda g: g.call_function(builtins.getattr, (g.placeholder("x"), "shape")))
    (fetch, _) = body_of(gm)
    assert isinstance(fetch, ir.GetAttr) and fetch.attribute == "shape"
    check(gm, torch.zeros(2, 3))


def test_builtins_getattr_with_default_is_a_call() -> None:
    gm = build(lambda g: g.call_function(builtins.getattr, (g.placeholder("x"), "missing", 5)))
    (call, _) = body_of(gm)
    assert isinstance(call, ir.CallFunction)
    check(gm, torch.zeros(1))


def test_builtins_getattr_keyword_attribute_name() -> None:
    gm = build(lambda g: g.call_function(builtins.getattr, (g.placeholder("x"), "class")), recompile=False)
    check(gm, Root(**{"class": 4}))


@pytest.mark.parametrize(
    ("function", "arity", "symbol"),
    [
        (operator.add, 2, "add"),
        (operator.sub, 2, "sub"),
        (operator.mul, 2, "mul"),
        (operator.truediv, 2, "truediv"),
        (operator.floordiv, 2, "floordiv"),
        (operator.mod, 2, "mod"),
        (operator.pow, 2, "pow"),
        (operator.lshift, 2, "lshift"),
        (operator.and_, 2, "and_"),
        (operator.or_, 2, "or_"),
        (operator.xor, 2, "xor"),
        (operator.eq, 2, "eq"),
        (operator.ne, 2, "ne"),
        (operator.lt, 2, "lt"),
        (operator.ge, 2, "ge"),
        (operator.neg, 1, "neg"),
        (operator.pos, 1, "pos"),
        (operator.invert, 1, "invert"),
        (operator.not_, 1, "not_"),
    ],
)
def test_operator_function_becomes_operator(function: object, arity: int, symbol: str) -> None:
    def body(g: torch.fx.Graph) -> object:
        args = tuple(g.placeholder(f"a{index}") for index in range(arity))
        return g.call_function(function, args)  # type: ignore[arg-type]

    gm = build(body)
    (instruction, _) = body_of(gm)
    assert isinstance(instruction, ir.Operator) and instruction.op == symbol
    check(gm, *[-7, 3][:arity])


def test_operator_with_constant_operand() -> None:
    gm = build(lambda g: g.call_function(operator.pow, (-2, g.placeholder("x"))))
    check(gm, 2)


def test_operator_with_wrong_arity_is_a_call() -> None:
    gm = build(lambda g: g.call_function(operator.neg, (g.placeholder("x"), g.placeholder("y"))))
    assert isinstance(body_of(gm)[0], ir.CallFunction)


def test_matmul_operator() -> None:
    gm = build(lambda g: g.call_function(operator.matmul, (g.placeholder("a"), g.placeholder("b"))))
    check(gm, torch.eye(2), torch.arange(4.0).reshape(2, 2))


def test_other_call_function_is_bound_by_reference() -> None:
    gm = build(lambda g: g.call_function(torch.clamp, (g.placeholder("x"),), {"min": 0.0}))
    lowered = astgen.lower(gm)
    call = lowered.function.body[0]
    assert isinstance(call, ir.CallFunction)
    assert lowered.bindings[call.function.slot] is torch.clamp
    assert call.kwargs == (("min", ir.Const(0.0)),)
    check(gm, torch.randn(5))


def test_aten_overload_call() -> None:
    gm = build(lambda g: g.call_function(torch.ops.aten.add.Tensor, (g.placeholder("x"), g.placeholder("y"))))
    check(gm, torch.ones(2), torch.ones(2))


def test_same_callable_bound_once() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        return g.call_function(torch.relu, (g.call_function(torch.relu, (x,)),))

    assert len(astgen.lower(build(body)).bindings) == 1


# ---------------------------------------------------------------- call_method and output


def test_call_method() -> None:
    gm = build(lambda g: g.call_method("view", (g.placeholder("x"), 2, -1)))
    (call, _) = body_of(gm)
    assert isinstance(call, ir.CallMethod) and call.method == "view"
    assert call.args == (ir.Const(2), ir.Const(-1))
    check(gm, torch.arange(6))


def test_call_method_kwargs() -> None:
    gm = build(lambda g: g.call_method("sum", (g.placeholder("x"),), {"dim": 0, "keepdim": True}))
    check(gm, torch.ones(3, 2))


def test_call_method_without_receiver_is_codegen_error() -> None:
    gm = build(lambda g: g.call_method("sum", ()), recompile=False)
    with pytest.raises(CodegenError):
        astgen.lower(gm)


def test_output_returns_structure() -> None:
    gm = build(lambda g: {"a": [g.placeholder("x")], "b": (1, None)})
    returned = body_of(gm)[-1]
    assert isinstance(returned, ir.Return) and isinstance(returned.value, ir.DictOf)
    check(gm, torch.ones(1))


def test_zero_input_graph() -> None:
    gm = build(lambda g: g.call_function(torch.zeros, (2,)))
    assert astgen.lower(gm).function.params == ()
    check(gm)


# ---------------------------------------------------------------- constants

LITERALS = [
    math.inf,
    -math.inf,
    -0.0,
    0.0,
    1.5,
    -1.5,
    5e-324,
    complex(1, 2),
    complex(0, -2),
    complex(-1.5, 0),
    0j,
    b"\x00\xff'\"",
    'it\'s "quoted"\n',
    "",
    -7,
    10**999,
    -(10**999),
    True,
    False,
    None,
    ...,
]

BOUND = [
    math.nan,
    -math.nan,
    complex(math.nan, 0),
    complex(math.inf, 1),
    complex(-0.0, 1),
    complex(1, -0.0),
    10**1000,
    -(10**1000),
    Color.RED,
    Text("x"),
    torch.float32,
    torch.device("cpu"),
    torch.device("cuda", 1),
    torch.contiguous_format,
    object(),
    lambda value: value,
    torch.randn(2),
]


@pytest.mark.parametrize("value", LITERALS, ids=repr)
def test_literal_becomes_const(value: object) -> None:
    assert is_exact_literal(value)
    gm = build(lambda g: g.call_function(identity, (value,)))
    call = body_of(gm)[0]
    assert isinstance(call, ir.CallFunction) and call.args == (ir.Const(value),)
    assert_same(astgen.compile_graph(gm)(), value)


@pytest.mark.parametrize("value", BOUND, ids=[f"{index}-{type(value).__name__}" for index, value in enumerate(BOUND)])
def test_non_literal_is_bound_by_reference(value: object) -> None:
    assert not is_exact_literal(value)
    gm = build(lambda g: g.call_function(identity, (value,)), recompile=False)
    lowered = astgen.lower(gm)
    call = lowered.function.body[0]
    assert isinstance(call, ir.CallFunction)
    (argument,) = call.args
    assert isinstance(argument, ir.Global)
    assert lowered.bindings[argument.slot] is value
    assert astgen.compile_graph(gm)() is value


@pytest.mark.parametrize("value", [len, builtins.list, abs])
def test_builtin_is_read_by_its_own_name(value: object) -> None:
    gm = build(lambda g: g.call_function(identity, (value,)), recompile=False)
    call = body_of(gm)[0]
    assert isinstance(call, ir.CallFunction) and call.args == (ir.Builtin(value.__name__),)  # type: ignore[attr-defined]
    assert astgen.compile_graph(gm)() is value


def test_object_named_like_a_builtin_is_bound() -> None:
    def len(value: object) -> int:
        return -1

    gm = build(lambda g: g.call_function(len, (g.placeholder("x"),)))
    call = body_of(gm)[0]
    assert isinstance(call, ir.CallFunction) and isinstance(call.function, ir.Global)
    assert astgen.compile_graph(gm)([1, 2]) == -1


def test_returned_constant_keeps_its_sign() -> None:
    gm = build(lambda g: (-0.0, complex(0, -2), -math.inf))
    assert_same(astgen.compile_graph(gm)(), (-0.0, complex(0, -2), -math.inf))


def test_nested_containers_are_rebuilt_around_nodes() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        return g.call_function(identity, ((x, [1, (x, {"k": x, 2: [None]})]),))

    gm = build(body)
    call = body_of(gm)[0]
    assert isinstance(call, ir.CallFunction)
    (argument,) = call.args
    assert isinstance(argument, ir.TupleOf) and isinstance(argument.items[1], ir.ListOf)
    check(gm, torch.ones(1))


def test_constant_containers_are_fresh_each_call() -> None:
    gm = build(lambda g: g.call_function(identity, ([1, 2],)))
    compiled = astgen.compile_graph(gm)
    first = compiled()
    first.append(3)
    assert compiled() == [1, 2]


def test_namedtuple_is_rebuilt_with_its_class() -> None:
    gm = build(lambda g: g.call_function(identity, (Pair(g.placeholder("x"), 2),)))
    call = body_of(gm)[0]
    assert isinstance(call, ir.CallFunction) and isinstance(call.args[0], ir.NamedTupleOf)
    result = check(gm, 1)(1)
    assert type(result) is Pair and result == Pair(1, 2)


def test_constant_slice_and_dtype_and_device_arguments() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        cast = g.call_method("to", (x,), {"dtype": torch.float64, "device": torch.device("cpu")})
        return g.call_function(operator.getitem, (cast, (slice(None), slice(0, 2))))

    check(build(body), torch.randn(3, 4))


def test_same_object_bound_once_in_two_places() -> None:
    marker = object()
    gm = build(lambda g: g.call_function(identity, ((marker, marker),)), recompile=False)
    assert astgen.lower(gm).bindings.count(marker) == 1


def test_duplicate_node_names_get_distinct_values() -> None:
    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        first = g.call_function(operator.add, (x, 1))
        second = g.call_function(operator.mul, (first, 10))
        first.name = second.name = "x"
        g.output((first, second))

    gm = build_raw(body)
    names = [value.name for i in astgen.lower(gm).function.body for value in ir.defines(i)]
    assert len(set(names)) == len(names) == 2 and "x" not in names
    assert check(gm, 2)(2) == (3, 30)


def test_duplicate_get_attr_names_bind_distinct_objects() -> None:
    def body(g: torch.fx.Graph) -> None:
        a = g.get_attr("a")
        b = g.get_attr("b")
        a.name = b.name = "w"
        g.output((a, b))

    gm = build_raw(body, a=torch.zeros(1), b=torch.ones(1))
    first, second = astgen.compile_graph(gm)()
    assert first is gm.a and second is gm.b


def test_get_attr_named_like_an_earlier_value() -> None:
    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        w = g.get_attr("w")
        w.name = "x"
        g.output(g.call_function(operator.add, (x, w)))

    check(build_raw(body, w=torch.ones(1)), torch.zeros(1))


# ---------------------------------------------------------------- errors


def _raises_codegen_error(gm: torch.fx.GraphModule) -> CodegenError:
    with pytest.raises(CodegenError) as raised:
        astgen.compile_graph(gm)
    return raised.value


def test_missing_submodule() -> None:
    def body(g: torch.fx.Graph) -> None:
        g.output(g.create_node("call_module", "nope", (g.placeholder("x"),)))

    error = _raises_codegen_error(build_raw(body))
    assert "nope" in str(error) and error.node is not None and "call_module" in error.node


def test_submodule_not_callable() -> None:
    gm = build_raw(lambda g: g.output(g.create_node("call_module", "value", ())), value=torch.ones(1))
    error = _raises_codegen_error(gm)
    assert error.node is not None and "value" in error.node


def test_missing_get_attr_target() -> None:
    def body(g: torch.fx.Graph) -> None:
        g.output(g.create_node("get_attr", "a.b"))

    error = _raises_codegen_error(build_raw(body, a=Root()))
    assert "a.b" in str(error) and error.node is not None and "get_attr" in error.node


def test_non_callable_call_function_target() -> None:
    def body(g: torch.fx.Graph) -> None:
        node = g.call_function(abs, (g.placeholder("x"),))
        node.target = 3
        g.output(node)

    error = _raises_codegen_error(build_raw(body))
    assert "not callable" in str(error) and error.node is not None


def test_unknown_opcode() -> None:
    def body(g: torch.fx.Graph) -> None:
        node = g.call_function(abs, (g.placeholder("x"),))
        node.op = "call_weird"
        g.output(node)

    error = _raises_codegen_error(build_raw(body))
    assert "call_weird" in str(error) and error.node is not None and "call_weird" in error.node


def test_two_outputs() -> None:
    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        g.output(x)
        g.output(x)

    error = _raises_codegen_error(build_raw(body))
    assert error.node is not None and "return" in error.node


def test_node_after_output() -> None:
    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        out = g.output(x)
        with g.inserting_after(out):
            g.call_function(abs, (x,), name="late")

    error = _raises_codegen_error(build_raw(body))
    assert error.node is not None and "late" in error.node


def test_no_output() -> None:
    error = _raises_codegen_error(build_raw(lambda g: g.placeholder("x") and None))
    assert "output" in str(error)


def test_argument_from_another_graph() -> None:
    other = torch.fx.Graph()
    foreign = other.placeholder("foreign")

    def body(g: torch.fx.Graph) -> None:
        g.output(g.call_function(operator.add, (g.placeholder("x"), foreign), name="mixed"))

    error = _raises_codegen_error(build_raw(body))
    assert "foreign" in str(error) and error.node is not None and "mixed" in error.node


def test_use_before_definition() -> None:
    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        first = g.call_function(abs, (x,), name="first")
        second = g.call_function(operator.neg, (first,), name="second")
        first.prepend(second)  # `second` now runs before the value it reads
        g.output(second)

    error = _raises_codegen_error(build_raw(body))
    assert "first" in str(error) and error.node is not None and "second" in error.node


def test_non_string_kwarg_name() -> None:
    def body(g: torch.fx.Graph) -> None:
        node = g.call_function(identity, (g.placeholder("x"),))
        node.kwargs = {1: 2}  # type: ignore[dict-item]
        g.output(node)

    _raises_codegen_error(build_raw(body))


def test_codegen_error_is_no_assertion_name_or_syntax_error() -> None:
    assert not issubclass(CodegenError, (AssertionError, NameError, SyntaxError))


def test_not_a_graph_module_is_type_error_naming_the_next_step() -> None:
    linear = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"got Linear; trace it to one first: torch\.fx\.symbolic_trace"):
        astgen.lower(linear)  # type: ignore[arg-type]
    program = torch.export.export(linear, (torch.randn(1, 2),))
    with pytest.raises(TypeError, match=r"got ExportedProgram; its \.module\(\) is the GraphModule it runs"):
        astgen.compile_graph(program)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got int$"):
        astgen.lower(3)  # type: ignore[arg-type]
    # What each hint says works:
    astgen.compile_graph(torch.fx.symbolic_trace(linear))
    astgen.compile_graph(program.module())


def test_unknown_submodules_name_rejected() -> None:
    gm = build(lambda g: g.placeholder("x"))
    with pytest.raises(ValueError, match="nope"):
        astgen.lower(gm, {"nope": abs})


# ---------------------------------------------------------------- user source lines


class Traced(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        doubled = x * 2  # the user line for `mul`
        return self.inner(doubled)


def _traced_with_stack_traces() -> torch.fx.GraphModule:
    tracer = torch.fx.Tracer()
    tracer.record_stack_traces = True
    model = Traced()
    return torch.fx.GraphModule(model, tracer.trace(model))


def test_source_line_from_traced_stack_trace() -> None:
    gm = _traced_with_stack_traces()
    mul = next(node for node in gm.graph.nodes if node.op == "call_function")
    assert mul.stack_trace
    mul.target = "not callable"
    error = _raises_codegen_error(gm)
    assert error.source_line is not None
    assert "doubled = x * 2" in error.source_line and __file__ in error.source_line


def test_source_line_of_call_module_from_traced_stack_trace() -> None:
    gm = _traced_with_stack_traces()
    del gm.inner
    error = _raises_codegen_error(gm)
    assert error.source_line is not None and "self.inner(doubled)" in error.source_line


def test_source_line_from_hand_set_stack_trace() -> None:
    def body(g: torch.fx.Graph) -> None:
        node = g.create_node("get_attr", "missing")
        node.stack_trace = textwrap.dedent(
            """\
            File "model.py", line 10, in forward
                y = self.outer(x)
            File "layers.py", line 42, in forward
                return self.missing
            """
        )
        g.output(node)

    error = _raises_codegen_error(build_raw(body))
    assert error.source_line is not None
    assert 'layers.py", line 42' in error.source_line and "return self.missing" in error.source_line


def test_no_stack_trace_gives_no_source_line() -> None:
    error = _raises_codegen_error(build_raw(lambda g: g.output(g.create_node("get_attr", "missing"))))
    assert error.source_line is None and error.node is not None


def test_origin_records_node_and_source_line() -> None:
    gm = _traced_with_stack_traces()
    call = next(i for i in astgen.lower(gm).function.body if isinstance(i, ir.Operator))
    assert call.origin is not None and call.origin.node == "mul"
    assert call.origin.source_line is not None and "doubled = x * 2" in call.origin.source_line


# ---------------------------------------------------------------- types


def test_types_from_meta_val() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        x.meta["val"] = torch.empty(2, 3, dtype=torch.float16)
        n = g.placeholder("n")
        n.meta["val"] = 4
        pair = g.call_function(identity, ((x, n),))
        pair.meta["val"] = (torch.empty(1), [torch.empty(1), 2])
        return pair

    function = astgen.lower(build(body)).function
    assert function.params[0].value.type == ir.TensorType("float16", (2, 3))
    assert function.params[1].value.type == ir.IntType()
    result = function.body[0]
    assert isinstance(result, ir.CallFunction)
    assert isinstance(result.result.type, ir.TupleType)
    assert isinstance(result.result.type.elements[1], ir.ListType)


def test_symint_type_from_dynamic_export() -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x.shape[0]

    exported = torch.export.export(
        Model(), (torch.ones(3),), dynamic_shapes={"x": {0: torch.export.Dim("n", min=2, max=64)}}
    )
    function = astgen.lower(exported.graph_module).function
    (x,) = (param.value for param in function.params)
    assert isinstance(x.type, ir.TensorType) and isinstance(x.type.shape, tuple) and isinstance(x.type.shape[0], str)
    assert any(value.type == ir.IntType(True) for i in function.body for value in i.results)
    gm = exported.graph_module
    assert_same(astgen.compile_graph(gm)(torch.arange(5.0)), interpret(gm, torch.arange(5.0)))


# ---------------------------------------------------------------- unpacking while lowering


def _tuple_graph(readers: list[tuple[str, int]], *, arity: int = 3, extra_user: bool = False) -> torch.fx.GraphModule:
    """`t = sub(x)` typed as a tuple of `arity` tensors, read by getitem nodes named and indexed as given."""

    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        t = g.call_module("sub", (x,))
        t.meta["val"] = tuple(torch.empty(2) for _ in range(arity))
        reads = []
        for name, index in readers:
            read = g.call_function(operator.getitem, (t, index))
            read.name = name
            reads.append(read)
        return (*reads, t) if extra_user else tuple(reads)

    return build(body, recompile=False, sub=_Triple())


class _Triple(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x, x + 1, x * 2)


def _without_lowering_unpack(monkeypatch: pytest.MonkeyPatch, gm: torch.fx.GraphModule) -> str:
    lowering = sys.modules["astgen.lower"]  # `astgen.lower` is the function
    with monkeypatch.context() as patched:
        patched.setattr(lowering, "_read_positions", lambda node, arity: None)
        return astgen.compile_graph(gm, cache=False).source


@pytest.mark.parametrize(
    ("readers", "extra_user"),
    [
        ([("a", 0), ("b", 1), ("c", 2)], False),
        ([("a", 0), ("c", 2)], False),  # position 1 unread: a name of its own
        ([("a", -1), ("b", 0)], False),
        ([("a", 0), ("b", 0)], False),  # one position read twice: left to GetItems
        ([("a", 0)], False),  # one read: left as is
        ([("a", 0), ("b", 1)], True),  # the tuple is used whole too: an Unpack, by the pass
        ([("t_1", 0), ("t", 2)], False),  # names that collide with the filler's and the call's
        ([("a", 0), ("a", 1)], False),  # duplicate node names
    ],
)
def test_lowering_unpacks_exactly_as_the_pass_would(
    monkeypatch: pytest.MonkeyPatch, readers: list[tuple[str, int]], extra_user: bool
) -> None:
    gm = _tuple_graph(readers, extra_user=extra_user)
    source = astgen.compile_graph(gm, cache=False).source
    assert source == _without_lowering_unpack(monkeypatch, gm)
    check(gm, torch.ones(2))


def test_lowering_unpacks_a_fully_read_tuple_without_getitems() -> None:
    function = astgen.lower(_tuple_graph([("a", 0), ("c", 2)])).function
    ir.verify(function)
    (call,) = [i for i in function.body if isinstance(i, ir.CallModule)]
    assert isinstance(call.result, tuple) and [v.name for v in call.result][::2] == ["a", "c"]
    assert not any(isinstance(i, ir.GetItem) for i in function.body)


@pytest.mark.parametrize("unused", [False, True])
def test_lowering_unpacks_stitching_graphs_as_the_pass_would(monkeypatch: pytest.MonkeyPatch, unused: bool) -> None:
    from benchmarks import graphs

    gm = graphs.build(3, graphs.trivial, unused=unused).gm
    assert astgen.compile_graph(gm, cache=False).source == _without_lowering_unpack(monkeypatch, gm)


# ---------------------------------------------------------------- pieces that are class instances


class Backend:
    """A piece as vLLM's `PiecewiseBackend` is one: a plain class whose `__call__` is a Python function."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * 2


class DerivedBackend(Backend):
    pass


class GuardedBackend:
    """Every attribute read through the instance raises: an implicit call reads none."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * 3

    def __getattribute__(self, name: str) -> object:
        raise AttributeError(name)

    def __getattr__(self, name: str) -> object:
        raise AttributeError(name)


def _compiled(piece: object) -> astgen.CompiledGraph:
    """A graph calling `piece`, as a compiler hands astgen its compiled pieces (`submodules=`),
    checked against calling `piece` itself."""
    gm = build(lambda g: g.call_module("piece", (g.placeholder("x"),)), piece=torch.nn.Identity())
    compiled = astgen.compile_graph(gm, {"piece": piece}, cache=False)
    assert_same(compiled.fn(torch.ones(2)), piece(torch.ones(2)))  # type: ignore[operator]
    return compiled


def _bound_piece(compiled: astgen.CompiledGraph) -> object:
    return compiled.fn.__globals__["piece_fn"]


@pytest.mark.parametrize("cls", [Backend, DerivedBackend])
def test_a_class_instance_piece_is_bound_to_its_types_call(cls: type[Backend]) -> None:
    piece = cls()
    compiled = _compiled(piece)
    bound = _bound_piece(compiled)
    assert bound.__self__ is piece and bound.__func__ is Backend.__call__  # type: ignore[attr-defined]
    compiled(torch.ones(2))
    assert piece.calls == 3  # `_compiled`'s two calls, then this one


def test_an_instance_attribute_named_call_is_ignored_as_python_ignores_it() -> None:
    piece = Backend()
    piece.__call__ = lambda x: x * 100  # type: ignore[method-assign]
    compiled = _compiled(piece)
    assert torch.equal(compiled(torch.ones(2)), torch.full((2,), 2.0))
    assert _bound_piece(compiled).__func__ is Backend.__call__  # type: ignore[attr-defined]


def test_getattr_and_getattribute_play_no_part_in_the_call_or_its_binding() -> None:
    compiled = _compiled(GuardedBackend())
    assert _bound_piece(compiled).__func__ is GuardedBackend.__call__  # type: ignore[attr-defined]


class StaticCall:
    @staticmethod
    def __call__(x: torch.Tensor) -> torch.Tensor:
        return x + 1


class ClassCall:
    @classmethod
    def __call__(cls, x: torch.Tensor) -> torch.Tensor:
        return x + 2


class Doubler:
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class ObjectCall:
    """`__call__` is a callable object, no function: calling an instance calls it, unbound."""

    __call__ = Doubler()


class PartialCall:
    def add(self, x: torch.Tensor, y: float) -> torch.Tensor:
        return x + y

    __call__ = functools.partialmethod(add, y=3.0)


class Constructed:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Constructed) and torch.equal(self.x, other.x)


NOT_BOUND = {
    "staticmethod": StaticCall(),
    "classmethod": ClassCall(),
    "callable object": ObjectCall(),
    "partialmethod": PartialCall(),
    "class": Constructed,
    "function": torch.neg,
    "partial": functools.partial(torch.add, other=1),
    "bound method": Backend().__call__,
    "nn.Module": torch.nn.Identity(),
}


@pytest.mark.parametrize("name", sorted(NOT_BOUND))
def test_other_callables_are_called_as_themselves(name: str) -> None:
    piece = NOT_BOUND[name]
    assert _bound_piece(_compiled(piece)) is piece


def test_a_later_call_on_the_class_is_not_seen_as_a_recompile_is_not() -> None:
    class Swapped(Backend):
        pass

    piece = Swapped()
    compiled = _compiled(piece)
    Swapped.__call__ = lambda self, x: x * 100  # type: ignore[method-assign]
    assert torch.equal(piece(torch.ones(2)), torch.full((2,), 100.0))
    assert torch.equal(compiled(torch.ones(2)), torch.full((2,), 2.0))


def test_an_error_in_a_bound_call_carries_the_generated_line() -> None:
    class Failing:
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("piece failed")

    gm = build(lambda g: g.call_module("piece", (g.placeholder("x"),)), piece=torch.nn.Identity())
    compiled = astgen.compile_graph(gm, {"piece": Failing()}, cache=False)
    with pytest.raises(RuntimeError, match="piece failed") as raised:
        compiled(torch.ones(2))
    assert any("raised by FX node 'piece'" in note for note in raised.value.__notes__)


def test_a_loaded_artifact_binds_class_instance_pieces_the_same_way() -> None:
    piece = Backend()
    fn = astgen.load(_compiled(piece).artifact(), {"piece": piece})
    assert fn.__globals__["piece_fn"].__self__ is piece
    assert torch.equal(fn(torch.ones(2)), torch.full((2,), 2.0))
