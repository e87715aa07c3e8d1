"""Hostile variants of generated code text, for the loader's audit property and its fuzz check.

A mutant is a text astgen or vLLM generated with a few of its nodes
replaced, as an attacker who can write the cache would: a callee swapped
for a name drawn from `dir(torch)`, `dir(torch.Tensor)`,
`dir(torch.UntypedStorage)`, `dir(str)` or the builtins; an attribute chain
on a value; a default added to a parameter; a constant changed; a prelude
line naming something else. The tree is changed and unparsed: no text is
put together from strings.
"""

from __future__ import annotations

import ast
import builtins
import copy
from collections.abc import Callable
from functools import cache

import torch
from hypothesis import strategies as st

from astgen import importable
from astgen.testing.audit import Case

_DUNDERS = ("__class__", "__init__", "__globals__", "__dict__", "__subclasses__", "__reduce_ex__", "__builtins__")
_REGISTRIES = ("py_kernels", "_dispatch_cache", "py_impl", "_op", "redispatch", "decompose", "overloads")


@cache
def _names() -> dict[str, tuple[str, ...]]:
    return {
        "torch": tuple(sorted(dir(torch))),
        "tensor": tuple(sorted(dir(torch.Tensor))),
        "storage": tuple(sorted(dir(torch.UntypedStorage))),
        "str": tuple(sorted(dir(str))),
        "builtins": tuple(sorted(dir(builtins))),
        "attributes": tuple(sorted({*dir(torch.Tensor), *_DUNDERS, *_REGISTRIES})),
    }


def _name(identifier: str) -> ast.Name:
    return ast.Name(id=identifier, ctx=ast.Load())


def _chain(root: ast.expr, attributes: list[str]) -> ast.expr:
    for attribute in attributes:
        root = ast.Attribute(value=root, attr=attribute, ctx=ast.Load())
    return root


def _locals(function: ast.FunctionDef) -> list[str]:
    names = [argument.arg for argument in function.args.args]
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
    return names or ["x"]


@st.composite
def _callee(draw: st.DrawFn, receivers: list[str]) -> ast.expr:
    names = _names()
    kinds = ("torch", "tensor method", "Tensor path", "storage", "str", "builtin", "op", "listed", "listed method")
    kind = draw(st.sampled_from(kinds))
    receiver = _name(draw(st.sampled_from(receivers)))
    if kind == "listed":
        # Names the tables accept: run with drawn arguments, they must raise no event either.
        prefix = draw(st.sampled_from(sorted(importable.TORCH_FUNCTIONS)))
        name = draw(st.sampled_from(sorted(importable.TORCH_FUNCTIONS[prefix])))
        return _chain(_name("torch"), [*prefix.split(".")[1:], name])
    if kind == "listed method":
        return _chain(receiver, [draw(st.sampled_from(sorted(importable.TENSOR_METHODS)))])
    if kind == "torch":
        return _chain(_name("torch"), [draw(st.sampled_from(names["torch"]))])
    if kind == "tensor method":
        return _chain(receiver, [draw(st.sampled_from(names["tensor"]))])
    if kind == "Tensor path":
        return _chain(_name("torch"), ["Tensor", draw(st.sampled_from(names["tensor"]))])
    if kind == "storage":
        storage = ast.Call(func=_chain(receiver, ["untyped_storage"]), args=[], keywords=[])
        return _chain(storage, [draw(st.sampled_from(names["storage"]))])
    if kind == "str":
        text = ast.Constant(value=draw(st.sampled_from(("{0.__class__}", "x", "{0!r}"))))
        return _chain(text, [draw(st.sampled_from(names["str"]))])
    if kind == "builtin":
        return _name(draw(st.sampled_from(names["builtins"])))
    namespace = draw(st.sampled_from(("aten", "prims", "higher_order", "profiler", "vllm")))
    operator_name = draw(st.sampled_from(("mm", "from_file", "set_", "_print", "add", "cond", "_reshape_alias")))
    return _chain(_name("torch"), ["ops", namespace, operator_name, draw(st.sampled_from(("default", "Tensor", *_REGISTRIES)))])


@st.composite
def _expression(draw: st.DrawFn, receivers: list[str]) -> ast.expr:
    kind = draw(st.sampled_from(("call", "chain", "literal", "format")))
    if kind == "call":
        args = [_name(draw(st.sampled_from(receivers))) for _ in range(draw(st.integers(0, 2)))]
        return ast.Call(func=draw(_callee(receivers)), args=args, keywords=[])
    if kind == "chain":
        attributes = draw(st.lists(st.sampled_from(_names()["attributes"]), min_size=1, max_size=3))
        return _chain(_name(draw(st.sampled_from(receivers))), attributes)
    if kind == "format":
        method = _chain(ast.Constant(value="{0.__class__.__init__.__globals__}"), ["format"])
        return ast.Call(func=method, args=[_name(draw(st.sampled_from(receivers)))], keywords=[])
    return ast.Constant(value=draw(st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=8), st.floats())))


def _mutate_callee(draw: st.DrawFn, tree: ast.Module, function: ast.FunctionDef) -> None:
    calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)]
    if calls:
        draw(st.sampled_from(calls)).func = draw(_callee(_locals(function)))


def _mutate_argument(draw: st.DrawFn, tree: ast.Module, function: ast.FunctionDef) -> None:
    calls = [node for node in ast.walk(function) if isinstance(node, ast.Call) and node.args]
    if calls:
        call = draw(st.sampled_from(calls))
        call.args[draw(st.integers(0, len(call.args) - 1))] = draw(_expression(_locals(function)))


def _mutate_default(draw: st.DrawFn, tree: ast.Module, function: ast.FunctionDef) -> None:
    function.args.args.append(ast.arg(arg=draw(st.sampled_from(("extra", "y_default")))))
    function.args.defaults.append(draw(_expression(["len", "torch", "x"])))


def _mutate_constant(draw: st.DrawFn, tree: ast.Module, function: ast.FunctionDef) -> None:
    constants = [node for node in ast.walk(function) if isinstance(node, ast.Constant)]
    if constants:
        target = draw(st.sampled_from(constants))
        target.value = draw(st.one_of(st.integers(), st.text(max_size=8), st.sampled_from(("{0.__class__}", None))))


def _mutate_prelude(draw: st.DrawFn, tree: ast.Module, function: ast.FunctionDef) -> None:
    value = draw(_expression(["__astgen_consts__", "__astgen_pieces__", "torch", "operator"]))
    tree.body.insert(0, ast.Assign(targets=[ast.Name(id="planted", ctx=ast.Store())], value=value))
    statements = function.body
    statements.insert(0, ast.Assign(targets=[ast.Name(id="planted_use", ctx=ast.Store())], value=_name("planted")))


_MUTATIONS: tuple[Callable[[st.DrawFn, ast.Module, ast.FunctionDef], None], ...] = (
    _mutate_callee,
    _mutate_argument,
    _mutate_default,
    _mutate_constant,
    _mutate_prelude,
)


@st.composite
def mutants(draw: st.DrawFn, bases: list[Case]) -> Case:
    """A base case with one to three of its nodes replaced."""
    base = draw(st.sampled_from(bases))
    tree = ast.parse(base.code)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    for _ in range(draw(st.integers(1, 3))):
        function = draw(st.sampled_from(functions))
        draw(st.sampled_from(_MUTATIONS))(draw, tree, function)
    try:
        code = ast.unparse(ast.fix_missing_locations(copy.deepcopy(tree)))
    except (ValueError, RecursionError):  # a drawn node unparse cannot write: the base, unchanged
        code = base.code
    return Case(code, base.piece_names, base.victim, base.consts, base.vllm)


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


@cache
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
