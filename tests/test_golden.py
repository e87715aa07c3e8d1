"""Golden sources: the exact code astgen generates for a few graphs, checked in under tests/golden/.

A mismatch fails with a unified diff of expected against actual. When a change
to the output is intended, rewrite the files and review the diff by eye:

    ASTGEN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py

The golden files are generated code, excluded from ruff in pyproject.toml.
"""

from __future__ import annotations

import difflib
import math
import operator
import os
import pathlib
from collections.abc import Callable

import pytest
import torch
import torch.fx

import astgen
from tests.helpers import build_raw, check, example

GOLDEN = pathlib.Path(__file__).parent / "golden"
UPDATE = os.environ.get("ASTGEN_UPDATE_GOLDEN") == "1"


def scaled(x: torch.Tensor, **options: float) -> torch.Tensor:
    return x * sum(options.values())


def hand_built() -> torch.fx.GraphModule:
    """Every kind of instruction once: defaults, a starred and a keyword-named placeholder,
    get_attr, operators, a node-valued slice, unpacking by negative index, a result
    nobody reads, a keyword-named kwarg, awkward literals and a structured return."""

    def body(g: torch.fx.Graph) -> None:
        x = g.placeholder("x")
        keyword = g.placeholder("class")
        keyword.name = "class"  # FX would call it class_; astgen must rename it itself
        n = g.placeholder("n", default_value=2)
        rest = g.placeholder("*rest")
        weight = g.get_attr("weight")
        added = g.call_function(operator.add, (x, weight))
        g.call_function(torch.relu, (added,), name="unused")
        head = g.call_function(operator.getitem, (added, slice(None, n)))
        parts = g.call_method("split", (head, 1), {"dim": -1})
        first = g.call_function(operator.getitem, (parts, 0))
        last = g.call_function(operator.getitem, (parts, -1))
        scaled_ = g.call_function(scaled, (first,), {"a-b": -0.0, "lambda": 2.5})
        shifted = g.call_function(operator.sub, (last, keyword))
        g.output({"scaled": scaled_, "shifted": shifted, "consts": (complex(0, -2), -math.inf, -1), "rest": rest})

    gm = build_raw(body, weight=torch.arange(4.0))
    # `split(1)` of a 2-long slice: a tuple of two, which `meta` tells the passes.
    parts_node = next(node for node in gm.graph.nodes if node.name == "split")
    parts_node.meta["val"] = (torch.empty(1), torch.empty(1))
    return gm


GRAPHS: dict[str, Callable[[], torch.fx.GraphModule]] = {
    "toy": lambda: example("toy"),
    "constants": lambda: example("constants"),
    "hand_built": hand_built,
}


def compare_golden(path: pathlib.Path, actual: str, what: str) -> None:
    """Fail with a unified diff where `actual` differs from the golden file (rewritten when updating)."""
    if UPDATE:
        path.write_text(actual)
    expected = path.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"tests/golden/{path.name} (expected)",
                tofile=f"{path.stem} ({what})",
            )
        )
        pytest.fail(f"{what} text differs from tests/golden/{path.name}:\n{diff}", pytrace=False)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_golden_source(name: str) -> None:
    compare_golden(GOLDEN / f"{name}.py", astgen.compile_graph(GRAPHS[name](), cache=False).source, "generated")


def test_hand_built_graph_runs_like_the_interpreter() -> None:
    compiled = check(hand_built(), torch.ones(4), 0.5, 2, "a", "b")
    result = compiled(torch.ones(4), 0.5, 2, "a", "b")
    assert result["rest"] == ["a", "b"]


def test_every_golden_file_has_a_graph() -> None:
    assert sorted(path.stem for path in GOLDEN.glob("*.py")) == sorted(GRAPHS)
