"""The vLLM drop-in: `generate_execution_code` / `compile_execution_fn` keep vLLM's contract without its failures."""

from __future__ import annotations

import ast
import gc
import math
import operator
import textwrap
import weakref
from typing import Any

import pytest
import torch
import torch.fx
from torch import nn

from astgen.errors import CodegenError
from astgen.vllm import compile_execution_fn, generate_execution_code
from tests.helpers import assert_same, build, build_raw, example, interpret, split_at


def submodules_of(gm: torch.fx.GraphModule, names: list[str]) -> dict[str, Any]:
    return {name: gm.get_submodule(name) for name in names}


def drop_in(gm: torch.fx.GraphModule) -> Any:
    code, names = generate_execution_code(gm)
    return compile_execution_fn(code, submodules_of(gm, names), names)


def toy_args() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 4), torch.randn(2, 4)


# ---------------------------------------------------------------- the contract


def test_generate_returns_code_and_names_in_call_order() -> None:
    gm = example("toy")
    code, names = generate_execution_code(gm)
    assert isinstance(code, str) and names == ["submod_0", "submod_1", "submod_2"]
    (definition,) = ast.parse(code).body
    assert isinstance(definition, ast.FunctionDef) and definition.name == "execution_fn"
    assert {type(statement) for statement in definition.body} <= {ast.Assign, ast.Delete, ast.Return}


def test_generate_is_deterministic() -> None:
    assert generate_execution_code(example("toy")) == generate_execution_code(example("toy"))


@pytest.mark.parametrize("name", ["toy", "constants"])
def test_examples_match_interpreter(name: str) -> None:
    gm = example(name)
    args = toy_args()
    assert_same(drop_in(gm)(*args), interpret(gm, *args))


def test_transformer_example_matches_interpreter() -> None:
    gm = example("transformer")
    fn = drop_in(gm)
    for length in (3, 8):
        tokens = torch.randint(0, 64, (1, length))
        assert_same(fn(tokens), interpret(gm, tokens))


def test_torch_compile_backend_graph() -> None:
    torch._dynamo.reset()
    results: list[bool] = []

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(x)) * x.shape[0])

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        split = split_at(gm, lambda node: node.op == "call_function" and node.target is torch.relu)
        fn = drop_in(split)

        def run(*args: Any) -> Any:
            result = fn(*args)
            assert_same(result, interpret(split, *args))
            results.append(True)
            return result

        return run

    model = Model()
    compiled = torch.compile(model, backend=backend, dynamic=True)
    for rows in (2, 7):
        x = torch.randn(rows, 4)
        torch.testing.assert_close(compiled(x), model(x))
    torch._dynamo.reset()
    assert results == [True, True]


def test_replacement_callables_are_called() -> None:
    gm = example("toy")
    code, names = generate_execution_code(gm)
    calls: list[str] = []

    def wrap(name: str) -> Any:
        inner = gm.get_submodule(name)

        def call(*args: Any) -> Any:
            calls.append(name)
            return inner(*args)

        return call

    fn = compile_execution_fn(code, {name: wrap(name) for name in names}, names)
    args = toy_args()
    assert_same(fn(*args), interpret(gm, *args))
    assert calls == names


def test_graph_module_callables_are_bound_through_forward() -> None:
    gm = example("toy")
    code, names = generate_execution_code(gm)
    fn = compile_execution_fn(code, submodules_of(gm, names), names)
    bound = [value for value in fn.__globals__.values() if getattr(value, "__func__", None) is not None]
    assert {getattr(method, "__self__", None) for method in bound} == {gm.get_submodule(name) for name in names}


def test_one_code_many_callable_sets() -> None:
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=nn.Identity())
    code, names = generate_execution_code(gm)
    double = compile_execution_fn(code, {"sub": lambda x: x * 2}, names)
    triple = compile_execution_fn(code, {"sub": lambda x: x * 3}, names)
    assert double(5) == 10 and triple(5) == 15


# ---------------------------------------------------------------- vLLM's failure classes


class KeywordSum(nn.Module):
    def forward(self, x: torch.Tensor, scale: torch.Tensor, **options: float) -> torch.Tensor:
        return x * scale + sum(options.values())


def test_get_attr_and_constants_vllm_cannot_render() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        piece = g.call_module("sub", (x, g.get_attr("scale")), {"class": math.inf})
        return g.call_function(torch.nan_to_num, (piece,), {"nan": -0.0, "posinf": math.nan})

    gm = build(body, sub=KeywordSum(), scale=torch.full((2,), 3.0), recompile=False)
    fn = drop_in(gm)
    x = torch.tensor([math.nan, 1.0])
    assert_same(fn(x), interpret(gm, x))


def test_zero_input_graph() -> None:
    gm = build(lambda g: g.call_module("sub", ()), sub=build(lambda g: torch.ones(1) and 7))
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


FLAG: list[str] = []


def test_code_in_a_node_name_is_never_executed() -> None:
    sub = build(lambda g: g.placeholder("x"))

    def body(g: torch.fx.Graph) -> None:
        node = g.call_module("sub", (g.placeholder("x"),))
        node.name = "y = 0\n    __import__('tests.test_vllm').test_vllm.FLAG.append(1)\n    z"
        g.output(node)

    gm = build_raw(body, sub=sub)
    FLAG.clear()
    code, names = generate_execution_code(gm)
    fn = compile_execution_fn(code, submodules_of(gm, names), names)
    assert fn(3) == 3 and FLAG == []
    assert "__import__" not in {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}


# ---------------------------------------------------------------- bad input


def test_missing_submod_callable() -> None:
    code, names = generate_execution_code(example("toy"))
    callables = submodules_of(example("toy"), names)
    del callables["submod_1"]
    with pytest.raises(CodegenError, match="submod_1"):
        compile_execution_fn(code, callables, names)


def test_submod_names_missing_a_called_target() -> None:
    code, names = generate_execution_code(example("toy"))
    with pytest.raises(CodegenError, match="submod_2"):
        compile_execution_fn(code, submodules_of(example("toy"), names), names[:-1])


def test_submod_names_naming_an_uncalled_target() -> None:
    gm = example("toy")
    code, names = generate_execution_code(gm)
    callables = {**submodules_of(gm, names), "submod_9": abs}
    with pytest.raises(CodegenError, match="submod_9"):
        compile_execution_fn(code, callables, [*names, "submod_9"])


# ---------------------------------------------------------------- code text from elsewhere


FOREIGN = textwrap.dedent(
    """\
    def execution_fn(x, y):
        submod_0 = submod_0_fn(x)
        first, second = submod_0
        del submod_0
        submod_1 = submod_1_fn(first, y)
        return (submod_1, len(second.shape), slice(None))
    """
)


def test_foreign_code_reading_submodules_and_builtins_runs() -> None:
    gm = example("toy")
    names = ["submod_0", "submod_1"]
    fn = compile_execution_fn(FOREIGN, submodules_of(gm, names), names)
    x, y = toy_args()
    first, _ = gm.submod_0(x)
    assert_same(fn(x, y), (gm.submod_1(first, y), 2, slice(None)))


def test_code_from_elsewhere_goes_through_the_parser() -> None:
    gm = example("toy")
    code, names = generate_execution_code(gm)
    # Text this process never generated: what a cache on disk or another process hands back.
    code = "# generated elsewhere\n" + code
    fn = compile_execution_fn(code, submodules_of(gm, names), names)
    args = toy_args()
    assert_same(fn(*args), interpret(gm, *args))


@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("def execution_fn(x):\n    return torch.relu(x)\n", "torch"),
        ("import os\ndef execution_fn(x):\n    return x\n", "exactly one function"),
        ("def execution_fn(x):\n    import os\n    return x\n", "Import"),
        ("def execution_fn(x):\n    if x:\n        return x\n    return x\n", "If"),
        ("def execution_fn(x):\n    submod_7_fn(x)\n    return x\n", "Expr"),
        ("def execution_fn(x):\n    a = submod_7_fn(x)\n    return a\n", "submod_7_fn"),
        ("def execution_fn(x:\n", "parse"),
        ("x = 1\n", "exactly one function"),
    ],
)
def test_foreign_code_that_needs_more_is_codegen_error(code: str, match: str) -> None:
    with pytest.raises(CodegenError, match=match):
        compile_execution_fn(code, {"submod_0": abs}, ["submod_0"])


@pytest.mark.parametrize(
    "signature", ["x, n=3", "x, dtype=float64", "*args, scale=-1.5"], ids=["literal", "bound", "keyword-only"]
)
def test_foreign_code_with_parameter_defaults_is_codegen_error(signature: str) -> None:
    # Dropping the defaults would change what a call without them does.
    with pytest.raises(CodegenError, match="parameter defaults"):
        compile_execution_fn(f"def execution_fn({signature}):\n    return 1\n", {}, [])


def test_foreign_code_of_a_graph_with_bound_objects_is_codegen_error() -> None:
    gm = example("constants")
    code, names = generate_execution_code(gm)
    code = "# generated elsewhere\n" + code
    with pytest.raises(CodegenError, match="generate_execution_code"):
        compile_execution_fn(code, submodules_of(gm, names), names)


# ---------------------------------------------------------------- memory and identity


def test_registry_does_not_keep_submodules_alive() -> None:
    sub = build(lambda g: g.placeholder("x"))
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=sub)
    ref = weakref.ref(gm.sub)
    code, names = generate_execution_code(gm)
    fn = compile_execution_fn(code, submodules_of(gm, names), names)
    assert fn(4) == 4
    del gm, sub, fn
    gc.collect()
    assert ref() is None


def test_same_code_text_from_graphs_with_different_weights() -> None:
    def graph(weight: torch.Tensor) -> torch.fx.GraphModule:
        sub = build(lambda g: g.call_function(torch.mul, (g.placeholder("x"), g.placeholder("w"))))
        return build(lambda g: g.call_module("sub", (g.placeholder("x"), g.get_attr("w"))), sub=sub, w=weight)

    first, second = graph(torch.full((1,), 2.0)), graph(torch.full((1,), 3.0))
    first_code, first_names = generate_execution_code(first)
    second_code, _ = generate_execution_code(second)
    assert first_code == second_code
    # The text cannot say whose weights it means: refused, never the wrong graph's weights.
    with pytest.raises(CodegenError, match="live graphs"):
        compile_execution_fn(first_code, submodules_of(first, first_names), first_names)
    del second
    gc.collect()
    fn = compile_execution_fn(first_code, submodules_of(first, first_names), first_names)
    x = torch.ones(1)
    assert_same(fn(x), interpret(first, x))


def test_same_graph_generated_twice_is_not_ambiguous() -> None:
    gm = example("transformer")
    first_code, names = generate_execution_code(gm)
    second_code, _ = generate_execution_code(gm)
    assert first_code == second_code
    fn = compile_execution_fn(first_code, submodules_of(gm, names), names)
    tokens = torch.randint(0, 64, (1, 4))
    assert_same(fn(tokens), interpret(gm, tokens))
