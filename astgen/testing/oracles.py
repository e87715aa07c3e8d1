"""Oracles: what a correct run looks like, judged from the FX graph and the interpreter alone.

`difference` compares two results exactly. The liveness oracle says which
tensors must be alive at each submodule call, from the FX graph's uses and an
interpreter run, never from the code under test: `expected_liveness(gm, args)`
gives the expectation, and a `Probe` fed by the target's piece calls (forward
hooks on the modules, or wrapped callables) gives what was alive; `mismatch`
compares them.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import operator
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx

# ---------------------------------------------------------------- comparing results


def difference(expected: Any, actual: Any, path: str = "result") -> str | None:
    """Where `actual` differs from `expected`, or None. Exact: types, dtypes, nan, the sign of zero."""
    if isinstance(expected, torch.Tensor) or isinstance(actual, torch.Tensor):
        return _tensor_difference(expected, actual, path)
    expected_type, actual_type = _plain_type(expected), _plain_type(actual)
    if expected_type is not actual_type:
        return f"{path}: type {expected_type.__name__} != {actual_type.__name__}"
    if isinstance(expected, float):
        same = (math.isnan(expected) and math.isnan(actual)) or (
            expected == actual and math.copysign(1, expected) == math.copysign(1, actual)
        )
        return None if same else f"{path}: {expected!r} != {actual!r}"
    if isinstance(expected, complex):
        return difference(expected.real, actual.real, path + ".real") or difference(
            expected.imag, actual.imag, path + ".imag"
        )
    if isinstance(expected, (tuple, list)):
        if len(expected) != len(actual):
            return f"{path}: length {len(expected)} != {len(actual)}"
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = difference(e, a, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(expected, dict):
        if list(expected) != list(actual):
            return f"{path}: keys {list(expected)!r} != {list(actual)!r}"
        for key in expected:
            found = difference(expected[key], actual[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if expected is actual or expected == actual:
        return None
    return f"{path}: {expected!r} != {actual!r}"


def _plain_type(value: Any) -> type:
    # FX hands list and dict arguments to callees as its immutable subclasses.
    if isinstance(value, torch.fx.immutable_collections.immutable_list):
        return list
    if isinstance(value, torch.fx.immutable_collections.immutable_dict):
        return dict
    return type(value)


def _tensor_difference(expected: Any, actual: Any, path: str) -> str | None:
    if not (isinstance(expected, torch.Tensor) and isinstance(actual, torch.Tensor)):
        return f"{path}: {type(expected).__name__} != {type(actual).__name__}"
    for attribute in ("dtype", "shape", "device"):
        if getattr(expected, attribute) != getattr(actual, attribute):
            return f"{path}: {attribute} {getattr(expected, attribute)} != {getattr(actual, attribute)}"
    if expected.is_floating_point() or expected.is_complex():
        equal = (expected == actual) | (expected.isnan() & actual.isnan())
        if expected.is_floating_point():
            equal &= torch.signbit(expected) == torch.signbit(actual)
    else:
        equal = expected == actual
    if bool(equal.all()):
        return None
    return f"{path}: values differ\n  expected {expected}\n  actual   {actual}"


# ---------------------------------------------------------------- liveness


def _tensors_in(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from _tensors_in(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors_in(item, (*path, key))


#: A tensor a piece returned: (the call's number among the graph's call_module nodes, its path in the result).
Label = tuple[int, tuple[Any, ...]]


class Probe:
    """Records, before each piece call, which tensors returned by earlier calls are still alive.

    Tensors are labelled by (call number, path in that call's result), the
    same in the interpreter's run and the target's, so the two compare.
    """

    def __init__(self) -> None:
        self.tracked: dict[int, tuple[weakref.ref[torch.Tensor], Label]] = {}
        self.alive_at: dict[int, frozenset[Label]] = {}
        self.order: list[int] = []

    def before(self, call: int) -> None:
        self.order.append(call)
        self.alive_at[call] = frozenset(label for ref, label in self.tracked.values() if ref() is not None)

    def after(self, call: int, result: Any) -> None:
        for path, tensor in _tensors_in(result):
            known = self.tracked.get(id(tensor))
            if known is None or known[0]() is not tensor:
                self.tracked[id(tensor)] = (weakref.ref(tensor), (call, path))

    def labels_in(self, value: Any) -> frozenset[Label]:
        """The tracked tensors `value` keeps alive: those it holds, and the bases of views it holds."""
        labels = set()
        for _, tensor in _tensors_in(value):
            for candidate in (tensor, tensor._base):
                known = self.tracked.get(id(candidate)) if candidate is not None else None
                if known is not None and known[0]() is candidate:
                    labels.add(known[1])
        return frozenset(labels)


def submodules(gm: torch.fx.GraphModule) -> dict[str, torch.nn.Module]:
    """The modules the graph's call_module nodes call, by target."""
    return {
        node.target: gm.get_submodule(node.target)
        for node in gm.graph.nodes
        if node.op == "call_module" and isinstance(node.target, str)
    }


@contextlib.contextmanager
def hooked(
    modules: Iterable[torch.nn.Module],
    pre: Callable[..., Any] | None = None,
    post: Callable[..., Any] | None = None,
) -> Iterator[None]:
    """Forward (pre-)hooks on `modules` for the duration; code that calls a module calls through them."""
    handles = []
    try:
        for module in modules:
            if pre is not None:
                handles.append(module.register_forward_pre_hook(pre))
            if post is not None:
                handles.append(module.register_forward_hook(post))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def probing_modules(gm: torch.fx.GraphModule, probe: Probe) -> Iterator[None]:
    """`probe` fed by hooks on the graph's modules: the n-th module call is call n, as in graph order."""
    count = itertools.count()
    current: list[int] = []

    def pre(module: Any, args: Any) -> None:
        current.append(next(count))
        probe.before(current[-1])

    def post(module: Any, args: Any, result: Any) -> None:
        probe.after(current.pop(), result)

    with hooked(dict.fromkeys(submodules(gm).values()), pre=pre, post=post):
        yield


def probing_pieces(gm: torch.fx.GraphModule, probe: Probe) -> dict[str, Callable[..., Any]]:
    """Callables for the graph's pieces, by target, that feed `probe`: the k-th call of a
    piece is the k-th call_module node with that target, whatever order the target calls in."""
    numbers: dict[str, list[int]] = {}
    for number, node in enumerate(gm.graph.find_nodes(op="call_module")):
        numbers.setdefault(str(node.target), []).append(number)
    made = {name: 0 for name in numbers}

    def wrap(name: str, module: torch.nn.Module) -> Callable[..., Any]:
        def piece(*args: Any, **kwargs: Any) -> Any:
            calls = numbers[name]
            call = calls[made[name]] if made[name] < len(calls) else -1 - made[name]
            made[name] += 1
            probe.before(call)
            result = module(*args, **kwargs)
            probe.after(call, result)
            return result

        return piece

    return {name: wrap(name, module) for name, module in submodules(gm).items()}


class _Labelling(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, probe: Probe) -> None:
        super().__init__(gm)
        self.probe = probe
        self.labels: dict[torch.fx.Node, frozenset[Label]] = {}
        self.values: dict[torch.fx.Node, Any] = {}
        self.calls = itertools.count()

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if n.op == "call_module":
            self.probe.after(next(self.calls), result)
        self.labels[n] = self.probe.labels_in(result)
        self.values[n] = result
        return result


def _is_getitem(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target is operator.getitem


@dataclass
class Liveness:
    """What must be alive at each piece call of a graph, from its FX uses alone.

    A value is alive at a call while a node at or after the call reads it.
    One freedom is left to the code under test: a tuple or list that
    getitems read may be unpacked, at the call that makes it or at its first
    getitem, after which each element read lives on its own (one never read
    is freed at once) and the container is gone. Whether a container is
    unpacked is read from what was alive, never from the code under test,
    and must hold at every call.
    """

    nodes: list[torch.fx.Node]
    calls: list[torch.fx.Node]
    labels: dict[torch.fx.Node, frozenset[Label]]
    choices: dict[torch.fx.Node, tuple[int | None, ...]]
    #: What the interpreter run returned: `Interpreter(gm).run(*args)`, so a caller needs no second run.
    result: Any = None

    def needed(self, call: int, unpacked: Mapping[torch.fx.Node, int]) -> set[Label]:
        position = {node: index for index, node in enumerate(self.nodes)}
        here = position[self.calls[call]]
        needed: set[Label] = set()
        for value in self.nodes[:here]:
            later = [user for user in value.users if position[user] >= here]
            if value in unpacked and unpacked[value] < here:
                for user in later:
                    if _is_getitem(user):
                        needed |= self.labels[user] if user.users else frozenset()
                    else:
                        needed |= self.labels[value]
            elif later:
                needed |= self.labels[value]
        return needed

    def mismatch(self, alive_at: Mapping[int, frozenset[Label]], observed: Iterable[int] | None = None) -> str | None:
        """Why `alive_at` (call number -> labels alive before it) is not a correct run, or None.

        `observed`: the calls the target made through the probe (a target may
        inline a piece); only their tensors are compared. Default: all calls.
        """
        seen = sorted(set(range(len(self.calls)) if observed is None else observed))
        missing = [self.calls[call].name for call in seen if call not in alive_at]
        if missing:
            return f"no call observed for {missing}"
        visible = set(seen)

        def restrict(labels: Iterable[Label], within: set[Label] | None) -> frozenset[Label]:
            return frozenset(label for label in labels if label[0] in visible and (within is None or label in within))

        # Containers whose tensors overlap are decided together; the rest of the labels by the plain rule.
        groups: list[tuple[list[torch.fx.Node], set[Label]]] = []
        for candidate, labels in ((node, set(self.labels[node])) for node in self.choices if self.labels[node]):
            joined = [group for group in groups if group[1] & labels]
            members = [candidate]
            for group in joined:
                groups.remove(group)
                members += group[0]
                labels |= group[1]
            groups.append((members, labels))
        grouped: set[Label] = set().union(*(labels for _, labels in groups))
        rest = set().union(*self.labels.values()) - grouped
        for call in seen:
            alive, needed = restrict(alive_at[call], rest), restrict(self.needed(call, {}), rest)
            if alive != needed:
                return self._describe(call, alive, needed)
        for members, labels in groups:
            # Where no way of reading fits, the one that fits longest says what went wrong.
            closest: tuple[int, str] | None = None
            for picked in itertools.product(*(self.choices[member] for member in members)):
                unpacked = {member: at for member, at in zip(members, picked, strict=True) if at is not None}
                for call in seen:
                    alive = restrict(alive_at[call], labels)
                    needed = restrict(self.needed(call, unpacked), labels)
                    if alive != needed:
                        if closest is None or call > closest[0]:
                            closest = (call, self._describe(call, alive, needed))
                        break
                else:
                    break
            else:
                return closest[1] if closest is not None else None
        return None

    def _describe(self, call: int, alive: frozenset[Label], needed: frozenset[Label]) -> str:
        extra, missing = sorted(alive - needed, key=repr), sorted(needed - alive, key=repr)
        return f"at {self.calls[call].name!r}: alive but dead in the graph {extra}; needed but freed {missing}"


def expected_liveness(gm: torch.fx.GraphModule, args: Sequence[Any]) -> Liveness:
    """The liveness a correct run of `gm` on `args` has, from an interpreter run and the graph's uses."""
    labelling = _Labelling(gm, Probe())
    result = labelling.run(*args)
    nodes = list(gm.graph.nodes)
    position = {node: index for index, node in enumerate(nodes)}
    choices: dict[torch.fx.Node, tuple[int | None, ...]] = {}
    for node in nodes:
        getitems = sorted((user for user in node.users if _is_getitem(user)), key=position.__getitem__)
        if getitems and isinstance(labelling.values.get(node), (tuple, list)):
            choices[node] = (None, position[node], position[getitems[0]])
    return Liveness(nodes, list(gm.graph.find_nodes(op="call_module")), labelling.labels, choices, result)
