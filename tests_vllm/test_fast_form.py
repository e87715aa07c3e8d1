"""Issue 16, item 3: text in either dialect loads as astgen's fast form.

The function astgen's loader makes of vLLM's text reads its pieces and
constants as globals (no `__vllm_submods__[i]`, no `__vllm_consts__[i]`, no
`functools.partial`) and has the inlined pieces spliced into its body.
These tests need the loader's lift into IR (astgen/lift.py); the loader of
today runs the text as vLLM's own loader does.
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.fx as fx
from torch.fx.experimental.proxy_tensor import make_fx
from vllm.compilation import codegen
from vllm.compilation.backends import split_graph

import astgen.vllm
from astgen import vllm_form

X = torch.zeros(2, 3)


class PieceInstance:
    """A piece called through its class's `__call__`, as vLLM's PiecewiseBackend is."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm

    def __call__(self, *args: torch.Tensor) -> object:
        return self.gm(*args)


def model(x: torch.Tensor) -> torch.Tensor:
    return x.to(dtype=torch.float16).relu().sigmoid().to(dtype=torch.float32)


def split_with_one_instance_piece() -> tuple[fx.GraphModule, dict[str, object]]:
    split_gm, _ = split_graph(make_fx(model)(X), ["aten::relu.default"])
    # The split piece becomes an instance, the others stay GraphModules and are inlined.
    split_gm.__dict__["submod_1"] = PieceInstance(split_gm.submod_1)
    return split_gm, {"submod_1": split_gm.__dict__["submod_1"]}


@pytest.mark.parametrize("writer", ["vllm", "astgen"])
def test_either_dialect_loads_as_one_function_reading_globals(writer: str) -> None:
    split_gm, pieces = split_with_one_instance_piece()
    generate = codegen.generate_execution_code if writer == "vllm" else astgen.vllm.generate_execution_code
    code, names, consts = generate(split_gm)
    assert "__vllm_submods__[1](" in code and "def __vllm_inlined_submods__0(" in code
    fn = astgen.vllm.compile_execution_fn(code, pieces, names, consts)
    assert torch.equal(fn(X), codegen.compile_execution_fn(code, pieces, names, consts)(X))
    assert isinstance(fn, types.FunctionType)
    read = set(fn.__code__.co_names)
    assert not {vllm_form.SUBMODS, vllm_form.CONSTS} & read
    assert not any(name.startswith(vllm_form.INLINED_PREFIX) for name in read)
