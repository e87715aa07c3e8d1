"""The objects code text may name or call: the positive tables of the loader's language.

One rule serves both directions. Lowering names an object in the text
(`torch.ops.aten.mm.default`, `operator.add`) only when `public_name` finds
it; the loader (`astgen.lift`) accepts a dotted name in text only when
`resolve` walks it to an object these tables accept. Everything else a graph
needs travels beside the text, as a constant the caller supplies.

Every test is on the object a name reaches, never on the name's spelling:
`torch.serialization.os.system` is a `torch.` chain too, and `torch.load`
unpickles. And a name is resolved without running anything: the walk reads
module `__dict__`s and class dicts (`inspect.getattr_static`), so a module
that is not imported already is not found (a text naming `torch._inductor`
is refused, and nothing is imported). Operator names are looked up in
torch's operator registry, and only in the namespaces the caller trusts.

The tables, and why each family outside them is out:

* `OPERATOR_NAMESPACES` (`aten`, `prims`) and the caller's trusted ones:
  any operator there except `DENIED_OPERATORS` and `DENIED_OPERATOR_FAMILIES`,
  which read files, print, point a tensor at arbitrary memory or a storage
  (sparse and nested tensors built from raw parts write out of bounds, and
  backward operators trust autograd's inputs), or change process-wide state. Other namespaces (`higher_order` calls its function arguments,
  `profiler`, test and custom namespaces) are not trusted by default.
* `TORCH_FUNCTIONS`: tensor math of `torch`, `torch.nn.functional`,
  `torch.linalg`, `torch.special` and `torch.fft`, by name. Out: everything
  that reads or writes files (`load`, `save`, `from_file`), imports
  (`hub`), changes global state (`set_*`, `manual_seed`,
  `use_deterministic_algorithms`), compiles or traces (`compile`, `jit`),
  or calls a function it is given (`vmap`, `func.*`, `cond`, `while_loop`,
  `utils.checkpoint`): each would run code that is not the text's.
* `TENSOR_METHODS`: methods of the kind FX `call_method` nodes carry, on any
  value. Out: anything that reaches a storage (`untyped_storage`,
  `storage`, `set_`, `share_memory_`), a file or NumPy (`numpy`, `tofile`),
  hooks or autograd's engine (`register_hook`, `backward`), a callable
  (`apply_`, `map_`), a type by name (`type`, which imports the module it
  names), formatting (`__format__`, and `str.format`, which walks attributes
  at run time) or the object model (`__class__`, `__reduce_ex__`).
* `TENSOR_ATTRIBUTES`: the attributes a value may be read for.
* `OPERATOR_FUNCTIONS`: `operator`'s functions that compute on their
  arguments; not `attrgetter`, `methodcaller` or `call`.
* `SAFE_BUILTINS`: builtins by their own name; none reaches attributes,
  modules, files or code. `getattr` is in it for generated code run in this
  process; text reaches it only as `getattr(value, 'name')` with a name of
  `TENSOR_ATTRIBUTES` (`astgen.lift`), and `key=` (which would call a
  function) is refused on every call.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import operator
import types
from typing import Any

import torch

# Builtins the text may call by their own name.
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

_MATH = (
    "abs absolute acos acosh add addcdiv addcmul addmm addmv amax amin aminmax angle any all argmax argmin argsort "
    "asin asinh atan atan2 atanh baddbmm bitwise_and bitwise_not bitwise_or bitwise_xor bitwise_left_shift "
    "bitwise_right_shift bmm broadcast_to bucketize ceil clamp clamp_max clamp_min clip conj cos cosh count_nonzero "
    "cummax cummin cumprod cumsum deg2rad diag diagonal diff digamma div divide dot einsum eq equal erf erfc erfinv "
    "exp exp2 expm1 floor floor_divide fmax fmin fmod frac gcd ge greater greater_equal gt hypot imag isclose "
    "isfinite isinf isnan isneginf isposinf isreal kron lcm le lerp less less_equal lgamma log log10 log1p log2 "
    "logaddexp logaddexp2 logcumsumexp logical_and logical_not logical_or logical_xor logit logsumexp lt matmul max "
    "maximum mean median min minimum mm mode mul multiply mv nan_to_num nanmean nanmedian nansum ne neg negative "
    "norm not_equal outer pow prod rad2deg real reciprocal remainder round rsqrt sgn sigmoid sign signbit sin sinc "
    "sinh softmax log_softmax sort sqrt square std std_mean sub subtract sum tan tanh topk trace tril triu true_divide "
    "trunc fix var var_mean vdot where xlogy relu rrelu selu celu hardshrink threshold tensordot cross cdist "
    "searchsorted histc bincount unique unique_consecutive kthvalue quantile nanquantile renorm dist allclose "
    "is_nonzero is_floating_point is_complex is_tensor is_same_size numel result_type can_cast promote_types "
    "masked_fill masked_select masked_scatter index_select index_add index_copy index_fill index_put index_reduce "
    "gather scatter scatter_add scatter_reduce take take_along_dim put embedding layer_norm group_norm batch_norm "
    "instance_norm dropout alpha_dropout feature_dropout conv1d conv2d conv3d conv_transpose1d conv_transpose2d "
    "conv_transpose3d"
)
_SHAPE = (
    "cat concat concatenate stack hstack vstack dstack column_stack row_stack chunk split tensor_split hsplit vsplit "
    "dsplit unbind reshape view_as_real view_as_complex squeeze unsqueeze flatten unflatten permute transpose "
    "swapaxes swapdims movedim moveaxis t adjoint narrow narrow_copy select select_scatter slice_scatter "
    "diagonal_scatter as_strided flip fliplr flipud roll rot90 repeat_interleave tile expand_copy broadcast_tensors "
    "broadcast_shapes meshgrid atleast_1d atleast_2d atleast_3d ravel clone detach"
)
_CREATE = (
    "empty empty_like empty_strided zeros zeros_like ones ones_like full full_like arange linspace logspace eye "
    "rand rand_like randn randn_like randint randint_like randperm tensor as_tensor scalar_tensor complex polar "
    "tril_indices triu_indices"
)
_SYMBOLIC = "sym_int sym_float sym_max sym_min sym_not sym_ite sym_sum"
_FUNCTIONAL = (
    "relu relu6 leaky_relu elu selu celu gelu silu mish softplus softsign softshrink hardtanh hardswish hardsigmoid "
    "tanhshrink logsigmoid sigmoid tanh glu softmax softmin log_softmax gumbel_softmax normalize linear bilinear "
    "layer_norm rms_norm group_norm batch_norm instance_norm local_response_norm dropout dropout1d dropout2d "
    "dropout3d alpha_dropout embedding embedding_bag one_hot pad interpolate upsample grid_sample affine_grid "
    "scaled_dot_product_attention conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d "
    "avg_pool1d avg_pool2d avg_pool3d max_pool1d max_pool2d max_pool3d adaptive_avg_pool1d adaptive_avg_pool2d "
    "adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d lp_pool1d lp_pool2d pixel_shuffle pixel_unshuffle "
    "cosine_similarity pairwise_distance pdist cross_entropy nll_loss mse_loss l1_loss smooth_l1_loss huber_loss "
    "binary_cross_entropy binary_cross_entropy_with_logits kl_div threshold hardshrink rrelu prelu unfold fold"
)
_LINALG = (
    "norm vector_norm matrix_norm det slogdet inv pinv solve cholesky qr svd svdvals eigh eigvalsh matmul cross vecdot"
)
_SPECIAL = "erf erfc erfinv expit logit log_softmax softmax logsumexp xlogy i0 i0e i1 i1e ndtr ndtri sinc entr"
_FFT = "fft ifft rfft irfft fft2 ifft2 rfft2 irfft2 fftn ifftn rfftn irfftn fftfreq rfftfreq fftshift ifftshift"

# Functions text may call by a dotted name, by the namespace that names them.
TORCH_FUNCTIONS: dict[str, frozenset[str]] = {
    "torch": frozenset(f"{_MATH} {_SHAPE} {_CREATE} {_SYMBOLIC}".split()),
    "torch.nn.functional": frozenset(_FUNCTIONAL.split()),
    "torch.linalg": frozenset(_LINALG.split()),
    "torch.special": frozenset(_SPECIAL.split()),
    "torch.fft": frozenset(_FFT.split()),
}

# Methods text may call on a value (and name as `torch.Tensor.<method>`).
TENSOR_METHODS = (
    frozenset(
        [
            "abs",
            "add",
            "add_",
            "addcdiv",
            "addcmul",
            "addmm",
            "all",
            "amax",
            "amin",
            "any",
            "argmax",
            "argmin",
            "argsort",
            "bfloat16",
            "bmm",
            "bool",
            "byte",
            "ceil",
            "char",
            "chunk",
            "clamp",
            "clamp_",
            "clamp_max",
            "clamp_min",
            "clip",
            "clone",
            "contiguous",
            "copy_",
            "cos",
            "cumsum",
            "cumprod",
            "detach",
            "diagonal",
            "dim",
            "div",
            "div_",
            "double",
            "eq",
            "exp",
            "exp_",
            "expand",
            "expand_as",
            "fill_",
            "flatten",
            "flip",
            "float",
            "floor",
            "fmod",
            "ge",
            "gather",
            "gt",
            "half",
            "index_add",
            "index_add_",
            "index_copy",
            "index_copy_",
            "index_fill",
            "index_fill_",
            "index_put",
            "index_put_",
            "index_select",
            "int",
            "is_contiguous",
            "is_floating_point",
            "is_complex",
            "item",
            "le",
            "log",
            "log_softmax",
            "logical_and",
            "logical_not",
            "logical_or",
            "long",
            "lt",
            "masked_fill",
            "masked_fill_",
            "masked_scatter",
            "matmul",
            "max",
            "maximum",
            "mean",
            "min",
            "minimum",
            "mm",
            "mul",
            "mul_",
            "narrow",
            "ne",
            "neg",
            "neg_",
            "new_empty",
            "new_full",
            "new_ones",
            "new_zeros",
            "nonzero",
            "norm",
            "numel",
            "permute",
            "pow",
            "prod",
            "reciprocal",
            "relu",
            "relu_",
            "remainder",
            "repeat",
            "repeat_interleave",
            "reshape",
            "reshape_as",
            "roll",
            "round",
            "rsqrt",
            "scatter",
            "scatter_",
            "scatter_add",
            "scatter_add_",
            "select",
            "short",
            "sigmoid",
            "sign",
            "sin",
            "size",
            "softmax",
            "sort",
            "split",
            "sqrt",
            "square",
            "squeeze",
            "squeeze_",
            "std",
            "stride",
            "sub",
            "sub_",
            "sum",
            "t",
            "tanh",
            "to",
            "tolist",
            "topk",
            "transpose",
            "tril",
            "triu",
            "type_as",
            "unbind",
            "unflatten",
            "unsqueeze",
            "unsqueeze_",
            "var",
            "view",
            "view_as",
            "where",
            "zero_",
            "bit_length",
        ]
    )
    | SAFE_DUNDER_METHODS
)

# Attributes text may read on a value.
TENSOR_ATTRIBUTES = frozenset(
    [
        "shape",
        "dtype",
        "device",
        "ndim",
        "layout",
        "requires_grad",
        "is_cuda",
        "is_sparse",
        "is_quantized",
        "is_meta",
        "T",
        "mT",
        "H",
        "mH",
        "real",
        "imag",
        "itemsize",
        "nbytes",
    ]
)

# The operator namespaces trusted by default.
OPERATOR_NAMESPACES = ("aten", "prims")
# Operators of those namespaces that are refused, by `namespace::name` (every overload):
# they read files, print, aim a tensor at a storage or at memory outside its own,
# or change process-wide state.
DENIED_OPERATORS = frozenset(
    {
        "aten::from_file",
        "aten::set_",
        "aten::set",
        "aten::set_data",
        "aten::_print",
        "aten::record_stream",
        "aten::_cufft_set_plan_cache_max_size",
        "aten::_cufft_clear_plan_cache",
        "aten::_reshape_alias",
        "aten::_reshape_alias_copy",
        "aten::_set_item",
        "aten::lift_fresh",
        # The parts of a sparse tensor, which can be set to indices out of its bounds afterwards.
        "aten::_indices",
        "aten::_values",
        "aten::indices",
        "aten::values",
        "aten::crow_indices",
        "aten::col_indices",
        "aten::ccol_indices",
        "aten::row_indices",
        "aten::_coalesced_",
        # functorch's batching internals: a level or dimension out of range crashes the process.
        "aten::_add_batch_dim",
        "aten::_remove_batch_dim",
        "aten::_propagate_xla_data",
        "aten::_make_per_tensor_quantized_tensor",
        "aten::_make_per_channel_quantized_tensor",
        "prims::device_put",
    }
)

# Whole families, by part of the name: a sparse tensor is built without checking its
# indices unless a process-wide flag says so, and `to_dense` then writes where they
# point (`sparse_coo_tensor` with an index of 100000 into 4 elements writes past them);
# a nested tensor's parts are raw sizes, strides and offsets into a buffer; backward
# operators trust autograd to hand them consistent inputs, and some do not check them
# (`_segment_reduce_backward` with a length past its input crashes the process).
DENIED_OPERATOR_FAMILIES = ("sparse", "aten::_nested_", "_backward")


def denied_operator(qualified: str) -> bool:
    """Whether the operator `namespace::name` is refused, by name or by family."""
    return qualified in DENIED_OPERATORS or any(part in qualified for part in DENIED_OPERATOR_FAMILIES)


ROOTS = {"torch": torch, "operator": operator}
_NO_OBJECT = object()


def _is_op(obj: object) -> bool:
    return isinstance(obj, (torch._ops.OpOverload, torch._ops.OpOverloadPacket))


def _op_name(obj: Any) -> str:
    if isinstance(obj, torch._ops.OpOverload):
        return f"torch.ops.{obj.namespace}.{obj._opname}.{obj._overloadname}"
    namespace, _, name = obj._qualified_op_name.partition("::")
    return f"torch.ops.{namespace}.{name}"


def _namespace_object(prefix: str) -> object:
    """The module or class a `TORCH_FUNCTIONS` key names, read from `__dict__`s: no import."""
    root, *parts = prefix.split(".")
    obj: object = ROOTS[root]
    for part in parts:
        obj = vars(obj).get(part, _NO_OBJECT) if isinstance(obj, types.ModuleType) else _NO_OBJECT
    return obj


def _listed_function_name(obj: object) -> str | None:
    """The public dotted name under which a table lists `obj`, or None."""
    return _listed_names().get(id(obj))


@functools.cache
def _listed_names() -> dict[int, str]:
    """Every listed function and method by the id of its object (a function's `__name__` may be
    another, `torch.linalg.det` is `linalg_det`); the modules keep the objects, so ids stay theirs."""
    found: dict[int, str] = {}
    for prefix, names in TORCH_FUNCTIONS.items():
        namespace = _namespace_object(prefix)
        if not isinstance(namespace, types.ModuleType):
            continue
        for name in sorted(names):
            obj = vars(namespace).get(name, _NO_OBJECT)
            if obj is not _NO_OBJECT and callable(obj) and not isinstance(obj, type):
                found.setdefault(id(obj), f"{prefix}.{name}")
    for name in sorted(TENSOR_METHODS):
        obj = inspect.getattr_static(torch.Tensor, name, _NO_OBJECT)
        # A dotted path holds no dunder: `torch.Tensor.__add__` is never written.
        if obj is not _NO_OBJECT and not name.startswith("__"):
            found.setdefault(id(obj), f"torch.Tensor.{name}")
    return found


def public_name(obj: object, trusted_namespaces: tuple[str, ...] = ()) -> str | None:
    """The dotted name text may use for `obj`, or None when `obj` must travel as a constant.

    Operators of every namespace get a name (the loader's caller says which
    namespaces it trusts); everything else only when a table lists it.
    """
    try:
        if _is_op(obj):
            name: str | None = _op_name(obj)
            namespaces = (*OPERATOR_NAMESPACES, *trusted_namespaces, name.split(".")[2])  # type: ignore[union-attr]
        elif isinstance(obj, types.BuiltinFunctionType) and vars(operator).get(function := obj.__name__) is obj:
            name = f"operator.{function}" if function in OPERATOR_FUNCTIONS else None
            namespaces = ()
        else:
            name = _listed_function_name(obj)
            namespaces = ()
    except Exception:  # an object whose __name__ or __eq__ raises is no function of torch's
        return None
    if name is None:
        return None
    # A name is only written if it reads back as the very same object.
    try:
        return name if resolve(name, namespaces) is obj else None
    except LookupError:
        return None


def resolve(dotted: str, trusted_namespaces: tuple[str, ...] = ()) -> object:
    """The object a dotted name reaches, found without importing or running anything of the text's.

    Accepted: an operator of `aten`, `prims` or `trusted_namespaces` outside
    `DENIED_OPERATORS`; a function of `TORCH_FUNCTIONS` or
    `OPERATOR_FUNCTIONS`, also reached through a private module
    (`torch._C._nn.scaled_dot_product_attention`); a method of
    `TENSOR_METHODS` as `torch.Tensor.<name>`; a dtype (`torch.float16`, which
    the seed generator wrote by its repr). Raises `LookupError` otherwise.
    """
    root, *parts = dotted.split(".")
    if root not in ROOTS or not parts:
        raise LookupError(f"{dotted!r} does not start at torch or operator")
    for part in parts:
        if not part.isidentifier() or (part.startswith("__") and part.endswith("__")):
            raise LookupError(f"{dotted!r}: {part!r} is not a plain attribute name")
    if root == "torch" and parts[0] == "ops":
        return _resolve_operator(dotted, parts[1:], trusted_namespaces)
    obj: object = ROOTS[root]
    for index, part in enumerate(parts):
        if isinstance(obj, types.ModuleType):
            # A module's own dict: a submodule not imported yet is not there, and nothing runs.
            found = vars(obj).get(part, _NO_OBJECT)
        elif obj is torch.Tensor and index == len(parts) - 1:
            found = inspect.getattr_static(obj, part, _NO_OBJECT)
        else:
            raise LookupError(f"{dotted!r}: {'.'.join([root, *parts[:index]])} is not a module")
        if found is _NO_OBJECT:
            raise LookupError(f"{dotted!r}: no attribute {part!r} (nothing is imported to find it)")
        obj = found
    if root == "operator":
        if len(parts) == 1 and parts[0] in OPERATOR_FUNCTIONS and obj is vars(operator).get(parts[0]):
            return obj
    elif (
        isinstance(obj, (torch.dtype, torch.layout, torch.memory_format)) and len(parts) == 1
    ) or _listed_function_name(obj) is not None:
        return obj
    raise LookupError(f"{dotted!r} is not a listed torch operator, tensor function or dtype")


def _resolve_operator(dotted: str, parts: list[str], trusted_namespaces: tuple[str, ...]) -> object:
    """`torch.ops.<namespace>.<name>[.<overload>]`, through torch's operator registry."""
    if len(parts) not in (2, 3):
        raise LookupError(f"{dotted!r} is not torch.ops.<namespace>.<operator>[.<overload>]")
    namespace, name = parts[0], parts[1]
    if namespace not in (*OPERATOR_NAMESPACES, *trusted_namespaces):
        raise LookupError(f"{dotted!r}: operator namespace {namespace!r} is not trusted")
    qualified = f"{namespace}::{name}"
    if denied_operator(qualified):
        raise LookupError(f"{dotted!r}: {qualified} touches files, memory or process-wide state")
    # The registry is asked first: torch's accessors below then only build the
    # Python objects for an operator that exists (they import nothing).
    schemas = torch._C._jit_get_schemas_for_operator(qualified)
    if not schemas:
        raise LookupError(f"{dotted!r}: no operator {qualified} is registered")
    packet = getattr(getattr(torch.ops, namespace), name)
    if len(parts) == 2:
        return packet
    overload = parts[2]
    if overload not in {schema.overload_name or "default" for schema in schemas}:
        raise LookupError(f"{dotted!r}: {qualified} has no overload {overload!r}")
    return getattr(packet, overload)


def is_safe_builtin(obj: object) -> bool:
    name = getattr(obj, "__name__", None)
    return isinstance(name, str) and name in SAFE_BUILTINS and vars(builtins).get(name) is obj
