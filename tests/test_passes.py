"""Stage 2, passes: tuple unpacking, liveness, name hygiene, and the verifier that guards them."""

from __future__ import annotations

import ast
import operator
import unicodedata

import pytest
import torch
import torch.fx

import astgen
from astgen import examples, ir
from astgen.errors import CodegenError
from astgen.names import clean_name, is_clean_name
from astgen.passes import assign_names, insert_deletes, run_passes, unpack_tuples
from tests.helpers import build, build_raw, check

# ---------------------------------------------------------------- hand-built IR


def v(name: str, type_: ir.Type = ir.UNKNOWN) -> ir.Value:
    return ir.Value(name, type_)


def pair_type(arity: int = 2) -> ir.TupleType:
    return ir.TupleType((ir.TensorType(),) * arity)


F = ir.Global("f", 0)


def call(result: ir.Value, *args: ir.Operand) -> ir.CallFunction:
    return ir.CallFunction(result, F, args, ())


def function(params: tuple[ir.Value, ...], *body: ir.Instruction) -> ir.Function:
    return ir.Function("forward", tuple(ir.Param(p) for p in params), tuple(body), (F,))


def item(result: ir.Value, source: ir.Value, key: object) -> ir.GetItem:
    return ir.GetItem(result, source, ir.Const(key))


def tail() -> ir.CallFunction:
    """A last call before the return, so the deletes under test are not the ones right before it
    (which returning makes redundant)."""
    return call(TAIL)


TAIL = v("tail")


def deleted(body: tuple[ir.Instruction, ...]) -> list[list[str]]:
    return [[value.name for value in i.values] for i in body if isinstance(i, ir.Delete)]


def names_in(function: ir.Function) -> list[str]:
    names = [param.value.name for param in function.params]
    for instruction in function.body:
        names += [value.name for value in ir.defines(instruction)]
    return names + [g.name for g in function.globals]


# ---------------------------------------------------------------- unpack_tuples

T = v("t", pair_type(3))
A, B, C = v("a"), v("b"), v("c")


def test_unpack_all_positions() -> None:
    fn = function((T,), item(A, T, 0), item(B, T, 1), item(C, T, 2), ir.Return(ir.TupleOf((A, B, C))))
    body = ir.verify(unpack_tuples(fn)).body
    assert body[0] == ir.Unpack((A, B, C), T)
    assert not any(isinstance(i, ir.GetItem) for i in body)


def test_unpack_negative_indices() -> None:
    fn = function((T,), item(C, T, -1), item(A, T, -3), item(B, T, 1), ir.Return(ir.TupleOf((A, B, C))))
    (unpack, _) = ir.verify(unpack_tuples(fn)).body
    assert unpack == ir.Unpack((A, B, C), T)


def test_unpack_fills_unread_positions_with_fresh_values() -> None:
    fn = function((T,), item(A, T, 0), item(C, T, 2), tail(), ir.Return(ir.TupleOf((A, C, TAIL))))
    (unpack, _, _) = ir.verify(unpack_tuples(fn)).body
    assert isinstance(unpack, ir.Unpack)
    assert unpack.results[0] == A and unpack.results[2] == C
    filler = unpack.results[1]
    assert filler.name not in {"t", "a", "c", "f"} and is_clean_name(filler.name)
    # The filler is released right away.
    after = ir.verify(insert_deletes(unpack_tuples(fn))).body
    assert after[1] == ir.Delete((T, filler))


def test_unpack_sits_at_the_first_read() -> None:
    x = v("x")
    fn = function((T,), item(A, T, 0), call(x, A), item(B, T, 1), ir.Return(ir.TupleOf((x, B))))
    body = ir.verify(unpack_tuples(fn)).body
    assert isinstance(body[0], ir.Unpack) and body[1] == call(x, A) and isinstance(body[2], ir.Return)


def test_duplicate_index_is_not_unpacked() -> None:
    fn = function((T,), item(A, T, 0), item(B, T, 0), ir.Return(ir.TupleOf((A, B))))
    assert unpack_tuples(fn) == fn


def test_equivalent_duplicate_index_is_not_unpacked() -> None:
    fn = function((T,), item(A, T, 2), item(B, T, -1), ir.Return(ir.TupleOf((A, B))))
    assert unpack_tuples(fn) == fn


def test_list_is_never_unpacked() -> None:
    lst = v("l", ir.ListType((ir.TensorType(), ir.TensorType())))
    fn = function((lst,), item(A, lst, 0), item(B, lst, 1), ir.Return(ir.TupleOf((A, B))))
    assert unpack_tuples(fn) == fn


def test_unknown_arity_is_not_unpacked() -> None:
    t = v("t")
    fn = function((t,), item(A, t, 0), item(B, t, 1), ir.Return(ir.TupleOf((A, B))))
    assert unpack_tuples(fn) == fn


def test_single_read_is_not_unpacked() -> None:
    fn = function((T,), item(A, T, 0), ir.Return(A))
    assert unpack_tuples(fn) == fn


@pytest.mark.parametrize("key", [True, 1.0, "0", 3, -4, None])
def test_non_index_key_is_not_unpacked(key: object) -> None:
    fn = function((T,), item(A, T, 0), item(B, T, key), ir.Return(ir.TupleOf((A, B))))
    assert unpack_tuples(fn) == fn


def test_slice_key_is_not_unpacked() -> None:
    sliced = ir.GetItem(B, T, ir.SliceOf(ir.Const(0), ir.Const(2), ir.Const(None)))
    fn = function((T,), item(A, T, 0), sliced, ir.Return(ir.TupleOf((A, B))))
    assert unpack_tuples(fn) == fn


def test_value_key_is_not_unpacked() -> None:
    i = v("i")
    fn = function((T, i), item(A, T, 0), ir.GetItem(B, T, i), ir.Return(ir.TupleOf((A, B))))
    assert unpack_tuples(fn) == fn


def test_unpacked_graph_runs_like_the_interpreter() -> None:
    sub = build(lambda g: (g.placeholder("x"), g.placeholder("x_1"), 7))

    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        t = g.call_module("sub", (x, x))
        last = g.call_function(operator.getitem, (t, -1))
        first = g.call_function(operator.getitem, (t, 0))
        return g.call_function(operator.add, (first, last))

    compiled = check(build(body, sub=sub), 5)
    assert not any(isinstance(i, ir.GetItem) for i in compiled.ir.body)


# ---------------------------------------------------------------- insert_deletes


def test_delete_right_after_last_use() -> None:
    x, y, z = v("x"), v("y"), v("z")
    fn = function((x,), call(y, x), call(z, y), tail(), ir.Return(ir.TupleOf((z, TAIL))))
    body = ir.verify(insert_deletes(fn)).body
    assert body[:5] == (call(y, x), ir.Delete((x,)), call(z, y), ir.Delete((y,)), tail())


def test_unused_result_deleted_right_after_definition() -> None:
    x, unused, y = v("x"), v("unused"), v("y")
    fn = function((x,), call(unused, x), call(y, x), ir.Return(y))
    body = ir.verify(insert_deletes(fn)).body
    assert body[1] == ir.Delete((unused,))


def test_unused_parameter_deleted_before_first_instruction() -> None:
    x, unused, y = v("x"), v("unused"), v("y")
    fn = function((x, unused), call(y, x), ir.Return(y))
    body = ir.verify(insert_deletes(fn)).body
    assert body[0] == ir.Delete((unused,))


def test_value_read_by_return_is_never_deleted() -> None:
    x, y = v("x"), v("y")
    fn = function((x,), call(y, x), ir.Return(ir.TupleOf((x, y))))
    body = ir.verify(insert_deletes(fn)).body
    assert deleted(body) == []


def test_deletes_list_names_in_definition_order() -> None:
    x, b, a, out = v("x"), v("b"), v("a"), v("out")
    fn = function((x,), call(b, x), call(a, x), call(out, a, b), tail(), ir.Return(ir.TupleOf((out, TAIL))))
    body = ir.verify(insert_deletes(fn)).body
    assert deleted(body) == [["x"], ["b", "a"]]


def test_deletes_are_deterministic() -> None:
    gm = examples.transformer()
    first = astgen.compile_graph(gm, cache=False).source
    second = astgen.compile_graph(gm, cache=False).source
    assert first == second


def test_uses_inside_containers_extend_liveness() -> None:
    x, y, z, w = v("x"), v("y"), v("z"), v("w")
    nested = ir.DictOf(((ir.Const("k"), ir.ListOf((ir.SliceOf(ir.Const(None), x, ir.Const(None)),))),))
    fn = function((x, y), call(z, y), call(w, nested, ir.Starred(z)), tail(), ir.Return(ir.TupleOf((w, TAIL))))
    body = ir.verify(insert_deletes(fn)).body
    assert body[1] == ir.Delete((y,))
    assert body[3] == ir.Delete((x, z))


def test_insert_deletes_refuses_a_body_with_deletes() -> None:
    x, y = v("x"), v("y")
    fn = insert_deletes(function((x,), call(y, x), tail(), ir.Return(ir.TupleOf((y, TAIL)))))
    assert any(isinstance(i, ir.Delete) for i in fn.body)
    with pytest.raises(ValueError):
        insert_deletes(fn)


# ---------------------------------------------------------------- assign_names

HOSTILE = [
    "class",
    "match",
    "case",
    "_",
    "list",
    "len",
    "getattr",
    "slice",
    "print",
    "__class__",
    "__builtins__",
    "__1__",
    "__",
    "___",
    "1abc",
    "",
    "x; import os",
    "__import__('os').system('true')",
    "a-b",
    "a_b",
    "a b",
    "é",
    "ñ",
    "ﬁ",
    "fi",
    "\U0001d431",  # MATHEMATICAL BOLD SMALL X: NFKC folds it to "x"
    "x",
    "x_1",
]


def test_clean_name_accepts_ordinary_names() -> None:
    for name in ["x", "getitem_1", "submod_0", "private_", "Linear"]:
        assert is_clean_name(name) and clean_name(name) == name


@pytest.mark.parametrize("name", HOSTILE)
def test_clean_name_gives_a_clean_name(name: str) -> None:
    cleaned = clean_name(name)
    assert is_clean_name(cleaned), cleaned


@pytest.mark.parametrize(
    "name", ["class", "match", "list", "len", "__class__", "é", "x; import os", "_private", "torch", "operator"]
)
def test_is_clean_name_rejects(name: str) -> None:
    assert not is_clean_name(name)


def _hostile_function(names: list[str]) -> ir.Function:
    """Parameters and results named `names`, each result reading the one before."""
    params = (v(names[0]),)
    body: list[ir.Instruction] = []
    previous = params[0]
    for name in names[1:]:
        result = v(name)
        body.append(call(result, previous))
        previous = result
    body.append(ir.Return(previous))
    return function(params, *body)


def test_assign_names_gives_unique_clean_names() -> None:
    renamed = ir.verify(assign_names(_hostile_function(HOSTILE)))
    names = names_in(renamed)
    assert all(is_clean_name(name) for name in names), names
    assert len(set(names)) == len(names)


def test_assigned_names_stay_distinct_after_nfkc() -> None:
    renamed = assign_names(_hostile_function(HOSTILE))
    folded = [unicodedata.normalize("NFKC", name) for name in names_in(renamed)]
    assert len(set(folded)) == len(folded)


def test_renamed_code_survives_unparse_and_parse() -> None:
    fn = run_passes(_hostile_function(HOSTILE), check=True)
    tree = astgen.emit(fn)
    source = ast.unparse(tree)
    assert ast.dump(ast.parse(source)) == ast.dump(tree)
    read = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    assert "os" not in read and "__import__" not in read


def test_clean_names_are_kept() -> None:
    fn = _hostile_function(["x", "y", "submod_0"])
    assert assign_names(fn) is fn


def test_first_of_two_equal_names_keeps_its_spelling() -> None:
    renamed = assign_names(_hostile_function(["a_b", "a-b", "a b"]))
    assert names_in(renamed)[:3] == ["a_b", "a_b_1", "a_b_2"]


def test_cleaned_name_does_not_take_an_existing_name() -> None:
    # "a-b" cleans to "a_b", which a later value already has.
    renamed = assign_names(_hostile_function(["a-b", "a_b"]))
    names = names_in(renamed)
    assert names[1] == "a_b" and names[0] != "a_b"


def test_keyword_and_builtin_renamed_everywhere() -> None:
    cls, lst = v("class"), v("list")
    fn = function((cls,), call(lst, cls), ir.Return(ir.TupleOf((lst, cls))))
    renamed = ir.verify(assign_names(fn))
    returned = renamed.body[-1]
    assert isinstance(returned, ir.Return) and isinstance(returned.value, ir.TupleOf)
    assert [item.name for item in returned.value.items] == [  # type: ignore[union-attr]
        renamed.body[0].result.name,  # type: ignore[union-attr]
        renamed.params[0].value.name,
    ]
    assert names_in(renamed)[:2] == ["class_", "list_"]


def test_global_and_value_sharing_a_name_are_separated() -> None:
    w = ir.Global("w", 0)
    x, value_w = v("x"), v("w")
    fn = ir.Function("forward", (ir.Param(x),), (ir.CallFunction(value_w, w, (x,), ()), ir.Return(value_w)), (w,))
    renamed = ir.verify(assign_names(fn))
    call_ = renamed.body[0]
    assert isinstance(call_, ir.CallFunction)
    assert call_.result.name != call_.function.name  # type: ignore[union-attr]
    assert renamed.globals[0].name == call_.function.name  # type: ignore[union-attr]


def test_hostile_node_names_compile_and_run() -> None:
    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        previous = x
        for name in HOSTILE[1:]:
            previous = g.call_function(operator.add, (previous, 1))
            previous.name = name
        g.output(previous)

    gm = build_raw(body)
    compiled = check(gm, 0)
    assert compiled(0) == len(HOSTILE) - 1
    tree = ast.parse(compiled.source)
    assert ast.dump(tree) == ast.dump(compiled.tree)


def test_payload_in_node_name_is_not_executed(tmp_path: object) -> None:
    import pathlib

    marker = pathlib.Path(str(tmp_path)) / "pwned"

    def body(g: torch.fx.Graph) -> None:
        node = g.call_function(operator.neg, (g.placeholder("x"),))
        node.name = f"y = 1; open({str(marker)!r}, 'w').close(); z"
        g.output(node)

    compiled = check(build_raw(body), 3)
    assert not marker.exists()
    tree = ast.parse(compiled.source)
    assert "open" not in {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert {type(statement) for statement in tree.body[0].body} <= {ast.Assign, ast.Delete, ast.Return}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- verify


def test_verify_accepts_and_returns() -> None:
    x, y = v("x"), v("y")
    fn = function((x,), call(y, x), ir.Return(y))
    assert ir.verify(fn) is fn


def test_verify_use_after_delete() -> None:
    x, y = v("x"), v("y")
    with pytest.raises(CodegenError, match="deleted"):
        ir.verify(function((x,), ir.Delete((x,)), call(y, x), ir.Return(y)))


def test_verify_use_before_definition() -> None:
    x, y, z = v("x"), v("y"), v("z")
    with pytest.raises(CodegenError, match="before"):
        ir.verify(function((x,), call(z, y), call(y, x), ir.Return(z)))


def test_verify_double_definition() -> None:
    x, y = v("x"), v("y")
    with pytest.raises(CodegenError, match="twice"):
        ir.verify(function((x,), call(y, x), call(y, x), ir.Return(y)))


def test_verify_value_named_like_a_global() -> None:
    x = v("x")
    with pytest.raises(CodegenError, match="twice"):
        ir.verify(function((x,), call(v("f"), x), ir.Return(x)))


def test_verify_parameter_defined_twice() -> None:
    with pytest.raises(CodegenError, match="twice"):
        ir.verify(function((v("x"), v("x")), ir.Return(ir.Const(None))))


def test_verify_missing_return() -> None:
    x, y = v("x"), v("y")
    with pytest.raises(CodegenError, match="Return"):
        ir.verify(function((x,), call(y, x)))


def test_verify_empty_body() -> None:
    with pytest.raises(CodegenError, match="Return"):
        ir.verify(function(()))


def test_verify_return_not_last() -> None:
    x, y = v("x"), v("y")
    with pytest.raises(CodegenError, match="last"):
        ir.verify(function((x,), ir.Return(x), call(y, x), ir.Return(y)))


def test_verify_delete_of_dead_value() -> None:
    x = v("x")
    with pytest.raises(CodegenError, match="not live"):
        ir.verify(function((x,), ir.Delete((x,)), ir.Delete((x,)), ir.Return(ir.Const(None))))


def test_verify_unbound_global() -> None:
    x, y = v("x"), v("y")
    fn = ir.Function("forward", (ir.Param(x),), (ir.CallFunction(y, ir.Global("g", 0), (x,), ()), ir.Return(y)))
    with pytest.raises(CodegenError, match="not bound"):
        ir.verify(fn)


def test_verify_global_with_wrong_slot() -> None:
    x, y = v("x"), v("y")
    fn = function((x,), ir.CallFunction(y, ir.Global("f", 1), (x,), ()), ir.Return(y))
    with pytest.raises(CodegenError, match="not bound"):
        ir.verify(fn)


def test_verify_unpack_defines_each_result() -> None:
    fn = function((T,), ir.Unpack((A, B, A), T), ir.Return(A))
    with pytest.raises(CodegenError, match="twice"):
        ir.verify(fn)


# ---------------------------------------------------------------- every pass keeps the invariants


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_run_passes_verifies_examples(name: str) -> None:
    lowered = astgen.lower(examples.EXAMPLES[name]())
    after = run_passes(lowered.function, check=True)
    assert any(isinstance(i, ir.Delete) for i in after.body)
    assert all(is_clean_name(n) for n in names_in(after))


def test_run_passes_check_catches_broken_input() -> None:
    x, y = v("x"), v("y")
    with pytest.raises(CodegenError):
        run_passes(function((x,), call(y, x)), check=True)


def test_no_name_is_the_function_name() -> None:
    # A global named like the function would be redefined by the `def` in the module text.
    x, y = v("x"), v("forward!")
    bound = ir.Global("forward", 0)
    fn = ir.Function("forward", (ir.Param(x),), (ir.CallFunction(y, bound, (x,), ()), ir.Return(y)), (bound,))
    renamed = ir.verify(assign_names(fn))
    assert renamed.name == "forward" and "forward" not in names_in(renamed)
