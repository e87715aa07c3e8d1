"""Every drawn split graph, run through astgen, must behave as `torch.fx.Interpreter` runs it.

One test per property, each a plain `@given` test without fixtures, so the
same functions run under pytest (`make property`), HypoFuzz
(`hypothesis fuzz property_tests/`) and atheris (through each test's
`.hypothesis.fuzz_one_input`). The checks themselves live in
`astgen.testing.checks`, shared with `python -m astgen.fuzz` campaigns and the
reproducers they write.
"""

from __future__ import annotations

from hypothesis import event, given

from astgen.testing import checks as fuzz
from astgen.testing.drawing import KINDS, VLLM_KINDS, recipes
from astgen.testing.recipe import Recipe

GRAPHS = recipes()
#: Graphs FX's own codegen can mostly print: adversarial names are what it
#: cannot (about 4 in 5 of them agree; `tests/test_fuzz.py` holds the share).
PRINTABLE = recipes(kinds=[kind for kind in KINDS if kind != "names"])


@given(PRINTABLE)
def test_result_equals_interpreter_and_graphmodule(recipe: Recipe) -> None:
    """(a) tensors exactly, nan = nan, -0.0 is not 0.0; and gm(*args) where FX can print the graph."""
    seen = fuzz.check_recipe(recipe, ["interpreter", "graphmodule"])
    event(f"graphmodule: {seen['graphmodule']}")


@given(GRAPHS)
def test_vllm_drop_in_agrees(recipe: Recipe) -> None:
    """(b) generate_execution_code + compile_execution_fn give the interpreter's result."""
    fuzz.check_recipe(recipe, ["vllm"])


@given(GRAPHS)
def test_liveness_is_exact(recipe: Recipe) -> None:
    """(c) at every submodule call exactly the values still needed later are alive."""
    fuzz.check_recipe(recipe, ["liveness"])


@given(GRAPHS)
def test_only_assign_delete_return_statements(recipe: Recipe) -> None:
    """(d) the statement level holds only FunctionDef / Assign / Delete / Return."""
    fuzz.check_recipe(recipe, ["statements"])


@given(GRAPHS)
def test_source_round_trips_with_true_line_numbers(recipe: Recipe) -> None:
    """(e) unparse -> parse gives an equal tree; each statement's lineno is its line in .source."""
    fuzz.check_recipe(recipe, ["roundtrip"])


@given(GRAPHS)
def test_same_graph_same_bytes(recipe: Recipe) -> None:
    """(f) a fresh compile of the graph, rebuilt from its recipe, gives byte-identical source."""
    fuzz.check_recipe(recipe, ["deterministic"])


@given(GRAPHS)
def test_submodule_errors_point_at_the_generated_line(recipe: Recipe) -> None:
    """(g) an exception in any submodule surfaces with the generated line and the FX node."""
    fuzz.check_recipe(recipe, ["traceback"])


@given(GRAPHS)
def test_payloads_never_execute(recipe: Recipe) -> None:
    """(h) no payload in a node name, keyword or string constant is executed, whatever runs."""
    fuzz.check_recipe(recipe, ["payloads", "interpreter", "vllm", "traceback"])


@given(GRAPHS)
def test_ir_verifies_after_every_pass(recipe: Recipe) -> None:
    fuzz.check_recipe(recipe, ["verifier"])


@given(recipes(kinds=VLLM_KINDS, max_nodes=12))
def test_vllm_shaped_graphs_satisfy_every_property(recipe: Recipe) -> None:
    """Exactly the shape vLLM's split graphs have: placeholders, submodules, getitem, output."""
    fuzz.check_recipe(recipe)


@given(recipes(kinds=[kind for kind in KINDS if kind != "names"], max_nodes=10))
def test_plain_names_satisfy_every_property(recipe: Recipe) -> None:
    """Without adversarial names FX can print most graphs, so the GraphModule comparison bites."""
    fuzz.check_recipe(recipe)
