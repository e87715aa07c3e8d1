"""The SGLang suite: astgen against the real SGLang 0.5.23 in `.venv-sglang` (`make integration`).

SGLang's compilation modules are built for a GPU server; on the CPU three of
their imports cannot load, and none of them takes part in stitching. Each is
stubbed here, before anything imports SGLang, by a module that refuses to be
used, so a test that reached one would fail rather than pass on a stand-in:

- `sglang.srt.model_executor.runner_backend_utils.weak_ref_tensor` raises at
  import on the CPU (its `weak_ref_tensor` is CUDA, XPU or NPU only). SGLang's
  piece objects call it only when they capture a CUDA graph.
- `triton`, which `sglang.srt.utils.common` imports at its top and only
  annotates at import time, is about 1 GB. The stub is there only while that
  one module imports, so torch itself still sees no triton.
- `IPython.display`, which `sglang.utils` imports for notebook helpers.

SGLang's backend also asks `torch.distributed` for its rank, so a one-process
gloo group is made, and `SGLANG_CACHE_DIR` points into a temporary folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

_CACHE = tempfile.mkdtemp(prefix="astgen-sglang-cache-")
os.environ.setdefault("SGLANG_CACHE_DIR", _CACHE)

import torch  # noqa: E402

# torch's compile stack is imported before the triton stub exists, so it records no triton.
import torch._dynamo  # noqa: E402
import torch._inductor.compile_fx  # noqa: E402
import torch.distributed  # noqa: E402


def _unusable(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"{what} is a stub of tests_sglang/conftest.py: nothing stitching does calls it")

    return refuse


def _stub(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


_stub(
    "sglang.srt.model_executor.runner_backend_utils.weak_ref_tensor",
    weak_ref_tensor=_unusable("weak_ref_tensor"),
    weak_ref_tensors=_unusable("weak_ref_tensors"),
)
_display = _stub(
    "IPython.display", HTML=_unusable("IPython.display.HTML"), display=_unusable("IPython.display.display")
)
_stub("IPython", display=_display)

_stub("triton")
try:
    import sglang.srt.utils.common  # noqa: F401
finally:
    del sys.modules["triton"]

if not torch.distributed.is_initialized():
    torch.distributed.init_process_group(
        "gloo", init_method=(Path(_CACHE) / "gloo-store").as_uri(), rank=0, world_size=1
    )


@pytest.fixture(autouse=True)
def _sglang_restored() -> Iterator[None]:
    """Every test leaves SGLang's own stitching in place and Dynamo's caches empty."""
    import astgen.sglang

    yield
    astgen.sglang.uninstall()
    torch._dynamo.reset()
