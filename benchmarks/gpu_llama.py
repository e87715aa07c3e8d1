"""Decode-step latency of a Llama-shaped model split at attention, pieces as CUDA graphs, stitched four ways.

    python -m benchmarks.gpu_llama                                   # H100: 16 layers, hidden 1024, fp16
    python -m benchmarks.gpu_llama --device cpu --layers 2 --hidden 64   # smoke run, no GPU

The model (random weights) is traced with `torch.fx.symbolic_trace`, with
attention as a leaf function, and split at each attention call with
`split_module`, as vLLM's piecewise backend splits it. On CUDA every
non-attention piece is captured as a `torch.cuda.CUDAGraph` with static
input and output buffers, the way vLLM runs pieces; attention runs eagerly
and writes into an output buffer the previous piece allocated, so the next
piece finds its input at the captured address and nothing is copied.

Contenders for one batch-1 decode step: the unsplit model run eagerly, and
the split graph stitched by `GraphModule.__call__`, the seed's string
baseline, astgen's bare `.fn` and astgen's `CompiledGraph`. Reported per step:
latency (launch to synchronize) and host time (until the call returns, with
the GPU idle at the start, so the host's issue cost is what is timed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.split_module import split_module

import astgen
from benchmarks import string_baseline


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """Decode attention over a fixed-length cache plus the new token, written into `out` (vLLM's contract)."""
    keys = torch.cat([k_cache, k], dim=2)
    values = torch.cat([v_cache, v], dim=2)
    result = F.scaled_dot_product_attention(q, keys, values)
    out.copy_(result.transpose(1, 2).reshape(out.shape))
    return out


torch.fx.wrap("attention")


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, context: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.attn_norm = RMSNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.mlp_norm = RMSNorm(hidden)
        self.gate_up = nn.Linear(hidden, 2 * 4 * hidden, bias=False)
        self.down = nn.Linear(4 * hidden, hidden, bias=False)
        self.register_buffer("k_cache", torch.randn(1, heads, context, self.head_dim))
        self.register_buffer("v_cache", torch.randn(1, heads, context, self.head_dim))

    def rotate(self, t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        first, second = t.chunk(2, dim=-1)
        return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        hidden = x.shape[-1]
        q, k, v = self.qkv(self.attn_norm(x)).split(hidden, dim=-1)
        q, k, v = (t.view(1, 1, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        out = torch.empty_like(x)
        x = x + self.o_proj(attention(q, k, v, self.k_cache, self.v_cache, out))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class Llama(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, vocab: int, context: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Layer(hidden, heads, context) for _ in range(layers))
        self.norm = RMSNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        head_dim = hidden // heads
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)))

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        cos, sin = freqs.cos().to(self.lm_head.weight.dtype), freqs.sin().to(self.lm_head.weight.dtype)
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x))


def split_at_attention(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    partition = 0
    assignment: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        is_attention = node.op == "call_function" and node.target is attention
        partition += is_attention
        assignment[node.name] = partition
        partition += is_attention
    return split_module(gm, gm, lambda node: assignment[node.name], keep_original_order=True)


def lift_attributes(gm: torch.fx.GraphModule) -> list[torch.Tensor]:
    """Turn the split graph's `get_attr` nodes into trailing placeholders, as Dynamo lifts weights to inputs.

    vLLM's stitching graph receives parameters and buffers as arguments; the
    seed's string generator supports no `get_attr` at all. Returns the
    tensors to pass for the new placeholders, in order.
    """
    graph = gm.graph
    last_placeholder = [node for node in graph.nodes if node.op == "placeholder"][-1]
    lifted = []
    for node in [node for node in graph.nodes if node.op == "get_attr"]:
        with graph.inserting_after(last_placeholder):
            placeholder = graph.placeholder(node.name + "_")
        last_placeholder = placeholder
        node.replace_all_uses_with(placeholder)
        lifted.append(_fetch(gm, node.target))
        graph.erase_node(node)
    gm.recompile()
    return lifted


def _fetch(gm: torch.fx.GraphModule, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def is_attention_piece(piece: torch.fx.GraphModule) -> bool:
    return any(node.op == "call_function" and node.target is attention for node in piece.graph.nodes)


class CUDAGraphPiece:
    """A piece replayed from a CUDA graph: arguments that are not the captured buffers are copied in."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], pool: Any) -> None:
        self.static_args = args
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                fn(*args)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.static_out = fn(*args)

    def __call__(self, *args: Any) -> Any:
        for static, arg in zip(self.static_args, args, strict=True):
            if arg is not static and isinstance(arg, torch.Tensor):
                static.copy_(arg)
        self.graph.replay()
        return self.static_out


class _Capture(torch.fx.Interpreter):
    """One run of the split graph that turns each non-attention piece into its runtime callable.

    Pieces run in order on the real tensors of the step, so a piece's inputs
    are the very buffers earlier pieces' graphs return. Each result's example
    value goes into `meta["val"]`, as Dynamo records it, so tuple results have
    known arity.
    """

    def __init__(self, gm: torch.fx.GraphModule, use_cuda_graphs: bool) -> None:
        super().__init__(gm)
        self.use_cuda_graphs = use_cuda_graphs
        self.pool = torch.cuda.graph_pool_handle() if use_cuda_graphs else None
        self.runtime: dict[str, Callable[..., Any]] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if n.op == "call_module":
            n.meta["val"] = result
        return result

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        piece = self.fetch_attr(target)
        if self.use_cuda_graphs and not is_attention_piece(piece):
            runtime: Callable[..., Any] = CUDAGraphPiece(piece.forward, tuple(args), self.pool)
        else:
            runtime = piece.forward
        self.runtime[target] = runtime
        return runtime(*args)


Contenders = dict[str, tuple[Callable[..., Any], tuple[torch.Tensor, ...]]]


def build(args: argparse.Namespace) -> tuple[nn.Module, Contenders, tuple[torch.Tensor, ...]]:
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    model = Llama(args.layers, args.hidden, args.heads, args.vocab, args.context).to(device=device, dtype=dtype)
    model.inv_freq = model.inv_freq.float()
    model.eval()
    inputs = (torch.tensor([[11]], device=device), torch.tensor([args.context], device=device))
    traced = torch.fx.symbolic_trace(model)
    split = split_at_attention(traced)
    split_inputs = (*inputs, *lift_attributes(split))
    capture = _Capture(split, use_cuda_graphs=device.type == "cuda")
    with torch.inference_mode():
        capture.run(*split_inputs)
    runtime = capture.runtime
    for name, fn in runtime.items():
        split.__dict__[name] = fn  # vLLM's install: GraphModule.__call__ then calls the runtime pieces

    stitched = astgen.compile_graph(split, runtime)
    contenders: dict[str, tuple[Callable[..., Any], tuple[torch.Tensor, ...]]] = {
        "unsplit eager": (model, inputs),
        "GraphModule.__call__": (split, split_inputs),
        "string baseline": (string_baseline.compile_graph(split, runtime), split_inputs),
        "astgen .fn": (stitched.fn, split_inputs),
        "astgen CompiledGraph": (stitched, split_inputs),
    }
    return model, contenders, inputs


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    model, contenders, inputs = build(args)
    with torch.inference_mode():
        expected = model(*inputs).float()
        for name, (fn, fn_inputs) in contenders.items():
            got = fn(*fn_inputs).float()
            if not torch.allclose(got, expected, rtol=2e-2, atol=2e-2):
                raise AssertionError(f"{name} disagrees with the eager model: {(got - expected).abs().max()}")
        for fn, fn_inputs in contenders.values():
            for _ in range(args.warmup):
                fn(*fn_inputs)
        sync(args.device)
        latency: dict[str, list[float]] = {name: [] for name in contenders}
        host: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, (fn, fn_inputs) in contenders.items():
                sync(args.device)
                start = time.perf_counter()
                for _ in range(args.steps):
                    fn(*fn_inputs)
                sync(args.device)
                latency[name].append((time.perf_counter() - start) / args.steps)
                issue = []
                for _ in range(args.steps):
                    sync(args.device)
                    start = time.perf_counter()
                    fn(*fn_inputs)
                    issue.append(time.perf_counter() - start)
                sync(args.device)
                host[name].append(statistics.median(issue))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    return {
        "device": device_name,
        "torch": torch.__version__,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "latency_us": {name: statistics.median(values) * 1e6 for name, values in latency.items()},
        "host_us": {name: statistics.median(values) * 1e6 for name, values in host.items()},
    }


def report(results: dict[str, Any]) -> None:
    config = results["config"]
    print(
        f"\n## Decode step, Llama-shaped ({config['layers']} layers, hidden {config['hidden']}, "
        f"context {config['context']}, batch 1) on {results['device']}, torch {results['torch']}\n"
    )
    base = results["latency_us"]["astgen .fn"]
    print("| contender | step latency µs | host time µs | latency ÷ astgen .fn |")
    print("|---|---:|---:|---:|")
    for name, value in results["latency_us"].items():
        print(f"| {name} | {value:,.1f} | {results['host_us'][name]:,.1f} | {value / base:.3f} |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.device == "cpu" and args.vocab == 32000:
        args.vocab = 256
    results = measure(args)
    report(results)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
