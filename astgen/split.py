"""Split a graph at chosen ops, the way a piecewise compiler does.

Each node of a splitting op becomes a piece of its own; the nodes between two
splitting ops make one piece each, in their original order. A Python float
never crosses from piece to piece: each piece computes the floats it reads.
The work is
`torch.fx.passes.split_module`'s: it threads values, symbolic sizes and
grad/autocast state across pieces. This module only decides which node goes
in which piece and names the result.
"""

from __future__ import annotations

import copy
import functools
import logging
import types
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
import torch.fx
import torch.nn.functional as F
from torch.fx.passes.split_module import split_module

from astgen.errors import CodegenError, not_a_graph_module

Target: TypeAlias = Any
"""An op a node can call: an `OpOverload`, an `OpOverloadPacket` (any of its
overloads), a Python function, or a qualified op name such as
`aten.scaled_dot_product_attention.default`."""

SplitAt: TypeAlias = Collection[Target] | Callable[[torch.fx.Node], bool]

log = logging.getLogger("astgen")

# What torch.export and AOT autograd record; older torch lacks some of the fused kernels.
_ATEN_ATTENTION = (
    "scaled_dot_product_attention",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
)


class OpSet(frozenset[Target]):
    """A frozenset of ops that prints as its name.

    Its members print with their addresses: as a default argument, the whole
    set would fill `help()` and every repr that shows it.
    """

    name: str

    def __new__(cls, name: str, ops: Iterable[Target]) -> OpSet:
        self = super().__new__(cls, ops)
        self.name = name
        return self

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple[type[OpSet], tuple[str, tuple[Target, ...]]]:
        return (OpSet, (self.name, tuple(self)))


ATTENTION_OPS: frozenset[Target] = OpSet(
    "ATTENTION_OPS",
    {
        *(getattr(torch.ops.aten, name) for name in _ATEN_ATTENTION if hasattr(torch.ops.aten, name)),
        # What Dynamo records: `F.scaled_dot_product_attention` is
        # `torch._C._nn.scaled_dot_product_attention`, and
        # `nn.MultiheadAttention` stays one call of this function.
        F.scaled_dot_product_attention,
        F.multi_head_attention_forward,
    },
)
"""The default splitting ops: attention, as vLLM splits."""


@dataclass(frozen=True)
class Split:
    """A graph split into pieces.

    `stitching` calls each piece as `call_module` (target `submod_N`);
    `pieces` maps those targets to the pieces, in call order; `splitting`
    names the pieces that hold a splitting op.
    """

    stitching: torch.fx.GraphModule
    pieces: Mapping[str, torch.fx.GraphModule]
    splitting: frozenset[str]


def parse_target(text: str) -> Target:
    """The op a qualified name names: `aten.sdpa.default`, `torch.ops.aten.sdpa`, `aten::sdpa`."""
    name = text.strip().removeprefix("torch.ops.").replace("::", ".")
    parts = name.split(".")
    if len(parts) not in (2, 3) or not all(part.isidentifier() for part in parts):
        raise ValueError(f"{text!r} is not an op name like aten.scaled_dot_product_attention.default")
    namespace, op_name = parts[0], parts[1]
    try:
        found: object = getattr(getattr(torch.ops, namespace), op_name)
        if len(parts) == 3:
            found = getattr(found, parts[2])
    except (AttributeError, RuntimeError):
        raise ValueError(f"no op named {text!r}") from None
    return found


def _is_op(target: object) -> bool:
    return isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket))


# One op under several names: Dynamo records the function, torch.export the
# aten op, and decompositions the fused kernel it dispatches to on a device.
_SDPA = torch.ops.aten.scaled_dot_product_attention
_ALIASES: dict[object, object] = {
    getattr(torch.ops.aten, name): _SDPA for name in _ATEN_ATTENTION if hasattr(torch.ops.aten, name)
}


@functools.lru_cache(maxsize=1024)
def _op_key(target: object) -> object | None:
    """The aten op a target stands for, whatever graph it is from, or None when it is none.

    An overload stands for its op; a function of torch's own (`torch.matmul`,
    `torch._C._nn.scaled_dot_product_attention`, `F.layer_norm`) for the aten
    op of its name, which is what it binds or decomposes to.
    """
    if isinstance(target, torch._ops.OpOverload):
        target = target.overloadpacket
    elif not isinstance(target, torch._ops.OpOverloadPacket):
        module, name = getattr(target, "__module__", None), getattr(target, "__name__", None)
        if not (isinstance(module, str) and (module == "torch" or module.startswith("torch."))):
            return None
        if not (isinstance(name, str) and name.isidentifier()):
            return None
        try:
            target = getattr(torch.ops.aten, name)
        except (AttributeError, RuntimeError):
            return None
    return _ALIASES.get(target, target)


def _key_of(target: object) -> object | None:
    try:
        return _op_key(target)
    except TypeError:  # an unhashable target is only ever matched by identity
        return None


def selector(split_at: SplitAt) -> Callable[[torch.fx.Node], bool]:
    """`split_at` as a test on nodes; errors name what is wrong with it.

    An op matches the same op in any graph: `torch.ops.aten.sdpa` (or
    `"aten.sdpa.default"`) matches Dynamo's call of `F.sdpa` and the aten op of
    an exported graph, and `F.sdpa` matches both too; scaled-dot-product
    attention also matches its fused kernels. An overload does not match the
    other overloads of its own op.
    """
    # A lone op or builtin is callable too, but it is no predicate on nodes.
    if _is_op(split_at) or isinstance(split_at, (str, types.BuiltinFunctionType)):
        raise ValueError(f"split_at is one op, {split_at!r}: pass a collection of ops, such as {{op}}")
    if isinstance(split_at, Collection):
        targets: set[object] = set()
        by_key: dict[object, list[object]] = {}
        for item in split_at:
            target = parse_target(item) if isinstance(item, str) else item
            if not callable(target):
                raise ValueError(f"split_at holds {item!r}, which is neither an op nor a function")
            targets.add(target)
            key = _key_of(target)
            if key is not None:
                by_key.setdefault(key, []).append(target)

        def matches(node: torch.fx.Node) -> bool:
            if node.op != "call_function":
                return False
            if node.target in targets:
                return True
            wanted = by_key.get(_key_of(node.target), ())
            return any(not _is_other_overload(node.target, target) for target in wanted)

        return matches
    if callable(split_at):
        return split_at
    raise ValueError(f"split_at must be a collection of ops or a predicate on nodes, not {type(split_at).__name__}")


def _is_other_overload(found: object, wanted: object) -> bool:
    """Whether `found` is another overload of the op whose overload `wanted` is."""
    return (
        isinstance(found, torch._ops.OpOverload)
        and isinstance(wanted, torch._ops.OpOverload)
        and found.overloadpacket is wanted.overloadpacket
    )


def _describe(split_at: SplitAt) -> str:
    if isinstance(split_at, OpSet):
        return split_at.name
    if isinstance(split_at, Collection) and not isinstance(split_at, str):
        names = sorted(str(getattr(item, "__qualname__", item)) for item in split_at)
        return "{" + ", ".join(names) + "}"
    return str(getattr(split_at, "__qualname__", split_at))


def _value(node: torch.fx.Node) -> object:
    return node.meta.get("example_value", node.meta.get("val"))


def _is_float(node: torch.fx.Node) -> bool:
    return isinstance(_value(node), (float, torch.SymFloat))


def _floats_stay_local(
    gm: torch.fx.GraphModule, piece_of: dict[torch.fx.Node, int]
) -> tuple[torch.fx.GraphModule, dict[torch.fx.Node, int]]:
    """A copy of `gm` where no Python float crosses a piece boundary, and its pieces.

    With `dynamic=True` Dynamo makes a float attribute a tensor input read by
    `.item()` (the `scale` of attention, for one), in whatever piece comes
    first; inductor cannot return a float from a piece, nor can AOT autograd.
    So each piece that reads such a float computes it again from what it was
    computed from (a `.item()` is cheap), and the piece that made it drops it
    when nothing else reads it. `gm` is left as it is.
    """
    crossing = [
        node
        for node in piece_of
        if _is_float(node) and any(piece_of.get(user, piece_of[node]) != piece_of[node] for user in node.users)
    ]
    if not crossing:
        return gm, piece_of
    memo: dict[torch.fx.Node, torch.fx.Node] = {}
    graph = torch.fx.Graph()
    graph.output(graph.graph_copy(gm.graph, memo))
    graph._codegen = copy.deepcopy(gm.graph._codegen)
    pieces = {memo[node]: piece for node, piece in piece_of.items()}
    position = {node: index for index, node in enumerate(graph.nodes)}
    copies: dict[tuple[torch.fx.Node, int], torch.fx.Node] = {}

    def local(node: Any, piece: int, before: torch.fx.Node) -> Any:
        if not isinstance(node, torch.fx.Node) or node not in pieces or pieces[node] == piece or not _is_float(node):
            return node
        if (node, piece) not in copies:
            with graph.inserting_before(before):
                made = graph.node_copy(node, lambda arg: local(arg, piece, before))
            pieces[made] = piece
            copies[node, piece] = made
        return copies[node, piece]

    for node in (memo[node] for node in crossing):
        for user in sorted(node.users, key=position.__getitem__):
            if pieces.get(user, pieces[node]) != pieces[node]:
                user.replace_input_with(node, local(node, pieces[user], user))
    dead = [memo[node] for node in crossing]
    while dead:
        node = dead.pop()
        if node.users or node not in pieces:
            continue
        dead.extend(arg for arg in node.all_input_nodes if _is_float(arg))
        graph.erase_node(node)
        del pieces[node]
    copied = torch.fx.GraphModule(gm, graph, class_name=type(gm).__name__)
    copied.meta.update(gm.meta)
    return copied, pieces


def _keep_calling_convention(gm: torch.fx.GraphModule, stitching: torch.fx.GraphModule) -> None:
    """Give `stitching` the input/output processing of `gm` (torch.export's pytree codegen).

    `split_module` makes a graph of plain codegen: without this, the stitching
    graph of `exported.module()` would take flat inputs and return a flat tuple.
    """
    codegen = gm.graph._codegen
    if type(codegen) is torch.fx.graph.CodeGen:
        return
    # split_module keeps every placeholder, in order, so the flattening still fits.
    stitching.graph._codegen = copy.copy(codegen)
    stitching.recompile()


def split_graph(gm: torch.fx.GraphModule, split_at: SplitAt = ATTENTION_OPS) -> Split:
    """Split `gm` before and after each node that `split_at` selects.

    `split_at` is a collection of targets (see `Target`) or a predicate on
    nodes. When it selects no node, the graph stays one piece, `splitting` is
    empty, and a warning says so through the `astgen` logger. Raises
    `ValueError` for a malformed `split_at` and `CodegenError` for a predicate
    that does not answer a bool.
    """
    if not isinstance(gm, torch.fx.GraphModule):
        raise not_a_graph_module(gm)
    is_splitting = selector(split_at)
    piece = 0
    piece_of: dict[torch.fx.Node, int] = {}
    splitting: set[int] = set()
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            continue
        verdict = is_splitting(node)
        if not isinstance(verdict, bool):
            raise CodegenError.at(node, f"split_at returned {verdict!r}, not a bool")
        if verdict:
            # A piece of its own: numbers are skipped freely, as split_module
            # makes no submodule for a number no node has.
            piece_of[node] = piece + 1
            splitting.add(piece + 1)
            piece += 2
        else:
            piece_of[node] = piece
    if not splitting and piece_of:
        log.warning(
            "split_at %s matched no node of this graph (%d nodes): it stays one piece. "
            "Attention written as matmul and softmax is no single op and is never split.",
            _describe(split_at),
            len(piece_of),
        )
    graph_to_split, piece_of = _floats_stay_local(gm, piece_of)
    stitching = split_module(graph_to_split, gm, piece_of.__getitem__, keep_original_order=True)
    _keep_calling_convention(gm, stitching)
    pieces: dict[str, torch.fx.GraphModule] = {}
    for node in stitching.graph.nodes:
        if node.op == "call_module":
            module = stitching.get_submodule(node.target)
            assert isinstance(module, torch.fx.GraphModule)
            pieces[node.target] = module
    names = {f"submod_{number}" for number in splitting}
    return Split(stitching, pieces, frozenset(names & pieces.keys()))


__all__ = ["ATTENTION_OPS", "OpSet", "Split", "SplitAt", "Target", "parse_target", "selector", "split_graph"]
