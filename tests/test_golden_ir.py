"""Golden IR text: what `astgen.format_function` prints for the golden graphs, after the passes.

The printer is what `python -m astgen.dump --format ir` shows; pinned here so
a change to it, or to what lowering and the passes make, shows as a diff.
Rewrite them, when intended, as the golden sources are rewritten:

    ASTGEN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden_ir.py
"""

from __future__ import annotations

import pytest

import astgen
from tests.test_golden import GOLDEN, GRAPHS, compare_golden


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_golden_ir(name: str) -> None:
    printed = astgen.format_function(astgen.compile_graph(GRAPHS[name](), cache=False).ir) + "\n"
    compare_golden(GOLDEN / f"{name}.ir", printed, "printed IR")


def test_every_golden_ir_file_has_a_graph() -> None:
    assert sorted(path.stem for path in GOLDEN.glob("*.ir")) == sorted(GRAPHS)
