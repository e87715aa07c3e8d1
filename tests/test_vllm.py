"""The vLLM drop-in: vLLM's codegen contract of today, from the behaviours its own tests describe.

vLLM's `tests/compile/test_codegen.py` traces functions with `make_fx`, splits
them at aten ops, and checks what `generate_execution_code` returns and what
`compile_execution_fn` rebuilds from it. The cases here follow those
behaviours (written anew), then add what its generator gets wrong.
"""

from __future__ import annotations

import gc
import math
import operator
import textwrap
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.fx
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from astgen.errors import CodegenError
from astgen.vllm import compile_execution_fn, generate_execution_code, generate_execution_code_with_name
from tests.helpers import assert_same, build, build_raw, example, interpret, split_at, tuple_read_out_of_order


def trace_and_split(model: Callable[..., torch.Tensor], x: torch.Tensor, at: set[object]) -> torch.fx.GraphModule:
    """`make_fx` to an aten graph, split with each op in `at` in a piece of its own, as vLLM splits."""
    gm = make_fx(model)(x)
    return split_at(gm, lambda node: node.op == "call_function" and node.target in at)


class Compiled(nn.Module):
    """What vLLM puts in place of a compiled piece: a module that is not a GraphModule."""

    def __init__(self, piece: torch.fx.GraphModule) -> None:
        super().__init__()
        self.piece = piece
        self.calls = 0

    def forward(self, *args: Any) -> Any:
        self.calls += 1
        return self.piece(*args)


def compile_pieces(split_gm: torch.fx.GraphModule, names: list[str]) -> dict[str, Compiled]:
    """Replace the pieces `names` of `split_gm` by `Compiled` wrappers, as vLLM's backend does."""
    wrappers = {}
    for name in names:
        wrappers[name] = Compiled(getattr(split_gm, name))
        del split_gm._modules[name]
        split_gm.add_module(name, wrappers[name])
    return wrappers


def drop_in(gm: torch.fx.GraphModule) -> Any:
    code, names, consts = generate_execution_code(gm)
    return compile_execution_fn(code, {name: gm.get_submodule(name) for name in names}, names, consts)


def to_copy(x: torch.Tensor) -> torch.Tensor:
    return x.to(device=torch.device("cpu"), dtype=torch.float16)


def empty_like(x: torch.Tensor) -> torch.Tensor:
    buffer = torch.empty(x.shape, device=torch.device("cpu"), dtype=torch.float16)
    return buffer.fill_(0).add(x.to(dtype=torch.float16))


X = torch.arange(6.0).reshape(2, 3) - 2


# ---------------------------------------------------------------- the contract


def test_generate_returns_code_names_and_consts() -> None:
    code, names, consts = generate_execution_code(trace_and_split(to_copy, X, set()))
    assert isinstance(code, str) and isinstance(names, list) and isinstance(consts, list)


@pytest.mark.parametrize("model", [to_copy, empty_like])
def test_device_and_dtype_travel_as_consts(model: Callable[[torch.Tensor], torch.Tensor]) -> None:
    code, names, consts = generate_execution_code(trace_and_split(model, X, set()))
    assert "device(type=" not in code
    assert torch.device("cpu") in consts and torch.float16 in consts
    assert_same(compile_execution_fn(code, {}, names, consts)(X), model(X))


def test_one_dtype_is_one_const() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype=torch.float16) + (x * 2).to(dtype=torch.float16)

    split_gm = trace_and_split(model, X, set())
    copies = [n for n in split_gm.submod_0.graph.nodes if n.target is torch.ops.aten._to_copy.default]
    assert len(copies) == 2
    code, names, consts = generate_execution_code(split_gm)
    assert consts.count(torch.float16) == 1
    assert_same(compile_execution_fn(code, {}, names, consts)(X), model(X))


def test_distinct_dtypes_are_distinct_consts() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype=torch.float16) + x.to(dtype=torch.bfloat16)

    _, _, consts = generate_execution_code(trace_and_split(model, X, set()))
    assert consts == [torch.float16, torch.bfloat16]


def test_text_and_consts_are_the_same_for_two_traces() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.to(device=torch.device("cpu"), dtype=torch.float16).to(dtype=torch.bfloat16)

    first = generate_execution_code(trace_and_split(model, X, set()))
    second = generate_execution_code(trace_and_split(model, X, set()))
    assert len(first[2]) >= 2
    assert first == second


def test_primitive_only_graph_has_no_consts() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.transpose(x, 0, 1).relu()

    code, names, consts = generate_execution_code(trace_and_split(model, X, set()))
    assert consts == []
    # The ops are named in the text: an OpOverload does not pickle.
    assert "torch.ops.aten.transpose.int" in code
    assert_same(compile_execution_fn(code, {}, names, consts)(X), model(X))


def test_a_const_is_shared_by_the_inlined_pieces_that_read_it() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        a = x.to(dtype=torch.float16)
        b = a.relu()
        return b.to(dtype=torch.float32).to(dtype=torch.float16) + 1

    split_gm = trace_and_split(model, X, {torch.ops.aten.relu.default})
    assert len(list(split_gm.named_children())) == 3
    code, names, consts = generate_execution_code(split_gm)
    # vLLM lists every piece, the inlined ones too; each inlined piece is a def of its own.
    assert consts.count(torch.float16) == 1 and names == ["submod_0", "submod_1", "submod_2"]
    assert code.count("def __vllm_inlined_submods__") == 3
    assert_same(compile_execution_fn(code, {}, names, consts)(X), model(X))


def test_graph_module_children_are_inlined_and_need_no_callable() -> None:
    split_gm = trace_and_split(lambda x: x.relu().sigmoid(), X, {torch.ops.aten.relu.default})
    code, names, consts = generate_execution_code(split_gm)
    assert "__vllm_submods__[" not in code and "def __vllm_inlined_submods__0(" in code
    assert_same(compile_execution_fn(code, {}, names, consts)(X), X.relu().sigmoid())


def test_other_children_are_called_through_the_given_callables() -> None:
    split_gm = trace_and_split(lambda x: x.relu().sigmoid(), X, {torch.ops.aten.relu.default})
    first = next(name for name, _ in split_gm.named_children())
    wrappers = compile_pieces(split_gm, [first])
    code, names, consts = generate_execution_code(split_gm)
    # In call order, the inlined pieces too.
    calls = [node.target for node in split_gm.graph.find_nodes(op="call_module")]
    assert names == calls and names[0] == first and "__vllm_submods__[0](" in code
    # vLLM hands over every child, inlined ones too.
    callables = {name: getattr(split_gm, name) for name, _ in split_gm.named_children()}
    fn = compile_execution_fn(code, callables, names, consts)
    assert_same(fn(X), X.relu().sigmoid())
    assert wrappers[first].calls == 1


def test_legacy_text_without_consts() -> None:
    legacy = "import torch\ndef execution_fn(x, *, __vllm_submods__):\n    return __vllm_submods__[0](x) + 1\n"

    class AddOne(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    fn = compile_execution_fn(legacy, {"sub": AddOne()}, ["sub"], consts=None)
    assert_same(fn(torch.zeros(3)), torch.full((3,), 2.0))


def test_seed_text_with_deletes_loads() -> None:
    # What the seed generator wrote: no consts, a `del` after a last use.
    seed = textwrap.dedent(
        """\
        import torch
        def execution_fn(x, y, *, __vllm_submods__):
            submod_0 = __vllm_submods__[0](x)
            getitem = submod_0[0]
            getitem_1 = submod_0[1]
            del submod_0
            submod_1 = __vllm_submods__[1](getitem, y)
            del getitem, y
            return (submod_1, getitem_1)
        """
    )
    fn = compile_execution_fn(seed, {"a": lambda x: (x + 1, x * 2), "b": operator.sub}, ["a", "b"])
    assert fn(3, 1) == (3, 6)


def test_vllm_text_of_today_loads() -> None:
    # vLLM's own generator output for an inlined piece and a compiled one.
    today = textwrap.dedent(
        """\
        import torch
        import operator

        def __vllm_inlined_submods__0(x):
            _to_copy = torch.ops.aten._to_copy.default(x, dtype=__vllm_consts__[0], device=__vllm_consts__[1])
            return (_to_copy,)

        def execution_fn(x, *, __vllm_submods__):
            submod_0 = __vllm_inlined_submods__0(x)
            getitem = submod_0[0]
            submod_1 = __vllm_submods__[1](getitem)
            del getitem
            return submod_1
        """
    )
    fn = compile_execution_fn(
        today, {"submod_1": torch.relu}, ["submod_0", "submod_1"], [torch.float16, torch.device("cpu")]
    )
    assert_same(fn(X), X.to(torch.float16).relu())


def test_a_piece_called_at_two_sites_gets_the_given_callable_at_both() -> None:
    def body(g: torch.fx.Graph) -> object:
        once = g.call_module("sub", (g.placeholder("x"),))
        return g.call_module("sub", (once,))

    gm = build(body, sub=nn.Identity())
    code, names, consts = generate_execution_code(gm)
    calls: list[int] = []
    fn = compile_execution_fn(code, {"sub": lambda v: calls.append(v) or v + 1}, names, consts)
    assert fn(1) == 3 and calls == [1, 2]


def test_one_text_many_callable_sets() -> None:
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=nn.Identity())
    code, names, consts = generate_execution_code(gm)
    double = compile_execution_fn(code, {"sub": lambda x: x * 2}, names, consts)
    triple = compile_execution_fn(code, {"sub": lambda x: x * 3}, names, consts)
    assert double(5) == 10 and triple(5) == 15


def test_two_graphs_with_one_text_run_their_own_consts() -> None:
    def graph(weight: torch.Tensor) -> torch.fx.GraphModule:
        return build(
            lambda g: g.call_module("sub", (g.placeholder("x"), g.get_attr("w"))),
            sub=Compiled(build(lambda g: g.call_function(torch.mul, (g.placeholder("x"), g.placeholder("w"))))),
            w=weight,
        )

    first, second = graph(torch.full((1,), 2.0)), graph(torch.full((1,), 3.0))
    first_code, names, first_consts = generate_execution_code(first)
    second_code, _, second_consts = generate_execution_code(second)
    assert first_code == second_code
    x = torch.ones(1)
    # Swapped: each text run with the other graph's consts computes the other graph.
    for gm, consts in ((first, first_consts), (second, second_consts), (first, second_consts)):
        fn = compile_execution_fn(first_code, {"sub": gm.sub}, names, consts)
        assert_same(fn(x), torch.mul(x, consts[0]))


def test_with_submod_false_refuses_call_module() -> None:
    gm = build(lambda g: g.call_module("inner", (g.placeholder("x"),)), inner=nn.Identity())
    with pytest.raises(RuntimeError, match="call_module is not allowed"):
        generate_execution_code_with_name(gm, "f", with_submod=False)


def test_consts_shared_across_calls_continue_their_numbering() -> None:
    consts: list[Any] = []
    index: dict[int, int] = {}
    first = trace_and_split(lambda x: x.to(dtype=torch.float16), X, set()).submod_0
    second = trace_and_split(lambda x: x.to(dtype=torch.bfloat16) + x.to(dtype=torch.float16), X, set()).submod_0
    generate_execution_code_with_name(first, "f", with_submod=False, consts=consts, const_index=index)
    code, _, shared = generate_execution_code_with_name(
        second, "g", with_submod=False, consts=consts, const_index=index
    )
    assert shared is consts and consts == [torch.float16, torch.bfloat16]
    assert_same(compile_execution_fn(code, {}, [], consts)(X), second(X))


# ---------------------------------------------------------------- what vLLM's generator gets wrong


class KeywordSum(nn.Module):
    def forward(self, x: torch.Tensor, scale: torch.Tensor, **options: float) -> torch.Tensor:
        return x * scale + sum(options.values())


def test_get_attr_inf_nan_and_keyword_named_kwargs() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        piece = g.call_module("sub", (x, g.get_attr("scale")), {"class": math.inf})
        return g.call_function(torch.nan_to_num, (piece,), {"nan": -0.0, "posinf": math.nan})

    gm = build(body, sub=KeywordSum(), scale=torch.full((2,), 3.0), recompile=False)
    x = torch.tensor([math.nan, 1.0])
    assert_same(drop_in(gm)(x), interpret(gm, x))


def test_zero_input_graph() -> None:
    gm = build(lambda g: g.call_module("sub", ()), sub=Compiled(build(lambda g: 7)))
    assert drop_in(gm)() == interpret(gm) == 7


def test_placeholder_defaults() -> None:
    sub = build(lambda g: g.call_function(operator.add, (g.placeholder("a"), g.placeholder("b"))))
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"), g.placeholder("y", default_value=10))), sub=sub)
    fn = drop_in(gm)
    assert fn(1) == interpret(gm, 1) == 11
    assert fn(1, 2) == 3


def test_slice_and_str_key_getitems() -> None:
    sub = build(lambda g: {"h": g.placeholder("x")})

    def body(g: torch.fx.Graph) -> object:
        out = g.call_module("sub", (g.placeholder("x"),))
        hidden = g.call_function(operator.getitem, (out, "h"))
        return g.call_function(operator.getitem, (hidden, slice(1, None)))

    gm = build(body, sub=sub)
    x = torch.arange(4)
    assert_same(drop_in(gm)(x), interpret(gm, x))


def test_toy_example_matches_interpreter() -> None:
    gm = example("toy")
    args = torch.randn(2, 4), torch.randn(2, 4)
    assert_same(drop_in(gm)(*args), interpret(gm, *args))


def test_what_vllm_writes_wrong_is_written_right() -> None:
    def body(g: torch.fx.Graph) -> torch.fx.Node:
        x = g.placeholder("x")
        total = g.call_function(operator.add, (x, x))
        clamped = g.call_function(torch.clamp, (total,), {"min": -math.inf, "max": math.inf})
        return g.call_function(torch.nan_to_num, (clamped,), {"nan": math.nan})

    code, names, consts = generate_execution_code(build(body))
    # inf as a literal, nan as a const, the operator call by the module the text imports.
    assert "1e309" in code and "operator.add(x, x)" in code and "_operator" not in code
    assert len(consts) == 1 and math.isnan(consts[0])
    x = torch.tensor([1.0, -2.0])
    assert_same(
        compile_execution_fn(code, {}, names, consts)(x),
        torch.nan_to_num(torch.clamp(x + x, min=-math.inf, max=math.inf)),
    )


def test_a_function_no_path_names_gets_astgens_portable_text() -> None:
    # vLLM's dialect could call it only as `__vllm_consts__[i](...)`, which astgen's loader refuses.
    code, names, consts = generate_execution_code(example("constants"))
    assert "__astgen_consts__" in code and "__vllm_submods__" not in code
    args = torch.randn(2, 4), torch.randn(2, 4)
    gm = example("constants")
    assert_same(compile_execution_fn(code, dict(gm.named_children()), names, consts)(*args), interpret(gm, *args))


def test_an_unread_result_is_deleted_at_once() -> None:
    def body(g: torch.fx.Graph) -> torch.fx.Node:
        x = g.placeholder("x")
        g.call_function(torch.neg, (x,))
        return g.call_function(torch.sigmoid, (x,))

    code, _, _ = generate_execution_code(build(body))
    lines = code.splitlines()
    assert lines[lines.index("    neg = torch.neg(x)") + 1] == "    del neg"


def test_a_pieces_tuple_is_read_where_and_as_fx_reads_it() -> None:
    # Out of order, apart, one item never read: each read stands where its node does, as
    # vLLM's own generator writes it (tests_vllm compares the two), and the unread item is not read.
    gm, piece = tuple_read_out_of_order()
    code, names, consts = generate_execution_code(gm)
    reads = [line for line in code.splitlines() if "= submod_0[" in line]
    assert reads == ["    getitem = submod_0[2]", "    getitem_1 = submod_0[0]", "    getitem_2 = submod_0[1]"]
    lines = code.splitlines()
    assert lines.index(reads[2]) > lines.index("    submod_1 = __vllm_submods__[1](getitem, getitem_1)")
    fn = compile_execution_fn(code, {"submod_0": piece, "submod_1": piece}, names, consts)
    assert fn(5) == (("b", 5, "a", "b", "c"), "a")


def test_transformer_example_matches_interpreter() -> None:
    gm = example("transformer")
    fn = drop_in(gm)
    for length in (3, 8):
        tokens = torch.randint(0, 64, (1, length))
        assert_same(fn(tokens), interpret(gm, tokens))


FLAG: list[str] = []


def test_code_in_a_node_name_is_never_executed() -> None:
    def body(g: torch.fx.Graph) -> None:
        node = g.call_module("sub", (g.placeholder("x"),))
        node.name = "y = 0\n    __import__('tests.test_vllm').test_vllm.FLAG.append(1)\n    z"
        g.output(node)

    gm = build_raw(body, sub=Compiled(build(lambda g: g.placeholder("x"))))
    FLAG.clear()
    assert drop_in(gm)(3) == 3 and FLAG == []


# ---------------------------------------------------------------- bad input


def test_a_missing_callable_is_named_at_load() -> None:
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=Compiled(build(lambda g: g.placeholder("x"))))
    code, names, consts = generate_execution_code(gm)
    with pytest.raises(CodegenError, match="'sub'"):
        compile_execution_fn(code, {}, names, consts)


def test_missing_consts_are_named_at_load() -> None:
    code, names, consts = generate_execution_code(trace_and_split(to_copy, X, set()))
    with pytest.raises(CodegenError, match="no consts"):
        compile_execution_fn(code, {}, names, None)
    with pytest.raises(CodegenError, match="only 1 consts"):
        compile_execution_fn(code, {}, names, consts[:1])


def test_text_from_elsewhere_is_checked() -> None:
    with pytest.raises(CodegenError, match="line 2"):
        compile_execution_fn("def execution_fn(x):\n    return open(x)\n", {}, [])


# ---------------------------------------------------------------- memory and speed


def test_generating_code_keeps_no_graph_alive() -> None:
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=build(lambda g: g.placeholder("x")))
    reference = weakref.ref(gm)
    code, names, consts = generate_execution_code(gm)
    assert compile_execution_fn(code, {}, names, consts)(4) == 4
    del gm
    gc.collect()
    assert reference() is None
