"""The verifier: each instruction checks itself, and a failure is astgen's bug, said so."""

from __future__ import annotations

import enum
import math
import sys

import pytest

import astgen
from astgen import dump, ir
from astgen.errors import EXIT_INTERNAL_ERROR, CodegenError, VerifyError

F = ir.Global("f", 0)
X, Y = ir.Value("x"), ir.Value("y")
ORIGIN = ir.Origin("submod_1", 'File "model.py", line 7, in forward: z = boom(y)')


def function(*body: ir.Instruction, params: tuple[ir.Param, ...] = (ir.Param(X),)) -> ir.Function:
    return ir.Function("forward", params, body, (F,))


def refused(fn: ir.Function, match: str) -> VerifyError:
    with pytest.raises(VerifyError, match=match) as caught:
        ir.verify(fn)
    return caught.value


class Color(enum.IntEnum):
    RED = 1


# ---------------------------------------------------------------- whose fault


def test_a_verifier_failure_is_a_verify_error_carrying_the_instruction_origin() -> None:
    call = ir.CallFunction(Y, F, (ir.Value("nowhere"),), (), ORIGIN)
    error = refused(function(call, ir.Return(Y)), "before it is defined")
    assert error.origin == ORIGIN
    assert error.instruction == ir.format_instruction(call)
    assert "submod_1" in str(error) and "model.py" in str(error) and "instruction:" in str(error)


def test_a_verify_error_is_still_a_codegen_error() -> None:
    assert issubclass(VerifyError, CodegenError) and astgen.VerifyError is VerifyError


def test_dump_reports_a_verify_error_as_an_internal_error_with_its_own_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise VerifyError("IR verifier: 'x' is used before it is defined", origin=ORIGIN)

    monkeypatch.setattr(dump, "render", broken)
    assert dump.main([]) == EXIT_INTERNAL_ERROR == 3
    err = capsys.readouterr().err
    assert err.startswith("astgen.dump: internal error") and "submod_1" in err and err.count("\n") == 1


def test_dump_still_reports_bad_input_with_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bad(*args: object, **kwargs: object) -> str:
        raise CodegenError("GraphModule has no attribute 'scale'")

    monkeypatch.setattr(dump, "render", bad)
    assert dump.main([]) == 2
    assert "internal error" not in capsys.readouterr().err


# ---------------------------------------------------------------- per instruction


def test_operator_arity() -> None:
    refused(function(ir.Operator(Y, "add", (X,)), ir.Return(Y)), "takes 2 operand")
    refused(function(ir.Operator(Y, "neg", (X, X)), ir.Return(Y)), "takes 1 operand")


def test_unknown_operator() -> None:
    refused(function(ir.Operator(Y, "not ", (X,)), ir.Return(Y)), "not an operator")


def test_operators_of_the_right_arity_pass() -> None:
    ir.verify(function(ir.Operator(Y, "not_", (X,)), ir.Return(Y)))
    ir.verify(function(ir.Operator(Y, "ge", (X, X)), ir.Return(Y)))


def test_unpack_arity_against_the_tuple_type() -> None:
    t = ir.Value("t", ir.TupleType((ir.TensorType(),) * 3))
    a, b = ir.Value("a"), ir.Value("b")
    refused(function(ir.Unpack((a, b), t), ir.Return(a), params=(ir.Param(t),)), "unpacks 2 value.* tuple of 3")
    c = ir.Value("c")
    ir.verify(function(ir.Unpack((a, b, c), t), ir.Return(a), params=(ir.Param(t),)))


def test_starred_is_accepted_in_call_arguments() -> None:
    ir.verify(function(ir.CallFunction(Y, F, (ir.Starred(X),), ()), ir.Return(Y)))


@pytest.mark.parametrize(
    "instruction",
    [
        ir.CallFunction(Y, F, (), (("k", ir.Starred(X)),)),
        ir.CallFunction(Y, F, (ir.TupleOf((ir.Starred(X),)),), ()),
        ir.CallMethod(Y, ir.Starred(X), "m", (), ()),
        ir.Operator(Y, "neg", (ir.Starred(X),)),
        ir.GetItem(Y, X, ir.Starred(X)),
        ir.GetAttr(Y, ir.Starred(X), "shape"),
    ],
)
def test_starred_anywhere_else_is_refused(instruction: ir.Instruction) -> None:
    refused(function(instruction, ir.Return(Y)), "outside a call's positional arguments")


def test_starred_in_a_return_is_refused() -> None:
    refused(function(ir.Return(ir.Starred(X))), "outside a call's positional arguments")


@pytest.mark.parametrize("value", [math.nan, -math.nan, Color.RED, 10**1000, complex(math.inf, 0)])
def test_a_const_lowering_would_bind_by_reference_is_refused(value: object) -> None:
    call = ir.CallFunction(Y, F, (ir.Const(value),), ())
    refused(function(call, ir.Return(Y)), "not an exact literal")


def test_a_str_subclass_const_is_refused() -> None:
    class Sneaky(str):
        pass

    refused(function(ir.Return(ir.ListOf((ir.Const(Sneaky("x")),)))), "not an exact literal")


def test_a_huge_int_under_a_lowered_digit_limit_is_refused() -> None:
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        refused(function(ir.Return(ir.Const(10**700))), "not an exact literal")
    finally:
        sys.set_int_max_str_digits(old)


def test_a_parameter_default_is_checked_too() -> None:
    param = ir.Param(X, ir.Const(math.nan), origin=ORIGIN)
    error = refused(function(ir.Return(X), params=(param,)), "parameter 'x'.*not an exact literal")
    assert error.origin == ORIGIN


def test_exact_consts_pass() -> None:
    consts = (0, -1, 1.5, -0.0, math.inf, 2j, "s", b"b", None, True, ...)
    ir.verify(function(ir.Return(ir.TupleOf(tuple(ir.Const(value) for value in consts)))))


def test_an_empty_delete_is_refused() -> None:
    refused(function(ir.Delete(()), ir.Return(X)), "deletes nothing")


def test_every_graph_the_examples_make_verifies() -> None:
    from astgen import examples

    for make in (examples.toy, examples.constants, examples.transformer):
        gm = make()
        ir.verify(astgen.run_passes(astgen.lower(gm).function, check=True))
