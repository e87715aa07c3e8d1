"""What an adversarial review found in the core: wrong results on edge graphs and wrong exception types.

Each case is one finding; each failed before its fix.
"""

from __future__ import annotations

import ast
import inspect
import logging
import operator
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.fx
from torch.fx._lazy_graph_module import _LazyGraphModule

import astgen
from astgen.errors import CodegenError
from tests.helpers import assert_same, build, build_raw, interpret

# ---------------------------------------------------------------- wrong results


def test_a_placeholder_defaulting_to_another_node_is_refused() -> None:
    # The interpreter hands over x's value; a Python default has no such thing.
    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        g.output((x, g.placeholder("y", default_value=x)))

    with pytest.raises(CodegenError, match="default is the node 'x'"):
        astgen.compile_graph(build_raw(body))


def _tuple_piece_graph() -> torch.fx.GraphModule:
    piece = build(lambda g: (lambda x: (x, g.call_function(operator.neg, (x,))))(g.placeholder("x")))

    def body(g: torch.fx.Graph) -> object:
        pair = g.call_module("sub", (g.placeholder("x"),))
        return (g.call_function(operator.getitem, (pair, 0)), g.call_function(operator.getitem, (pair, 1)))

    return build(body, sub=piece)


def _generator(x: Any) -> Iterator[Any]:
    yield x
    yield -x


@pytest.mark.parametrize(
    "replacement",
    [
        lambda x: {0: x, 1: -x},  # unpacked by the replaced piece's tuple type, a dict gave its keys
        lambda x: (x, -x, x * 2),  # a longer tuple: unpacking raised, the interpreter reads two items
        _generator,  # unpacked where the interpreter's getitem raises
    ],
    ids=["dict", "longer tuple", "generator"],
)
def test_a_replacement_returning_another_container_gives_the_interpreters_result(replacement: Any) -> None:
    gm = _tuple_piece_graph()
    compiled = astgen.compile_graph(gm, {"sub": replacement})
    reference = torch.fx.Interpreter(gm)
    reference.fetch_attr = lambda target: replacement if target == "sub" else getattr(gm, target)  # type: ignore[method-assign]
    try:
        expected: Any = reference.run(3)
    except Exception as error:
        with pytest.raises(type(error)):
            compiled(3)
        return
    assert compiled(3) == expected


class CountingCall(torch.fx.GraphModule):
    """A GraphModule subclass whose `__call__` does more than run the graph."""

    calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        CountingCall.calls += 1
        return super().__call__(*args, **kwargs)


def test_a_graph_module_that_overrides_call_is_called_through_call() -> None:
    inner = build(lambda g: g.call_function(operator.neg, (g.placeholder("x"),)))
    piece = CountingCall(inner, inner.graph)
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=piece)
    CountingCall.calls = 0
    compiled = astgen.compile_graph(gm)
    assert compiled(2) == -2 and CountingCall.calls == 1
    # Nor is it spliced: its call is more than its graph.
    assert astgen.compile_graph(gm, inline=True).artifact().piece_names == ("sub",)


def test_a_lazy_graph_module_piece_is_bound_to_its_real_forward() -> None:
    inner = build(lambda g: g.call_function(operator.neg, (g.placeholder("x"),)))
    lazy = _LazyGraphModule(inner, inner.graph)
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=lazy)
    compiled = astgen.compile_graph(gm)
    bound = compiled.fn.__globals__["sub_fn"]
    # The lazy stub's forward goes back through nn.Module.__call__ on every call.
    assert bound.__func__ is not _LazyGraphModule._lazy_forward
    assert compiled(4) == -4


# ---------------------------------------------------------------- errors are CodegenError, naming the node


class NamedStr(str):
    pass


class RaisingGetattr:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = (value,)
    return value


def _odd_tensor_meta(g: torch.fx.Graph) -> object:
    node = g.call_function(torch.neg, (g.placeholder("x"),))
    node.meta["tensor_meta"] = type("TensorMeta", (), {"dtype": 5, "shape": RaisingGetattr()})()
    return node


def _non_string_stack_trace(g: torch.fx.Graph) -> object:
    node = g.call_function(torch.neg, (g.placeholder("x"),))
    node.meta["stack_trace"] = 5
    return node


@pytest.mark.parametrize(
    ("make", "works"),
    [
        (
            lambda g: g.call_function(torch.nn.functional.relu, (g.placeholder("x"),), {NamedStr("inplace"): False}),
            True,
        ),
        (lambda g: g.call_method(NamedStr("relu"), (g.placeholder("x"),)), True),
        (lambda g: g.call_function(operator.add, (g.placeholder("x"), RaisingGetattr())), False),
        (lambda g: g.call_function(operator.add, (g.placeholder("x"), _nested(500))), False),
        (_odd_tensor_meta, True),
        (_non_string_stack_trace, True),
    ],
    ids=[
        "str-subclass kwarg",
        "str-subclass method",
        "getattr raises",
        "nested 500 deep",
        "odd tensor_meta",
        "int stack_trace",
    ],
)
def test_hostile_graphs_compile_or_are_a_codegen_error(make: Any, works: bool) -> None:
    gm = build_raw(lambda g: g.output(make(g)))
    if works:
        compiled = astgen.compile_graph(gm)
        x = torch.tensor([-1.0, 2.0])
        assert_same(compiled(x), interpret(gm, x))
    else:
        with pytest.raises(CodegenError, match="node"):
            astgen.compile_graph(gm)


@pytest.fixture
def recursion_limit() -> Iterator[Any]:
    limit = sys.getrecursionlimit()
    yield sys.setrecursionlimit
    sys.setrecursionlimit(limit)


@pytest.fixture
def trace_handler() -> Iterator[Any]:
    from torch._logging._internal import trace_log

    handler = logging.NullHandler()
    level = trace_log.level

    def on() -> None:
        trace_log.addHandler(handler)
        trace_log.setLevel(logging.DEBUG)

    yield on
    trace_log.removeHandler(handler)
    trace_log.setLevel(level)


def _eq_nested(depth: int) -> torch.fx.GraphModule:
    return build_raw(lambda g: g.output(g.call_function(operator.eq, (g.placeholder("x"), _nested(depth)))))


@pytest.mark.parametrize("limit", [1000, 2000, 5000])
@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
def test_arguments_nesting_past_what_python_parses_are_refused_under_any_recursion_limit(
    limit: int, traced: bool, recursion_limit: Any, trace_handler: Any
) -> None:
    # Under Dynamo's higher recursion limit lowering once accepted 500
    # levels, and then hashing, emitting, unparsing (also for a trace) raised
    # a raw RecursionError, or the text did not parse back ("too many nested
    # parentheses"). Lowering now refuses what Python cannot read back.
    recursion_limit(limit)
    if traced:
        trace_handler()
    with pytest.raises(CodegenError, match="nest more than 100 levels") as raised:
        astgen.compile_graph(_eq_nested(500), cache=False)
    assert raised.value.node is not None and "eq" in raised.value.node
    compiled = astgen.compile_graph(_eq_nested(100), cache=False)
    assert compiled(1) == interpret(_eq_nested(100), 1)
    assert ast.dump(ast.parse(compiled.source)) == ast.dump(compiled.tree)


def _with_stack_left(frames: int, run: Any) -> Any:
    """`run()` with only `frames` Python frames to spare: as deep as recursing over an argument needs."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + frames)
    try:
        return run()
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("stage", ["compile", "source", "annotated", "trace", "traceback"])
def test_running_out_of_stack_after_lowering_is_a_codegen_error_naming_the_node(
    stage: str, trace_handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gm = _eq_nested(90)
    lowered = astgen.lower(gm)
    if stage == "compile":
        from astgen.compiled import compile_lowered

        with pytest.raises(CodegenError, match="RecursionError") as raised:
            _with_stack_left(40, lambda: compile_lowered(lowered, cache=False))
        assert raised.value.node is not None and "eq" in raised.value.node
        return
    compiled = astgen.compile_graph(gm, cache=False)
    if stage == "source":
        with pytest.raises(CodegenError, match="RecursionError") as raised:
            _with_stack_left(40, lambda: compiled.source)
        assert raised.value.node is not None and "eq" in raised.value.node
    elif stage == "annotated":
        with pytest.raises(CodegenError, match="RecursionError"):
            _with_stack_left(40, lambda: astgen.to_source(compiled, annotate=True))
    elif stage == "trace":
        # Tracing never changes what compiles: the source is left out of the trace, with a warning.
        from astgen import trace

        trace_handler()
        with caplog.at_level(logging.WARNING, logger="astgen"):
            _with_stack_left(40, lambda: trace.generated(compiled.generated))
        assert "no trace artifacts" in caplog.text
    else:
        # The note on a graph's own exception reads the generated line; with
        # no stack to render it, the exception still comes out unchanged.
        broken = astgen.compile_graph(_eq_nested(90), cache=False)
        with pytest.raises(TypeError):
            _with_stack_left(40, lambda: broken(object.__new__(_RaisingEq)))
    # With the stack back, the same graph renders and parses back.
    assert ast.dump(ast.parse(compiled.source)) == ast.dump(compiled.tree)


class _RaisingEq:
    def __eq__(self, other: object) -> bool:
        raise TypeError("no comparison")


def test_a_long_int_under_a_lowered_digit_limit() -> None:
    gm = build(lambda g: g.call_function(operator.add, (g.placeholder("x"), 10**700)))
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        compiled = astgen.compile_graph(gm, cache=False)
        assert compiled(1) == 10**700 + 1
    finally:
        sys.set_int_max_str_digits(limit)


# ---------------------------------------------------------------- exceptions from pieces


class NoNotes(Exception):
    __notes__ = ()


def _raise_no_notes(x: Any) -> Any:
    raise NoNotes("piece failed")


def test_a_pieces_exception_propagates_unchanged_when_it_takes_no_note() -> None:
    compiled = astgen.compile_graph(build(lambda g: g.call_function(_raise_no_notes, (g.placeholder("x"),))))
    with pytest.raises(NoNotes, match="piece failed"):
        compiled(1)


def _boom(x: Any) -> Any:
    raise ValueError("boom")


def test_the_note_carries_the_generated_line() -> None:
    # Python 3.11's default hook prints no text for a lazy linecache entry: the note shows the line.
    compiled = astgen.compile_graph(build(lambda g: g.call_function(_boom, (g.placeholder("x"),), name="explode")))
    with pytest.raises(ValueError) as raised:
        compiled(1)
    (note,) = raised.value.__notes__
    line = next(line.strip() for line in compiled.source.splitlines() if "_boom(x)" in line)
    assert f"\n    {line}" in note
    assert line in "".join(traceback.format_exception(raised.value))
