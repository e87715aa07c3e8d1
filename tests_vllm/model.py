"""A tiny model with a custom attention op, compiled by vLLM's `VllmBackend` on the CPU, split at the op."""

from __future__ import annotations

import torch
from vllm.compilation.backends import VllmBackend
from vllm.config import CompilationConfig, CompilationMode, VllmConfig, set_current_vllm_config
from vllm.config.compilation import CUDAGraphMode, PassConfig

# In vLLM's own namespace, where its attention ops live (torch.ops.vllm.unified_attention):
# the namespace a loader of vLLM's text trusts.
ATTENTION = "vllm::astgen_test_attention"

_library = torch.library.Library("vllm", "FRAGMENT")
_library.define("astgen_test_attention(Tensor q, Tensor k, Tensor v) -> Tensor")
_library.impl("astgen_test_attention", lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v, "CPU")
torch.library.register_fake(ATTENTION)(lambda q, k, v: torch.empty_like(q))

# vLLM's functionalization pass reads torch.ops._C.rotary_embedding whatever
# the graph holds, and vllm._C (CUDA) is not built for the CPU: a schema is enough.
if not hasattr(torch.ops._C, "rotary_embedding"):
    _c_library = torch.library.Library("_C", "FRAGMENT")
    _c_library.define(
        "rotary_embedding(Tensor positions, Tensor(a!) query, Tensor(b!)? key, int head_size,"
        " Tensor cos_sin_cache, bool is_neox) -> ()"
    )


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(8, 8)
        self.down = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x).relu()
        a = torch.ops.vllm.astgen_test_attention(h, h, h)
        return self.down(a + x) * 2.0


def config(backend: str, cache_dir: str = "") -> VllmConfig:
    # The fusion passes' classes are imported only on CUDA and XPU.
    passes = PassConfig(fuse_norm_quant=False, fuse_act_quant=False, fuse_rope_kvcache_cat_mla=False)
    compilation = CompilationConfig(
        mode=CompilationMode.VLLM_COMPILE,
        splitting_ops=[ATTENTION],
        backend=backend,
        cudagraph_mode=CUDAGraphMode.NONE,
        compile_sizes=[],
        pass_config=passes,
        cache_dir=cache_dir,
    )
    return VllmConfig(compilation_config=compilation)


def compile_and_run(backend: str, x: torch.Tensor, cache_dir: str = "") -> tuple[torch.Tensor, VllmBackend]:
    torch.manual_seed(0)
    model = Tiny().eval()
    vllm_config = config(backend, cache_dir)
    with set_current_vllm_config(vllm_config), torch.no_grad():
        vllm_backend = VllmBackend(vllm_config)
        compiled = torch.compile(model, backend=vllm_backend, fullgraph=True)
        torch._dynamo.mark_dynamic(x, 0)
        return compiled(x), vllm_backend
