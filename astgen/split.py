"""Split a graph at chosen ops, the way a piecewise compiler does.

Each node of a splitting op becomes a piece of its own; the nodes between two
splitting ops make one piece each, in their original order. The work is
`torch.fx.passes.split_module`'s: it threads values, symbolic sizes and
grad/autocast state across pieces. This module only decides which node goes
in which piece and names the result.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
import torch.fx
import torch.nn.functional as F
from torch.fx.passes.split_module import split_module

from astgen.errors import CodegenError

Target: TypeAlias = Any
"""An op a node can call: an `OpOverload`, an `OpOverloadPacket` (any of its
overloads), a Python function, or a qualified op name such as
`aten.scaled_dot_product_attention.default`."""

SplitAt: TypeAlias = Collection[Target] | Callable[[torch.fx.Node], bool]

# What torch.export and AOT autograd record; older torch lacks some of the fused kernels.
_ATEN_ATTENTION = (
    "scaled_dot_product_attention",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
)

ATTENTION_OPS: frozenset[Target] = frozenset(
    {
        *(getattr(torch.ops.aten, name) for name in _ATEN_ATTENTION if hasattr(torch.ops.aten, name)),
        # What Dynamo records: `F.scaled_dot_product_attention` is
        # `torch._C._nn.scaled_dot_product_attention`, and
        # `nn.MultiheadAttention` stays one call of this function.
        F.scaled_dot_product_attention,
        F.multi_head_attention_forward,
    }
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


def selector(split_at: SplitAt) -> Callable[[torch.fx.Node], bool]:
    """`split_at` as a test on nodes; errors name what is wrong with it."""
    # A lone op or builtin is callable too, but it is no predicate on nodes.
    if _is_op(split_at) or isinstance(split_at, (str, types.BuiltinFunctionType)):
        raise ValueError(f"split_at is one op, {split_at!r}: pass a collection of ops, such as {{op}}")
    if isinstance(split_at, Collection):
        targets: set[object] = set()
        for item in split_at:
            target = parse_target(item) if isinstance(item, str) else item
            if not callable(target):
                raise ValueError(f"split_at holds {item!r}, which is neither an op nor a function")
            targets.add(target)
        return lambda node: (
            node.op == "call_function"
            and (
                node.target in targets
                or (isinstance(node.target, torch._ops.OpOverload) and node.target.overloadpacket in targets)
            )
        )
    if callable(split_at):
        return split_at
    raise ValueError(f"split_at must be a collection of ops or a predicate on nodes, not {type(split_at).__name__}")


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
    nodes. Raises `ValueError` for a malformed `split_at` and `CodegenError`
    for a predicate that does not answer a bool.
    """
    if not isinstance(gm, torch.fx.GraphModule):
        raise TypeError(f"expected a torch.fx.GraphModule, got {type(gm).__name__}")
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
    stitching = split_module(gm, gm, piece_of.__getitem__, keep_original_order=True)
    _keep_calling_convention(gm, stitching)
    pieces: dict[str, torch.fx.GraphModule] = {}
    for node in stitching.graph.nodes:
        if node.op == "call_module":
            module = stitching.get_submodule(node.target)
            assert isinstance(module, torch.fx.GraphModule)
            pieces[node.target] = module
    names = {f"submod_{number}" for number in splitting}
    return Split(stitching, pieces, frozenset(names & pieces.keys()))


__all__ = ["ATTENTION_OPS", "Split", "SplitAt", "Target", "parse_target", "selector", "split_graph"]
