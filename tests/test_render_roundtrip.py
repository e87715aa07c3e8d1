"""Printed text is the program astgen compiled: parsing it gives back the compiled tree.

`--annotate` writes node names and user lines into comments; a line break
there would end the comment and turn the rest into code. Every renderer, with
and without annotations, is checked on hostile names, on hostile stack
traces, and on the graphs `astgen.strategies` draws.
"""

from __future__ import annotations

import ast

import pytest
import torch
import torch.fx
from hypothesis import HealthCheck, given, settings

import astgen
from astgen import dump
from astgen.render import RENDERERS, to_source
from astgen.strategies import ADVERSARIAL_NAMES, split_graphs

# Every break `str.splitlines` knows, alone and between text, and characters
# that stop `ast.parse` (NUL) or printing (a lone surrogate).
LINE_BREAKS = ("\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
PAYLOAD = "__import__('os').system('echo pwned')"
HOSTILE = (
    *(f"x{brk}{PAYLOAD}" for brk in LINE_BREAKS),
    *(f"x{brk}    {PAYLOAD}" for brk in LINE_BREAKS),
    *(f"x{brk}" for brk in LINE_BREAKS),
    f"x\n{PAYLOAD}\n#",
    "x\x00y",
    "x\ud800y",
    "x # y",
    "x \\",
    "x\\n" + PAYLOAD,
    "x\tz",
)
NAMES = (*HOSTILE, *ADVERSARIAL_NAMES)


def assert_prints_its_tree(compiled: astgen.CompiledGraph) -> None:
    expected = ast.dump(compiled.tree)
    for renderer in RENDERERS:
        for annotate in (False, True):
            text = to_source(compiled, renderer=renderer, annotate=annotate)
            # What goes to stdout must encode: a lone surrogate would not.
            text.encode("utf-8")
            assert ast.dump(ast.parse(text)) == expected, (renderer, annotate, text)


def named_graph(name: str, *, stack_trace: str | None = None) -> torch.fx.GraphModule:
    """x -> relu -> piece: the relu node (and so its comment) carries `name`."""
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    relu = graph.call_function(torch.relu, (x,))
    piece = graph.call_module("piece", (relu,))
    graph.output(piece)
    gm = torch.fx.GraphModule({"piece": torch.nn.Identity()}, graph)
    # Set after FX compiled its own code, which such names would break: a graph
    # from elsewhere can hold any name.
    relu.name = name
    if stack_trace is not None:
        relu.meta["stack_trace"] = stack_trace
    return gm


@pytest.mark.parametrize("name", NAMES, ids=ascii)
def test_hostile_node_name(name: str) -> None:
    assert_prints_its_tree(astgen.compile_graph(named_graph(name), cache=False))


@pytest.mark.parametrize("brk", LINE_BREAKS, ids=ascii)
def test_hostile_stack_trace(brk: str) -> None:
    trace = f'File "model.py", line 3, in forward\n    y = x.relu(){brk}{PAYLOAD}  # \x00\ud800\u2028{PAYLOAD}'
    assert_prints_its_tree(astgen.compile_graph(named_graph("relu", stack_trace=trace), cache=False))


def test_dump_prints_a_hostile_name_as_one_comment(capsys: pytest.CaptureFixture[str]) -> None:
    status = dump.main(["tests.test_render_roundtrip:make_hostile", "--annotate"])
    out = capsys.readouterr().out
    assert status == 0
    assert ast.dump(ast.parse(out)) == ast.dump(astgen.compile_graph(make_hostile()).tree)
    (line,) = [line for line in out.splitlines() if "system(" in line]
    assert line.startswith("    ") and line.index("  # ") < line.index("system(")


def make_hostile() -> torch.fx.GraphModule:
    return named_graph(f"x\n{PAYLOAD}")


def test_annotate_keeps_statements_before_the_def() -> None:
    # A module may bind names before its function: they print unannotated, unchanged.
    compiled = astgen.compile_graph(named_graph("x\nboom"), cache=False)
    prelude = ast.parse("bound = 1\nother = bound")
    tree = ast.Module(body=[*prelude.body, *compiled.tree.body], type_ignores=[])
    for renderer in RENDERERS:
        text = to_source(tree, compiled.ir, renderer=renderer, annotate=True)
        assert ast.dump(ast.parse(text)) == ast.dump(tree)
        assert text.startswith("bound = 1\nother = bound\n")


def test_annotate_needs_a_function_last() -> None:
    compiled = astgen.compile_graph(named_graph("relu"))
    with pytest.raises(ValueError, match="function definition"):
        to_source(ast.Module(body=[], type_ignores=[]), compiled.ir, annotate=True)


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(split_graphs(max_nodes=6))
def test_drawn_graphs_print_their_tree(graph: tuple[torch.fx.GraphModule, tuple[object, ...]]) -> None:
    gm, _ = graph
    try:
        compiled = astgen.compile_graph(gm, cache=False)
    except astgen.CodegenError:
        return  # refusing a graph prints nothing; what is printed is what matters here
    assert_prints_its_tree(compiled)
