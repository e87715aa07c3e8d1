"""Messages that name a kind of thing read as English: "an Import statement", "a Call"."""

from __future__ import annotations

import pytest

import astgen
from astgen.errors import a_or_an


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def f(x):\n    import os\n    return x\n", "line 2: an Import statement"),
        ("def f(x):\n    if x:\n        pass\n    return x\n", "line 2: an If statement"),
        ("def f(x):\n    for y in x:\n        pass\n    return x\n", "line 2: a For statement"),
        ("from os import path\ndef f(x):\n    return x\n", "line 1: a module-level ImportFrom statement"),
        ("def f(x):\n    return (lambda: x)()\n", "line 2: a call of a Lambda"),
        ("def f(x):\n    x.a = 1\n    return x\n", "line 2: assignment to an Attribute"),
    ],
)
def test_refusals_of_code_text_put_the_right_article_before_a_kind(code: str, message: str) -> None:
    with pytest.raises(astgen.CodegenError, match=message):
        astgen.load((code, [], []))


def test_a_or_an() -> None:
    assert [a_or_an(word) for word in ("Import", "If", "ExportedProgram", "Call", "Linear", "int")] == [
        "an Import",
        "an If",
        "an ExportedProgram",
        "a Call",
        "a Linear",
        "an int",
    ]
