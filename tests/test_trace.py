"""astgen in torch's own tools: TORCH_TRACE artifacts read back by tlparse, dynamo_timed stages, the `astgen` logger."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch._dynamo
import torch._dynamo.utils
import torch.nn.functional as F
from torch import nn
from torch._logging._internal import trace_log

import astgen
from astgen import examples, trace
from astgen.vllm import compile_execution_fn, generate_execution_code

ROOT = Path(__file__).resolve().parent.parent

MODEL = """
import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.out(y.transpose(1, 2).flatten(2))


torch.manual_seed(0)
model = nn.Sequential(Attention(), nn.GELU(), Attention()).eval()
"""

# One graph through the backend (inside a Dynamo compile), one through the
# library and the loader (outside any): what each logged is printed to compare.
TRACED = (
    MODEL
    + """
import json, sys
import astgen
from astgen import examples
from astgen.piecewise import astgen_backend

with torch.no_grad():
    torch.compile(model, backend="astgen", options={"piece_backend": "eager"})(torch.randn(2, 5, 16))
(graph,) = astgen_backend.compiled
toy = examples.toy()
library = astgen.compile_graph(toy, cache=False)
artifact = library.artifact()
astgen.load(artifact, {name: getattr(toy, name) for name in artifact.piece_names})
print(json.dumps({
    "backend": [graph.source, astgen.format_function(graph.ir)],
    "library": [library.source, astgen.format_function(library.ir), artifact.code],
}))
"""
)

STAGES = ("astgen.lower", "astgen.passes", "astgen.emit", "astgen.compile", "astgen.bind")


def _tlparse() -> str:
    beside = Path(sys.executable).with_name("tlparse")
    found = str(beside) if beside.exists() else shutil.which("tlparse")
    if found is None:
        pytest.fail("tlparse is not installed: it is in the test extra (pip install -e '.[test]')")
    return found


def _run(script: str, trace_dir: Path | None) -> str:
    env = {key: value for key, value in os.environ.items() if key != "TORCH_TRACE"}
    if trace_dir is not None:
        env["TORCH_TRACE"] = str(trace_dir)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_tlparse_shows_the_source_and_ir_of_every_graph_and_the_stage_timings(tmp_path: Path) -> None:
    trace_dir, out = tmp_path / "trace", tmp_path / "tl_out"
    printed = json.loads(_run(TRACED, trace_dir).splitlines()[-1])
    (log_file,) = trace_dir.iterdir()
    # --strict: a malformed record of ours fails the parse instead of being skipped.
    parsed = subprocess.run(
        [_tlparse(), str(log_file), "-o", str(out), "--no-browser", "--strict"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr

    directory = json.loads((out / "compile_directory.json").read_text())
    # tlparse names an artifact's file `<name>_<number>.txt`, under its compile id.
    artifacts: dict[str, dict[str, list[str]]] = {}
    for compile_id, entry in directory.items():
        for item in entry["artifacts"]:
            name = re.sub(r"_\d+\.\w+$", "", item["name"])
            artifacts.setdefault(compile_id, {}).setdefault(name, []).append((out / item["url"]).read_text())

    backend_source, backend_ir = printed["backend"]
    assert artifacts["[0/0]"]["astgen_source"] == [backend_source]
    assert artifacts["[0/0]"]["astgen_ir"] == [backend_ir]
    library_source, library_ir, loaded = printed["library"]
    outside = artifacts["[-/-]"]
    assert outside["astgen_source"] == [library_source]
    assert outside["astgen_ir"] == [library_ir]
    assert outside["astgen_loaded_source"] == [loaded]
    index = (out / "index.html").read_text()
    assert "astgen_source" in index and "astgen_ir" in index

    events = json.loads((out / "chromium_events.json").read_text())
    timed = {event["name"] for event in events if event["name"].startswith("astgen.")}
    assert timed == {*STAGES, "astgen.split", "astgen.compile_pieces", "astgen.load"}


def test_the_library_imports_no_dynamo_to_trace_or_time_itself() -> None:
    # The first record torch's trace log gets builds its payload and imports
    # Dynamo, TORCH_TRACE or not: astgen must not be the one to send it.
    script = """
import sys
import astgen
from astgen import examples

toy = examples.toy()
compiled = astgen.compile_graph(toy, cache=False)
print(compiled.generated._source is None)
artifact = compiled.artifact()
astgen.load(artifact, {name: getattr(toy, name) for name in artifact.piece_names})
print(sorted(name for name in ("torch._dynamo", "torch._inductor") if name in sys.modules))
"""
    assert _run(script, None).split() == ["True", "[]"]


def _counts() -> dict[str, int]:
    return {key: len(values) for key, values in torch._dynamo.utils.compilation_time_metrics.items()}


def _grown(before: dict[str, int]) -> dict[str, int]:
    return {key: count - before.get(key, 0) for key, count in _counts().items() if count != before.get(key, 0)}


def test_each_stage_is_timed_under_its_dynamo_timed_name() -> None:
    toy = examples.toy()
    pieces = {name: getattr(toy, name) for name in ("submod_0", "submod_1", "submod_2")}

    before = _counts()
    compiled = astgen.compile_graph(toy, cache=False)
    assert _grown(before) == dict.fromkeys(STAGES, 1)
    assert all(seconds >= 0 for key in STAGES for seconds in torch._dynamo.utils.compilation_time_metrics[key])

    astgen.compile_graph(toy)
    before = _counts()
    astgen.compile_graph(toy)  # the code cache's hit: nothing generated, only lowered and bound
    assert _grown(before) == {"astgen.lower": 1, "astgen.bind": 1}

    before = _counts()
    astgen.load(compiled.artifact(), pieces)
    assert _grown(before) == {"astgen.load": 1}

    before = _counts()
    code, names, consts = generate_execution_code(toy)
    compile_execution_fn(code, pieces, names, consts)
    assert set(_grown(before)) >= {"astgen.lower", "astgen.load"}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.artifacts: list[tuple[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        metadata = getattr(record, "metadata", {})
        if "artifact" in metadata:
            self.artifacts.append((metadata["artifact"]["name"], getattr(record, "payload", None)))


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> _Records:
    records = _Records()
    monkeypatch.setattr(trace_log, "handlers", [records])
    return records


def test_artifacts_name_what_was_compiled_and_loaded(traced: _Records) -> None:
    toy = examples.toy()
    compiled = astgen.compile_graph(toy, cache=False)
    code, names, consts = generate_execution_code(toy)
    compile_execution_fn(code, {name: getattr(toy, name) for name in names}, names, consts)
    refused = "import os\ndef forward():\n    return os.getcwd()\n"
    with pytest.raises(astgen.CodegenError):
        astgen.load((refused, [], []))
    assert traced.artifacts == [
        (trace.SOURCE, compiled.source),
        (trace.IR, astgen.format_function(compiled.ir)),
        (trace.SOURCE, code),
        (trace.IR, traced.artifacts[3][1]),
        (trace.LOADED_SOURCE, code),
        (trace.LOADED_SOURCE, refused),
    ]
    assert traced.artifacts[3][1].startswith("func execution_fn(")


def test_nothing_is_rendered_while_tracing_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> str:
        raise AssertionError("rendered with tracing off")

    monkeypatch.setattr(trace_log, "handlers", [])
    monkeypatch.setattr(ast, "unparse", refuse)
    monkeypatch.setattr(astgen.ir, "format_function", refuse)
    assert not trace.tracing()
    astgen.compile_graph(examples.toy(), cache=False)


class Attention(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.out(y.transpose(1, 2).flatten(2))


def _info(caplog: pytest.LogCaptureFixture, model: nn.Module, backend: astgen.Backend) -> list[str]:
    torch._dynamo.reset()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="astgen"), torch.no_grad():
        torch.compile(model, backend=backend)(torch.randn(2, 5, 16))
    return [record.getMessage() for record in caplog.records if record.name == "astgen"]


def test_the_backend_says_at_info_what_it_split_and_compiled(caplog: pytest.LogCaptureFixture) -> None:
    backend = astgen.backend(piece_backend="eager")
    lines = _info(caplog, nn.Sequential(Attention(), nn.GELU(), Attention()).eval(), backend)
    (compiled,) = backend.compiled
    assert len(lines) == 2
    assert re.fullmatch(
        r"\[\d+/\d+\] backend split a graph of \d+ nodes at 2 x torch\._C\._nn\.scaled_dot_product_attention "
        r"into 5 pieces: submod_0, submod_2, submod_4 compiled by piece backend 'eager'; "
        r"submod_1, submod_3 run as they are",
        lines[0],
    ), lines[0]
    assert lines[1].endswith(
        f"backend compiled the stitching graph to {compiled.filename}: 5 pieces, {len(compiled.ir.body)} IR instructions"
    )


def test_a_graph_without_a_splitting_op_is_reported_as_one_piece(caplog: pytest.LogCaptureFixture) -> None:
    def piece_backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        return gm.forward

    lines = _info(caplog, nn.Sequential(nn.Linear(16, 16), nn.ReLU()), astgen.backend(piece_backend=piece_backend))
    split = [line for line in lines if "backend split" in line]
    assert len(split) == 1
    assert re.search(
        r"backend split a graph of \d+ nodes at no op into 1 piece: submod_0 compiled by piece backend "
        r"test_a_graph_without_a_splitting_op_is_reported_as_one_piece.<locals>.piece_backend$",
        split[0],
    ), split[0]
    # split_graph's own warning says why it stayed one piece.
    assert any("matched no node" in line for line in lines)
