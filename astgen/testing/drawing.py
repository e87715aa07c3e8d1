"""Hypothesis strategies for random split graphs: the shape piecewise compilers produce.

`recipes()` draws a recipe (`astgen.testing.recipe`), `split_graphs()` the
`(gm, args)` it builds. Each kind of node has one drawing method of `_Drawer`
(`call_module`, `getitem`, `call_function`, `call_method`, `get_attr`), and
every drawn node is evaluated on small real tensors as it is drawn
(`recipe.run_node`), so each choice is made among values of the right type
(a getitem key in range, a tensor that broadcasts) and every drawn graph
runs under `torch.fx.Interpreter`. The small choices come from three byte
strings Hypothesis draws per graph (inputs, one per node, output; see
`_Choices`), so drawing costs a few Hypothesis draws, not one per choice.

    from astgen.testing.drawing import split_graphs, VLLM_KINDS
    @given(split_graphs(max_nodes=6, kinds=VLLM_KINDS))
    def test_my_pass(graph): gm, args = graph; ...
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import torch
import torch.fx
from hypothesis import strategies as st

from astgen.testing.recipe import (
    ADVERSARIAL_NAMES,
    ADVERSARIAL_TARGETS,
    CONST_DTYPES,
    DEVICES,
    DICT_KEYS,
    DTYPES,
    FLOATS,
    INTS,
    KINDS,
    KWARG_KEYS,
    NODE_KINDS,
    PAYLOADS,
    PIECE_DTYPES,
    TRACER_NAMES,
    VLLM_KINDS,
    Arg,
    InputSpec,
    ModuleSpec,
    NodeSpec,
    Recipe,
    build,
    decode,
    encode_float,
    make_tensor,
    run_node,
)

__all__ = ["KINDS", "NODE_KINDS", "VLLM_KINDS", "recipes", "split_graphs"]


class _Choices:
    """The small choices of one part of a graph, read from the bytes of one integer Hypothesis draws.

    A choice per Hypothesis draw costs the engine's bookkeeping each time
    (more than the graph's own drawing, for the sixty-odd choices of a
    graph), and so does every byte of a drawn byte string; one integer costs
    it once. A graph is drawn as a few such integers: one for its inputs,
    a list of one per node, one for its output, so Hypothesis still shrinks
    it by parts (a node deleted from the list, the count lowered). Byte 0 is
    the simplest choice (the first option, the low end, False), the bytes are
    read most significant first, and those past the end read as 0: as
    Hypothesis shrinks an integer toward 0 its part becomes the simplest.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        at = self.at
        self.at += 1
        return self.data[at] if at < len(self.data) else 0

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        if n <= 256:
            return self.byte() % n
        return ((self.byte() << 8) | self.byte()) % n


#: Bytes of choices for the inputs, for one node and for the output: enough for the nested
#: constants each can draw; past them every choice is the simplest.
_INPUT_BYTES, _NODE_BYTES, _OUTPUT_BYTES = 16, 24, 16


@functools.cache
def _block(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


_STRING_CHARACTERS = "a'\"\\\n{}%s 名\u200b\uff58\U0001d569é_0"


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """The shape `a` and `b` broadcast to, or None where they do not."""
    width = max(len(a), len(b))
    padded_a = (1,) * (width - len(a)) + tuple(a)
    padded_b = (1,) * (width - len(b)) + tuple(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(padded_a, padded_b, strict=True)):
        return None
    return tuple(y if x == 1 else x for x, y in zip(padded_a, padded_b, strict=True))


def _broadcasts(a: torch.Tensor, b: torch.Tensor) -> bool:
    return _broadcast(a.shape, b.shape) is not None


class _Drawer:
    """Draws one recipe, evaluating each node as it goes so every choice is well typed."""

    def __init__(self, choices: _Choices, kinds: frozenset[str], max_inputs: int) -> None:
        self.choices = choices
        self.kinds = kinds
        self.values: list[Any] = []
        self.recipe = cast(Recipe, {"inputs": [], "modules": [], "targets": [], "buffers": [], "nodes": []})
        self.max_inputs = max_inputs

    # ------------------------------------------------------------ choices

    def choose(self, options: Sequence[Any]) -> Any:
        """One of `options`; shrinks toward the first."""
        return options[self.choices.below(len(options))]

    def flag(self) -> bool:
        return bool(self.choices.byte() & 1)

    def integer(self, low: int, high: int) -> int:
        return low + self.choices.below(high - low + 1)

    def pick(self, indices: Sequence[int]) -> int:
        return int(self.choose(indices))

    def some(self, make: Callable[[], Any], low: int, high: int) -> list[Any]:
        return [make() for _ in range(self.integer(low, high))]

    def where(self, test: Callable[[Any], bool]) -> list[int]:
        return [index for index, value in enumerate(self.values) if test(value)]

    def tensors(self, test: Callable[[torch.Tensor], bool] = lambda t: True) -> list[int]:
        return self.where(lambda v: isinstance(v, torch.Tensor) and test(v))

    def ints(self) -> list[int]:
        return self.where(lambda v: type(v) is int)

    def constant(self) -> Arg:
        return self.constant_of_depth(2)

    def constant_of_depth(self, depth: int) -> Arg:
        """A constant of any kind, as a tagged recipe argument; containers nest `depth` deep at most."""
        shape = self.choose(("leaf", "tuple", "list", "dict", "pair")) if depth else "leaf"
        if shape == "leaf":
            return self.leaf()
        if shape in ("tuple", "list"):
            return [shape, self.some(lambda: self.constant_of_depth(depth - 1), 0, 3)]
        if shape == "dict":
            items = self.some(lambda: [["str", self.choose(DICT_KEYS)], self.constant_of_depth(depth - 1)], 0, 2)
            return ["dict", items]
        return ["pair", self.constant_of_depth(depth - 1), self.constant_of_depth(depth - 1)]

    def leaf(self) -> Arg:
        kind = self.choose(
            (
                "int",
                "float",
                "bool",
                "none",
                "ellipsis",
                "str",
                "bytes",
                "complex",
                "dtype",
                "device",
                "opaque",
                "slice",
            )
        )
        if kind == "int":
            return ["int", self.integer(-3, 9) if self.flag() else self.choose(INTS)]
        if kind == "float":
            return encode_float(self.choose(FLOATS))
        if kind == "bool":
            return ["bool", self.flag()]
        if kind in ("none", "ellipsis"):
            return [kind]
        if kind == "str":
            if self.flag():
                return ["str", "".join(self.some(lambda: self.choose(_STRING_CHARACTERS), 0, 4))]
            return ["str", self.choose(("", "a", "'", '"', "\\", "\n", "名前", "{x}", "%s", *PAYLOADS))]
        if kind == "bytes":
            return ["bytes", bytes(self.some(lambda: self.integer(0, 255), 0, 3)).hex()]
        if kind == "complex":
            return ["complex", repr(self.choose(FLOATS)), repr(self.choose(FLOATS))]
        if kind == "dtype":
            return ["dtype", self.choose(CONST_DTYPES)]
        if kind == "device":
            return ["device", self.choose(DEVICES)]
        if kind == "opaque":
            return ["opaque", self.choose(("a", "b"))]

        def small() -> Arg:
            return ["none"] if self.flag() else ["int", self.integer(-3, 3)]

        return ["slice", small(), small(), small()]

    def number(self, tensor_ok: bool = True) -> Arg:
        """A scalar argument for tensor arithmetic: an int or float constant, or an int value."""
        # Sizes a tensor op accepts as a scalar: torch refuses ints beyond 64 bits.
        sizes = [index for index in self.ints() if abs(self.values[index]) < 2**31]
        choices = sizes + (self.tensors(lambda t: t.dim() == 0) if tensor_ok else [])
        kind = self.choose(("int", "float", "ref") if choices else ("int", "float"))
        if kind == "int":
            return ["int", self.integer(-3, 5)]
        if kind == "float":
            return encode_float(self.choose(FLOATS))
        return ["ref", self.pick(choices)]

    def name_for(self, index: int) -> None:
        if "labels" in self.kinds and self.flag():
            self.recipe.setdefault("labels", {})[str(index)] = self.choose(TRACER_NAMES)
        if "names" in self.kinds and self.flag():
            self.recipe.setdefault("names", {})[str(index)] = self.choose(ADVERSARIAL_NAMES)

    def evaluate(self, arg: Arg) -> Any:
        return decode(arg, self.values.__getitem__)

    # ------------------------------------------------------------ inputs

    def inputs(self, shape: list[int]) -> None:
        count = self.integer(1, self.max_inputs)
        # A graph of constants and buffers takes no input; rare, and shrinking keeps inputs unless it needs none.
        if self.makes_values_from_nothing() and self.integer(0, 7) == 7:
            count = 0
        for position in range(count):
            kind = "tensor"
            if position and "int_inputs" in self.kinds and self.flag():
                kind = "int"
            if kind == "tensor":
                dims = shape if position == 0 else self.choose([shape, shape[1:], [1] * len(shape)])
                spec: InputSpec = {
                    "kind": "tensor",
                    "dtype": "float32" if position == 0 else self.choose(DTYPES),
                    "shape": list(dims),
                    "fill": self.choose(("arange", "special")),
                    "offset": self.integer(0, 3),
                }
                value: Any = make_tensor(spec)
            else:
                number = self.choose((*shape, 0, 1, 5))
                spec = {"kind": "int", "value": ["int", number]}
                value = number
            self.recipe["inputs"].append(spec)
            self.values.append(value)
        passed = count
        if "defaults" in self.kinds and count > 1:
            defaulted = self.integer(0, count - 1)
            for spec in self.recipe["inputs"][count - defaulted :]:
                spec["default"] = self.constant() if "constants" in self.kinds else ["int", 1]
            passed = count - defaulted + self.integer(0, defaulted)
            for position in range(passed, count):
                self.values[position] = self.evaluate(self.recipe["inputs"][position]["default"])
        self.recipe["passed"] = passed
        for position in range(count):
            self.name_for(position)

    def makes_values_from_nothing(self) -> bool:
        """Whether nodes can be drawn with no input: get_attr, or a call on constants."""
        return "get_attr" in self.kinds or {"call_function", "constants"} <= self.kinds

    # ------------------------------------------------------------ nodes

    def node(self) -> None:
        makers: list[Callable[[], NodeSpec]] = []
        if "call_module" in self.kinds:
            makers.append(self.call_module)
        if "getitem" in self.kinds and self.getitem_sources():
            makers.append(self.getitem)
        if "call_function" in self.kinds:
            makers.append(self.call_function)
        if "call_method" in self.kinds:
            makers.append(self.call_method)
        if "get_attr" in self.kinds:
            makers.append(self.get_attr)
        if not self.tensors():
            # Nothing to compute on yet (a graph with no input): only buffers and constants make values.
            makers = [maker for maker in makers if maker == self.get_attr or maker == self.call_function]
            if "constants" not in self.kinds:
                makers = [maker for maker in makers if maker != self.call_function]
        elif not self.tensors(lambda t: t.dtype is not torch.bool):
            # Only bool buffers so far: the traced piece computes `x * 2 - y`, which torch refuses for them.
            makers = [maker for maker in makers if maker != self.call_module]
        spec = self.choose(makers)()
        try:
            value = run_node(self.recipe, spec, self.values)
        except Exception as error:
            error.add_note(f"astgen.testing.drawing: drawing {spec}")
            raise
        self.recipe["nodes"].append(spec)
        self.values.append(value)
        self.name_for(len(self.values) - 1)
        if spec["op"] == "call_module" and "meta" in self.kinds and self.flag():
            self.recipe.setdefault("meta", []).append(len(self.values) - 1)

    def call_module(self) -> NodeSpec:
        modules = self.recipe["modules"]
        if modules and self.flag():
            index = self.integer(0, len(modules) - 1)
        else:
            out = self.choose(("tensor", "tuple", "list", "dict", "nested", "traced"))
            if out == "traced":
                module: ModuleSpec = {"kind": "traced"}
            else:
                module = {"kind": "piece", "out": out, "dtype": self.choose(PIECE_DTYPES)}
                if out in ("tuple", "list"):
                    module["arity"] = self.integer(1, 4)
                if out == "dict":
                    module["keys"] = sorted(set(self.some(lambda: self.choose(DICT_KEYS), 1, 3)), key=DICT_KEYS.index)
            modules.append(module)
            target = f"submod_{len(modules) - 1}"
            if "names" in self.kinds:
                target = self.choose((target, *ADVERSARIAL_TARGETS))
                if target in self.recipe["targets"] or target in self.buffer_names():
                    target = f"submod_{len(modules) - 1}"
            self.recipe["targets"].append(target)
            index = len(modules) - 1
        if modules[index]["kind"] == "traced":
            # The traced body computes `x * 2 - y`, which torch refuses for bool tensors.
            first = self.pick(self.tensors(lambda t: t.dtype is not torch.bool))
            x = self.values[first]
            second = self.pick(self.tensors(lambda t: _broadcasts(t, x) and t.dtype is not torch.bool))
            return {"op": "call_module", "module": index, "args": [["ref", first], ["ref", second]]}
        first = self.pick(self.tensors())
        x = self.values[first]
        args: list[Arg] = [["ref", first]]
        shape = x.shape
        for _ in range(self.integer(0, 2)):
            if self.flag():
                candidates = self.tensors(lambda t: _can_broadcast_to(t, shape))
                args.append(["ref", self.pick(candidates)])
            else:
                args.append(self.number())
        kwargs: list[list[Any]] = []
        if self.flag():
            kwargs.append(["scale", self.number()])
        if self.flag():
            keys = KWARG_KEYS if "names" in self.kinds else KWARG_KEYS[:2]
            kwargs.append([self.choose(keys), self.number()])
        return {"op": "call_module", "module": index, "args": args, "kwargs": kwargs}

    def buffer_names(self) -> list[str]:
        return [buffer["name"] for buffer in self.recipe["buffers"]]

    def get_attr(self) -> NodeSpec:
        buffers = self.recipe["buffers"]
        if buffers and self.flag():
            return {"op": "get_attr", "buffer": self.integer(0, len(buffers) - 1)}
        first = self.values[0] if self.values else None
        name = f"buf{len(buffers)}"
        if "names" in self.kinds:
            name = self.choose((name, *ADVERSARIAL_TARGETS))
            if name in self.recipe["targets"] or name in self.buffer_names():
                name = f"buf{len(buffers)}"
        shape = list(first.shape) if isinstance(first, torch.Tensor) else [2]
        buffers.append(
            {
                "name": name,
                "dtype": self.choose(DTYPES),
                "shape": shape,
                "fill": "special",
                "offset": 1,
            }
        )
        return {"op": "get_attr", "buffer": len(buffers) - 1}

    def getitem_sources(self) -> list[int]:
        def indexable(value: Any) -> bool:
            if isinstance(value, torch.Tensor):
                return value.dim() >= 1 and value.shape[0] >= 1
            return isinstance(value, (tuple, list)) or (isinstance(value, dict) and bool(value))

        return self.where(indexable)

    def getitem(self) -> NodeSpec:
        source = self.pick(self.getitem_sources())
        value = self.values[source]
        key: Arg
        if isinstance(value, dict):
            key = ["str", self.choose(list(value))]
        elif isinstance(value, torch.Tensor):
            n = value.shape[0]
            kinds = ["int", "slice"]
            if value.dim() >= 2 and value.shape[-1] >= 1:
                kinds.append("ellipsis")
            if value.dim() >= 2 and value.shape[1] >= 1:
                kinds.append("columns")
            kind = self.choose(kinds)
            if kind == "int":
                key = ["int", self.integer(-n, n - 1)]
            elif kind == "slice":
                key = ["slice", ["int", self.integer(-n, n)], ["int", self.integer(-n, n)], ["none"]]
            elif kind == "ellipsis":
                last = value.shape[-1]
                key = ["tuple", [["ellipsis"], ["int", self.integer(-last, last - 1)]]]
            else:
                key = ["tuple", [["slice", ["none"], ["none"], ["none"]], ["int", 0]]]
        else:
            n = len(value)
            if n and self.flag():
                key = ["int", self.integer(-n, n - 1)]
            else:

                def bound() -> Arg:
                    return ["int", self.integer(-n - 1, n + 1)] if self.flag() else ["none"]

                step = self.choose((None, 1, 2, -1))
                key = ["slice", bound(), bound(), ["none"] if step is None else ["int", step]]
        return {"op": "call_function", "function": "getitem", "args": [["ref", source], key]}

    def call_function(self) -> NodeSpec:
        options: list[Callable[[], NodeSpec]] = [self.tensor_function] if self.tensors() else []
        if self.ints():
            options.append(self.int_function)
        if "constants" in self.kinds:
            options.append(self.pack)
        return self.choose(options)()

    def tensor_function(self) -> NodeSpec:
        first = self.pick(self.tensors())
        a = self.values[first]
        floating = a.dtype.is_floating_point
        names = ["add", "mul", "torch.add", "torch.mul", "torch.sum", "getattr"]
        if a.dtype is not torch.bool:
            names += ["sub", "neg"]
        if floating:
            names += ["torch.nan_to_num", "torch.clamp"]
        if a.dtype is torch.bool:
            names.append("torch.where")
        function = self.choose(names)
        args: list[Arg] = [["ref", first]]
        kwargs: list[list[Any]] = []
        if function in ("add", "mul", "sub", "torch.add", "torch.mul", "torch.where"):
            other = self.tensors(lambda t: _broadcasts(t, a) and (function != "sub" or t.dtype is not torch.bool))
            if function == "torch.where":
                # A scalar branch must fit the tensor branch's dtype; small ints fit every dtype.
                args += [["ref", self.pick(other)], ["int", self.integer(0, 5)]]
            else:
                args.append(["ref", self.pick(other)] if self.flag() else self.number(tensor_ok=False))
            if function == "torch.add" and floating and self.flag():
                kwargs.append(["alpha", ["int", self.integer(-2, 3)]])
        elif function == "torch.nan_to_num":
            kwargs = [[key, encode_float(self.choose(FLOATS[:6]))] for key in ("nan", "posinf")]
        elif function == "torch.clamp":
            kwargs = [["min", encode_float(-math.inf)], ["max", encode_float(self.choose(FLOATS[:6]))]]
        elif function == "getattr":
            args.append(["str", self.choose(("shape", "ndim", "dtype"))])
        return {"op": "call_function", "function": function, "args": args, "kwargs": kwargs}

    def int_function(self) -> NodeSpec:
        ints = self.ints()
        function = self.choose(("add", "mul", "sub", "neg", "floordiv", "mod", "lt", "eq", "max"))
        args: list[Arg] = [["ref", self.pick(ints)]]
        if function != "neg":
            if function in ("floordiv", "mod"):
                args.append(["int", self.choose((2, -3, 7))])
            else:
                args.append(["ref", self.pick(ints)] if self.flag() else ["int", 3])
        return {"op": "call_function", "function": function, "args": args}

    def pack(self) -> NodeSpec:
        def anything() -> Arg:
            if not self.values or self.flag():
                return self.constant()
            return ["ref", self.integer(0, len(self.values) - 1)]

        args = self.some(anything, 0, 3)
        keys = KWARG_KEYS if "names" in self.kinds else ("alpha", "key")
        kwargs: dict[str, Arg] = {}
        for _ in range(self.integer(0, 3)):
            kwargs[self.choose(keys)] = anything()
        return {"op": "call_function", "function": "pack", "args": args, "kwargs": [list(kv) for kv in kwargs.items()]}

    def call_method(self) -> NodeSpec:
        tensors = self.tensors()
        ints = self.ints()
        if ints and self.flag():
            receiver = self.pick(ints)
            method = self.choose(("bit_length", "__add__", "__mul__"))
            args: list[Arg] = [["ref", receiver]]
            if method != "bit_length":
                args.append(["ref", self.pick(ints)])
            return {"op": "call_method", "method": method, "args": args}
        receiver = self.pick(tensors)
        t = self.values[receiver]
        methods = ["clone", "float", "size", "numel", "to", "sum", "mul"]
        if t.dtype is not torch.bool:
            methods += ["neg", "add"]
        method = self.choose(methods)
        args = [["ref", receiver]]
        kwargs: list[list[Any]] = []
        if method == "size" and t.dim() and self.flag():
            args.append(["int", self.integer(-t.dim(), t.dim() - 1)])
        elif method == "to":
            if self.flag():
                args.append(["dtype", self.choose(("float64", "float16", "int64", "bool"))])
            else:
                kwargs.append(["device", ["device", "cpu"]])
        elif method == "sum" and t.dim():
            kwargs.append(["dim", ["int", self.integer(-t.dim(), t.dim() - 1)]])
            kwargs.append(["keepdim", ["bool", self.flag()]])
        elif method in ("add", "mul"):
            other = self.tensors(lambda o: _can_broadcast_to(o, t.shape))
            args.append(["ref", self.pick(other)] if self.flag() else self.number(tensor_ok=False))
            if method == "add" and t.dtype.is_floating_point and self.flag():
                kwargs.append(["alpha", ["int", self.integer(-2, 3)]])
        return {"op": "call_method", "method": method, "args": args, "kwargs": kwargs}

    # ------------------------------------------------------------ output

    def output(self) -> None:
        count = len(self.values)

        def item() -> Arg:
            if not count or ("constants" in self.kinds and self.flag()):
                return self.constant_of_depth(1)
            return ["ref", self.integer(0, count - 1)]

        items = self.some(item, 1, 4)
        shape = self.choose(("tuple", "single", "list", "dict", "nested"))
        output: Arg
        if shape == "single":
            output = items[0]
        elif shape == "list":
            output = ["list", items]
        elif shape == "dict":
            output = ["dict", [[["str", key], value] for key, value in zip(DICT_KEYS, items, strict=False)]]
        elif shape == "nested":
            output = ["tuple", [items[0], ["list", items[1:]], ["dict", [[["str", "k"], items[-1]]]]]]
        else:
            output = ["tuple", items]
        self.recipe["output"] = output


def _can_broadcast_to(t: torch.Tensor, shape: torch.Size) -> bool:
    return _broadcast(t.shape, shape) == tuple(shape)


def recipes(
    *, min_nodes: int = 1, max_nodes: int = 8, kinds: Iterable[str] = KINDS, max_inputs: int = 3
) -> st.SearchStrategy[Recipe]:
    """Recipes for split graphs; `build(recipe)` makes one.

    `kinds` (a subset of `KINDS`) says which node kinds and features to draw;
    it must hold one of `NODE_KINDS` unless `max_nodes` is 0, since the other
    kinds only shape nodes. `VLLM_KINDS` gives exactly the shape of vLLM's
    split graphs. A graph has `min_nodes` to `max_nodes` nodes and a tensor
    first input, or, where `get_attr` or `constants` with `call_function` can
    make values from nothing, now and then no input at all.
    """
    chosen = frozenset(kinds)
    unknown = chosen - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds: {', '.join(sorted(unknown))}")
    if not 0 <= min_nodes <= max_nodes or max_inputs < 1:
        raise ValueError("need 0 <= min_nodes <= max_nodes and max_inputs >= 1")
    if max_nodes and not chosen & set(NODE_KINDS):
        named = ", ".join(kind for kind in KINDS if kind in chosen) or "none"
        raise ValueError(
            f"kinds ({named}) make no node: {', '.join(k for k in KINDS if k not in NODE_KINDS)} only shape"
            f" the nodes that {', '.join(NODE_KINDS)} make; add one of those"
        )
    return _recipes(min_nodes, max_nodes, chosen, max_inputs)


def _recipes(min_nodes: int, max_nodes: int, chosen: frozenset[str], max_inputs: int) -> st.SearchStrategy[Recipe]:
    parts = st.tuples(
        _block(_INPUT_BYTES),
        st.lists(_block(_NODE_BYTES), min_size=min_nodes, max_size=max_nodes),
        _block(_OUTPUT_BYTES),
    )
    return parts.map(lambda drawn: _recipe(*drawn, chosen, max_inputs))


def _recipe(inputs: bytes, nodes: list[bytes], output: bytes, chosen: frozenset[str], max_inputs: int) -> Recipe:
    drawer = _Drawer(_Choices(inputs), chosen, max_inputs)
    if chosen & set(NODE_KINDS) == {"getitem"}:
        # A getitem needs something to index, and nothing else makes one:
        # the first input, a tensor of this shape, must have a first row.
        shape = [drawer.choose((2, 1, 3))] + [drawer.choose((2, 1, 3, 0)) for _ in range(drawer.integer(0, 2))]
    else:
        shape = [drawer.choose((2, 1, 3, 0)) for _ in range(drawer.integer(0, 3))]
    drawer.recipe["shape"] = shape
    drawer.inputs(shape)
    for node in nodes:
        drawer.choices = _Choices(node)
        drawer.node()
    drawer.choices = _Choices(output)
    drawer.output()
    return drawer.recipe


def split_graphs(
    *, min_nodes: int = 1, max_nodes: int = 8, kinds: Iterable[str] = KINDS, max_inputs: int = 3
) -> st.SearchStrategy[tuple[torch.fx.GraphModule, tuple[Any, ...]]]:
    """`(gm, args)` pairs: a split graph and inputs for it. See `recipes` for the parameters."""
    return recipes(min_nodes=min_nodes, max_nodes=max_nodes, kinds=kinds, max_inputs=max_inputs).map(build)
