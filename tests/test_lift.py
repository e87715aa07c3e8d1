"""The loader's language is the IR's: what lifts, what is refused, and what the audit oracle sees."""

from __future__ import annotations

import ast
import operator
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.fx
from torch import nn

import astgen
from astgen import importable, ir, lift
from astgen.emit import emit
from astgen.errors import CodegenError
from astgen.testing.audit import Case, audit, violations
from astgen.vllm import compile_execution_fn, generate_execution_code
from tests import vllm_0_33_codegen
from tests.helpers import assert_same, build, example, interpret, split_at
from tests.hostile_texts import ACCEPTED, HOSTILE


@pytest.fixture(autouse=True)
def no_disk_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASTGEN_CACHE_DIR", "off")
    astgen.loader.code_cache.clear()


# ---------------------------------------------------------------- the dialects


@pytest.mark.parametrize("name", ["toy", "constants", "transformer"])
@pytest.mark.parametrize("inline", [False, True])
def test_astgen_text_lifts_to_ir_that_emits_the_same_text(name: str, inline: bool) -> None:
    code = astgen.compile_graph(example(name), inline=inline).artifact().code
    lifted = lift.lift(code)
    assert ast.unparse(emit(lifted.function)) + "\n" == code


def _vllm_split(model: Any, x: torch.Tensor, at: set[object]) -> torch.fx.GraphModule:
    from torch.fx.experimental.proxy_tensor import make_fx

    return split_at(make_fx(model)(x), lambda node: node.op == "call_function" and node.target in at)


class Compiled(nn.Module):
    def __init__(self, piece: torch.fx.GraphModule) -> None:
        super().__init__()
        self.piece = piece

    def forward(self, *args: Any) -> Any:
        return self.piece(*args)


def _models() -> dict[str, tuple[torch.fx.GraphModule, tuple[Any, ...]]]:
    x = torch.arange(6.0).reshape(2, 3) - 2

    def to_copy(v: torch.Tensor) -> torch.Tensor:
        return v.to(device=torch.device("cpu"), dtype=torch.float16).relu() * 2

    def chain(v: torch.Tensor) -> torch.Tensor:
        return (v.relu() + 1).sigmoid().transpose(0, 1)

    graphs = {
        "to_copy": (_vllm_split(to_copy, x, {torch.ops.aten.relu.default}), (x,)),
        "chain": (_vllm_split(chain, x, {torch.ops.aten.relu.default, torch.ops.aten.sigmoid.default}), (x,)),
    }
    compiled = _vllm_split(chain, x, {torch.ops.aten.relu.default})
    first = next(name for name, _ in compiled.named_children())
    wrapper = Compiled(getattr(compiled, first))
    del compiled._modules[first]
    compiled.add_module(first, wrapper)
    graphs["compiled piece"] = (compiled, (x,))
    return graphs


@pytest.mark.parametrize("name", ["to_copy", "chain", "compiled piece"])
def test_vllm_0_33_text_for_the_same_graphs_loads_and_computes_the_same(name: str) -> None:
    gm, args = _models()[name]
    code, names, consts = vllm_0_33_codegen.generate_execution_code(gm)
    assert "__vllm_inlined_submods__" in code or "__vllm_submods__[" in code
    callables = {child: module for child, module in gm.named_children()}
    fn = compile_execution_fn(code, callables, names, consts)
    assert_same(fn(*args), interpret(gm, *args))
    # vLLM's own loader, for the same text: the same result.
    assert_same(vllm_0_33_codegen.compile_execution_fn(code, callables, names, consts)(*args), fn(*args))


def test_inlined_pieces_are_spliced_into_the_entry() -> None:
    gm, _ = _models()["chain"]
    code, _, _ = vllm_0_33_codegen.generate_execution_code(gm)
    lifted = lift.lift(code, trusted_namespaces=("vllm",))
    assert lifted.function.name == "execution_fn"
    assert not any("inlined" in g.name for g in lifted.function.globals)
    assert not any(isinstance(i, ir.CallModule) for i in lifted.function.body)


def test_seed_text_with_a_dtype_by_its_repr() -> None:
    seed = textwrap.dedent(
        """\
        import torch
        def execution_fn(x, *, __vllm_submods__):
            submod_0 = __vllm_submods__[0](x, torch.float16)
            getitem = submod_0[0]
            del submod_0
            return getitem
        """
    )
    fn = compile_execution_fn(seed, {"a": lambda x, dtype: (x.to(dtype),)}, ["a"])
    assert fn(torch.ones(2)).dtype == torch.float16


def test_a_list_bound_to_a_name_is_built_once() -> None:
    # Two readers of one list display see one list, as Python would build it.
    code = "p = __astgen_pieces__[0]\ndef f(x):\n    y = [x]\n    a = p(y)\n    b = p(y)\n    return (a, b)\n"
    fn = astgen.load((code, ["append"], []), {"append": lambda items: items.append(1) or len(items)})
    assert fn(0) == (2, 3)


def test_a_deleted_alias_does_not_end_a_value_still_read() -> None:
    code = textwrap.dedent(
        """\
        def __vllm_inlined_submods__0(x):
            y = torch.relu(x)
            del x
            return (y, y)

        def execution_fn(x, *, __vllm_submods__):
            s = __vllm_inlined_submods__0(x)
            a = s[0]
            b = s[1]
            del s, a
            return (x, b)
        """
    )
    x = torch.tensor([-1.0, 2.0])
    got, relu = compile_execution_fn(code, {}, [], [])(x)
    assert got is x and relu.tolist() == [0.0, 2.0]


def test_trusted_namespaces_are_the_callers() -> None:
    lib = torch.library.Library("astgen_lift_test", "DEF")
    lib.define("twice(Tensor x) -> Tensor")
    lib.impl("twice", lambda x: x * 2, "CompositeExplicitAutograd")
    code = "def f(x):\n    return torch.ops.astgen_lift_test.twice.default(x)\n"
    with pytest.raises(CodegenError, match="not trusted"):
        astgen.load((code, [], []))
    fn = astgen.load((code, [], []), trusted_namespaces=("astgen_lift_test",))
    assert fn(torch.ones(1)).tolist() == [2.0]


# ---------------------------------------------------------------- the tables


def test_every_listed_torch_function_resolves_by_its_name() -> None:
    for prefix, names in importable.TORCH_FUNCTIONS.items():
        for name in names:
            dotted = f"{prefix}.{name}"
            obj = importable.resolve(dotted)
            assert importable.public_name(obj) is not None, dotted


@pytest.mark.parametrize(
    "dotted",
    ["torch.load", "torch.vmap", "torch.cond", "torch.from_file", "torch.manual_seed", "torch.Tensor.untyped_storage"],
)
def test_refused_names_are_not_written_by_lowering_either(dotted: str) -> None:
    _, *parts = dotted.split(".")
    obj: Any = torch
    for part in parts:
        obj = getattr(obj, part)
    with pytest.raises(LookupError):
        importable.resolve(dotted)
    assert importable.public_name(obj) is None


def test_no_listed_method_reaches_storage_files_hooks_or_types() -> None:
    banned = ("storage", "file", "hook", "numpy", "type", "format", "apply", "map", "share", "reduce", "class")
    assert not [m for m in importable.TENSOR_METHODS if any(word in m for word in banned) and m != "type_as"]


def test_refusal_names_the_line() -> None:
    with pytest.raises(CodegenError, match="line 3"):
        lift.lift("def f(x):\n    y = x\n    z = eval(y)\n    return z\n")


def test_calling_a_covered_object_through_a_const_is_judged_by_the_tables() -> None:
    code = "g = __astgen_consts__[0]\ndef f(x):\n    return g(x)\n"
    assert astgen.load((code, [], [torch.relu]))(torch.tensor([-1.0])).tolist() == [0.0]
    for refused in (torch.load, eval, operator.methodcaller, torch.ops.load_library, torch.float16):
        with pytest.raises(CodegenError, match="calls const 0"):
            astgen.load((code, [], [refused]))


def test_a_function_of_the_callers_own_is_a_callable_const() -> None:
    code = "g = __astgen_consts__[0]\ndef f(x):\n    return g(x)\n"
    assert astgen.load((code, [], [lambda v: v + 1]))(1) == 2


# ---------------------------------------------------------------- the audit oracle


def _marker(tmp_path: Path) -> str:
    return str(tmp_path / "marker")


def test_the_hostile_corpus_is_refused_without_an_event_or_an_import(tmp_path: Path) -> None:
    assert len(HOSTILE) >= 60
    marker = _marker(tmp_path)
    cases = [Case(text.replace("{M}", marker), ("identity",)) for text in HOSTILE.values()]
    reports = audit(cases)
    assert violations(cases, reports) == []
    accepted = [name for name, report in zip(HOSTILE, reports, strict=True) if report.outcome != "refused"]
    assert accepted == []
    assert not Path(marker).exists()


def test_accepted_tricky_texts_run_without_an_event(tmp_path: Path) -> None:
    cases = [Case(text, ("identity",)) for text in ACCEPTED.values()]
    reports = audit(cases)
    assert violations(cases, reports) == []
    assert [report.outcome for report in reports if report.outcome == "refused"] == [], reports


def test_the_oracle_sees_an_event_when_one_happens() -> None:
    # Its teeth: a piece of the victim's that opens a file, called by an accepted text.
    cases = [Case("p = __astgen_pieces__[0]\ndef f(x):\n    return p(x)\n", ("opens",))]
    (report,) = audit(cases)
    assert report.outcome == "ran" and any(event.startswith("open:") for event in report.events)
    assert violations(cases, [report])


def test_a_text_vllm_would_run_is_refused(tmp_path: Path) -> None:
    marker = _marker(tmp_path)
    code = f"import torch\ndef execution_fn(x, *, __vllm_submods__):\n    return open({marker!r}, 'w')\n"
    with pytest.raises(CodegenError):
        compile_execution_fn(code, {}, [])
    assert not Path(marker).exists()
    vllm_0_33_codegen.compile_execution_fn(code, {}, [])(torch.ones(1)).close()
    assert Path(marker).exists()


def test_a_refused_text_that_names_an_unimported_module_imports_nothing() -> None:
    cases = [Case("def f(x):\n    return torch._inductor.config.cpp(x)\n")]
    (report,) = audit(cases)
    assert report.outcome == "refused" and report.imported == () and report.events == ()


def test_the_drop_in_round_trips_a_graph_with_a_piece() -> None:
    gm = build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=nn.Identity())
    code, names, consts = generate_execution_code(gm)
    assert compile_execution_fn(code, {"sub": lambda v: v * 3}, names, consts)(2) == 6


def test_a_torch_module_imported_later_is_covered_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    assert astgen.loader.callable_const(torch.relu)  # the covered set is made now
    late = types.ModuleType("torch._astgen_late")

    def load_anything(path: str) -> None:
        raise AssertionError("never called")

    late.load_anything = load_anything  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch._astgen_late", late)
    assert not astgen.loader.callable_const(load_anything)


def test_an_operators_dtype_is_named_or_a_constant_that_is_one() -> None:
    # Through torch.ops a dtype is an int underneath, and one out of range crashes the process.
    code = "d = __astgen_consts__[0]\ndef f(x):\n    return torch.ops.aten.sum.dim_IntList(x, [0], dtype=d)\n"
    assert astgen.load((code, [], [torch.float64]))(torch.ones(2)).dtype == torch.float64
    with pytest.raises(CodegenError, match="gives const 0"):
        astgen.load((code, [], [-7]))
    with pytest.raises(CodegenError, match="name it"):
        lift.lift("def f(x, n):\n    return torch.ops.aten.sum.dim_IntList(x, [0], dtype=n)\n")
