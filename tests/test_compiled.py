"""Stage 4, compilation: the code cache, tracebacks and notes, submodule binding, liveness, pytree graphs."""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import linecache
import math
import operator
import pickle
import traceback
import types
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.fx

import astgen
from astgen import examples, ir
from tests.helpers import assert_same, build, build_raw, check, interpret


def identity(value: object) -> object:
    return value


def boom(value: object) -> object:
    raise ValueError(f"boom from {value!r}")


def constant_graph(value: object) -> torch.fx.GraphModule:
    return build(lambda g: g.call_function(identity, (value,)), recompile=False)


# ---------------------------------------------------------------- cache and determinism


def test_same_graph_gives_byte_identical_source() -> None:
    first = astgen.compile_graph(examples.toy(), cache=False).source
    second = astgen.compile_graph(examples.toy(), cache=False).source
    assert first == second


def test_cache_hit_returns_the_same_code_object() -> None:
    first = astgen.compile_graph(examples.toy())
    second = astgen.compile_graph(examples.toy())
    assert first.fn.__code__ is second.fn.__code__
    assert first.filename == second.filename


def test_cache_hit_binds_each_graph_its_own_submodules() -> None:
    first_gm, second_gm = examples.toy(), examples.toy()
    first, second = astgen.compile_graph(first_gm), astgen.compile_graph(second_gm)
    assert first.fn.__code__ is second.fn.__code__
    x, y = torch.randn(2, 4), torch.randn(2, 4)
    assert_same(first(x, y), interpret(first_gm, x, y))
    assert_same(second(x, y), interpret(second_gm, x, y))


def test_cache_false_gives_fresh_code() -> None:
    gm = examples.toy()
    cached = astgen.compile_graph(gm)
    fresh = astgen.compile_graph(gm, cache=False)
    assert fresh.fn.__code__ is not cached.fn.__code__
    assert fresh.filename != cached.filename
    assert fresh.source == cached.source


@pytest.mark.parametrize(
    ("first", "second"),
    [(0.0, -0.0), (1, 1.0), (1, True), (1.0, True), (0, False), (0j, 0.0), ("1", b"1"), (math.inf, 1e308)],
    ids=repr,
)
def test_equal_but_different_constants_do_not_share_code(first: object, second: object) -> None:
    a = astgen.compile_graph(constant_graph(first))
    b = astgen.compile_graph(constant_graph(second))
    assert a.fn.__code__ is not b.fn.__code__
    assert_same(a(), first)
    assert_same(b(), second)
    assert repr(a()) == repr(first) and repr(b()) == repr(second)


def test_bound_objects_can_share_code() -> None:
    a = astgen.compile_graph(constant_graph(torch.float32))
    b = astgen.compile_graph(constant_graph(torch.float64))
    assert a() is torch.float32 and b() is torch.float64


def test_default_values_differing_in_sign_do_not_share_code() -> None:
    def graph(default: float) -> torch.fx.GraphModule:
        return build(lambda g: g.placeholder("x", default_value=default))

    a, b = astgen.compile_graph(graph(0.0)), astgen.compile_graph(graph(-0.0))
    assert math.copysign(1, a()) == 1 and math.copysign(1, b()) == -1


def test_source_is_registered_in_linecache() -> None:
    compiled = astgen.compile_graph(examples.toy())
    lines = compiled.source.splitlines()
    for number, line in enumerate(lines, start=1):
        assert linecache.getline(compiled.filename, number).rstrip("\n") == line


def test_ir_and_tree_are_exposed() -> None:
    compiled = astgen.compile_graph(examples.toy())
    assert compiled.ir.name == "forward"
    assert astgen.emit(compiled.ir).body[-1].name == compiled.tree.body[-1].name  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_tree_is_the_emitted_module_node_for_node(name: str) -> None:
    # Only the def is compiled and the prelude built when asked for: the
    # module must still be exactly what `emit` makes, positions included.
    compiled = astgen.compile_graph(examples.EXAMPLES[name](), cache=False)
    emitted = astgen.emit(compiled.ir)
    assert ast.dump(compiled.tree, include_attributes=True) == ast.dump(emitted, include_attributes=True)
    assert compiled.tree is compiled.tree


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_globals_are_what_the_prelude_binds(name: str) -> None:
    compiled = astgen.compile_graph(examples.EXAMPLES[name](), cache=False)
    pieces, consts = ir.tables(compiled.ir)
    namespace: dict[str, Any] = {
        ir.PIECES_TABLE: [compiled.bindings[g.slot] for g in pieces],
        ir.CONSTS_TABLE: [compiled.bindings[g.slot] for g in consts],
    }
    exec(compile(compiled.tree, "<prelude>", "exec"), namespace)
    for g in compiled.ir.globals:
        assert compiled.fn.__globals__[g.name] is namespace[g.name], g.name


def test_the_function_code_keeps_the_lines_of_the_whole_module() -> None:
    compiled = astgen.compile_graph(examples.toy(), cache=False)
    module_code = compile(compiled.tree, compiled.filename, "exec", dont_inherit=True)
    whole = [c for c in module_code.co_consts if isinstance(c, types.CodeType)][-1]
    assert compiled.fn.__code__.co_firstlineno == whole.co_firstlineno
    assert list(compiled.fn.__code__.co_positions()) == list(whole.co_positions())


def test_ir_classes_with_their_own_init_stay_frozen() -> None:
    value = ir.Value("x")
    instances = [value, ir.Origin("n"), ir.GetItem(value, value, ir.Const(0)), ir.Delete((value,))]
    instances.append(ir.CallModule(value, ir.Global("f", 0), "sub", (), ()))
    for instance in instances:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(instance, dataclasses.fields(instance)[0].name, None)
        assert instance == dataclasses.replace(instance) and hash(instance) == hash(dataclasses.replace(instance))


# ---------------------------------------------------------------- tracebacks and notes


def _failing_graph(stack_trace: str | None = None) -> torch.fx.GraphModule:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        y = g.call_function(operator.add, (x, 1))
        z = g.call_function(boom, (y,), name="explode")
        z.stack_trace = stack_trace
        return z

    return build(body)


def _raise(fn: Callable[..., Any], *args: object) -> BaseException:
    with pytest.raises(ValueError) as raised:
        fn(*args)
    return raised.value


def test_traceback_shows_the_generated_line() -> None:
    compiled = astgen.compile_graph(_failing_graph())
    text = "".join(traceback.format_exception(_raise(compiled, 1)))
    statement = next(line.strip() for line in compiled.source.splitlines() if "boom(" in line)
    assert f'File "{compiled.filename}", line' in text
    assert statement in text
    assert "<string>" not in text


def test_traceback_of_bare_fn_shows_the_generated_line() -> None:
    compiled = astgen.compile_graph(_failing_graph())
    frames = traceback.extract_tb(_raise(compiled.fn, 1).__traceback__)
    generated = [frame for frame in frames if frame.filename == compiled.filename]
    assert len(generated) == 1 and generated[0].line and "boom" in generated[0].line


def test_note_names_node_and_user_line() -> None:
    trace = 'File "model.py", line 7, in forward\n    z = boom(y)\n'
    compiled = astgen.compile_graph(_failing_graph(trace))
    error = _raise(compiled, 1)
    (note,) = error.__notes__
    assert "'explode'" in note and compiled.filename in note
    assert 'model.py", line 7' in note and "z = boom(y)" in note
    assert note in "".join(traceback.format_exception(error))


def test_note_without_stack_trace_names_node() -> None:
    compiled = astgen.compile_graph(_failing_graph())
    (note,) = _raise(compiled, 1).__notes__
    assert "'explode'" in note and "from:" not in note


def test_bare_fn_adds_no_note() -> None:
    error = _raise(astgen.compile_graph(_failing_graph()).fn, 1)
    assert not getattr(error, "__notes__", [])


def test_note_names_the_submodule_call_that_raised() -> None:
    gm = examples.toy()
    compiled = astgen.compile_graph(gm, {"submod_1": lambda *args: boom(args)})
    (note,) = _raise(compiled, torch.ones(1, 4), torch.ones(1, 4)).__notes__
    assert "'submod_1'" in note


def test_error_in_argument_processing_gets_no_note() -> None:
    compiled = astgen.compile_graph(_failing_graph())
    with pytest.raises(TypeError) as raised:
        compiled(1, 2, 3)
    assert not getattr(raised.value, "__notes__", [])


# ---------------------------------------------------------------- submodule binding


def _one_submodule(sub: torch.nn.Module) -> torch.fx.GraphModule:
    return build(lambda g: g.call_module("sub", (g.placeholder("x"),)), sub=sub)


def _graph_module_sub() -> torch.fx.GraphModule:
    return build(lambda g: g.call_function(torch.neg, (g.placeholder("x"),)))


def _bound(compiled: astgen.CompiledGraph) -> list[object]:
    return [compiled.fn.__globals__[g.name] for g in compiled.ir.globals]


def test_graph_module_submodule_bound_through_forward() -> None:
    gm = _one_submodule(_graph_module_sub())
    compiled = check(gm, torch.ones(2))
    (bound,) = _bound(compiled)
    assert getattr(bound, "__self__", None) is gm.sub
    assert getattr(bound, "__func__", None) is type(gm.sub).forward


def test_submodule_with_forward_hook_is_called_as_a_module() -> None:
    gm = _one_submodule(_graph_module_sub())
    seen: list[str] = []
    gm.sub.register_forward_hook(lambda *args: seen.append("hook"))
    compiled = check(gm, torch.ones(2))
    seen.clear()
    compiled(torch.ones(2))
    assert seen == ["hook"]
    assert _bound(compiled) == [gm.sub]


def test_submodule_with_pre_hook_is_called_as_a_module() -> None:
    gm = _one_submodule(_graph_module_sub())
    gm.sub.register_forward_pre_hook(lambda module, args: (args[0] * 10,))
    compiled = check(gm, torch.ones(2))
    assert torch.equal(compiled(torch.ones(2)), torch.full((2,), -10.0))


def test_global_forward_hook_is_honoured() -> None:
    gm = _one_submodule(_graph_module_sub())
    seen: list[str] = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *args: seen.append("global"))
    try:
        compiled = astgen.compile_graph(gm, cache=False)
        compiled(torch.ones(2))
    finally:
        handle.remove()
    assert seen == ["global"]


def test_plain_module_submodule_is_called_as_itself() -> None:
    gm = _one_submodule(torch.nn.Linear(2, 2))
    compiled = check(gm, torch.ones(2))
    assert _bound(compiled) == [gm.sub]


def test_submodules_override_replaces_the_callable() -> None:
    gm = _one_submodule(_graph_module_sub())
    compiled = astgen.compile_graph(gm, {"sub": lambda x: x * 100})
    assert torch.equal(compiled(torch.ones(2)), torch.full((2,), 100.0))


def test_submodules_override_graph_module_bound_through_forward() -> None:
    replacement = _graph_module_sub()
    compiled = astgen.compile_graph(_one_submodule(torch.nn.Identity()), {"sub": replacement})
    (bound,) = _bound(compiled)
    assert getattr(bound, "__self__", None) is replacement


def test_submodules_override_keeps_code_shared() -> None:
    gm = _one_submodule(_graph_module_sub())
    a = astgen.compile_graph(gm, {"sub": lambda x: x + 1})
    b = astgen.compile_graph(gm, {"sub": lambda x: x + 2})
    assert a.fn.__code__ is b.fn.__code__
    assert a(1) == 2 and b(1) == 3


def test_unknown_submodules_names_rejected() -> None:
    with pytest.raises(ValueError, match="submod_9"):
        astgen.compile_graph(examples.toy(), {"submod_9": identity})


def test_non_callable_override_rejected() -> None:
    with pytest.raises(astgen.CodegenError):
        astgen.compile_graph(_one_submodule(torch.nn.Identity()), {"sub": 3})  # type: ignore[dict-item]


# ---------------------------------------------------------------- liveness


class Probes:
    """Submodules that make fresh tensors and record which earlier ones are alive at each call."""

    def __init__(self) -> None:
        self.refs: dict[str, weakref.ref[torch.Tensor]] = {}
        self.log: list[tuple[str, list[str]]] = []

    def alive(self) -> list[str]:
        return sorted(name for name, ref in self.refs.items() if ref() is not None)

    def make(self, name: str) -> Callable[..., torch.Tensor]:
        def submodule(*args: torch.Tensor) -> torch.Tensor:
            self.log.append((name, self.alive()))
            result = torch.zeros(1)
            self.refs[name] = weakref.ref(result)
            return result

        return submodule


def test_values_are_freed_right_after_their_last_use() -> None:
    names = ["a", "b", "c", "u", "d"]

    def body(g: torch.fx.Graph) -> None:
        a = g.create_node("call_module", "a", ())
        b = g.create_node("call_module", "b", (a,))
        c = g.create_node("call_module", "c", (a,))
        g.create_node("call_module", "u", (b,))  # nobody reads its result
        d = g.create_node("call_module", "d", (c,))
        g.output(d)

    gm = build_raw(body, **{name: torch.nn.Identity() for name in names})
    probes = Probes()
    compiled = astgen.compile_graph(gm, {name: probes.make(name) for name in names})
    result = compiled()
    assert probes.log == [
        ("a", []),
        ("b", ["a"]),
        ("c", ["a", "b"]),  # a is read here, b later
        ("u", ["b", "c"]),  # a is dead after c
        ("d", ["c"]),  # b is dead after u, u's result died at once
    ]
    assert probes.alive() == ["d"]
    del result
    assert probes.alive() == []


def test_unpacked_tuple_elements_are_freed_one_by_one() -> None:
    def body(g: torch.fx.Graph) -> None:
        pair = g.create_node("call_module", "pair", ())
        first = g.call_function(operator.getitem, (pair, 0))
        second = g.call_function(operator.getitem, (pair, 1))
        x = g.create_node("call_module", "x", (first,))
        y = g.create_node("call_module", "y", (second,))
        g.output((x, y))

    probes = Probes()

    def pair() -> tuple[torch.Tensor, torch.Tensor]:
        made = (probes.make("p0")(), probes.make("p1")())
        probes.log.clear()
        return made

    gm = build_raw(body, pair=torch.nn.Identity(), x=torch.nn.Identity(), y=torch.nn.Identity())
    compiled = astgen.compile_graph(gm, {"pair": pair, "x": probes.make("x"), "y": probes.make("y")})
    compiled()
    assert probes.log == [("x", ["p0", "p1"]), ("y", ["p1", "x"])]


# ---------------------------------------------------------------- pytree codegen


class Structured(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 3)

    def forward(self, inputs: dict[str, Any], scale: torch.Tensor) -> dict[str, Any]:
        first, second = inputs["pair"]
        return {"out": self.linear(inputs["x"]) * scale, "pair": (first + 1, second)}


def _structured_args() -> tuple[object, ...]:
    return ({"x": torch.randn(2, 3), "pair": [torch.ones(3), torch.zeros(3)]}, torch.tensor(2.0))


def test_pytree_graph_takes_structured_arguments() -> None:
    gm = torch.export.export(Structured(), _structured_args()).module()
    compiled = astgen.compile_graph(gm)
    args = _structured_args()
    result = compiled(*args)
    assert_same(result, interpret(gm, *args))
    assert_same(result, gm(*args))
    assert list(result) == ["out", "pair"] and isinstance(result["pair"], tuple)


def test_pytree_graph_rejects_a_wrong_structure_like_the_graphs_own_code() -> None:
    # `gm(...)` also runs export's input-checking pre-hook, a hook on the
    # module: what astgen compiles is the graph, whose own code is `forward`.
    gm = torch.export.export(Structured(), _structured_args()).module()
    compiled = astgen.compile_graph(gm)
    args = _structured_args()
    with pytest.raises(Exception) as expected:
        gm.forward(args[0]["x"], args[1])
    with pytest.raises(type(expected.value)):
        compiled(args[0]["x"], args[1])


class KeywordOnly(torch.nn.Module):
    def forward(self, inp: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
        return inp * 2 if mask is None else inp * mask


def test_exported_program_takes_the_modules_arguments_by_name() -> None:
    gm = torch.export.export(KeywordOnly(), (torch.ones(2),), {"mask": torch.ones(2)}).module()
    compiled = astgen.compile_graph(gm)
    inp, mask = torch.arange(2.0), torch.full((2,), 3.0)
    assert list(inspect.signature(compiled.fn).parameters) == list(inspect.signature(gm.forward).parameters)
    assert_same(compiled(inp, mask=mask), gm(inp, mask=mask))
    assert_same(compiled(mask=mask, inp=inp), gm(inp, mask=mask))


def test_pytree_graph_split_at_attention_matches_interpreter() -> None:
    gm = examples.transformer()
    compiled = astgen.compile_graph(gm)
    for length in (2, 5, 9):
        tokens = torch.randint(0, 64, (1, length))
        assert_same(compiled(tokens), interpret(gm, tokens))


def test_check_verifies_the_ir_after_every_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # A broken pass: deletes the first parameter before anything reads it.
    def delete_too_early(function: astgen.ir.Function) -> astgen.ir.Function:
        early = astgen.ir.Delete((function.params[0].value,))
        return astgen.ir.Function(function.name, function.params, (early, *function.body), function.globals)

    monkeypatch.setattr(astgen.passes, "PASSES", (*astgen.passes.PASSES, delete_too_early))
    gm = examples.toy()
    with pytest.raises(astgen.VerifyError, match="deleted"):
        astgen.compile_graph(gm, cache=False, check=True)
    # Without the flag nothing checks: the broken function compiles.
    broken = astgen.compile_graph(gm, cache=False)
    with pytest.raises(UnboundLocalError):
        broken.fn(torch.ones(2, 4), torch.ones(2, 4))


# ---------------------------------------------------------------- pickling and copying


def test_pickle_and_deepcopy_point_to_the_artifact() -> None:
    gm = examples.toy()
    compiled = astgen.compile_graph(gm)
    for refuse, what in ((pickle.dumps, "pickled"), (copy.deepcopy, "deep-copied")):
        with pytest.raises(TypeError, match=rf"cannot be {what}: .*\.artifact\(\).*astgen\.load"):
            refuse(compiled)
    assert copy.copy(compiled) is compiled
    # What the message says to do instead works.
    artifact = pickle.loads(pickle.dumps(compiled.artifact()))
    fn = astgen.load(artifact, {name: gm.get_submodule(name) for name in artifact.piece_names})
    x, y = torch.randn(2, 4), torch.randn(2, 4)
    assert_same(fn(x, y), compiled(x, y))
