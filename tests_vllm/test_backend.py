"""VllmBackend on the CPU: a model split at its attention op, eager and inductor pieces, both generators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.fx
from vllm.compilation import backends

import astgen.vllm
from tests_vllm.model import Tiny, compile_and_run


@pytest.fixture(autouse=True)
def fresh_dynamo() -> None:
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_both_generators_give_the_models_outputs(
    backend: str, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path))
    x = torch.randn(5, 8)
    torch.manual_seed(0)
    expected = Tiny().eval()(x)
    outputs = {}
    for generator in ("vllm", "astgen"):
        torch._dynamo.reset()
        if generator == "astgen":
            astgen.vllm.install()
        written: list[str] = []
        original = backends.generate_execution_code

        def spy(
            split_gm: torch.fx.GraphModule, original: Callable[..., Any] = original, written: list[str] = written
        ) -> tuple[str, list[str], list[object]]:
            made = original(split_gm)
            written.append(made[0])
            return made

        monkeypatch.setattr(backends, "generate_execution_code", spy)
        try:
            outputs[generator], _ = compile_and_run(backend, x.clone(), str(tmp_path / generator))
        finally:
            monkeypatch.undo()
            astgen.vllm.uninstall()
        # Split at the op: the op's piece inlined, the two others compiled and called by index.
        (code,) = written
        assert code.count("__vllm_submods__[") == 2 and "def __vllm_inlined_submods__1(" in code
        assert (original is astgen.vllm.generate_execution_code) == (generator == "astgen")
    torch.testing.assert_close(outputs["vllm"], expected)
    torch.testing.assert_close(outputs["astgen"], outputs["vllm"], rtol=0, atol=0)
