"""The objects code text may name: torch operators and tensor functions, `operator`'s arithmetic, a few builtins.

One rule serves both directions. Lowering names an object in the text
(`torch.ops.aten.mm.default`, `operator.add`) only when `public_name` finds
it; the loader accepts a dotted name in text only when `resolve` walks it to
an object `public_name` accepts. Everything else a graph needs travels beside
the text, as a constant the caller supplies.

The test is on the object a name reaches, not on the name's spelling:
`torch.serialization.os.system` is a `torch.` chain too, and `torch.load`
unpickles. So a chain may only pass through torch's own modules and operator
namespaces, and must end at an operator overload or packet, a function of
torch's tensor API, or one of `operator`'s pure functions.
"""

from __future__ import annotations

import builtins
import operator
import types
from typing import Any

import torch

# Builtins the text may call by their own name. None of them reaches
# attributes, modules, files or code: `getattr` is only accepted as
# `getattr(value, 'name')` with a literal name (see `astgen.allowlist`).
SAFE_BUILTINS = frozenset(
    {
        "abs",
        "all",
        "any",
        "bool",
        "complex",
        "dict",
        "divmod",
        "enumerate",
        "float",
        "getattr",
        "int",
        "isinstance",
        "len",
        "list",
        "max",
        "min",
        "pow",
        "range",
        "reversed",
        "round",
        "slice",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
    }
)

# `operator`'s functions that compute on their arguments and nothing else:
# not `attrgetter`/`methodcaller`/`call`, which reach attributes or call.
OPERATOR_FUNCTIONS = frozenset(
    {
        "abs",
        "add",
        "and_",
        "concat",
        "contains",
        "eq",
        "floordiv",
        "ge",
        "getitem",
        "gt",
        "iadd",
        "iand",
        "ifloordiv",
        "ilshift",
        "imatmul",
        "imod",
        "imul",
        "index",
        "inv",
        "invert",
        "ior",
        "ipow",
        "irshift",
        "is_",
        "is_not",
        "isub",
        "itruediv",
        "ixor",
        "le",
        "lshift",
        "lt",
        "matmul",
        "mod",
        "mul",
        "ne",
        "neg",
        "not_",
        "or_",
        "pos",
        "pow",
        "rshift",
        "setitem",
        "sub",
        "truediv",
        "truth",
        "xor",
    }
)

# Dunder methods text may call on its own values, as FX records them
# (`call_method __add__`): each is an operator's, computing on its operands.
# Not `__class__`, `__reduce__`, `__getattribute__` or anything else that
# reaches types, attributes or pickling.
SAFE_DUNDER_METHODS = frozenset(
    f"__{name}__"
    for base in (
        "add",
        "sub",
        "mul",
        "truediv",
        "floordiv",
        "mod",
        "pow",
        "matmul",
        "and",
        "or",
        "xor",
        "lshift",
        "rshift",
    )
    for name in (base, f"r{base}", f"i{base}")
) | frozenset(
    f"__{name}__"
    for name in (
        "neg",
        "pos",
        "abs",
        "invert",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "getitem",
        "setitem",
        "len",
        "contains",
        "bool",
        "int",
        "float",
        "index",
        "round",
        "floor",
        "ceil",
        "trunc",
    )
)

# The modules of torch's tensor API a function may be named from, in the
# order a name is looked for. `torch.Tensor` holds the methods FX records as
# `torch.Tensor.add`.
TENSOR_NAMESPACES: tuple[tuple[str, Any], ...] = (
    ("torch", torch),
    ("torch.nn.functional", torch.nn.functional),
    ("torch.linalg", torch.linalg),
    ("torch.fft", torch.fft),
    ("torch.special", torch.special),
    ("torch.Tensor", torch.Tensor),
)
# Python functions in `torch`'s namespace are mostly not tensor math
# (`torch.load`, `torch.compile`, `torch.manual_seed`): only those defined in
# these modules are.
_TENSOR_FUNCTION_MODULES = frozenset({"torch.functional", "torch.nn.functional"})
# C functions of torch's namespace that touch files or process-wide settings.
_DENIED_FUNCTIONS = frozenset({"from_file", "save", "load"})
_FUNCTION_TYPES = (
    types.BuiltinFunctionType,
    types.FunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
)

ROOTS = {"torch": torch, "operator": operator}


def _is_op(obj: object) -> bool:
    return isinstance(obj, (torch._ops.OpOverload, torch._ops.OpOverloadPacket))


def _op_name(obj: Any) -> str | None:
    if isinstance(obj, torch._ops.OpOverload):
        return f"torch.ops.{obj.namespace}.{obj._opname}.{obj._overloadname}"
    namespace, _, name = obj._qualified_op_name.partition("::")
    return f"torch.ops.{namespace}.{name}"


def _tensor_function_name(obj: object) -> str | None:
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str) or name.startswith("_") or not isinstance(obj, _FUNCTION_TYPES):
        return None
    for prefix, namespace in TENSOR_NAMESPACES:
        if namespace.__dict__.get(name) is not obj and getattr(namespace, name, None) is not obj:
            continue
        if prefix == "torch":
            if isinstance(obj, types.FunctionType) and obj.__module__ not in _TENSOR_FUNCTION_MODULES:
                continue
            if name in _DENIED_FUNCTIONS or name.startswith("set_"):
                continue
        return f"{prefix}.{name}"
    return None


def public_name(obj: object) -> str | None:
    """The dotted name text may use for `obj`, or None when `obj` must travel as a constant."""
    try:
        if _is_op(obj):
            name = _op_name(obj)
        elif isinstance(obj, types.BuiltinFunctionType) and getattr(operator, obj.__name__, None) is obj:
            name = f"operator.{obj.__name__}" if obj.__name__ in OPERATOR_FUNCTIONS else None  # type: ignore[union-attr]
        else:
            name = _tensor_function_name(obj)
    except Exception:  # an object whose __name__ or __eq__ raises is no function of torch's
        return None
    if name is None:
        return None
    # A name is only written if it reads back as the very same object.
    try:
        return name if resolve(name) is obj else None
    except LookupError:
        return None


def resolve(dotted: str) -> object:
    """The object a dotted name reaches, walking only torch's modules and operator namespaces.

    Raises `LookupError` when the walk leaves them, meets a dunder, or ends
    at anything `public_name` would not write, or at a dtype (`torch.float16`,
    which the seed generator wrote by its repr).
    """
    root, *parts = dotted.split(".")
    if root not in ROOTS or not parts:
        raise LookupError(f"{dotted!r} does not start at torch or operator")
    obj: object = ROOTS[root]
    for index, part in enumerate(parts):
        if not part.isidentifier() or (part.startswith("__") and part.endswith("__")):
            raise LookupError(f"{dotted!r}: {part!r} is not a plain attribute name")
        if index < len(parts) - 1 and not _walkable(obj):
            raise LookupError(f"{dotted!r}: {'.'.join([root, *parts[:index]])} is not a torch module")
        try:
            obj = getattr(obj, part)
        except Exception:
            raise LookupError(f"{dotted!r}: no attribute {part!r}") from None
    if not (_is_op(obj) or _allowed_function(obj, root) or (len(parts) == 1 and isinstance(obj, torch.dtype))):
        raise LookupError(f"{dotted!r} is not a torch operator, tensor function or dtype")
    return obj


def _walkable(obj: object) -> bool:
    """Whether a chain may go on through `obj`: torch's own modules, `torch.Tensor`, operator namespaces."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__ == "torch" or obj.__name__.startswith("torch.")
    return (
        obj is torch.Tensor
        or obj is torch.ops
        or isinstance(obj, (torch._ops._OpNamespace, torch._ops.OpOverloadPacket))
    )


def _allowed_function(obj: object, root: str) -> bool:
    name = getattr(obj, "__name__", None)
    if root == "operator":
        return isinstance(name, str) and name in OPERATOR_FUNCTIONS and getattr(operator, name, None) is obj
    # The same object may be reached through a private module
    # (`torch._C._nn.scaled_dot_product_attention`); what counts is that a
    # public tensor-API name reaches it too.
    return _tensor_function_name(obj) is not None


def is_safe_builtin(obj: object) -> bool:
    name = getattr(obj, "__name__", None)
    return isinstance(name, str) and name in SAFE_BUILTINS and getattr(builtins, name, None) is obj
