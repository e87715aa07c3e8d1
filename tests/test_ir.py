"""The IR itself: one shape for every instruction, the operator tables, the printer."""

from __future__ import annotations

import typing

import pytest

from astgen import ir

X, Y, Z = ir.Value("x"), ir.Value("y"), ir.Value("z")
F = ir.Global("f", 0)
ORIGIN = ir.Origin("node")

# One of each kind, with what it defines and reads.
SAMPLES: list[tuple[ir.Instruction, tuple[ir.Value, ...], tuple[ir.Operand, ...]]] = [
    (ir.CallModule(Y, F, "sub", (X,), (("k", Z),), ORIGIN), (Y,), (F, X, Z)),
    (ir.CallModule((Y, Z), F, "sub", (X,), (), ORIGIN), (Y, Z), (F, X)),
    (ir.CallFunction(Y, ir.Builtin("len"), (X,), ()), (Y,), (ir.Builtin("len"), X)),
    (ir.CallMethod(Y, X, "size", (ir.Const(0),), (("k", Z),)), (Y,), (X, ir.Const(0), Z)),
    (ir.Operator(Y, "add", (X, Z)), (Y,), (X, Z)),
    (ir.GetAttr(Y, X, "shape"), (Y,), (X,)),
    (ir.GetItem(Y, X, ir.Const(0)), (Y,), (X, ir.Const(0))),
    (ir.Unpack((Y, Z), X), (Y, Z), (X,)),
    (ir.Delete((X,)), (), ()),
    (ir.Return(X), (), (X,)),
]


def test_samples_cover_every_instruction_kind() -> None:
    assert {type(sample) for sample, _, _ in SAMPLES} == set(typing.get_args(ir.Instruction))


@pytest.mark.parametrize(("instruction", "results", "operands"), SAMPLES)
def test_every_instruction_has_results_operands_and_origin(
    instruction: ir.Instruction, results: tuple[ir.Value, ...], operands: tuple[ir.Operand, ...]
) -> None:
    assert instruction.results == results == ir.defines(instruction)
    assert instruction.operands == operands
    assert instruction.origin in (None, ORIGIN)


def test_a_delete_carries_an_origin_like_every_other_instruction() -> None:
    assert ir.Delete((X,), ORIGIN).origin == ORIGIN


def test_an_unknown_instruction_kind_is_an_error_not_an_instruction_that_reads_nothing() -> None:
    # `instruction_operands` used to end in `return ()`: the verifier and
    # `insert_deletes` would both have seen a new kind read nothing.
    class Unknown:
        pass

    with pytest.raises(AttributeError):
        ir.uses(Unknown())  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        ir.defines(Unknown())  # type: ignore[arg-type]


def test_operator_names_its_operator_function() -> None:
    instruction = ir.Operator(Y, "not_", (X,))
    assert instruction.op == "not_" and instruction.args == (X,)
    assert not hasattr(instruction, "symbol")


def test_operator_tables_hold_symbols_without_padding() -> None:
    assert all(symbol == symbol.strip() for symbol in ir.OPERATORS.values())
    assert ir.UNARY_OPERATORS["not_"] == "not"
    assert set(ir.OPERATORS) == set(ir.BINARY_OPERATORS) | set(ir.UNARY_OPERATORS) | set(ir.COMPARE_OPERATORS)


@pytest.mark.parametrize(
    ("instruction", "text"),
    [
        (ir.Operator(Y, "not_", (X,)), "%y: ? = not %x"),
        (ir.Operator(Y, "neg", (X,)), "%y: ? = - %x"),
        (ir.Operator(Y, "sub", (X, Z)), "%y: ? = %x - %z"),
        (ir.Operator(Y, "ge", (X, Z)), "%y: ? = %x >= %z"),
    ],
)
def test_operator_printing(instruction: ir.Instruction, text: str) -> None:
    assert ir.format_instruction(instruction) == text


def test_operator_arity() -> None:
    assert [ir.operator_arity(op) for op in ("neg", "not_", "add", "eq")] == [1, 1, 2, 2]
