"""One side of a compile-cache round trip, in a process of its own: `write` or `read`, with either generator.

    python -m tests_vllm.cache_roundtrip write DIR vllm|astgen
    python -m tests_vllm.cache_roundtrip read DIR vllm|astgen
    python -m tests_vllm.cache_roundtrip write-uninstall-read DIR astgen

`write` compiles `tests_vllm.model.Tiny` with `VllmBackend` (inductor pieces,
vLLM's AOT mega artifact on) and saves what vLLM serializes into its cache,
the inputs of the call and its output. `read` rebuilds the function from the
artifact, as vLLM does at a warm start, calls it and prints whether the
output is the one written. With `astgen` the plugin is installed first;
`write-uninstall-read` writes with it, uninstalls it and reads in the same process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["VLLM_TARGET_DEVICE"] = "cpu"
os.environ["VLLM_USE_AOT_COMPILE"] = "1"
os.environ["VLLM_USE_MEGA_AOT_ARTIFACT"] = "1"

import torch
from vllm.compilation import backends, caching
from vllm.compilation.backends import VllmBackend
from vllm.compilation.caching import VllmSerializableFunction
from vllm.config import set_current_vllm_config

import astgen.vllm
from tests_vllm.model import Tiny, config


def write(directory: Path) -> None:
    vllm_config = config("inductor", str(directory / "cache"))
    captured: list[VllmSerializableFunction] = []
    calls: list[tuple[object, ...]] = []
    torch.manual_seed(0)
    model = Tiny().eval()
    x = torch.randn(5, 8)
    with set_current_vllm_config(vllm_config), torch.no_grad():
        vllm_backend = VllmBackend(vllm_config)

        def capturing(graph: torch.fx.GraphModule, example_inputs: list[object]) -> object:
            made = vllm_backend(graph, example_inputs)
            captured.append(made)

            def recording(*args: object) -> object:
                calls.append(args)
                return made(*args)

            return recording

        torch._dynamo.mark_dynamic(x, 0)
        out = torch.compile(model, backend=capturing, fullgraph=True)(x)
        (fn,) = captured
        (args,) = calls
        (directory / "artifact.bin").write_bytes(VllmSerializableFunction.serialize_compile_artifacts(fn))
        torch.save({"args": args, "out": out}, directory / "io.pt")
    print("written by", _whose(backends.generate_execution_code))


def read(directory: Path) -> bool:
    vllm_config = config("inductor", str(directory / "cache"))
    saved = torch.load(directory / "io.pt", weights_only=False)
    with set_current_vllm_config(vllm_config), torch.no_grad():
        fn = VllmSerializableFunction.deserialize_compile_artifacts((directory / "artifact.bin").read_bytes())
        out = fn(*saved["args"])
    # The stitching function returns the graph's outputs as a tuple, which Dynamo unpacks.
    same = torch.equal(out[0], saved["out"])
    print("loaded by", _whose(caching.compile_execution_fn), "same" if same else "different")
    return same


def _whose(function: object) -> str:
    return "astgen" if function in (astgen.vllm.generate_execution_code, astgen.vllm.compile_execution_fn) else "vllm"


if __name__ == "__main__":
    mode, directory, generator = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    os.environ["VLLM_CACHE_ROOT"] = str(directory / "root")
    if generator == "astgen":
        astgen.vllm.install()
    if mode == "write":
        write(directory)
    elif mode == "write-uninstall-read":
        write(directory)
        astgen.vllm.uninstall()
        sys.exit(0 if read(directory) else 1)
    else:
        sys.exit(0 if read(directory) else 1)
