"""One-token steps of a Llama-shaped decoder through SGLang 0.5.23's own piecewise backend, stitched two ways.

    python -m benchmarks.gpu_sglang --out benchmarks/results/gpu_sglang_h200.json   # both configurations
    python -m benchmarks.gpu_sglang --config host-bound                              # one of them
    python -m benchmarks.gpu_sglang --device cpu --layers 2 --hidden 64 --heads 4 --vocab 256 --context 8

It needs SGLang 0.5.23 installed (on the GPU machine, from wheels: docs/sglang.md);
`benchmarks.sglang_env` stubs what SGLang cannot import there.

The configurations are `benchmarks.gpu_llama`'s (`--config`, both by default):
gpu-bound (16 layers, hidden 1024) and host-bound (64 layers, hidden 256).
Attention is a custom op that writes into an output buffer the previous piece
allocated, registered as one of SGLang's split ops, so SGLang's backend splits
the Dynamo graph at it, as it splits a real model at its attention op.

The model is driven the way SGLang's `tc_piecewise` runner drives one:
`install_torch_compiled` wraps its forward, Dynamo traces it once with the
token dimension dynamic (`backed_size_oblivious`, or Dynamo specialises a
one-token step), SGLang's backend splits and compiles each piece (its
`eager` compiler) into a `CUDAPiecewiseBackend` object, and those objects
capture each non-attention piece as a CUDA graph for one token, on a capture
stream, then replay it. Contenders for one step, each a model of its own
with the same weights:

- SGLang: `install_torch_compiled` with SGLang's own backend, which returns
  its split `GraphModule` to Dynamo.
- SGLang + astgen: `install_torch_compiled(backend_factory=astgen.sglang.backend_factory(...))`,
  SGLang's backend with astgen's function returned instead.
- astgen .fn: that function called directly with the step's arguments, no
  Dynamo guards and no trampoline: the floor.

Reported per step: latency (launch to synchronize) and host time (until the
call returns, the GPU idle at the start); rounds are interleaved and the
per-round ratio to astgen .fn gives the noise. Then the stitching alone:
SGLang's split `GraphModule` and astgen's function for it, every piece a
function returning the output it recorded, timed per call; divided by the
step's host time, that is the stitcher's share of what the host does per step.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import sys
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.fx.experimental._config
import torch.nn.functional as F
from torch import nn

import astgen
from benchmarks import gpu_llama, sglang_env, timing
from benchmarks.gpu_llama import (
    Shape,
    _host_cpu,
    _ratio,
    _returning,
    _to_astgen_fn,
    _write,
    argument_parser,
    chosen_configs,
    in_microseconds,
    sync,
    time_steps,
)

SPLIT_OP = "astgen_bench.attention"
SGLANG = "SGLang"
SGLANG_ASTGEN = "SGLang + astgen"
# The contender ratios are taken to, named as gpu_llama names it.
ASTGEN_FN = gpu_llama.ASTGEN_FN
SPLIT_GM = "SGLang split_gm"
STEPS = (SGLANG, SGLANG_ASTGEN, ASTGEN_FN)


@torch.library.custom_op("astgen_bench::attention", mutates_args=("out",))
def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, out: torch.Tensor
) -> None:
    """Attention over a fixed-length cache plus the new tokens, written into `out` (SGLang's contract)."""
    keys = torch.cat([k_cache, k], dim=2)
    values = torch.cat([v_cache, v], dim=2)
    result = F.scaled_dot_product_attention(q, keys, values)
    out.copy_(result.transpose(1, 2).reshape(out.shape))


@attention.register_fake
def _(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, out: torch.Tensor
) -> None:
    return None


class Layer(gpu_llama.Layer):
    """`benchmarks.gpu_llama`'s layer for any number of tokens, its attention SGLang's split op."""

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        tokens, hidden = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(hidden, dim=-1)
        q, k, v = (t.view(1, tokens, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        out = torch.empty_like(x)
        torch.ops.astgen_bench.attention(q, k, v, self.k_cache, self.v_cache, out)
        x = x + self.o_proj(out)
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


Llama = gpu_llama.Llama


def arguments_of(code: Any, call: Callable[[], Any], *, method: bool = False) -> tuple[Any, ...]:
    """The positional arguments the function of `code` receives while `call()` runs (its first call).

    For a `method`, those after `self`.
    """
    seen: list[tuple[Any, ...]] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code and not seen:
            names = frame.f_code.co_varnames[int(method) : frame.f_code.co_argcount]
            seen.append(tuple(frame.f_locals[name] for name in names))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    if not seen:
        raise AssertionError(f"{code.co_name} was not called")
    return seen[0]


@dataclasses.dataclass
class Setup:
    eager: nn.Module
    steps: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]
    split_gm: torch.fx.GraphModule
    split_args: tuple[Any, ...]
    pieces: int
    attention_pieces: int
    captured: dict[str, int]


def build(shape: Shape, device: torch.device, *, capture: bool) -> Setup:
    """The three step contenders, their pieces compiled and, on CUDA, captured; the SGLang split graph."""
    from sglang.srt.compilation.backend import SGLangBackend
    from sglang.srt.compilation.compilation_config import CompilationConfig
    from sglang.srt.compilation.compile import install_torch_compiled
    from sglang.srt.compilation.compile_phase import set_pcg_capture_stream
    from sglang.srt.compilation.cuda_piecewise_backend import CUDAPiecewiseBackend

    import astgen.sglang

    torch.manual_seed(0)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    eager = Llama(**dataclasses.asdict(shape), layer=Layer).to(device=device, dtype=dtype).eval()
    models = {name: _own_forward(copy.deepcopy(eager), name) for name in (SGLANG, SGLANG_ASTGEN)}
    tokens = torch.tensor([7], device=device)
    positions = torch.tensor([shape.context], device=device)
    # One token is captured as a CUDA graph; on the CPU no size is, and the
    # pieces run their general-shape callable, all the CPU can do.
    config = CompilationConfig([1] if capture else [1 << 20], "eager")
    config.add_split_op(SPLIT_OP)
    # SGLang's backend refuses no pool; on the CPU nothing uses it.
    pool = torch.cuda.graph_pool_handle() if capture else object()
    made: dict[str, Any] = {}

    def sglang_backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        made[SGLANG] = SGLangBackend(config, pool)(gm, example_inputs)
        return made[SGLANG]

    astgen_factory = astgen.sglang.backend_factory(config, pool)

    def astgen_backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        made[SGLANG_ASTGEN] = astgen_factory(gm, example_inputs)
        return made[SGLANG_ASTGEN]

    for name, backend in ((SGLANG, sglang_backend), (SGLANG_ASTGEN, astgen_backend)):
        install_torch_compiled(
            models[name], dynamic_arg_dims={"tokens": 0, "positions": 0}, backend_factory=backend, graph_pool=pool
        )
    steps: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
        name: (models[name], (tokens, positions)) for name in (SGLANG, SGLANG_ASTGEN)
    }
    # The first call of a model compiles it and runs the compiled function
    # twice (`install_torch_compiled` calls it once to trigger Dynamo, then
    # its trampoline calls it): each piece's general-shape run and its warm-up
    # run. The second call captures each piece on a capture stream, what
    # SGLang's runner does, and every later call replays.
    stream = torch.cuda.Stream() if capture else None
    for model in models.values():
        model(tokens, positions)
        if stream is None:
            model(tokens, positions)
            continue
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), set_pcg_capture_stream(stream):
            model(tokens, positions)
        torch.cuda.current_stream().wait_stream(stream)
    sync(device)
    function = made[SGLANG_ASTGEN]
    steps[ASTGEN_FN] = (function, arguments_of(function.__code__, lambda: models[SGLANG_ASTGEN](tokens, positions)))
    split_gm = made[SGLANG]
    split_args = arguments_of(split_gm.forward.__code__, lambda: models[SGLANG](tokens, positions), method=True)
    captured = {}
    for name, fn in ((SGLANG, split_gm), (SGLANG_ASTGEN, function)):
        objects = _piece_objects(split_gm) if name == SGLANG else astgen.sglang.compiled_graph(fn).bindings
        backends = [getattr(obj, "__self__", obj) for obj in objects]
        captured[name] = sum(
            1
            for backend in backends
            if isinstance(backend, CUDAPiecewiseBackend)
            and any(entry.cudagraph is not None for entry in backend.concrete_size_entries.values())
        )
    calls = split_gm.graph.find_nodes(op="call_module")
    return Setup(
        eager=eager,
        steps=steps,
        split_gm=split_gm,
        split_args=split_args,
        pieces=len(calls),
        attention_pieces=sum(1 for call in calls if call.target not in split_gm.__dict__),
        captured=captured,
    )


def _own_forward(model: Llama, contender: str) -> Llama:
    """`model` with a `forward` whose code object is its own.

    `install_torch_compiled` drops every Dynamo cache entry of the forward's
    code when it compiles, so two models sharing `Llama.forward` would make
    the first recompile, and so make new pieces, after the second compiled.
    A server compiles one model per process and never meets this.
    """
    forward = Llama.forward
    code = forward.__code__.replace(co_name=forward.__name__)
    own = types.FunctionType(code, forward.__globals__, forward.__name__, forward.__defaults__, forward.__closure__)
    model.__class__ = type(f"Llama for {contender}", (Llama,), {"forward": own})
    return model


def _piece_objects(split_gm: torch.fx.GraphModule) -> list[Any]:
    return [split_gm.__dict__[name] for name in split_gm._modules if name in split_gm.__dict__]


def noop_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, out: torch.Tensor
) -> None:
    """`attention`'s signature and result, none of its work: what the stitching-alone timing calls."""


def no_op_stitchers(setup: Setup) -> dict[str, Callable[..., Any]]:
    """SGLang's split graph and astgen's function for it, with pieces that do no work.

    Each piece object SGLang installed becomes a function returning what it
    returned in one real step; each attention piece stays the `GraphModule`
    child it is, so SGLang's split graph still calls it through
    `nn.Module.__call__`, with its attention call made a no-op. Changes
    SGLang's split graph for good: the SGLang contender no longer computes
    the model after this.
    """
    import astgen.sglang

    split_gm = setup.split_gm
    outputs: dict[str, Any] = {}
    installed = [name for name in split_gm._modules if name in split_gm.__dict__]
    for name in installed:

        def recording(*args: Any, _name: str = name, _piece: Any = split_gm.__dict__[name]) -> Any:
            outputs[_name] = _piece(*args)
            return outputs[_name]

        split_gm.__dict__[name] = recording
    split_gm(*setup.split_args)
    for name in installed:
        split_gm.__dict__[name] = _returning(outputs[name])
    for name, piece in split_gm._modules.items():
        if name in installed:
            continue
        for node in piece.graph.nodes:
            if node.op == "call_function" and str(node.target).startswith(SPLIT_OP):
                node.target = noop_attention
        piece.recompile()
    return {SPLIT_GM: split_gm, ASTGEN_FN: astgen.sglang.stitch(split_gm)}


def check(setup: Setup) -> dict[str, dict[str, Any]]:
    """Each step contender against the eager model: bitwise equal, and the largest difference."""
    expected = setup.eager(*setup.steps[SGLANG][1])
    results = {}
    for name, (fn, args) in setup.steps.items():
        got = fn(*args)
        got = got[0] if isinstance(got, (tuple, list)) else got
        difference = (got.float() - expected.float()).abs().max().item()
        if not torch.allclose(got.float(), expected.float(), rtol=2e-2, atol=2e-2):
            raise AssertionError(f"{name} disagrees with the eager model: {difference}")
        results[name] = {"equal": bool(torch.equal(got, expected)), "max_difference": difference}
    return results


def summarize(rounds_us: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    medians = {
        kind: {name: statistics.median(values) for name, values in per_name.items()}
        for kind, per_name in rounds_us.items()
    }
    stitch = medians["stitch"]
    host = medians["host"]
    return {
        "latency_us": medians["latency"],
        "host_us": host,
        "stitch_us": stitch,
        "latency_to_astgen_fn": _to_astgen_fn(rounds_us["latency"]),
        "host_to_astgen_fn": _to_astgen_fn(rounds_us["host"]),
        "stitch_to_astgen_fn": _to_astgen_fn(rounds_us["stitch"]),
        # Each stitcher's time against the host time of the step it runs in.
        "stitch_share_of_host": {
            SPLIT_GM: stitch[SPLIT_GM] / host[SGLANG],
            ASTGEN_FN: stitch[ASTGEN_FN] / host[SGLANG_ASTGEN],
        },
    }


def measure(shape: Shape, args: argparse.Namespace) -> dict[str, Any]:
    from sglang.srt.model_executor.runner_backend_utils.tc_piecewise_cuda_graph import (
        enable_tc_piecewise_cuda_graph,
    )

    device = torch.device(args.device)
    # Inside SGLang's flag, as its runner calls the model: otherwise the
    # trampoline runs the uncompiled forward. Compiled and run in one grad
    # mode, so Dynamo's guards hold.
    with torch.inference_mode(), enable_tc_piecewise_cuda_graph():
        setup = build(shape, device, capture=device.type == "cuda")
        outputs = check(setup)
        latency, host = time_steps(setup.steps, device, steps=args.steps, rounds=args.rounds, warmup=args.warmup)
        stitchers = no_op_stitchers(setup)
        stitch = timing.per_call(
            {name: (fn, setup.split_args) for name, fn in stitchers.items()},
            rounds=args.rounds,
            target_s=args.stitch_target_s,
        )
    rounds_us = in_microseconds({"latency": latency, "host": host, "stitch": stitch})
    return {
        "model": dataclasses.asdict(shape),
        "dtype": "float16" if device.type == "cuda" else "float32",
        "pieces": setup.pieces,
        "attention_pieces": setup.attention_pieces,
        "cuda_graph_pieces": setup.captured,
        "outputs": outputs,
        **summarize(rounds_us),
        "rounds_us": rounds_us,
    }


def report(results: dict[str, Any]) -> None:
    print(
        f"\n# {results['device']}, torch {results['torch']}, SGLang {results['sglang']}, "
        f"Python {results['python']}, host {results['host_cpu']} ({results['host_cpus']} CPUs)"
    )
    for name, config in results["configurations"].items():
        model = config["model"]
        print(
            f"\n## {name}: Llama-shaped, {model['layers']} layers, hidden {model['hidden']}, {model['heads']} heads, "
            f"vocab {model['vocab']}, context {model['context']}, {config['dtype']}, one-token steps; "
            f"{config['pieces']} pieces, {config['attention_pieces']} of them attention; pieces replayed as CUDA "
            f"graphs: {', '.join(f'{k} {v}' for k, v in config['cuda_graph_pieces'].items())}\n"
        )
        print("| step contender | latency µs | ÷ astgen .fn | host time µs | ÷ astgen .fn | output |")
        print("|---|---:|---:|---:|---:|---|")
        for contender, latency in config["latency_us"].items():
            output = config["outputs"][contender]
            agreement = "bitwise eager" if output["equal"] else f"max diff {output['max_difference']:.3g}"
            print(
                f"| {contender} | {latency:,.1f} | {_ratio(config['latency_to_astgen_fn'][contender])} "
                f"| {config['host_us'][contender]:,.1f} | {_ratio(config['host_to_astgen_fn'][contender])} "
                f"| {agreement} |"
            )
        print("\n| stitching alone (no-op pieces) | µs per call | ÷ astgen .fn | ÷ its step's host time |")
        print("|---|---:|---:|---:|")
        for contender, stitch in config["stitch_us"].items():
            print(
                f"| {contender} | {stitch:,.2f} | {_ratio(config['stitch_to_astgen_fn'][contender])} "
                f"| {config['stitch_share_of_host'][contender]:.1%} |"
            )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__)
    args = parser.parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text())
        report(results)
        return results
    configs = chosen_configs(parser, args)
    device = torch.device(args.device)
    sglang_env.prepare(device.type)
    from importlib.metadata import version

    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "sglang": version("sglang"),
        "astgen": astgen.__version__,
        "python": platform.python_version(),
        "host_cpu": _host_cpu(),
        "host_cpus": os.cpu_count(),
        "settings": {name: getattr(args, name) for name in ("device", "steps", "rounds", "warmup", "stitch_target_s")},
    }
    # Without it Dynamo specialises the one-token dimension to 1, and no size is left to capture.
    with torch.fx.experimental._config.patch(backed_size_oblivious=True):
        results["configurations"] = {name: measure(shape, args) for name, shape in configs.items()}
    report(results)
    _write(results, args.out)
    return results


if __name__ == "__main__":
    main()
