"""Smoke runs of every benchmark at its smallest size, so `make bench` cannot rot between runs.

Timings are not asserted (they belong to the benchmark's printed targets);
what is asserted is what must hold on any machine: every contender computes
the same result, the outputs get written, and astgen frees what nobody reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import graphs, hand_written, memory, per_call, run, string_baseline


def test_run_quick_writes_table_json_and_plot(tmp_path: Path, capsys) -> None:
    results = run.main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "| astgen .fn |" in printed and "## Targets" in printed
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written["per_call"][0]["submodules"] == 3
    assert set(written["per_call"][0]["median_s"]) == set(per_call.CONTENDERS)
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert {item["status"] for item in results["targets"]} <= {"PASS", "MISS", "INFO", "N/A"}


def test_contenders_return_the_last_pieces_result() -> None:
    stitching = graphs.build(2, graphs.trivial)
    fns = per_call.contenders(stitching)
    inputs = graphs.trivial_inputs()
    last = stitching.gm.__dict__[stitching.pieces[-1].name]()
    assert all(fn(*inputs) is last for fn in fns.values())


def test_graph_shape_matches_vllm_split() -> None:
    stitching = graphs.build(80, graphs.trivial)
    assert stitching.submodules == 161
    assert stitching.nodes == 7 * 80 + 5
    code, names = string_baseline.generate_execution_code(stitching.gm)
    assert names == [piece.name for piece in stitching.pieces]
    assert "__vllm_submods__[160]" in code


def test_hand_written_unpacks_and_binds_globals() -> None:
    stitching = graphs.build(1, graphs.trivial)
    source = hand_written.source(stitching)
    assert "q, k, v, residual, out = submod_0(x, s0, positions)" in source
    assert "__vllm_submods__" not in source


def test_memory_astgen_frees_unused_results_the_string_baseline_keeps() -> None:
    (row,) = memory.measure((4,))
    peaks = row["peak_bytes"]
    assert peaks[memory.ASTGEN] <= peaks[memory.HAND]
    # The seed never deletes a value without users: one side result per layer piles up.
    assert peaks[memory.STRING] - peaks[memory.ASTGEN] >= 3 * 2 * memory.UNIT
    assert row["retained_after_call_bytes"][memory.ASTGEN] == 0


def test_artifact_benchmarks_run_and_agree(tmp_path: Path, capsys) -> None:
    from benchmarks import artifact

    load = artifact.measure_load((50,), rounds=1)
    assert set(load[0]["median_s"]) == set(artifact.LOAD_CONTENDERS)
    calls = artifact.measure_calls((2,), rounds=1, target_s=0.001)
    assert calls[0]["attention_pieces"] == 2
    artifact.print_load(load)
    artifact.print_calls(calls)
    assert "Warm load" in capsys.readouterr().out


def test_vllm033_generator_is_found_by_path_or_its_rows_are_skipped(tmp_path: Path, monkeypatch) -> None:
    from benchmarks import vllm033

    monkeypatch.setenv(vllm033.ENVIRONMENT, str(tmp_path / "missing.py"))
    module, reason = vllm033.load()
    assert module is None and "missing.py" in reason and "skipped" in reason
    against = run.vllm033_targets({"found": False, "source": reason, "cold": [], "class_pieces": []}, [])
    assert against and all(item["status"] == "N/A" and "not installed" in item["missing"] for item in against)
    stand_in = tmp_path / "codegen.py"
    stand_in.write_text("from astgen.vllm import compile_execution_fn, generate_execution_code\n")
    monkeypatch.setenv(vllm033.ENVIRONMENT, str(stand_in))
    module, source = vllm033.load()
    assert module is not None and source == str(stand_in)
    assert module.__name__ not in ("codegen", "vllm.compilation.codegen")


def test_vllm033_rows_run_in_both_shapes_against_a_generator_of_the_same_contract() -> None:
    import astgen.vllm
    from benchmarks import artifact, codegen, vllm033

    # astgen's drop-in has vLLM's contract, so it stands in for the wheel's generator here.
    cold = codegen.measure_vllm(astgen.vllm, (8, 50), rounds=1)
    assert [(row["shape"], row["nodes"]) for row in cold] == [
        (shape, nodes) for shape in vllm033.SHAPES for nodes in (8, 47)
    ]
    inlined = vllm033.decoder(8, vllm033.INLINED)
    assert sorted(vllm033.callables(inlined)) == ["submod_0", "submod_2"]
    (per,) = per_call.measure_class_pieces(astgen.vllm, (1,), rounds=1, target_s=0.001)
    assert per["submodules"] == 3 and set(per["median_s"]) == set(per_call.CLASS_CONTENDERS)
    (load,) = artifact.measure_load((50,), rounds=1, generator=astgen.vllm)
    assert artifact.VLLM033 in load["ratio_to_vllm033"]
    section = {"found": True, "source": "stand-in", "cold": cold, "class_pieces": [per]}
    statuses = {item["target"]: item["status"] for item in run.vllm033_targets(section, [load])}
    assert statuses["per call, class-instance pieces, astgen / vLLM 0.33 at 3 submods <= 0.8"] in ("PASS", "MISS")
