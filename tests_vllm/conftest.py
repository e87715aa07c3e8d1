"""The integration suite: astgen against the real vLLM 0.33.0 in `.venv-vllm` (`make integration`).

vLLM picks its platform when first imported; without a GPU it must be told
it runs on the CPU, before anything imports it.
"""

from __future__ import annotations

import os

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

from collections.abc import Iterator

import pytest

import astgen.vllm


@pytest.fixture(params=["vllm", "astgen"])
def generator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test twice: with vLLM's own codegen, and with astgen's installed the way vLLM installs plugins."""
    import vllm.plugins
    from vllm.plugins import load_general_plugins

    if request.param == "astgen":
        monkeypatch.setenv(astgen.vllm.ENABLE_VARIABLE, "1")
        monkeypatch.setattr(vllm.plugins, "plugins_loaded", False)
        load_general_plugins()
    yield request.param
    astgen.vllm.uninstall()
