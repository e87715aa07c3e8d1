"""astgen.sglang where SGLang is not installed (tests_sglang/ runs it against the real SGLang 0.5.23)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch
import torch.fx

import astgen.sglang


def split_like_sglang() -> tuple[torch.fx.GraphModule, dict[str, Any]]:
    """A split graph as SGLang's backend leaves it: piece objects in `__dict__`, the splitting piece a submodule."""

    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, b = x.relu(), x.sigmoid()
            c = torch.tanh(a * b)
            return c + a

    gm = torch.fx.symbolic_trace(Model())
    parts = {"relu": 0, "sigmoid": 0, "mul": 0, "tanh": 1}
    split = torch.fx.passes.split_module.split_module(
        gm, None, lambda node: parts.get(node.name, 2), keep_original_order=True
    )
    installed = {}
    for name in ("submod_0", "submod_2"):
        piece = split._modules[name]
        installed[name] = split.__dict__[name] = type("Piece", (), {"__call__": lambda self, *a, _p=piece: _p(*a)})()
    return split, installed


def test_stitch_matches_fx_and_unpacks_a_tuple_returning_piece() -> None:
    split, _ = split_like_sglang()
    x = torch.randn(4)
    expected = split(x)
    function = astgen.sglang.stitch(split)
    assert torch.equal(function(x), expected)
    source = astgen.sglang.compiled_graph(function).source
    # submod_0, a piece object, returns (a, b): unpacked from the call, never indexed.
    assert "getitem, getitem_1 = submod_0_fn(x)" in source
    assert "submod_0[" not in source


def test_stitch_keeps_a_recorded_value() -> None:
    """A call that records what it returns is typed by that, not by its piece graph: here, indexed as FX does."""
    split, _ = split_like_sglang()
    (call,) = [node for node in split.graph.nodes if node.target == "submod_0"]
    call.meta["example_value"] = None
    function = astgen.sglang.stitch(split)
    source = astgen.sglang.compiled_graph(function).source
    assert "submod_0 = submod_0_fn(x)" in source and "getitem = submod_0[0]" in source
    x = torch.randn(4)
    assert torch.equal(function(x), split(x))


def test_install_without_sglang_says_so() -> None:
    with pytest.raises(RuntimeError, match="needs SGLang, and no sglang distribution is installed"):
        astgen.sglang.install()
    with pytest.raises(RuntimeError, match="no sglang distribution"):
        astgen.sglang.backend_factory(None, None)


def test_register_does_nothing_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(astgen.sglang.ENABLE_VARIABLE, raising=False)
    astgen.sglang.register()
    monkeypatch.setenv(astgen.sglang.ENABLE_VARIABLE, "1")
    with pytest.raises(RuntimeError, match="no sglang distribution"):
        astgen.sglang.register()


def test_compiled_graph_refuses_other_functions() -> None:
    with pytest.raises(TypeError, match=r"is not a function astgen\.sglang made"):
        astgen.sglang.compiled_graph(len)


def test_importing_it_imports_no_sglang() -> None:
    code = "import sys, astgen.sglang; print(any(m == 'sglang' or m.startswith('sglang.') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"
