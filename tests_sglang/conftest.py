"""The SGLang suite: astgen against the real SGLang 0.5.23 in `.venv-sglang` (`make integration`).

SGLang's compilation modules are built for a GPU server: on the CPU three of
their imports cannot load, and none of them takes part in stitching.
`benchmarks.sglang_env.prepare` stubs them, before anything imports SGLang,
with modules that refuse to be used, so a test that reached one would fail
rather than pass on a stand-in; its docstring lists them and says why.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks import sglang_env

sglang_env.prepare("cpu")

import torch  # noqa: E402

import astgen.sglang  # noqa: E402


@pytest.fixture(autouse=True)
def _sglang_restored() -> Iterator[None]:
    """Every test leaves SGLang's own stitching in place and Dynamo's caches empty."""
    yield
    astgen.sglang.uninstall()
    torch._dynamo.reset()
