"""Code text from elsewhere: every form outside the allow-list is refused before any of it runs."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
import torch

import astgen
from astgen import allowlist
from astgen.errors import CodegenError
from tests.helpers import example

# Each payload creates MARKER if any of it runs; `{marker}` is filled in per test.
PAYLOADS = {
    "import os": "import os\nos.system('touch {marker}')\ndef f(x):\n    return x\n",
    "from import": "from os import system\ndef f(x):\n    return system('touch {marker}')\n",
    "import as": "import torch as os\ndef f(x):\n    return x\n",
    "__import__": "def f(x):\n    y = __import__('os').system('touch {marker}')\n    return y\n",
    "eval": "def f(x):\n    return eval(\"open('{marker}', 'w')\")\n",
    "exec": "def f(x):\n    return exec(\"open('{marker}', 'w')\")\n",
    "open": "def f(x):\n    return open('{marker}', 'w')\n",
    "print": "def f(x):\n    return print(x)\n",
    "breakpoint": "def f(x):\n    return breakpoint()\n",
    "getattr of a dunder": "def f(x):\n    return getattr(x, '__class__')\n",
    "getattr of a computed name": "def f(x):\n    return getattr(x, x)\n",
    "dunder attribute": "def f(x):\n    return x.__class__.__subclasses__()\n",
    "private attribute": "def f(x):\n    return x._cdata\n",
    "__builtins__": "def f(x):\n    return __builtins__\n",
    "torch.serialization.os": "def f(x):\n    return torch.serialization.os.system('touch {marker}')\n",
    "torch.load": "def f(x):\n    return torch.load('{marker}')\n",
    "torch.ops.load_library": "def f(x):\n    return torch.ops.load_library('{marker}')\n",
    "torch.hub": "def f(x):\n    return torch.hub.load('{marker}', 'm')\n",
    "operator.attrgetter": "def f(x):\n    return operator.attrgetter('__class__')(x)\n",
    "bare torch": "def f(x):\n    return torch\n",
    "lambda": "def f(x):\n    y = (lambda: open('{marker}', 'w'))()\n    return y\n",
    "list comprehension": "def f(x):\n    return [open('{marker}', 'w') for _ in x]\n",
    "generator": "def f(x):\n    return list(open('{marker}', 'w') for v in x)\n",
    "walrus": "def f(x):\n    return (y := x)\n",
    "nested def": "def f(x):\n    def g():\n        return open('{marker}', 'w')\n    return g()\n",
    "decorator": "@open\ndef f(x):\n    return x\n",
    "default that calls": "def f(x=open('{marker}', 'w')):\n    return x\n",
    "expression statement": "def f(x):\n    open('{marker}', 'w')\n    return x\n",
    "module expression": "open('{marker}', 'w')\ndef f(x):\n    return x\n",
    "if": "def f(x):\n    if x:\n        return x\n    return x\n",
    "for": "def f(x):\n    for v in x:\n        pass\n    return x\n",
    "with": "def f(x):\n    with open('{marker}', 'w'):\n        return x\n",
    "try": "def f(x):\n    try:\n        return x\n    finally:\n        open('{marker}', 'w')\n",
    "augmented assignment": "def f(x):\n    x += 1\n    return x\n",
    "attribute assignment": "def f(x):\n    x.y = 1\n    return x\n",
    "global": "def f(x):\n    global y\n    return x\n",
    "class": "class C:\n    pass\ndef f(x):\n    return x\n",
    "async def": "async def f(x):\n    return x\n",
    "f-string": "def f(x):\n    return f'{{x}}'\n",
    "if expression": "def f(x):\n    return x if x else x\n",
    "dict unpacking": "def f(x):\n    return {{**x}}\n",
    "** of a name": "def f(x):\n    return len(**x)\n",
    "calling a local": "def f(x):\n    return x()\n",
    "undefined global": "def f(x):\n    return secret(x)\n",
    "vllm submods in a plain function": "def f(x):\n    return __vllm_submods__[0](x)\n",
    "vllm consts by a computed index": "def f(x):\n    return __vllm_consts__[x]\n",
    "prelude of a call": "y = open('{marker}', 'w')\ndef f(x):\n    return x\n",
    "prelude of a table's attribute": "y = __astgen_consts__.pop\ndef f(x):\n    return x\n",
    "shadowing a builtin": "def f(x):\n    len = __vllm_consts__[0]\n    return len(x)\n",
    "two entries": "def f(x):\n    return x\ndef g(x):\n    return x\n",
    "**kwargs parameter": "def f(**x):\n    return x\n",
    "annotation": "def f(x: open('{marker}', 'w')):\n    return x\n",
    "return annotation": "def f(x) -> open('{marker}', 'w'):\n    return x\n",
    "starred in a tuple": "def f(x):\n    return (*x,)\n",
    "dunder local": "def f(x):\n    __class__ = x\n    return __class__\n",
    "syntax error": "def f(x:\n",
    "null byte": "def f(x):\n    return x\0\n",
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_is_refused_and_never_runs(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    code = PAYLOADS[name].format(marker=marker)
    with pytest.raises(CodegenError, match="code text"):
        astgen.load((code, [], []))
    assert not marker.exists()


def test_refusal_names_the_line() -> None:
    code = "def f(x):\n    y = x\n    z = eval(y)\n    return z\n"
    with pytest.raises(CodegenError, match="line 3"):
        allowlist.check(ast.parse(code))


def test_deep_nesting_is_refused_not_a_crash() -> None:
    code = "def f(x):\n    return " + "-" * 5000 + "x\n"
    with pytest.raises(CodegenError):
        astgen.load((code, [], []))


ACCEPTED = {
    "operators and containers": "def f(x, y):\n    return (x + y, [x * 2], {'k': -x}, x[1:2, ::2], not x == y)\n",
    "a method and an attribute of a value": "def f(x):\n    y = x.view(-1)\n    return (y.shape, getattr(y, 'not-an-identifier'))\n",
    "torch ops and functions": (
        "import torch\nimport operator\nmm = torch.ops.aten.mm.default\n"
        "def f(x):\n    return (mm(x, x), torch.relu(x), torch.nn.functional.gelu(x), operator.add(x, x))\n"
    ),
    "private torch path to a public function": (
        "def f(q):\n    return torch._C._nn.scaled_dot_product_attention(q, q, q)\n"
    ),
    "an underscored aten op": "def f(x):\n    return torch.ops.aten._to_copy.default(x, dtype=torch.float16)\n",
    "builtins on the short list": "def f(x):\n    return (len(x), slice(None, 2), tuple(x), max(1, 2))\n",
    "defaults from the prelude": "scale = __astgen_consts__[0]\ndef f(x, s=scale, *rest, k=2):\n    return x * s\n",
    "keyword that is no identifier": "def f(x):\n    return dict(**{'not-an-identifier': x})\n",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_forms(name: str) -> None:
    allowlist.check(ast.parse(ACCEPTED[name]))


def test_getattr_form_loads_and_runs() -> None:
    code = "def f(x):\n    return getattr(x, 'shape')\n"
    assert astgen.load((code, [], []))(torch.ones(2, 3)) == torch.Size([2, 3])


def test_accepted_text_computes() -> None:
    code = ACCEPTED["torch ops and functions"]
    x = torch.eye(2) * 3
    mm, relu, gelu, added = astgen.load((code, [], []))(x)
    torch.testing.assert_close(relu, x.relu())
    torch.testing.assert_close(gelu, torch.nn.functional.gelu(x))
    torch.testing.assert_close(mm, x @ x)
    torch.testing.assert_close(added, x + x)


@pytest.mark.parametrize("name", ["toy", "constants", "transformer"])
def test_every_artifact_astgen_writes_is_accepted(name: str) -> None:
    compiled = astgen.compile_graph(example(name))
    checked = allowlist.check(ast.parse(compiled.artifact().code))
    assert checked.entry == "forward"
    assert len(checked.pieces) == len(compiled.artifact().piece_names)


def test_text_with_a_comment_and_blank_lines_is_the_same_program() -> None:
    code = textwrap.dedent(
        """\
        # written elsewhere
        import torch

        def execution_fn(x):
            return torch.relu(x)
        """
    )
    assert astgen.load((code, [], []))(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]
