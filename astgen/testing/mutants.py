"""Hostile variants of generated code text, for the loader's audit property and its fuzz check.

A mutant is a text astgen or vLLM generated with a few of its nodes
replaced, as an attacker who can write the cache would: a callee swapped
for a name drawn from `dir(torch)`, `dir(torch.Tensor)`,
`dir(torch.UntypedStorage)`, `dir(str)`, the builtins or the loader's own
tables; an attribute chain on a value; a default added to a parameter; a
constant changed; a prelude line naming something else. The tree is
changed and unparsed: no text is put together from strings.

Choices go through a `Chooser`: Hypothesis draws them in the property suite
(`mutants`), a seeded `random.Random` in the fuzz check (`random_mutants`).
"""

from __future__ import annotations

import ast
import builtins
import functools
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import torch
from hypothesis import strategies as st

from astgen import importable
from astgen.lift import nodes
from astgen.render import unparse
from astgen.testing.audit import Case

_T = TypeVar("_T")
_DUNDERS = ("__class__", "__init__", "__globals__", "__dict__", "__subclasses__", "__reduce_ex__", "__builtins__")
_REGISTRIES = ("py_kernels", "_dispatch_cache", "py_impl", "_op", "redispatch", "decompose", "overloads")
_LITERALS: tuple[Any, ...] = (0, -1, 7, 2**70, 1.5, float("inf"), "", "os", "{0.__class__}", "{0!r}", None, True)


class Chooser(Protocol):
    def choice(self, options: Sequence[_T]) -> _T: ...

    def integer(self, low: int, high: int) -> int: ...


class _Drawn:
    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def choice(self, options: Sequence[_T]) -> _T:
        return self.draw(st.sampled_from(options))

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))


class _Random:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choice(self, options: Sequence[_T]) -> _T:
        return self.rng.choice(options)

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


@functools.cache
def _names() -> dict[str, tuple[str, ...]]:
    return {
        "torch": tuple(sorted(dir(torch))),
        "tensor": tuple(sorted(dir(torch.Tensor))),
        "storage": tuple(sorted(dir(torch.UntypedStorage))),
        "str": tuple(sorted(dir(str))),
        "builtins": tuple(sorted(dir(builtins))),
        "attributes": tuple(sorted({*dir(torch.Tensor), *_DUNDERS, *_REGISTRIES})),
        "methods": tuple(sorted(importable.TENSOR_METHODS)),
    }


def _name(identifier: str) -> ast.Name:
    return ast.Name(id=identifier, ctx=ast.Load())


def _chain(root: ast.expr, attributes: Sequence[str]) -> ast.expr:
    for attribute in attributes:
        root = ast.Attribute(value=root, attr=attribute, ctx=ast.Load())
    return root


def _locals(function: ast.FunctionDef, found: Sequence[ast.AST]) -> list[str]:
    """The names `function` binds; `found` is `nodes(function)`, walked once for this and the callee's pick."""
    names = [argument.arg for argument in function.args.args]
    for node in found:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
    return names or ["x"]


_CALLEES = ("torch", "tensor method", "Tensor path", "storage", "str", "builtin", "op", "listed", "listed method")


def _callee(choose: Chooser, receivers: Sequence[str]) -> ast.expr:
    names = _names()
    kind = choose.choice(_CALLEES)
    receiver = _name(choose.choice(receivers))
    if kind == "torch":
        return _chain(_name("torch"), [choose.choice(names["torch"])])
    if kind == "tensor method":
        return _chain(receiver, [choose.choice(names["tensor"])])
    if kind == "Tensor path":
        return _chain(_name("torch"), ["Tensor", choose.choice(names["tensor"])])
    if kind == "storage":
        storage = ast.Call(func=_chain(receiver, ["untyped_storage"]), args=[], keywords=[])
        return _chain(storage, [choose.choice(names["storage"])])
    if kind == "str":
        text = ast.Constant(value=choose.choice(("{0.__class__}", "x", "{0!r}")))
        return _chain(text, [choose.choice(names["str"])])
    if kind == "builtin":
        return _name(choose.choice(names["builtins"]))
    if kind == "listed":
        # Names the tables accept: run with the arguments at hand, they must raise no event either.
        prefix = choose.choice(sorted(importable.TORCH_FUNCTIONS))
        return _chain(
            _name("torch"), [*prefix.split(".")[1:], choose.choice(sorted(importable.TORCH_FUNCTIONS[prefix]))]
        )
    if kind == "listed method":
        return _chain(receiver, [choose.choice(names["methods"])])
    namespace = choose.choice(("aten", "prims", "higher_order", "profiler", "vllm"))
    operator_name = choose.choice(("mm", "from_file", "set_", "_print", "add", "cond", "_reshape_alias"))
    overload = choose.choice(("default", "Tensor", *_REGISTRIES))
    return _chain(_name("torch"), ["ops", namespace, operator_name, overload])


def _expression(choose: Chooser, receivers: Sequence[str]) -> ast.expr:
    kind = choose.choice(("call", "chain", "literal", "format"))
    if kind == "call":
        args: list[ast.expr] = [_name(choose.choice(receivers)) for _ in range(choose.integer(0, 2))]
        return ast.Call(func=_callee(choose, receivers), args=args, keywords=[])
    if kind == "chain":
        attributes = [choose.choice(_names()["attributes"]) for _ in range(choose.integer(1, 3))]
        return _chain(_name(choose.choice(receivers)), attributes)
    if kind == "format":
        method = _chain(ast.Constant(value="{0.__class__.__init__.__globals__}"), ["format"])
        return ast.Call(func=method, args=[_name(choose.choice(receivers))], keywords=[])
    return ast.Constant(value=choose.choice(_LITERALS))


#: What takes a mutation back: the base tree serves every mutant of a batch (a parse is most of a mutant).
_Undo = list[Callable[[], object]]
#: `nodes(function)`, or the base tree's walk of it, kept while no mutation has changed the tree.
_Walk = Callable[[ast.FunctionDef], list[ast.AST]]


def _restore(node: Any, field: str, undo: _Undo) -> None:
    undo.append(functools.partial(setattr, node, field, getattr(node, field)))


def _mutate_callee(choose: Chooser, tree: ast.Module, function: ast.FunctionDef, undo: _Undo, walk: _Walk) -> None:
    found = walk(function)
    calls = [node for node in found if isinstance(node, ast.Call)]
    if calls:
        callee = _callee(choose, _locals(function, found))  # drawn before the call, as `call.func = ...` ran
        call = choose.choice(calls)
        _restore(call, "func", undo)
        call.func = callee


def _mutate_argument(choose: Chooser, tree: ast.Module, function: ast.FunctionDef, undo: _Undo, walk: _Walk) -> None:
    found = walk(function)
    calls = [node for node in found if isinstance(node, ast.Call) and node.args]
    if calls:
        call = choose.choice(calls)
        value = _expression(choose, _locals(function, found))
        index = choose.integer(0, len(call.args) - 1)
        undo.append(functools.partial(call.args.__setitem__, index, call.args[index]))
        call.args[index] = value


def _mutate_default(choose: Chooser, tree: ast.Module, function: ast.FunctionDef, undo: _Undo, walk: _Walk) -> None:
    function.args.args.append(ast.arg(arg=choose.choice(("extra", "y_default"))))
    undo.append(function.args.args.pop)
    function.args.defaults.append(_expression(choose, ["len", "torch", "x"]))
    undo.append(function.args.defaults.pop)


def _mutate_constant(choose: Chooser, tree: ast.Module, function: ast.FunctionDef, undo: _Undo, walk: _Walk) -> None:
    constants = [node for node in walk(function) if isinstance(node, ast.Constant)]
    if constants:
        literal = choose.choice(_LITERALS)
        constant = choose.choice(constants)
        _restore(constant, "value", undo)
        constant.value = literal


def _mutate_prelude(choose: Chooser, tree: ast.Module, function: ast.FunctionDef, undo: _Undo, walk: _Walk) -> None:
    value = _expression(choose, ["__astgen_consts__", "__astgen_pieces__", "torch", "operator"])
    # A line number: `ast.unparse` looks an assignment's type comment up by it.
    tree.body.insert(0, ast.Assign(targets=[ast.Name(id="planted", ctx=ast.Store())], value=value, lineno=1))
    undo.append(functools.partial(tree.body.pop, 0))
    function.body.insert(
        0, ast.Assign(targets=[ast.Name(id="planted_use", ctx=ast.Store())], value=_name("planted"), lineno=1)
    )
    undo.append(functools.partial(function.body.pop, 0))


_MUTATIONS: tuple[Callable[[Chooser, ast.Module, ast.FunctionDef, _Undo, _Walk], None], ...] = (
    _mutate_callee,
    _mutate_argument,
    _mutate_default,
    _mutate_constant,
    _mutate_prelude,
)


def _mutants(choose: Chooser, base: Case, count: int) -> list[Case]:
    """`count` mutants of `base`, each with one to three of its nodes replaced, from one parse."""
    tree = ast.parse(base.code)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    walked: dict[int, list[ast.AST]] = {}

    def walk_base(function: ast.FunctionDef) -> list[ast.AST]:
        # Each mutation walked its function anew; a mutant's first mutation sees the base tree,
        # whose walk the batch's mutants share (the lists are only read).
        found = walked.get(id(function))
        if found is None:
            found = walked[id(function)] = nodes(function)
        return found

    made = []
    for _ in range(count):
        undo: _Undo = []
        for _ in range(choose.integer(1, 3)):
            # Every mutation that changes the tree leaves a step in `undo`: while it is empty, the tree is the base.
            choose.choice(_MUTATIONS)(choose, tree, choose.choice(functions), undo, nodes if undo else walk_base)
        try:
            # No `fix_missing_locations`: unparse needs no positions (a third of a mutant's time).
            # `render.unparse` writes `ast.unparse`'s text, in half its time.
            code = unparse(tree)
        except (ValueError, RecursionError):  # a node unparse cannot write: the base, unchanged
            code = base.code
        for step in reversed(undo):
            step()
        made.append(Case(code, base.piece_names, base.victim, base.consts, base.vllm))
    return made


def mutate(choose: Chooser, base: Case) -> Case:
    """`base` with one to three of its nodes replaced."""
    return _mutants(choose, base, 1)[0]


@st.composite
def mutants(draw: st.DrawFn, bases: Sequence[Case]) -> Case:
    """A Hypothesis strategy: a base case, mutated."""
    choose = _Drawn(draw)
    return mutate(choose, choose.choice(bases))


def random_mutants(rng: random.Random, base: Case, count: int) -> list[Case]:
    """`count` mutants of `base`, drawn from `rng` one after the other."""
    return _mutants(_Random(rng), base, count)


# What vLLM 0.33's generator writes (inlined pieces, a compiled piece, consts), for the default victim.
VLLM_TEXT = """\
import torch
import operator

def __vllm_inlined_submods__0(x):
    _to_copy = torch.ops.aten._to_copy.default(x, dtype=__vllm_consts__[0], device=__vllm_consts__[1])
    mul = torch.ops.aten.mul.Tensor(_to_copy, 2)
    return (mul, _to_copy)

def execution_fn(x, *, __vllm_submods__):
    submod_0 = __vllm_inlined_submods__0(x)
    getitem = submod_0[0]
    getitem_1 = submod_0[1]
    del submod_0
    submod_1 = __vllm_submods__[1](getitem)
    del getitem
    add = operator.add(submod_1, getitem_1)
    return add
"""
# The seed generator's: no consts.
SEED_TEXT = """\
import torch
def execution_fn(x, *, __vllm_submods__):
    submod_0 = __vllm_submods__[0](x)
    getitem = submod_0[0]
    getitem_1 = submod_0[1]
    del submod_0
    submod_1 = __vllm_submods__[1](getitem)
    del getitem
    return (submod_1, getitem_1)
"""


@functools.cache
def base_cases() -> tuple[Case, ...]:
    """Texts astgen and vLLM generate, each with the victim it runs against."""
    import astgen
    from astgen import examples

    cases = [
        Case(VLLM_TEXT, ("submod_0", "relu"), vllm=True),
        Case(SEED_TEXT, ("pair", "relu"), consts="none", vllm=True),
    ]
    for name in ("toy", "constants"):
        artifact = astgen.compile_graph(examples.EXAMPLES[name]()).artifact()
        cases.append(Case(artifact.code, artifact.piece_names, f"example:{name}"))
    return tuple(cases)
