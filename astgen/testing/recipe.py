"""The recipe of a random split graph: a typed, JSON-plain description, and `build`, which makes it.

A graph is drawn (`astgen.testing.drawing`) as a *recipe*: plain JSON data
(lists, dicts, strings and numbers) that `build` turns into a `GraphModule`
and matching arguments. Hypothesis shrinks the recipe, so a failing graph
shrinks to a few nodes, and a recipe saved as JSON rebuilds the same graph
anywhere. This module imports no Hypothesis, so the reproducers that
`python -m astgen.fuzz` writes run where only astgen and torch are installed.

Building is cheap: the top-level module is a `_LazyGraphModule`, whose FX code
is generated only if someone calls it, submodules are plain `nn.Module`s, and
the one traced submodule is traced once per process.
"""

from __future__ import annotations

import builtins
import collections
import functools
import inspect
import keyword
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NotRequired, TypedDict

import torch
import torch.fx
from torch import nn
from torch.fx._lazy_graph_module import _LazyGraphModule

#: A recipe argument: a tagged list, `["ref", i]` for value i, `["int", 3]`, `["tuple", [...]]`, ... (see `decode`).
Arg = list[Any]


class InputSpec(TypedDict):
    """A placeholder: a tensor made by `make_tensor`, or an int (`value`), with an optional default."""

    kind: str  # "tensor" | "int"
    dtype: NotRequired[str]
    shape: NotRequired[list[int]]
    fill: NotRequired[str]  # "arange" | "special" (nan, inf and -0.0 among the values)
    offset: NotRequired[int]
    value: NotRequired[Arg]
    default: NotRequired[Arg]


class ModuleSpec(TypedDict):
    """A submodule: a `Piece` returning `out` ("tensor", "tuple", "list", "dict", "nested"), or the traced piece."""

    kind: str  # "piece" | "traced"
    out: NotRequired[str]
    arity: NotRequired[int]
    keys: NotRequired[list[str]]
    dtype: NotRequired[str]


class BufferSpec(TypedDict):
    """A tensor attribute of the top-level module, read by `get_attr`."""

    name: str
    dtype: str
    shape: list[int]
    fill: NotRequired[str]
    offset: NotRequired[int]


class NodeSpec(TypedDict):
    """One FX node: `op` and what it calls (`module` index, `buffer` index, `method` or `function` name)."""

    op: str  # "call_module" | "get_attr" | "call_method" | "call_function"
    module: NotRequired[int]
    buffer: NotRequired[int]
    method: NotRequired[str]
    function: NotRequired[str]  # a key of FUNCTIONS
    args: NotRequired[list[Arg]]
    kwargs: NotRequired[list[list[Any]]]  # [key, Arg] pairs, in order


class Recipe(TypedDict):
    """A whole graph. Values are numbered: the inputs first, then one per node, in order."""

    inputs: list[InputSpec]
    passed: int  # how many inputs are passed; the rest take their defaults
    modules: list[ModuleSpec]
    targets: list[str]  # call_module target of each module
    buffers: list[BufferSpec]
    nodes: list[NodeSpec]
    output: Arg
    shape: NotRequired[list[int]]
    names: NotRequired[dict[str, str]]  # value index (as a string, for JSON) -> node name set past FX's namespace
    labels: NotRequired[dict[str, str]]  # value index -> the name a tracer asks FX's namespace for
    meta: NotRequired[list[int]]  # values whose node gets meta['val']


# ---------------------------------------------------------------- what graphs hold

#: Every kind `recipes` can draw, with what it adds; pass a subset as `kinds` to narrow it.
KIND_DESCRIPTIONS: dict[str, str] = {
    "call_module": "submodules returning a tensor, tuple, list, dict or nested containers",
    "getitem": "operator.getitem with int, negative, slice, str and tensor-index keys",
    "call_function": "operators and torch functions on tensors and sizes, and a constant sink",
    "call_method": "tensor and int methods, keywords included",
    "get_attr": "buffers of the top-level module",
    "constants": "constants of every kind as arguments, defaults and outputs",
    "int_inputs": "int placeholders standing for SymInt sizes",
    "defaults": "placeholders with default values",
    "labels": "node names a tracer gives (its source's variable names), through FX's own namespace",
    "meta": "node.meta['val'] on submodule calls, so astgen sees types",
    "names": "hostile input, opt-in: node names set past FX's namespace, odd submodule targets and keywords",
}
KINDS: tuple[str, ...] = tuple(KIND_DESCRIPTIONS)
#: What a campaign draws unless told: graphs FX's public API builds as tracers do, no hostile input.
DEFAULT_KINDS: tuple[str, ...] = tuple(kind for kind in KINDS if kind != "names")
#: The kinds that make nodes; the others only shape the nodes and inputs these make.
NODE_KINDS: tuple[str, ...] = ("call_module", "getitem", "call_function", "call_method", "get_attr")
#: Exactly what vLLM's split graphs hold: placeholders, submodule calls, getitem, output.
VLLM_KINDS: tuple[str, ...] = ("call_module", "getitem", "meta")

#: When executed, each payload sets this attribute on `builtins`.
CANARY = "ASTGEN_PAYLOAD_EXECUTED"
PAYLOADS: tuple[str, ...] = (
    "x; setattr(__import__('builtins'), 'ASTGEN_PAYLOAD_EXECUTED', 1)",
    "x = 0\nsetattr(__import__('builtins'), 'ASTGEN_PAYLOAD_EXECUTED', 1)\nx",
    "setattr(__import__('builtins'), 'ASTGEN_PAYLOAD_EXECUTED', 1)",
    "1); setattr(__import__('builtins'), 'ASTGEN_PAYLOAD_EXECUTED', 1); (",
    "'); setattr(__import__('builtins'), 'ASTGEN_PAYLOAD_EXECUTED', 1); ('",
    '"""); setattr(__import__("builtins"), "ASTGEN_PAYLOAD_EXECUTED", 1); ("""',
    "#\nsetattr(__import__('builtins'), 'ASTGEN_PAYLOAD_EXECUTED', 1)",
    "__import__('builtins').__setattr__('ASTGEN_PAYLOAD_EXECUTED', 1) or x",
    # Whole statements where a string template writes `NAME = ...`: valid
    # Python there, so only a generator that pastes names runs it.
    "x = setattr(__import__('builtins'), 'ASTGEN_PAYLOAD_EXECUTED', 1) or 0; x",
)


def payload_executed() -> bool:
    """Whether any payload of `PAYLOADS` ran in this process."""
    return hasattr(builtins, CANARY)


def clear_payload_canary() -> None:
    if hasattr(builtins, CANARY):
        delattr(builtins, CANARY)


# Names a generated function must not leak into: keywords, soft keywords,
# builtins, dunders, names astgen itself generates, Unicode that NFKC folds
# onto ASCII, and text that is no identifier at all.
ADVERSARIAL_NAMES: tuple[str, ...] = (
    "class",
    "None",
    "True",
    "lambda",
    "match",
    "case",
    "_",
    "type",
    "print",
    "len",
    "slice",
    "getattr",
    "list",
    "torch",
    "self",
    "__builtins__",
    "__name__",
    "__class__",
    "__",
    "submod_0",
    "submod_0_fn",
    "forward",
    "execution_fn",
    "args",
    "flat_args",
    "result",
    "x_1",
    "getitem",
    "ñame",
    "\uff58",
    "\U0001d569",
    "名前",
    "x\u200b",
    "",
    "0abc",
    "a.b",
    "a-b",
    "a b",
    "if x:",
    *PAYLOADS,
)
#: Variable names a tracer gives nodes (Dynamo names them after the source), asked of FX's namespace,
#: which renames what would shadow a builtin or keyword (`torch` -> `torch_1`).
TRACER_NAMES: tuple[str, ...] = (
    "x",
    "hidden_states",
    "out",
    "add",
    "getitem",
    "output",
    "operator",
    "torch",
    "math",
    "inf",
    "nan",
    "self",
    "args",
    "result",
    "execution_fn",
    "submod_0",
    "_operator",
    "print",
    "len",
    "l_x_",
)
# call_module targets and buffer names: attribute names `nn.Module` accepts (no dot, not empty).
ADVERSARIAL_TARGETS: tuple[str, ...] = ("class", "print", "a-b", "名前", "submod_0_fn", "x", "None", "__builtins__")
# Keyword-argument names: identifiers, keywords and text only `**{...}` can pass.
KWARG_KEYS: tuple[str, ...] = ("alpha", "key", "class", "not-an-identifier", "a b", "名前", "", "**x", *PAYLOADS[:4])
DICT_KEYS: tuple[str, ...] = ("a", "b", "class", "out", "a b", "'", "名前", PAYLOADS[0])


def hostile_keyword(key: str) -> bool:
    """Whether a keyword-argument name is one no call in source can spell (only `**{...}` passes it)."""
    return not key.isidentifier() or keyword.iskeyword(key)


def hostile_attribute(name: str) -> bool:
    """Whether a submodule target or buffer name is one no tracer gives (`submod_N`, `bufN` are drawn otherwise)."""
    return name in ADVERSARIAL_TARGETS


DTYPES: tuple[str, ...] = ("float32", "float64", "int64", "bool", "float16", "bfloat16", "int32", "uint8")
PIECE_DTYPES: tuple[str, ...] = ("float32", "float64", "float16", "bfloat16")
FLOATS: tuple[float, ...] = (0.0, -0.0, 1.5, -2.5, math.inf, -math.inf, math.nan, 1e300, 5e-324, 0.1)
INTS: tuple[int, ...] = (0, 1, -1, 7, 2**63, -(2**63) - 1, 10**30)
CONST_DTYPES: tuple[str, ...] = ("float16", "bool", "int64", "complex64", "bfloat16")
DEVICES: tuple[str, ...] = ("cpu", "meta", "cuda:1")

Pair = collections.namedtuple("Pair", ["first", "second"])


class Opaque:
    """An object with no literal form and a repr no parser accepts."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __repr__(self) -> str:
        return "<Opaque " + self.tag + "> ); " + PAYLOADS[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.tag == self.tag

    def __hash__(self) -> int:
        return hash(self.tag)


def pack(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A constant sink: returns what it was called with, so a wrong argument shows in the output."""
    return args, kwargs


# ---------------------------------------------------------------- submodules


def _number(value: Any) -> Any:
    return value.to(torch.float32) if isinstance(value, torch.Tensor) else float(value)


def _weight(key: str) -> int:
    # A weight per keyword name, so a keyword passed under the wrong name changes the result.
    return sum(map(ord, key)) % 7 + 1


class Piece(nn.Module):
    """A compiled piece: real tensor work on its arguments, whose order and keywords all matter.

    Every tensor it returns is freshly made, so liveness probes can follow it.
    """

    def __init__(self, out: str, arity: int = 1, keys: Sequence[str] = (), dtype: str = "float32") -> None:
        super().__init__()
        self.out = out
        self.arity = arity
        self.keys = tuple(keys)
        self.dtype = getattr(torch, dtype)

    def forward(self, x: torch.Tensor, *others: Any, scale: Any = 1.0, **named: Any) -> Any:
        acc = x.to(torch.float32) * _number(scale)
        for position, other in enumerate(others):
            acc = acc - (position + 2) * _number(other)
        for key, value in named.items():
            acc = acc + _weight(key) * _number(value)
        count = {"tensor": 1, "dict": len(self.keys), "nested": 4}.get(self.out, self.arity)
        elements = [((acc + i) if i % 3 != 2 else (acc + i).sum()).to(self.dtype) for i in range(count)]
        if self.out == "tensor":
            return elements[0]
        if self.out == "tuple":
            return tuple(elements)
        if self.out == "list":
            return elements
        if self.out == "dict":
            return dict(zip(self.keys, elements, strict=True))
        return (elements[0], [elements[1], elements[2]], {"k": elements[3]})

    def extra_repr(self) -> str:
        return f"out={self.out}, arity={self.arity}, keys={self.keys}, dtype={self.dtype}"


def _traced_body(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x * 2 - y, (x + y).sum()


@functools.cache
def traced_piece() -> torch.fx.GraphModule:
    """A piece that is itself a GraphModule, as a compiler's pieces often are; traced once."""
    return torch.fx.symbolic_trace(_traced_body)


def make_module(spec: ModuleSpec) -> nn.Module:
    if spec["kind"] == "traced":
        return traced_piece()
    return Piece(spec["out"], spec.get("arity", 1), spec.get("keys", ()), spec.get("dtype", "float32"))


# ---------------------------------------------------------------- functions and methods

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "getitem": operator.getitem,
    "getattr": builtins.getattr,
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "neg": operator.neg,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "lt": operator.lt,
    "eq": operator.eq,
    "max": builtins.max,
    "torch.add": torch.add,
    "torch.mul": torch.mul,
    "torch.sum": torch.sum,
    "torch.where": torch.where,
    "torch.nan_to_num": torch.nan_to_num,
    "torch.clamp": torch.clamp,
    "pack": pack,
}

# ---------------------------------------------------------------- decoding recipe arguments


def decode(arg: Arg, ref: Callable[[int], Any]) -> Any:
    """A recipe argument (a tagged list) as the object it stands for; `ref(i)` gives value i."""
    tag = arg[0]
    if tag == "ref":
        return ref(arg[1])
    if tag == "int":
        return int(arg[1])
    if tag == "float":
        return float(arg[1])
    if tag == "bool":
        return bool(arg[1])
    if tag == "none":
        return None
    if tag == "ellipsis":
        return Ellipsis
    if tag == "str":
        return str(arg[1])
    if tag == "bytes":
        return bytes.fromhex(arg[1])
    if tag == "complex":
        return complex(float(arg[1]), float(arg[2]))
    if tag == "dtype":
        return getattr(torch, arg[1])
    if tag == "device":
        return torch.device(arg[1])
    if tag == "opaque":
        return Opaque(arg[1])
    if tag == "slice":
        return slice(*(decode(part, ref) for part in arg[1:4]))
    if tag == "tuple":
        return tuple(decode(item, ref) for item in arg[1])
    if tag == "list":
        return [decode(item, ref) for item in arg[1]]
    if tag == "dict":
        return {decode(key, ref): decode(value, ref) for key, value in arg[1]}
    if tag == "pair":
        return Pair(decode(arg[1], ref), decode(arg[2], ref))
    raise ValueError(f"unknown recipe tag {tag!r}")


def encode_float(value: float) -> Arg:
    return ["float", repr(value)]


def make_tensor(spec: InputSpec | BufferSpec) -> torch.Tensor:
    """An input or buffer tensor: deterministic values, with nan, inf and -0.0 where `fill` says."""
    shape = tuple(spec["shape"])
    base = torch.arange(math.prod(shape), dtype=torch.float64) * 0.5 - spec.get("offset", 0)
    dtype = getattr(torch, spec["dtype"])
    if spec.get("fill") == "special" and dtype.is_floating_point:
        specials = torch.tensor([math.nan, math.inf, -math.inf, -0.0], dtype=torch.float64)
        base[::3] = specials.repeat(base[::3].numel() // 4 + 1)[: base[::3].numel()]
    base = base.reshape(shape)
    return base > 0 if dtype is torch.bool else base.to(dtype)


# ---------------------------------------------------------------- building


def build(recipe: Recipe) -> tuple[torch.fx.GraphModule, tuple[Any, ...]]:
    """The `GraphModule` and arguments a recipe describes; deterministic and cheap."""
    graph = torch.fx.Graph()
    root: dict[str, Any] = {}
    nodes: list[torch.fx.Node] = []

    def ref(index: int) -> torch.fx.Node:
        return nodes[index]

    modules = [make_module(spec) for spec in recipe["modules"]]
    labels = recipe.get("labels", {})
    args: list[Any] = []
    for position, spec in enumerate(recipe["inputs"]):
        default = decode(spec["default"], ref) if "default" in spec else inspect.Signature.empty
        # The target is the parameter's name and FX's namespace makes the node's, as when tracing.
        nodes.append(graph.placeholder(labels.get(str(position), f"arg{position}"), default_value=default))
        if position < recipe["passed"]:
            args.append(make_tensor(spec) if spec["kind"] == "tensor" else decode(spec["value"], ref))
    for node_spec in recipe["nodes"]:
        op = node_spec["op"]
        node_args = tuple(decode(arg, ref) for arg in node_spec.get("args", ()))
        node_kwargs = {key: decode(value, ref) for key, value in node_spec.get("kwargs", ())}
        name = labels.get(str(len(nodes)))
        if op == "call_module":
            target = recipe["targets"][node_spec["module"]]
            root[target] = modules[node_spec["module"]]
            node = graph.create_node("call_module", target, node_args, node_kwargs, name)
        elif op == "get_attr":
            buffer = recipe["buffers"][node_spec["buffer"]]
            root[buffer["name"]] = make_tensor(buffer)
            node = graph.create_node("get_attr", buffer["name"], name=name)
        elif op == "call_method":
            node = graph.create_node("call_method", node_spec["method"], node_args, node_kwargs, name)
        else:
            node = graph.create_node("call_function", FUNCTIONS[node_spec["function"]], node_args, node_kwargs, name)
        nodes.append(node)
    graph.output(decode(recipe["output"], ref))
    _apply_names(nodes, recipe.get("names", {}))
    gm = _LazyGraphModule(root, graph)
    if recipe.get("meta"):
        _set_meta(gm, nodes, recipe["meta"], args)
    return gm, tuple(args)


def run_node(recipe: Recipe, spec: NodeSpec, values: Sequence[Any]) -> Any:
    """What the node `spec` computes from the values before it, as the interpreter will run the built node.

    Beside `build` on purpose: the two read a node spec, one to make the FX
    node, one to evaluate it while drawing, and must read it alike.
    """
    args = [decode(arg, values.__getitem__) for arg in spec.get("args", ())]
    kwargs = {key: decode(value, values.__getitem__) for key, value in spec.get("kwargs", ())}
    op = spec["op"]
    if op == "call_module":
        return make_module(recipe["modules"][spec["module"]])(*args, **kwargs)
    if op == "get_attr":
        return make_tensor(recipe["buffers"][spec["buffer"]])
    if op == "call_method":
        return getattr(args[0], spec["method"])(*args[1:], **kwargs)
    return FUNCTIONS[spec["function"]](*args, **kwargs)


def _apply_names(nodes: list[torch.fx.Node], names: dict[str, str]) -> None:
    # Assigned after the graph is built, past FX's own sanitizing; a name
    # another node already has is skipped, since FX keeps names unique.
    taken = {node.name for node in nodes}
    for index, name in sorted(names.items(), key=lambda item: int(item[0])):
        node = nodes[int(index)]
        if name in taken:
            continue
        taken.discard(node.name)
        node.name = name
        if node.op == "placeholder" and not name.startswith("*"):
            node.target = name
        taken.add(name)


def _set_meta(gm: torch.fx.GraphModule, nodes: list[torch.fx.Node], indices: Iterable[int], args: list[Any]) -> None:
    record_meta(gm, [nodes[index] for index in indices], args)


def record_meta(gm: torch.fx.GraphModule, nodes: Iterable[torch.fx.Node], args: Sequence[Any]) -> None:
    """`meta['val']` for `nodes`: the example values a tracing compiler records, from an interpreter run."""
    values = _Recorder(gm).values(*args)
    for node in set(nodes):
        node.meta["val"] = values[node]


class _Recorder(torch.fx.Interpreter):
    def values(self, *args: Any) -> dict[torch.fx.Node, Any]:
        self.recorded: dict[torch.fx.Node, Any] = {}
        self.run(*args)
        return self.recorded

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        self.recorded[n] = result
        return result
