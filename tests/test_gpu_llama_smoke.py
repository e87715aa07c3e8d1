"""The GPU benchmark at a tiny size on the CPU, so the one device run it is written for cannot rot.

Timings are not asserted; what is: every contender builds and computes the
eager model's logits (`measure` checks that before timing), every stitcher is
timed again with no-op pieces, and the inlined no-op stitcher calls the no-op
attention, not the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmarks import gpu_llama

TINY = ["--device", "cpu", "--layers", "2", "--hidden", "64", "--heads", "4", "--vocab", "256", "--context", "8"]


def test_runs_on_cpu_and_writes_every_contender(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gpu_llama.json"
    settings = ["--steps", "1", "--rounds", "2", "--warmup", "1", "--stitch-target-s", "0.0005"]
    results = gpu_llama.main([*TINY, *settings, "--out", str(out)])
    (config,) = results["configurations"].values()
    assert config["errors"] == {}
    assert set(config["latency_us"]) == {gpu_llama.EAGER, *gpu_llama.STITCHERS}
    assert set(config["stitch_us"]) == set(gpu_llama.STITCHERS)
    assert (config["pieces"], config["attention_pieces"]) == (5, 2)
    assert json.loads(out.read_text())["device"] == "cpu"
    assert "| astgen .fn, attention inlined |" in capsys.readouterr().out
    again = gpu_llama.main(["--report", str(out)])
    assert again["configurations"] == json.loads(json.dumps(results["configurations"]))


def test_inlined_no_op_stitcher_splices_the_no_op_attention() -> None:
    setup = gpu_llama.build(gpu_llama.Shape(layers=1, hidden=32, heads=2, vocab=16, context=4), torch.device("cpu"))
    bound = {id(value) for value in setup.noop[gpu_llama.INLINED].__globals__.values()}
    assert id(gpu_llama.noop_attention) in bound and id(gpu_llama.attention) not in bound
    real = {id(value) for value in setup.steps[gpu_llama.INLINED].__globals__.values()}
    assert id(gpu_llama.attention) in real
