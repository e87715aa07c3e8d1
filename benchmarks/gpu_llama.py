"""Decode steps of a Llama-shaped model split at attention, pieces as CUDA graphs, stitched six ways.

    python -m benchmarks.gpu_llama --out benchmarks/results/gpu_llama_h100.json   # both configurations
    python -m benchmarks.gpu_llama --config host-bound                             # one of them
    python -m benchmarks.gpu_llama --device cpu --layers 2 --hidden 64 --heads 4 --vocab 256 --context 8

Two configurations (`--config`, both by default):

- gpu-bound: 16 layers, hidden 1024, 16 heads, vocab 32000, context 512,
  fp16: the GPU's work sets the step time.
- host-bound: 64 layers, hidden 256, 4 heads, vocab 4096, context 128: tiny
  kernels and 129 pieces, so the host's issue cost is most of the step.

Size flags (`--layers` and the rest) make one configuration, "custom", of the
gpu-bound sizes with the flags applied: the CPU smoke run uses it.

The model (random weights) is traced with `torch.fx.symbolic_trace`, with
attention as a leaf function, and split at each attention call by
`astgen.split_graph`, as vLLM's piecewise backend splits it. On CUDA every
non-attention piece is captured as a `torch.cuda.CUDAGraph` with static
input and output buffers, the way vLLM runs pieces; attention runs eagerly
and writes into an output buffer the previous piece allocated, so the next
piece finds its input at the captured address and nothing is copied.

Contenders for one batch-1 decode step:

- unsplit eager: the model itself.
- GraphModule.__call__ (nn.Module pieces): FX's generated `forward` with every
  piece an `nn.Module` child, as `split_module` leaves them, so each piece call
  pays `nn.Module.__call__` (a CUDA-graph piece is wrapped in a module).
- GraphModule.__call__ (vLLM's install): the CUDA-graph pieces put in the
  GraphModule's `__dict__` and the attention pieces left as its children, as
  vLLM's piecewise backend ran before it generated code.
- string baseline, astgen .fn, astgen CompiledGraph: generated functions calling
  the same callables (an attention piece through its generated `forward`).
- astgen .fn, attention inlined: `compile_graph(..., inline=True)`, the
  attention pieces' graphs spliced into the function.

Reported per step: latency (launch to synchronize) and host time (until the
call returns, with the GPU idle at the start, so the host's issue cost is what
is timed); rounds are interleaved and the per-round ratio to astgen .fn gives
the noise. Then each stitcher again with no-op pieces (every CUDA-graph piece
a function returning its captured output, the attention function one
returning its `out` buffer), timed per call on the same host: divided by the
step's host time, that is the stitcher's share of what the host does per step.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import astgen
from benchmarks import string_baseline, timing


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


def noop_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """`attention`'s signature and result, none of its work: what the stitching-alone timing calls."""
    return out


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
    def __init__(
        self, layers: int, hidden: int, heads: int, vocab: int, context: int, layer: type[Layer] = Layer
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(layer(hidden, heads, context) for _ in range(layers))
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


@dataclasses.dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    vocab: int
    context: int


CONFIGS = {
    "gpu-bound": Shape(layers=16, hidden=1024, heads=16, vocab=32000, context=512),
    "host-bound": Shape(layers=64, hidden=256, heads=4, vocab=4096, context=128),
}

EAGER = "unsplit eager"
MODULES = "GraphModule.__call__ (nn.Module pieces)"
VLLM = "GraphModule.__call__ (vLLM's install)"
STRING = "string baseline"
ASTGEN_FN = "astgen .fn"
ASTGEN_CG = "astgen CompiledGraph"
INLINED = "astgen .fn, attention inlined"
STITCHERS = (MODULES, VLLM, STRING, ASTGEN_FN, ASTGEN_CG, INLINED)


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


def _fetch(gm: torch.fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


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
    """One run of the stitching graph that turns each non-attention piece into its runtime callable.

    Pieces run in order on the real tensors of the step, so a piece's inputs
    are the very buffers earlier pieces' graphs return. Each result's example
    value goes into `meta["val"]`, as Dynamo records it, so tuple results have
    known arity; `outputs` keeps it for the no-op pieces.
    """

    def __init__(self, gm: torch.fx.GraphModule, attention_pieces: frozenset[str], use_cuda_graphs: bool) -> None:
        super().__init__(gm)
        self.attention_pieces = attention_pieces
        self.use_cuda_graphs = use_cuda_graphs
        self.pool = torch.cuda.graph_pool_handle() if use_cuda_graphs else None
        self.runtime: dict[str, Callable[..., Any]] = {}
        self.outputs: dict[str, Any] = {}

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        piece = self.fetch_attr(target)
        if target in self.attention_pieces:
            result = piece.forward(*args)
        else:
            runtime = CUDAGraphPiece(piece.forward, tuple(args), self.pool) if self.use_cuda_graphs else piece.forward
            self.runtime[target] = runtime
            result = runtime(*args)
        self.outputs[target] = result
        return result

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if n.op == "call_module":
            n.meta["val"] = result
        return result


class _Piece(nn.Module):
    """A runtime callable as an `nn.Module` child, the form `split_module` gives a piece."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def _returning(value: Any) -> Callable[..., Any]:
    def piece(*args: Any) -> Any:
        return value

    return piece


def _calling(piece: torch.fx.GraphModule, old: Callable[..., Any], new: Callable[..., Any]) -> torch.fx.GraphModule:
    """A copy of `piece` whose calls of `old` call `new`."""
    copied = copy.deepcopy(piece)
    for node in copied.graph.nodes:
        if node.op == "call_function" and node.target is old:
            node.target = new
    copied.recompile()
    return copied


def stitchers(
    graph: torch.fx.Graph,
    order: list[str],
    runtime: Mapping[str, Callable[..., Any]],
    attention_pieces: Mapping[str, torch.fx.GraphModule],
    errors: dict[str, str],
) -> dict[str, Callable[..., Any]]:
    """Every stitcher of `graph`, calling `runtime`'s callables and the attention pieces.

    A stitcher that fails to build is left out and its error kept in `errors`:
    one device run still measures the others.
    """
    root = nn.Module()
    for name in order:
        root.add_module(name, attention_pieces[name] if name in attention_pieces else _Piece(runtime[name]))
    with_modules = torch.fx.GraphModule(root, graph)
    called = {**runtime, **{name: piece.forward for name, piece in attention_pieces.items()}}

    def vllm_install() -> torch.fx.GraphModule:
        installed = torch.fx.GraphModule(root, graph)
        installed.__dict__.update(runtime)
        return installed

    builders: dict[str, Callable[[], Callable[..., Any]]] = {
        MODULES: lambda: with_modules,
        VLLM: vllm_install,
        STRING: lambda: string_baseline.compile_graph(with_modules, called),
        ASTGEN_FN: lambda: astgen.compile_graph(with_modules, called).fn,
        ASTGEN_CG: lambda: astgen.compile_graph(with_modules, called),
        INLINED: lambda: astgen.compile_graph(with_modules, runtime, inline=True).fn,
    }
    built = {}
    for name, build in builders.items():
        try:
            built[name] = build()
        except Exception as error:  # recorded and reported: the run goes on
            errors[name] = f"{type(error).__name__}: {error}"
    return built


@dataclasses.dataclass
class Setup:
    model: nn.Module
    inputs: tuple[torch.Tensor, ...]
    split_inputs: tuple[torch.Tensor, ...]
    steps: dict[str, Callable[..., Any]]
    noop: dict[str, Callable[..., Any]]
    noop_result: Any
    pieces: int
    attention_pieces: int
    errors: dict[str, str]


def build(shape: Shape, device: torch.device) -> Setup:
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    model = Llama(shape.layers, shape.hidden, shape.heads, shape.vocab, shape.context).to(device=device, dtype=dtype)
    model.inv_freq = model.inv_freq.float()
    model.eval()
    inputs = (torch.tensor([[11]], device=device), torch.tensor([shape.context], device=device))
    split = astgen.split_graph(torch.fx.symbolic_trace(model), {attention})
    stitching = split.stitching
    split_inputs = (*inputs, *lift_attributes(stitching))
    capture = _Capture(stitching, split.splitting, use_cuda_graphs=device.type == "cuda")
    with torch.inference_mode():
        capture.run(*split_inputs)
    order = list(split.pieces)
    attention_pieces = {name: split.pieces[name] for name in split.splitting}
    errors: dict[str, str] = {}
    steps: dict[str, Callable[..., Any]] = {
        EAGER: model,
        **stitchers(stitching.graph, order, capture.runtime, attention_pieces, errors),
    }
    noop_errors: dict[str, str] = {}
    noop = stitchers(
        stitching.graph,
        order,
        {name: _returning(capture.outputs[name]) for name in capture.runtime},
        {name: _calling(piece, attention, noop_attention) for name, piece in attention_pieces.items()},
        noop_errors,
    )
    errors.update({f"{name} (no-op pieces)": error for name, error in noop_errors.items()})
    return Setup(
        model,
        inputs,
        split_inputs,
        steps,
        noop,
        capture.outputs[order[-1]],
        len(order),
        len(attention_pieces),
        errors,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def check(setup: Setup) -> None:
    """Every step contender computes the eager model's logits; every no-op stitcher returns the last piece's output."""
    expected = setup.model(*setup.inputs).float()
    for name, fn in setup.steps.items():
        got = fn(*(setup.inputs if name == EAGER else setup.split_inputs)).float()
        if not torch.allclose(got, expected, rtol=2e-2, atol=2e-2):
            raise AssertionError(f"{name} disagrees with the eager model: {(got - expected).abs().max()}")
    for name, fn in setup.noop.items():
        if fn(*setup.split_inputs) is not setup.noop_result:
            raise AssertionError(f"{name} with no-op pieces does not return the last piece's output")


def measure_steps(
    setup: Setup, device: torch.device, *, steps: int, rounds: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-round latency and host time, in seconds, of each step contender; rounds interleave the contenders."""
    calls = {name: (fn, setup.inputs if name == EAGER else setup.split_inputs) for name, fn in setup.steps.items()}
    return time_steps(calls, device, steps=steps, rounds=rounds, warmup=warmup)


def time_steps(
    calls: Mapping[str, tuple[Callable[..., Any], tuple[Any, ...]]],
    device: torch.device,
    *,
    steps: int,
    rounds: int,
    warmup: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-round latency (launch to synchronize) and host time (until the call returns, the GPU idle
    at the start), in seconds, of each `name: (fn, args)`; rounds interleave the contenders."""
    for fn, args in calls.values():
        for _ in range(warmup):
            fn(*args)
    sync(device)
    latency: dict[str, list[float]] = {name: [] for name in calls}
    host: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (fn, args) in calls.items():
            gc.collect()
            gc.disable()
            try:
                sync(device)
                start = time.perf_counter()
                for _ in range(steps):
                    fn(*args)
                sync(device)
                latency[name].append((time.perf_counter() - start) / steps)
                issue = []
                for _ in range(steps):
                    sync(device)
                    start = time.perf_counter()
                    fn(*args)
                    issue.append(time.perf_counter() - start)
                sync(device)
                host[name].append(statistics.median(issue))
            finally:
                gc.enable()
    return latency, host


def measure(shape: Shape, args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    setup = build(shape, device)
    with torch.inference_mode():
        check(setup)
        latency, host = measure_steps(setup, device, steps=args.steps, rounds=args.rounds, warmup=args.warmup)
        stitch = timing.per_call(
            {name: (fn, setup.split_inputs) for name, fn in setup.noop.items()},
            rounds=args.rounds,
            target_s=args.stitch_target_s,
        )
    rounds_us = in_microseconds({"latency": latency, "host": host, "stitch": stitch})
    return {
        "model": dataclasses.asdict(shape),
        "dtype": "float16" if device.type == "cuda" else "float32",
        "pieces": setup.pieces,
        "attention_pieces": setup.attention_pieces,
        **summarize(rounds_us),
        "rounds_us": rounds_us,
        "errors": setup.errors,
    }


def in_microseconds(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, list[float]]]:
    """Each kind's per-contender samples, seconds made microseconds."""
    return {
        kind: {name: [value * 1e6 for value in values] for name, values in per.items()} for kind, per in samples.items()
    }


def _to_astgen_fn(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per-round ratios to astgen .fn's sample of the same round: their range is the noise."""
    ratios = {}
    for name, values in samples.items():
        per_round = [value / base for value, base in zip(values, samples[ASTGEN_FN], strict=True)]
        ratios[name] = {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round)}
    return ratios


def summarize(rounds_us: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Medians, per-round ratios to astgen .fn and the stitcher's shares, all from the rounds' samples."""
    medians = {
        kind: {name: statistics.median(values) for name, values in per_name.items()}
        for kind, per_name in rounds_us.items()
    }
    stitch_us = medians["stitch"]
    return {
        "latency_us": medians["latency"],
        "host_us": medians["host"],
        "stitch_us": stitch_us,
        "latency_to_astgen_fn": _to_astgen_fn(rounds_us["latency"]),
        "host_to_astgen_fn": _to_astgen_fn(rounds_us["host"]),
        "stitch_to_astgen_fn": _to_astgen_fn(rounds_us["stitch"]),
        "stitch_share_of_host": {name: stitch_us[name] / medians["host"][name] for name in stitch_us},
        "stitch_share_of_latency": {name: stitch_us[name] / medians["latency"][name] for name in stitch_us},
    }


def _host_cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ratio(ratio: dict[str, float]) -> str:
    """The median per-round ratio and, in brackets, the rounds' range: the noise."""
    return f"{ratio['median']:.3f} ({ratio['min']:.2f} to {ratio['max']:.2f})"


def report(results: dict[str, Any]) -> None:
    print(
        f"\n# {results['device']}, torch {results['torch']}, Python {results['python']}, "
        f"host {results['host_cpu']} ({results['host_cpus']} CPUs)"
    )
    for name, config in results["configurations"].items():
        model = config["model"]
        print(
            f"\n## {name}: Llama-shaped, {model['layers']} layers, hidden {model['hidden']}, {model['heads']} heads, "
            f"vocab {model['vocab']}, context {model['context']}, {config['dtype']}, batch-1 decode; "
            f"{config['pieces']} pieces, {config['attention_pieces']} of them attention\n"
        )
        print(
            "| contender | step latency µs | ÷ astgen .fn | host time µs "
            "| stitching alone µs | ÷ astgen .fn | ÷ step host time |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for contender, latency in config["latency_us"].items():
            cells = [f"{latency:,.1f}", _ratio(config["latency_to_astgen_fn"][contender])]
            cells.append(f"{config['host_us'][contender]:,.1f}")
            if contender in config["stitch_us"]:
                cells.append(f"{config['stitch_us'][contender]:,.1f}")
                cells.append(_ratio(config["stitch_to_astgen_fn"][contender]))
                cells.append(f"{config['stitch_share_of_host'][contender]:.1%}")
            else:
                cells += ["n/a"] * 3
            print(f"| {contender} | " + " | ".join(cells) + " |")
        for contender, error in config["errors"].items():
            print(f"ERROR {contender}: {error}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__)
    args = parser.parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text())
        for config in results["configurations"].values():
            config.update(summarize(config["rounds_us"]))
        report(results)
        _write(results, args.out)
        return results
    configs = chosen_configs(parser, args)
    device = torch.device(args.device)
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "astgen": astgen.__version__,
        "python": platform.python_version(),
        "host_cpu": _host_cpu(),
        "host_cpus": os.cpu_count(),
        "settings": {name: getattr(args, name) for name in ("device", "steps", "rounds", "warmup", "stitch_target_s")},
        "configurations": {name: measure(shape, args) for name, shape in configs.items()},
    }
    report(results)
    _write(results, args.out)
    return results


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The command line this benchmark and `benchmarks.gpu_sglang` share."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS), help="repeatable; default: both")
    for field in dataclasses.fields(Shape):
        parser.add_argument(f"--{field.name}", type=int, default=None, help="with any size flag: one custom config")
    parser.add_argument("--steps", type=int, default=50, help="steps per sample")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--stitch-target-s", type=float, default=0.02, help="seconds per no-op stitching sample")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument(
        "--report", type=Path, default=None, help="measure nothing: print the tables of a results JSON written earlier"
    )
    return parser


def chosen_configs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Shape]:
    """`--config`s by name, or one "custom" of the gpu-bound sizes with the size flags applied."""
    sizes = {field.name: getattr(args, field.name) for field in dataclasses.fields(Shape)}
    overrides = {name: value for name, value in sizes.items() if value is not None}
    if overrides and args.config:
        parser.error("--config and size flags exclude each other")
    if overrides:
        return {"custom": dataclasses.replace(CONFIGS["gpu-bound"], **overrides)}
    return {name: CONFIGS[name] for name in args.config or CONFIGS}


def _write(results: dict[str, Any], out: Path | None) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
