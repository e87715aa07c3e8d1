"""`render.unparse` writes `ast.unparse`'s text byte for byte, without its visitor.

The closed writer (`unparse_subset`) must take every tree emit makes and give
the same text; anything outside its forms is refused by it and written by
`ast.unparse` instead. Checked here on the golden files, on every example
graph in each way astgen compiles it, and on snippets that probe the
precedence and spelling rules one by one; `property_tests/test_unparse_properties.py`
checks the trees of drawn graphs.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import astgen
from astgen import examples, vllm
from astgen.render import UnsupportedNode, unparse, unparse_subset
from tests.helpers import example

GOLDEN = pathlib.Path(__file__).parent / "golden"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.py")), ids=lambda path: path.name)
def test_every_golden_file_is_written_as_ast_unparse_writes_it(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text())
    assert unparse_subset(tree) + "\n" == ast.unparse(tree) + "\n" == path.read_text()


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
@pytest.mark.parametrize("inline", [False, True])
def test_every_example_tree_is_in_the_subset(name: str, inline: bool) -> None:
    compiled = astgen.compile_graph(example(name), cache=False, inline=inline)
    assert unparse_subset(compiled.tree) == ast.unparse(compiled.tree)
    assert compiled.source == ast.unparse(compiled.tree) + "\n"


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_vllm_text_is_ast_unparse_of_its_tree(name: str) -> None:
    # vLLM's dialect, as vLLM writes it, ends without a line break; astgen's
    # portable text (for a callee no dotted name reaches) ends with one.
    code, _, _ = vllm.generate_execution_code(example(name))
    assert code.removesuffix("\n") == ast.unparse(ast.parse(code))


SNIPPETS = [
    # precedence: each operand is parenthesized exactly where ast.unparse does
    "x = (-1) ** y\ny = -1 ** y\nz = a ** b ** c\nw = (a ** b) ** c",
    "x = a - (b - c)\ny = a - b - c\nz = (a + b) * c\nw = a * (b @ c) // d % e",
    "x = -(a + b)\ny = ~a\nz = not a\nw = not (a == b)\nv = (not a) + b",
    "x = a < b\ny = (a < b) < c\nz = a == (b is c)\nw = a in b\nv = a not in b\nu = a is not b",
    "x = a | b ^ c & d << e >> f\ny = (a | b) & c\nz = -a ** -b",
    # atoms: calls, attributes (an int literal takes a space), subscripts, slices
    "x = f(a, *b, c=d, **e)\ny = (a + b).c\nz = 1 .real\nw = 1.5.real\nv = True .real\nu = (-1).real",
    "x = a[1:2]\ny = a[:, 0:2]\nz = a[::2]\nw = a[b,]\nv = a[()]\nu = a[:]\nt = a[1:2:3, ...]\ns = f(a)[0]",
    # containers
    "x = (a,)\ny = ()\nz = (a, (b, c))\nw = [a, (b,), []]\nv = {a: b, **c, 'k': (d, e)}\nu = {}",
    "a, b = f()\n(a, b), c = d\nx = y = z\ndel a, b\nx = f(*a)",
    # literals, as repr writes them and ast.unparse spells infinity
    "x = 1e309\ny = -1e309\nz = 1e309j\nw = 'it''s'\nv = b'\\x00'\nu = None\nt = ...\ns = 0.0 - 2j\nr = 'a\\nb'",
    # definitions: parameters of every kind, defaults, a blank line before each def
    "import torch\nimport operator, torch\nx = torch.ops.aten.mm.default\n\ndef f(a, b=1, *c, d, e=-2):\n    return",
    "def f(a, /, b):\n    return (a, b)\n\ndef g(*, a, b=None):\n    del a\n\ndef h():\n    pass_ = 1\n    return pass_",
    "def f(*a):\n    return a\nx = 1",
]


@pytest.mark.parametrize("snippet", SNIPPETS)
def test_each_rule_is_ast_unparse_s(snippet: str) -> None:
    tree = ast.parse(snippet)
    assert unparse_subset(tree) == ast.unparse(tree)


@pytest.mark.parametrize(
    "snippet",
    [
        "if x:\n    y = 1",
        "x = lambda: 1",
        "x: int = 1",
        "@d\ndef f():\n    return",
        "def f(a: int):\n    return a",
        "def f(**k):\n    return k",
        "def f() -> int:\n    return 1",
        "def f():\n    'doc'\n    return",
        "def f():\n    def g():\n        return",
        "x = f'{a}'",
        "x = a and b",
        "x = a if b else c",
        "x = [a for a in b]",
        "from torch import mm",
        "x = (a := 1)",
        "x += 1",
        "x = a.b.c()\nif y:\n    z = 1",
    ],
)
def test_anything_else_is_refused_and_written_by_ast_unparse(snippet: str) -> None:
    tree = ast.parse(snippet)
    with pytest.raises(UnsupportedNode):
        unparse_subset(tree)
    assert unparse(tree) == ast.unparse(tree)


def test_type_comments_and_ignores_are_left_to_ast_unparse() -> None:
    tree = ast.parse("x = 1  # type: int\ny = 2  # type: ignore\n", type_comments=True)
    with pytest.raises(UnsupportedNode):
        unparse_subset(tree)
    assert unparse(tree) == ast.unparse(tree)


def test_a_tuple_constant_is_left_to_ast_unparse() -> None:
    tree = ast.Module(body=[ast.Assign(targets=[ast.Name("x")], value=ast.Constant((1, 2)), lineno=1)], type_ignores=[])
    with pytest.raises(UnsupportedNode):
        unparse_subset(tree)
    assert unparse(tree) == ast.unparse(tree) == "x = (1, 2)"


# ---------------------------------------------------------------- names written otherwise

_TABLE = ast.Subscript(value=ast.Name(id="table", ctx=ast.Load()), slice=ast.Constant(value=3), ctx=ast.Load())


@pytest.mark.parametrize(
    "text",
    [
        "def f(x, y=g):\n    a = g(x, k=g)\n    del x\n    return (a, g.h, -g, g ** 2)",
        "def f(x):\n    return [g for _ in x]",  # a comprehension: left to ast.unparse
    ],
)
def test_a_name_written_otherwise_is_written_as_its_expression_stood_there(text: str) -> None:
    tree = ast.parse(text)
    replaced = ast.parse(text.replace("g", "table[3]"))
    assert unparse(tree, [{"g": _TABLE}]) == ast.unparse(replaced)
    # The tree itself is left as it compiles.
    assert ast.unparse(tree) == ast.unparse(ast.parse(text))


def test_only_the_statements_given_names_are_written_otherwise() -> None:
    tree = ast.parse("a = g\n\ndef f(x):\n    return g(x)")
    assert unparse(tree, [{}, {"g": _TABLE}]) == "a = g\n\ndef f(x):\n    return table[3](x)"


def test_a_name_is_written_otherwise_only_as_a_name_a_dotted_name_or_a_subscript() -> None:
    with pytest.raises(ValueError, match="a name may be replaced by"):
        unparse(ast.parse("a = g"), [{"g": ast.parse("x + 1", mode="eval").body}])
