"""astgen's own vLLM text, recalled by its exact characters (`astgen.rendered`).

`compile_execution_fn` given the text `generate_execution_code` just returned
binds the code of the trees it was rendered from; any other text is lifted.
Each case checks which path ran by the file name the function's code carries:
`<astgen:vllm>` for recalled code, `<astgen:load>` for lifted code.
"""

from __future__ import annotations

import linecache
import types
from typing import Any

import pytest
import torch
import torch.fx

from astgen import lift, loader, rendered
from astgen.errors import CodegenError
from astgen.vllm import compile_execution_fn, generate_execution_code
from tests.helpers import build, example, split_at
from tests.test_vllm import Compiled, X, empty_like, to_copy, trace_and_split

RECALLED = "<astgen:vllm>"
LIFTED = "<astgen:load>"


@pytest.fixture(autouse=True)
def _empty() -> None:
    rendered.memory.clear()
    loader.code_cache.clear()


def _path(fn: Any) -> str:
    return str(fn.__code__.co_filename).partition(".")[0]


def _pieces(gm: torch.fx.GraphModule, names: list[str]) -> dict[str, Any]:
    return {name: gm.get_submodule(name) for name in names}


def _graphs() -> dict[str, tuple[torch.fx.GraphModule, torch.Tensor]]:
    toy = example("toy")
    return {
        "to_copy": (trace_and_split(to_copy, X, set()), X),
        "empty_like": (trace_and_split(empty_like, X, {torch.ops.aten.fill_.Scalar}), X),
        "toy, pieces inlined": (split_at(toy, lambda node: node.op == "call_function"), torch.ones(2, 4)),
    }


@pytest.mark.parametrize("name", list(_graphs()))
def test_the_text_just_generated_runs_its_own_code_as_the_lifted_text_runs(name: str) -> None:
    gm, x = _graphs()[name]
    code, names, consts = generate_execution_code(gm)
    recalled = compile_execution_fn(code, _pieces(gm, names), names, consts)
    rendered.memory.clear()
    lifted = compile_execution_fn(code, _pieces(gm, names), names, consts)
    assert (_path(recalled), _path(lifted)) == (RECALLED, LIFTED)
    inputs = [x.clone() for _ in gm.graph.find_nodes(op="placeholder")]
    torch.testing.assert_close(recalled(*inputs), lifted(*inputs))


def test_a_text_one_character_changed_is_lifted(monkeypatch: pytest.MonkeyPatch) -> None:
    gm = trace_and_split(to_copy, X, set())
    code, names, consts = generate_execution_code(gm)
    lifted: list[str] = []
    real = lift.lift
    monkeypatch.setattr(lift, "lift", lambda text, *args, **kwargs: lifted.append(text) or real(text, *args, **kwargs))
    changed = code.replace("def execution_fn(", "def execution_fm(")
    assert len(changed) == len(code) and changed != code
    fn = loader.load((changed, names, consts), entry="execution_fm", trusted_namespaces=("vllm",))
    assert _path(fn) == LIFTED and lifted == [changed]
    assert _path(compile_execution_fn(code, {}, names, consts)) == RECALLED and lifted == [changed]


def test_a_hostile_text_of_the_same_length_is_refused() -> None:
    gm = build(lambda g: g.call_function(torch.relu, (g.call_function(torch.add, (g.placeholder("x"), 1)),)))
    code, names, consts = generate_execution_code(gm)
    assert "    add = torch.add(x, 1)\n" in code and rendered.recall(code) is not None
    text = code.replace("    add = torch.add(x, 1)\n", "    add = open(x, 'r', 1)\n")
    assert len(text) == len(code) and rendered.recall(text) is None
    with pytest.raises(CodegenError, match="not a function the text may call"):
        compile_execution_fn(text, {}, names, consts)


def test_only_a_str_is_recalled() -> None:
    class Equal(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    code, _, _ = generate_execution_code(trace_and_split(to_copy, X, set()))
    assert rendered.recall(code) is not None
    assert rendered.recall(Equal(code)) is None
    assert rendered.recall(code.encode()) is None


def test_the_memory_keeps_the_last_texts_only() -> None:
    texts = []
    for index in range(rendered.ENTRIES + 3):
        gm = build(lambda g, index=index: g.call_function(torch.add, (g.placeholder("x"), index)))
        texts.append(generate_execution_code(gm)[0])
    assert len(set(texts)) == len(texts)
    assert len(rendered.memory.entries) == rendered.ENTRIES
    assert [rendered.recall(text) is not None for text in texts] == [False] * 3 + [True] * rendered.ENTRIES


def test_a_text_the_lift_refuses_is_not_remembered() -> None:
    gm = build(lambda g: g.call_method("numpy", (g.placeholder("x"),)))
    code, names, consts = generate_execution_code(gm)
    assert "x.numpy()" in code and rendered.recall(code) is None
    with pytest.raises(CodegenError, match="'numpy' is not one a value may be called for"):
        compile_execution_fn(code, {}, names, consts)


def test_a_const_given_as_a_dtype_is_checked_as_the_lifted_text_checks_it() -> None:
    code, names, consts = generate_execution_code(trace_and_split(empty_like, X, set()))
    assert rendered.recall(code) is not None
    wrong = [7 if isinstance(const, torch.dtype) else const for const in consts]
    with pytest.raises(CodegenError, match="as a dtype, layout or memory format"):
        compile_execution_fn(code, {}, names, wrong)
    rendered.memory.clear()
    with pytest.raises(CodegenError, match="as a dtype, layout or memory format"):
        compile_execution_fn(code, {}, names, wrong)


def test_pieces_and_consts_are_checked_as_the_lifted_text_checks_them() -> None:
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=Compiled(build(lambda g: g.placeholder("x"))))
    code, names, consts = generate_execution_code(gm)
    with pytest.raises(CodegenError, match="'sub'"):
        compile_execution_fn(code, {}, names, consts)
    with pytest.raises(CodegenError, match="piece slot 0"):
        compile_execution_fn(code, _pieces(gm, names), [], consts)
    code, names, consts = generate_execution_code(trace_and_split(to_copy, X, set()))
    with pytest.raises(CodegenError, match="no consts"):
        compile_execution_fn(code, {}, names, None)


def test_tracebacks_show_the_texts_lines() -> None:
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=Compiled(build(lambda g: g.placeholder("x"))))
    code, names, consts = generate_execution_code(gm)
    fn = compile_execution_fn(code, _pieces(gm, names), names, consts)
    lines = code.splitlines()
    first = fn.__code__.co_firstlineno
    assert _path(fn) == RECALLED and lines[first - 1].startswith("def execution_fn(")
    for _, _, line in fn.__code__.co_lines():
        if line is not None and line > first:
            assert linecache.getline(fn.__code__.co_filename, line) == lines[line - 1] + "\n"


def test_pieces_of_one_graph_share_code_moved_to_each_ones_lines() -> None:
    def piece() -> torch.fx.GraphModule:
        return build(lambda g: g.call_function(torch.relu, (g.placeholder("x"),)))

    def body(g: torch.fx.Graph) -> object:
        first = g.call_module("first", (g.placeholder("x"),))
        return g.call_module("second", (first,))

    gm = build(body, first=piece(), second=piece())
    code, names, consts = generate_execution_code(gm)
    entry = rendered.recall(code)
    assert entry is not None and [made.is_module for made in entry.defs] == [True, False, True]
    fn = compile_execution_fn(code, {}, names, consts)
    assert torch.equal(fn(X), torch.relu(X))
    lines = code.splitlines()
    inlined = sorted(
        (value for value in fn.__globals__.values() if isinstance(value, types.FunctionType) and value is not fn),
        key=lambda function: function.__name__,
    )
    assert [f.__name__ for f in inlined] == ["__vllm_inlined_submods__0", "__vllm_inlined_submods__1"]
    assert inlined[0].__code__.co_firstlineno != inlined[1].__code__.co_firstlineno
    for function in [fn, *inlined]:
        first = function.__code__.co_firstlineno
        assert _path(function) == RECALLED and lines[first - 1].startswith(f"def {function.__name__}(")
        for _, _, line in function.__code__.co_lines():
            if line is not None and line > first:
                assert linecache.getline(function.__code__.co_filename, line) == lines[line - 1] + "\n"


def test_an_inlined_piece_with_a_default_is_refused_as_the_lift_refuses_it() -> None:
    def piece(g: torch.fx.Graph) -> object:
        return g.call_function(torch.add, (g.placeholder("x"), g.placeholder("y", default_value=2)))

    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=build(piece))
    code, names, consts = generate_execution_code(gm)
    assert "y=2" in code and rendered.recall(code) is None
    with pytest.raises(CodegenError, match="plain parameters only"):
        compile_execution_fn(code, {}, names, consts)
