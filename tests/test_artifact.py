"""Portable artifacts: `(code, piece_names, consts)` rebuilds the function in any process, with no graph."""

from __future__ import annotations

import ast
import logging
import math
import operator
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.fx
from torch import nn

import astgen
from astgen import loader as load_module
from astgen.errors import CodegenError
from tests.helpers import assert_same, build, example, interpret


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own code cache, on disk and in memory."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("ASTGEN_CACHE_DIR", str(directory))
    load_module.code_cache.clear()
    return directory


def pieces_of(gm: torch.fx.GraphModule, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: gm.get_submodule(name) for name in names}


def hostile_constants() -> torch.fx.GraphModule:
    """What vLLM's generator cannot write: -inf, nan, a device, a get_attr tensor; an inlinable piece."""
    inner = build(lambda g: g.call_function(torch.mul, (g.placeholder("x"), g.placeholder("w"))))

    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        scaled = g.call_module("inner", (x, g.get_attr("weight")))
        clamped = g.call_function(torch.clamp, (scaled,), {"min": -math.inf, "max": 2.0})
        filled = g.call_function(torch.nan_to_num, (clamped,), {"nan": math.nan, "neginf": -0.0})
        moved = g.call_method("to", (filled,), {"device": torch.device("cpu"), "dtype": torch.float64})
        return g.call_module("linear", (moved,))

    return build(body, inner=inner, weight=torch.tensor([1.0, -2.0, 3.0]), linear=nn.Linear(3, 2).double())


@pytest.mark.parametrize("name", ["toy", "constants", "transformer"])
def test_examples_round_trip_through_their_artifact(name: str) -> None:
    gm = example(name)
    compiled = astgen.compile_graph(gm)
    artifact = compiled.artifact()
    loaded = astgen.load(artifact, pieces_of(gm, artifact.piece_names))
    args: tuple[Any, ...] = (torch.randint(0, 64, (1, 5)),) if name == "transformer" else (torch.randn(2, 4),) * 2
    assert_same(loaded(*args), interpret(gm, *args))


def test_same_structure_gives_the_same_text_and_consts_order() -> None:
    first, second = astgen.compile_graph(hostile_constants()), astgen.compile_graph(hostile_constants())
    assert first.artifact().code == second.artifact().code
    kinds = [type(c) for c in first.artifact().consts]
    assert kinds == [type(c) for c in second.artifact().consts]
    assert torch.device("cpu") in first.artifact().consts and torch.float64 in first.artifact().consts


def test_functions_are_named_not_carried() -> None:
    gm = make_aten_graph()
    artifact = astgen.compile_graph(gm).artifact()
    assert "torch.ops.aten.mm.default" in artifact.code
    assert not any(callable(c) for c in artifact.consts)
    pickle.dumps(artifact)  # an OpOverload would not pickle


def make_aten_graph() -> torch.fx.GraphModule:
    from torch.fx.experimental.proxy_tensor import make_fx

    return make_fx(lambda x: torch.mm(x, x).relu())(torch.eye(2))


def test_the_text_is_the_tree_it_was_compiled_from() -> None:
    compiled = astgen.compile_graph(hostile_constants())
    assert ast.dump(ast.parse(compiled.artifact().code)) == ast.dump(compiled.tree)


def test_inlined_pieces_need_no_callable() -> None:
    gm = hostile_constants()
    compiled = astgen.compile_graph(gm, inline=True)
    artifact = compiled.artifact()
    # `inner` is a GraphModule: spliced; `linear` is an nn.Linear: called.
    assert artifact.piece_names == ("linear",)
    x = torch.tensor([1.0, math.nan, -3.0])
    assert_same(astgen.load(artifact, {"linear": gm.linear})(x), interpret(gm, x))


def test_inlined_origins_name_piece_and_node() -> None:
    compiled = astgen.compile_graph(hostile_constants(), inline=True)
    origins = {instruction.origin.node for instruction in compiled.ir.body if getattr(instruction, "origin", None)}
    assert "inner.mul" in origins


def test_compile_graph_calls_graph_module_pieces_by_default() -> None:
    # A piece is a live module: a later recompile of it is seen by a call, not by a spliced copy.
    gm = hostile_constants()
    assert "inner" in astgen.compile_graph(gm).artifact().piece_names


FRESH_PROCESS = textwrap.dedent(
    """\
    import pickle, sys
    import astgen
    with open(sys.argv[1], "rb") as file:
        artifact, pieces, args = pickle.load(file)
    fn = astgen.load(artifact, pieces)
    with open(sys.argv[2], "wb") as file:
        pickle.dump((fn(*args), "torch.fx" in sys.modules and hasattr(sys.modules["torch.fx"], "GraphModule")), file)
    """
)


def test_a_fresh_process_rebuilds_the_function_from_the_pickled_triple(tmp_path: Path, private_cache: Path) -> None:
    gm = hostile_constants()
    artifact = astgen.compile_graph(gm, inline=True).artifact()
    x = torch.tensor([1.0, math.nan, -4.0])
    # The triple as vLLM stores it: plain tuple, lists, pickled; the graph stays here.
    triple = (artifact.code, list(artifact.piece_names), list(artifact.consts))
    (tmp_path / "in.pkl").write_bytes(pickle.dumps((triple, {"linear": gm.linear}, (x,))))
    expected = interpret(gm, x)
    for run in ("cold", "warm"):
        subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "in.pkl"), str(tmp_path / "out.pkl")],
            check=True,
            env={**os.environ, "ASTGEN_CACHE_DIR": str(private_cache)},
            cwd=Path(__file__).parent.parent,
        )
        result, _ = pickle.loads((tmp_path / "out.pkl").read_bytes())
        assert_same(result, expected)
        assert len(list(private_cache.rglob("*"))) > 0, run


def test_a_cached_code_object_is_used_without_parsing(monkeypatch: pytest.MonkeyPatch, private_cache: Path) -> None:
    gm = example("toy")
    artifact = astgen.compile_graph(gm).artifact()
    astgen.load(artifact, pieces_of(gm, artifact.piece_names))
    load_module.code_cache.clear()  # a new process: only the directory remembers

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the text was parsed again")

    monkeypatch.setattr(load_module.ast, "parse", no_parse)
    loaded = astgen.load(artifact, pieces_of(gm, artifact.piece_names))
    args = torch.randn(2, 4), torch.randn(2, 4)
    assert_same(loaded(*args), interpret(gm, *args))


def test_a_torn_cache_file_is_checked_again(private_cache: Path) -> None:
    gm = example("toy")
    artifact = astgen.compile_graph(gm).artifact()
    astgen.load(artifact, pieces_of(gm, artifact.piece_names))
    (entry,) = [path for path in private_cache.rglob("*") if path.is_file()]
    entry.write_bytes(entry.read_bytes()[:20])
    load_module.code_cache.clear()
    args = torch.randn(2, 4), torch.randn(2, 4)
    assert_same(astgen.load(artifact, pieces_of(gm, artifact.piece_names))(*args), interpret(gm, *args))


def test_a_cache_directory_others_may_write_is_not_used(private_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    private_cache.mkdir()
    private_cache.chmod(0o777)
    gm = example("toy")
    artifact = astgen.compile_graph(gm).artifact()
    with caplog.at_level(logging.WARNING, logger="astgen"):
        astgen.load(artifact, pieces_of(gm, artifact.piece_names))
    assert "writable by others" in caplog.text
    assert not [path for path in private_cache.rglob("*") if path.is_file()]


def test_cache_off_writes_nothing(private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASTGEN_CACHE_DIR", "off")
    gm = example("toy")
    artifact = astgen.compile_graph(gm).artifact()
    astgen.load(artifact, pieces_of(gm, artifact.piece_names))
    assert not private_cache.exists()


def test_one_piece_at_two_sites_and_swapped_callables() -> None:
    def body(g: torch.fx.Graph) -> object:
        once = g.call_module("sub", (g.placeholder("x"),))
        return g.call_function(operator.add, (g.call_module("sub", (once,)), g.call_module("other", (once,))))

    artifact = astgen.compile_graph(build(body, sub=nn.Identity(), other=nn.Identity())).artifact()
    assert sorted(artifact.piece_names) == ["other", "sub"]
    fn = astgen.load(artifact, {"sub": lambda v: v * 10, "other": lambda v: v + 1})
    assert fn(1) == 100 + 11
    swapped = astgen.load(artifact, {"sub": lambda v: v + 1, "other": lambda v: v * 10})
    assert swapped(1) == 3 + 20


def test_aliased_targets_are_two_pieces() -> None:
    # Two targets for one module object: the loader is handed a callable for each name.
    shared = nn.Identity()

    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        return g.call_function(operator.add, (g.call_module("a", (x,)), g.call_module("b", (x,))))

    artifact = astgen.compile_graph(build(body, a=shared, b=shared)).artifact()
    assert artifact.piece_names == ("a", "b")
    assert astgen.load(artifact, {"a": lambda v: v, "b": lambda v: v * 3})(2) == 8


def test_load_reads_globals_not_tables() -> None:
    gm = example("toy")
    artifact = astgen.compile_graph(gm).artifact()
    fn = astgen.load(artifact, pieces_of(gm, artifact.piece_names))
    assert isinstance(fn, type(test_load_reads_globals_not_tables))
    assert fn.__globals__["submod_0_fn"] == gm.submod_0.forward
    assert not {astgen.ir.PIECES_TABLE, astgen.ir.CONSTS_TABLE} & set(fn.__globals__)


@pytest.mark.parametrize(
    ("pieces", "names", "consts", "match"),
    [
        ({}, ("submod_0", "submod_1", "submod_2"), (), "'submod_0', 'submod_1', 'submod_2'"),
        (None, ("submod_0",), (), r"reads __astgen_pieces__\[1\]|only 1 piece names"),
    ],
)
def test_bad_tables_are_named(
    pieces: dict[str, Any] | None, names: tuple[str, ...], consts: tuple[Any, ...], match: str
) -> None:
    gm = example("toy")
    artifact = astgen.compile_graph(gm).artifact()
    given = pieces_of(gm, artifact.piece_names) if pieces is None else pieces
    with pytest.raises(CodegenError, match=match):
        astgen.load((artifact.code, names, consts), given)


def test_a_non_triple_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="triple"):
        astgen.load("def f(x):\n    return x\n")  # type: ignore[arg-type]


def test_a_traceback_shows_the_loaded_line() -> None:
    import traceback

    fn = astgen.load(("def f(x):\n    y = x + 1\n    return len(y)\n", [], []))
    with pytest.raises(TypeError) as raised:
        fn(1)
    assert "return len(y)" in "".join(traceback.format_exception(raised.value))


def test_code_text_that_is_no_str_is_a_type_error() -> None:
    # Caller misuse, not a refusal of the text.
    with pytest.raises(TypeError, match="must be a str"):
        astgen.load((b"def f(x):\n    return x\n", [], []))  # type: ignore[arg-type]


def test_an_argument_given_twice_is_not_spliced_away() -> None:
    # `piece(x, x=y)` raises TypeError when called; a splice must not pick one of the two.
    inner = build(lambda g: g.call_function(operator.neg, (g.placeholder("x"),)))
    gm = build(lambda g: g.call_module("inner", (g.placeholder("a"),), {"x": g.placeholder("b")}), inner=inner)
    with pytest.raises(TypeError):
        interpret(gm, 1, 2)
    with pytest.raises(TypeError):
        astgen.compile_graph(gm, inline=True)(1, 2)
