"""What SGLang 0.5.23's compilation modules need to import and run outside an SGLang server.

SGLang's backend is built for a GPU server; a few of its imports cannot load
here, and none of them takes part in stitching. `prepare` stubs each one
before anything imports SGLang:

- on the CPU, `sglang.srt.model_executor.runner_backend_utils.weak_ref_tensor`
  raises at import (its `weak_ref_tensor` is CUDA, XPU or NPU only); SGLang's
  piece objects call it only when they capture a CUDA graph, which the CPU
  never does, so the stub refuses to be called;
- on CUDA, `sgl_kernel` (SGLang's kernel package, not on the GPU machine) for
  its `weak_ref_tensor`, stubbed as the identity: the real one returns a
  non-owning alias of a captured output, so the stub only keeps those
  buffers alive longer, and computes the same values;
- on the CPU, `triton`, which `sglang.srt.utils.common` imports at its top and
  only annotates at import time, is about 1 GB: the stub exists only while that
  one module imports, so torch itself still sees no triton;
- `IPython.display`, which `sglang.utils` imports for notebook helpers; the
  stub refuses to be called.

SGLang's backend also asks `torch.distributed` for its rank (a one-process
gloo group is made) and writes to `SGLANG_CACHE_DIR` (a temporary folder).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, NoReturn

import torch


def _unusable(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"{what} is a stub of benchmarks/sglang_env.py: nothing stitching does calls it")

    return refuse


def _stub(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def prepare(device: str) -> None:
    """Stub what SGLang cannot import on `device` ("cpu" or "cuda"), make the gloo group and the cache folder.

    Idempotent; must run before the first import of SGLang.
    """
    if "sglang.srt.utils.common" in sys.modules:
        return
    os.environ.setdefault("SGLANG_CACHE_DIR", tempfile.mkdtemp(prefix="astgen-sglang-cache-"))
    # torch's compile stack is imported before any triton stub exists, so it records no triton.
    importlib.import_module("torch._dynamo")
    importlib.import_module("torch._inductor.compile_fx")
    if device == "cuda":
        _stub("sgl_kernel", weak_ref_tensor=lambda tensor: tensor)
    else:
        _stub(
            "sglang.srt.model_executor.runner_backend_utils.weak_ref_tensor",
            weak_ref_tensor=_unusable("weak_ref_tensor"),
            weak_ref_tensors=_unusable("weak_ref_tensors"),
        )
    display = _stub("IPython.display", HTML=_unusable("IPython.display.HTML"), display=_unusable("IPython.display"))
    _stub("IPython", display=display)
    stubbed_triton = device != "cuda" and importlib.util.find_spec("triton") is None
    if stubbed_triton:
        _stub("triton")
    try:
        importlib.import_module("sglang.srt.utils.common")
    finally:
        if stubbed_triton:
            del sys.modules["triton"]
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            "gloo", init_method=(Path(tempfile.mkdtemp(prefix="astgen-gloo-")) / "store").as_uri(), rank=0, world_size=1
        )
