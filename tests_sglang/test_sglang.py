"""astgen.sglang against SGLang 0.5.23's own backend, split pass, plugin loader and install_torch_compiled."""

from __future__ import annotations

import ast
import importlib.metadata
from typing import Any

import pytest
import sglang.srt.plugins
import torch
from sglang.srt.compilation import compile as sglang_compile
from sglang.srt.compilation.backend import SGLangBackend, split_graph
from sglang.srt.compilation.compilation_config import CompilationConfig
from sglang.srt.compilation.cuda_piecewise_backend import CUDAPiecewiseBackend
from sglang.srt.model_executor.runner_backend_utils.tc_piecewise_cuda_graph import enable_tc_piecewise_cuda_graph

import astgen.sglang
from tests_sglang.model import SPLIT_OP, Decoder

SGLANG_CALL = SGLangBackend.__call__
# No runtime shape is captured as a CUDA graph: the piece objects run their
# general-shape callable, which is all the CPU can do.
NO_CAPTURE_SIZES = [4096]


def config() -> CompilationConfig:
    compile_config = CompilationConfig(NO_CAPTURE_SIZES, "eager")
    compile_config.add_split_op(SPLIT_OP)
    return compile_config


def sglang_split(model: torch.nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """The split graph SGLang's own backend returns for `model`, through Dynamo as SGLang runs it."""
    made: list[Any] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        made.append(SGLangBackend(config(), object())(gm, example_inputs))
        return made[-1]

    torch.compile(model, backend=backend, fullgraph=True, dynamic=True)(example)
    (result,) = made
    return result


def unpacked_calls(function: Any) -> dict[str, int]:
    """For each piece the generated function unpacks straight from its call, how many names it unpacks into."""
    tree = astgen.sglang.compiled_graph(function).tree
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):
            call = node.value
            assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            found[call.func.id] = len(node.targets[0].elts)
    return found


def test_install_torch_compiled_with_astgen_factory_matches_eager() -> None:
    """SGLang's own entry point with astgen's backend_factory: Dynamo gets astgen's function, outputs are eager's."""
    torch.manual_seed(0)
    model = Decoder()
    inputs = [torch.randn(5, 8), torch.randn(7, 8)]
    expected = [model(x) for x in inputs]
    factory = astgen.sglang.backend_factory(config(), object())
    made: list[Any] = []

    def spy(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        made.append(factory(gm, example_inputs))
        return made[-1]

    sglang_compile.install_torch_compiled(model, dynamic_arg_dims={"x": 0}, backend_factory=spy)
    with enable_tc_piecewise_cuda_graph():
        actual = [model(x) for x in inputs]
    assert all(torch.equal(a, e) for a, e in zip(actual, expected, strict=True))
    (function,) = made
    assert not isinstance(function, torch.nn.Module)
    source = astgen.sglang.compiled_graph(function).source
    assert "submod_0_fn(" in source and "submod_1_fn(" in source


def test_plugin_installs_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """SGLang's plugin loader finds astgen's entry point; it changes nothing unless ASTGEN_SGLANG=1."""
    monkeypatch.delenv(astgen.sglang.ENABLE_VARIABLE, raising=False)
    monkeypatch.setattr(sglang.srt.plugins, "_plugins_loaded", False)
    sglang.srt.plugins.load_plugins()
    assert SGLangBackend.__call__ is SGLANG_CALL

    monkeypatch.setenv(astgen.sglang.ENABLE_VARIABLE, "1")
    monkeypatch.setattr(sglang.srt.plugins, "_plugins_loaded", False)
    sglang.srt.plugins.load_plugins()
    assert SGLangBackend.__call__ is not SGLANG_CALL
    assert SGLangBackend.__call__.__wrapped__ is SGLANG_CALL


def test_installed_backend_returns_astgen_function_with_sglang_piece_objects() -> None:
    """With astgen installed, SGLang's backend returns a function calling the CUDAPiecewiseBackend objects it made."""
    torch.manual_seed(0)
    model = Decoder()
    example = torch.randn(5, 8)
    astgen.sglang.install()
    function = sglang_split(model, example)
    assert not isinstance(function, torch.fx.GraphModule)
    bound = astgen.sglang.compiled_graph(function).bindings
    piece_objects = [getattr(callee, "__self__", None) for callee in bound]
    # One per layer: the pieces between attention calls, SGLang's objects, called through their class's __call__.
    assert sum(isinstance(piece, CUDAPiecewiseBackend) for piece in piece_objects) == 4


def test_stitch_matches_fx_on_sglang_split_with_callable_pieces() -> None:
    """SGLang's own split pass, pieces installed in the split graph's __dict__ as SGLang does: astgen equals FX."""
    torch.manual_seed(0)
    model = Decoder(layers=4)
    gm = torch.fx.symbolic_trace(model)
    split_gm, items = split_graph(gm, [SPLIT_OP])
    calls = {name: 0 for name in split_gm._modules}

    class Piece:
        """Shaped like SGLang's piece objects: a class instance whose __call__ runs the piece graph."""

        def __init__(self, name: str, graph: torch.fx.GraphModule) -> None:
            self.name, self.graph = name, graph

        def __call__(self, *args: Any) -> Any:
            calls[self.name] += 1
            return self.graph(*args)

    for item in items:
        if not item.is_splitting_graph:
            split_gm.__dict__[item.submod_name] = Piece(item.submod_name, item.graph)
    x = torch.randn(3, 8)
    expected = split_gm(x)
    function = astgen.sglang.stitch(split_gm)
    assert torch.equal(function(x), expected)
    assert torch.equal(function(x), model(x))
    installed = [name for name in calls if isinstance(split_gm.__dict__.get(name), Piece)]
    assert installed and all(calls[name] == 3 for name in installed)


def test_piece_calls_are_typed_by_their_graph_output() -> None:
    """A piece object whose graph returns a tuple is unpacked from its call; one returning a value is not."""
    gm = torch.fx.symbolic_trace(Decoder(layers=2))
    split_gm, items = split_graph(gm, [SPLIT_OP])
    tuple_returning = set()
    for item in items:
        if item.is_splitting_graph:
            continue
        (output,) = item.graph.graph.find_nodes(op="output")
        if isinstance(output.args[0], tuple):
            tuple_returning.add(item.submod_name)
        split_gm.__dict__[item.submod_name] = item.graph.forward
    assert tuple_returning, "the split has a piece returning several values"
    function = astgen.sglang.stitch(split_gm)
    assert set(unpacked_calls(function)) == {f"{name}_fn" for name in tuple_returning}


def test_install_is_idempotent_and_uninstall_restores() -> None:
    astgen.sglang.install()
    wrapped = SGLangBackend.__call__
    astgen.sglang.install()
    assert SGLangBackend.__call__ is wrapped
    assert wrapped.__wrapped__ is SGLANG_CALL
    astgen.sglang.uninstall()
    assert SGLangBackend.__call__ is SGLANG_CALL
    astgen.sglang.uninstall()
    assert SGLangBackend.__call__ is SGLANG_CALL


def test_factory_with_astgen_installed_stitches_once() -> None:
    """backend_factory calls SGLang's own __call__ even while install() has wrapped it."""
    torch.manual_seed(0)
    model = Decoder()
    astgen.sglang.install()
    factory = astgen.sglang.backend_factory(config(), object())
    made: list[Any] = []

    def spy(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        made.append(factory(gm, example_inputs))
        return made[-1]

    x = torch.randn(5, 8)
    assert torch.equal(torch.compile(model, backend=spy, fullgraph=True, dynamic=True)(x), model(x))
    astgen.sglang.compiled_graph(made[0])


def test_unknown_version_is_refused_before_anything_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        return "0.5.24" if name == "sglang" else real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(RuntimeError, match=r"does not know SGLang 0\.5\.24's layout; it knows SGLang 0\.5\.23"):
        astgen.sglang.install()
    with pytest.raises(RuntimeError, match=r"0\.5\.24"):
        astgen.sglang.backend_factory(config(), object())
    assert SGLangBackend.__call__ is SGLANG_CALL


def test_unknown_layout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def install_torch_compiled(module: torch.nn.Module, *, compile_config: Any = None) -> None:
        raise AssertionError("never called")

    monkeypatch.setattr(sglang_compile, "install_torch_compiled", install_torch_compiled)
    with pytest.raises(RuntimeError, match="install_torch_compiled takes no backend_factory"):
        astgen.sglang.install()
    assert SGLangBackend.__call__ is SGLANG_CALL


def test_stitch_refuses_what_is_not_a_split_graph() -> None:
    with pytest.raises(TypeError, match="the split GraphModule SGLang made, not function"):
        astgen.sglang.stitch(lambda x: x)  # type: ignore[arg-type]


def test_gpu_benchmark_runs_on_the_cpu(tmp_path: Any) -> None:
    """benchmarks/gpu_sglang.py's smoke run: both SGLang paths and the bare function compute the eager model."""
    from benchmarks import gpu_sglang

    out = tmp_path / "sglang.json"
    sizes = ["--layers", "2", "--hidden", "32", "--heads", "2", "--vocab", "64", "--context", "4"]
    brief = ["--rounds", "2", "--steps", "2", "--warmup", "1", "--stitch-target-s", "0.001"]
    results = gpu_sglang.main(["--device", "cpu", *sizes, *brief, "--out", str(out)])
    (config,) = results["configurations"].values()
    assert config["pieces"] == 5 and config["attention_pieces"] == 2
    assert all(output["equal"] for output in config["outputs"].values())
    assert set(config["stitch_us"]) == {gpu_sglang.SPLIT_GM, gpu_sglang.ASTGEN_FN}
    assert config["cuda_graph_pieces"] == {gpu_sglang.SGLANG: 0, gpu_sglang.SGLANG_ASTGEN: 0}
    assert not torch.fx.experimental._config.backed_size_oblivious
    assert out.exists()


def test_sglang_server_no_longer_offers_the_tc_piecewise_runner() -> None:
    """What docs/sglang.md says of 0.5.23: the server's configuration refuses the one runner built on SGLangBackend."""
    import argparse

    from sglang.srt.model_executor.cuda_graph_config import (
        CudaGraphConfig,
        parse_cuda_graph_backend_arg,
        parse_cuda_graph_config_arg,
    )

    with pytest.raises(argparse.ArgumentTypeError, match="tc_piecewise was removed"):
        parse_cuda_graph_backend_arg("tc_piecewise")
    with pytest.raises((argparse.ArgumentTypeError, ValueError), match="tc_piecewise was removed"):
        CudaGraphConfig.from_dict(parse_cuda_graph_config_arg('{"prefill": {"backend": "tc_piecewise"}}'))
