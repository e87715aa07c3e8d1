"""The behaviours vLLM's own tests/compile/test_codegen.py checks, run with vLLM's codegen and with astgen's.

The functions are read from `vllm.compilation.codegen` at call time, so the
`generator` fixture decides whose they are: vLLM's, or astgen's installed
through the `vllm.general_plugins` entry point.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch
import torch.fx as fx
from torch.fx.experimental.proxy_tensor import make_fx
from vllm.compilation import codegen
from vllm.compilation.backends import split_graph

import astgen.vllm
from tests.helpers import tuple_read_out_of_order

X = torch.zeros(2, 3)


def split(model: Callable[..., torch.Tensor], split_ops: list[str]) -> fx.GraphModule:
    split_gm, _ = split_graph(make_fx(model)(X), split_ops)
    return split_gm


def to_copy(x: torch.Tensor) -> torch.Tensor:
    return x.to(device=torch.device("cpu"), dtype=torch.float16)


def empty(x: torch.Tensor) -> torch.Tensor:
    buffer = torch.empty(x.shape, device=torch.device("cpu"), dtype=torch.float16)
    return buffer.fill_(0).add(x.to(dtype=torch.float16))


def test_the_plugin_decides_whose_functions_vllm_calls(generator: str) -> None:
    ours = codegen.compile_execution_fn is astgen.vllm.compile_execution_fn
    assert ours == (generator == "astgen")


@pytest.mark.parametrize(("model", "split_ops"), [(to_copy, ["aten::_to_copy.default"]), (empty, [])])
def test_device_and_dtype_are_consts_not_reprs(
    generator: str, model: Callable[[torch.Tensor], torch.Tensor], split_ops: list[str]
) -> None:
    code, names, consts = codegen.generate_execution_code(split(model, split_ops))
    assert "device(type=" not in code
    assert torch.device("cpu") in consts and torch.float16 in consts
    assert torch.equal(codegen.compile_execution_fn(code, {}, names, consts)(X), model(X))


def test_one_dtype_object_is_one_slot_read_twice(generator: str) -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype=torch.float16) + (x * 2).to(dtype=torch.float16)

    code, names, consts = codegen.generate_execution_code(split(model, []))
    assert consts.count(torch.float16) == 1
    assert code.count("__vllm_consts__[0]") >= 2
    assert torch.equal(codegen.compile_execution_fn(code, {}, names, consts)(X), model(X))


def test_distinct_dtypes_are_distinct_slots(generator: str) -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype=torch.float16) + x.to(dtype=torch.bfloat16)

    _, _, consts = codegen.generate_execution_code(split(model, []))
    assert len(consts) == 2 and torch.float16 in consts and torch.bfloat16 in consts


def test_two_traces_give_the_same_consts_in_the_same_order(generator: str) -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.to(device=torch.device("cpu"), dtype=torch.float16).to(dtype=torch.bfloat16)

    first = codegen.generate_execution_code(split(model, []))
    second = codegen.generate_execution_code(split(model, []))
    assert len(first[2]) >= 2 and first[2] == second[2] and first[0] == second[0]


def test_primitive_arguments_stay_literals(generator: str) -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.transpose(x, 0, 1).relu()

    code, names, consts = codegen.generate_execution_code(split(model, []))
    assert consts == []
    assert torch.equal(codegen.compile_execution_fn(code, {}, names, consts)(X), model(X))


def test_inlined_pieces_share_one_slot_per_object(generator: str) -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        b = x.to(dtype=torch.float16).relu()
        return b.to(dtype=torch.float32).to(dtype=torch.float16) + 1

    split_gm = split(model, ["aten::relu.default"])
    assert len(list(split_gm.named_children())) >= 3
    code, names, consts = codegen.generate_execution_code(split_gm)
    assert consts.count(torch.float16) == 1
    slot = f"__vllm_consts__[{consts.index(torch.float16)}]"
    bodies = re.findall(r"def __vllm_inlined_submods__(\d+)\([^)]*\):\n((?:    .*\n)+)", code)
    assert len([index for index, body in bodies if slot in body]) >= 2
    assert torch.equal(codegen.compile_execution_fn(code, {}, names, consts)(X), model(X))


def test_a_piece_that_is_no_graph_module_is_called_by_index(generator: str) -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return x.relu().sigmoid()

    split_gm = split(model, ["aten::relu.default"])
    target = next(name for name, _ in split_gm.named_children())

    class Wrapper(torch.nn.Module):
        def __init__(self, gm: fx.GraphModule) -> None:
            super().__init__()
            self.gm = gm

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.gm(*args)

    original = getattr(split_gm, target)
    del split_gm._modules[target]
    split_gm.add_module(target, Wrapper(original))
    code, names, consts = codegen.generate_execution_code(split_gm)
    assert "__vllm_submods__[" in code and target in names
    callables = {
        name: getattr(split_gm, name) for name in names if not isinstance(getattr(split_gm, name), fx.GraphModule)
    }
    assert torch.equal(codegen.compile_execution_fn(code, callables, names, consts)(X), model(X))


def test_getitem_is_written_as_a_subscript(generator: str) -> None:
    code, _, _ = codegen.generate_execution_code(split(lambda x: x.relu().sigmoid(), ["aten::relu.default"]))
    assert re.search(r"\b\w+ = \w+\[\d+\]\n", code)


def test_values_are_deleted_after_their_last_use(generator: str) -> None:
    split_gm = split(lambda x: x.relu().sigmoid().tanh(), ["aten::relu.default", "aten::sigmoid.default"])
    code, _, _ = codegen.generate_execution_code(split_gm)
    assert re.search(r"^    del \w+", code, re.MULTILINE)


def test_an_inlined_graph_may_not_call_a_module(generator: str) -> None:
    graph = fx.Graph()
    graph.output(graph.call_module("inner", args=(graph.placeholder("x"),)))
    root = torch.nn.Module()
    root.add_module("inner", torch.nn.Identity())
    with pytest.raises(RuntimeError, match="call_module is not allowed"):
        codegen.generate_execution_code_with_name(fx.GraphModule(root, graph), "f", with_submod=False)


def test_node_ref_lifts_objects_inside_containers(generator: str) -> None:
    consts: list[object] = []
    index: dict[int, int] = {}
    cpu = torch.device("cpu")
    assert codegen._node_ref([cpu, 1], consts, index) == "[__vllm_consts__[0], 1]"
    assert codegen._node_ref((cpu, 2), consts, index) == "(__vllm_consts__[0], 2)"
    assert codegen._node_ref((cpu,), consts, index) == "(__vllm_consts__[0],)"
    assert codegen._node_ref({"k": cpu}, consts, index) == "{'k': __vllm_consts__[0]}"
    assert consts == [cpu]


def test_text_from_before_consts_loads_with_consts_none(generator: str) -> None:
    legacy = "import torch\ndef execution_fn(x, *, __vllm_submods__):\n    return __vllm_submods__[0](x) + 1\n"

    class AddOne(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    fn = codegen.compile_execution_fn(legacy, {"sub": AddOne()}, ["sub"], consts=None)
    assert torch.equal(fn(torch.zeros(3)), torch.full((3,), 2.0))


def test_stock_vllm_runs_astgen_text_with_the_same_names_and_consts() -> None:
    split_gm = split(lambda x: x.to(dtype=torch.float16).relu().sigmoid(), ["aten::relu.default"])
    vllm_code, vllm_names, vllm_consts = codegen.generate_execution_code(split_gm)
    ours_code, ours_names, ours_consts = astgen.vllm.generate_execution_code(split_gm)
    assert (ours_names, ours_consts) == (vllm_names, vllm_consts)
    # The same references to vLLM's tables and functions, in the same order
    # (astgen's names of values differ: none starts with an underscore).
    references = r"__vllm_\w+__(?:\[\d+\])?|torch\.ops\.[\w.]+"
    assert re.findall(references, ours_code) == re.findall(references, vllm_code)
    stock = codegen.compile_execution_fn(ours_code, {}, ours_names, ours_consts)
    assert torch.equal(stock(X), X.to(dtype=torch.float16).relu().sigmoid())


def test_a_pieces_tuple_is_read_where_fx_reads_it(generator: str) -> None:
    gm, piece = tuple_read_out_of_order()
    code, names, consts = codegen.generate_execution_code(gm)
    lines = code.splitlines()
    reads = [line for line in lines if "= submod_0[" in line]
    assert reads == ["    getitem = submod_0[2]", "    getitem_1 = submod_0[0]", "    getitem_2 = submod_0[1]"]
    assert lines.index(reads[2]) > lines.index("    submod_1 = __vllm_submods__[1](getitem, getitem_1)")
    fn = codegen.compile_execution_fn(code, {"submod_0": piece, "submod_1": piece}, names, consts)
    assert fn(5) == (("b", 5, "a", "b", "c"), "a")
