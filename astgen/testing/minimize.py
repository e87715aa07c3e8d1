"""Delta debugging over a recipe: remove every node, argument, constant and keyword a failure does not need.

Hypothesis shrinks the choices a graph was drawn from, which leaves what the
drawing needed to make a valid graph (a keyword drawn before the node that
fails, a constant of a kind drawn first). `minimize` then edits the recipe
itself, one removal at a time, keeping each edit after which the failure
still reproduces (`still_fails`), until no edit does or the budget is spent:
the result is 1-minimal for the edits below. An edit that makes an invalid
graph simply fails to reproduce. No Hypothesis here.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from astgen.testing import recipe as recipes
from astgen.testing.findings import map_args, without_value

Recipe = recipes.Recipe
Arg = recipes.Arg


def minimize(
    recipe: Recipe, still_fails: Callable[[Recipe], bool], *, deadline: float | None = None, tries: int = 600
) -> Recipe:
    """The smallest recipe reachable from `recipe` by the edits of `candidates` on which `still_fails` holds.

    Stops at `deadline` (a `time.monotonic()` value) or after `tries` runs of
    `still_fails`, returning the smallest found so far.
    """
    current = copy.deepcopy(recipe)
    spent = 0
    progress = True
    while progress:
        progress = False
        for candidate in candidates(current):
            if spent >= tries or (deadline is not None and time.monotonic() >= deadline):
                return current
            spent += 1
            if still_fails(candidate):
                current = candidate
                progress = True
                break
    return current


def candidates(recipe: Recipe) -> Iterator[Recipe]:
    """Each recipe one edit smaller than `recipe`: largest removals first."""
    for node in reversed(range(len(recipe["nodes"]))):
        yield without_value(recipe, len(recipe["inputs"]) + node)
    for position in reversed(range(len(recipe["inputs"]))):
        yield without_value(recipe, position)
    yield from _smaller_args(recipe)
    for key in ("names", "labels"):
        for index in recipe.get(key, {}):  # type: ignore[attr-defined]
            yield cast(Recipe, {**recipe, key: {k: v for k, v in recipe[key].items() if k != index}})  # type: ignore[literal-required]
    for index in recipe.get("meta", []):
        yield {**recipe, "meta": [kept for kept in recipe.get("meta", []) if kept != index]}
    yield from _simpler_inputs(recipe)
    yield from _simpler_modules(recipe)
    yield from _unused_parts(recipe)


def _occurrences(recipe: Recipe) -> int:
    count = 0

    def change(arg: Arg) -> Arg:
        nonlocal count
        count += 1
        return arg

    map_args(recipe, change)
    return count


def _at(recipe: Recipe, occurrence: int, replace: Callable[[Arg], Arg | None]) -> Recipe | None:
    """The recipe with argument number `occurrence` (in `map_args` order) replaced, or None where `replace` declines."""
    seen = 0
    changed = False

    def change(arg: Arg) -> Arg:
        nonlocal seen, changed
        here = seen
        seen += 1
        if here != occurrence:
            return arg
        made = replace(arg)
        if made is None or made == arg:
            return arg
        changed = True
        return made

    made = map_args(recipe, change)
    return made if changed else None


def _smaller_args(recipe: Recipe) -> Iterator[Recipe]:
    """Keywords and positional arguments removed, containers emptied item by item, constants made plain."""
    for index, node in enumerate(recipe["nodes"]):
        for drop in reversed(range(len(node.get("kwargs", ())))):
            kwargs = [pair for position, pair in enumerate(node["kwargs"]) if position != drop]
            yield _with_node(recipe, index, {**node, "kwargs": kwargs})
        for drop in reversed(range(1, len(node.get("args", ())))):
            args = [arg for position, arg in enumerate(node["args"]) if position != drop]
            yield _with_node(recipe, index, {**node, "args": args})
    for occurrence in range(_occurrences(recipe)):
        for replace in _REPLACEMENTS:
            for item in range(4):
                made = _at(recipe, occurrence, functools.partial(_flipped, replace, item))
                if made is not None:
                    yield made


def _flipped(replace: Callable[[Arg, int], Arg | None], item: int, arg: Arg) -> Arg | None:
    return replace(arg, item)


def _without_item(arg: Arg, item: int) -> Arg | None:
    if arg[0] in ("tuple", "list") and item < len(arg[1]):
        return [arg[0], [kept for position, kept in enumerate(arg[1]) if position != item]]
    if arg[0] == "dict" and item < len(arg[1]):
        return ["dict", [kept for position, kept in enumerate(arg[1]) if position != item]]
    return None


def _item_alone(arg: Arg, item: int) -> Arg | None:
    if arg[0] in ("tuple", "list") and item < len(arg[1]):
        return cast(Arg, arg[1][item])
    if arg[0] == "dict" and item < len(arg[1]):
        return cast(Arg, arg[1][item][1])
    if arg[0] == "pair" and item < 2:
        return cast(Arg, arg[1 + item])
    return None


def _plain(arg: Arg, item: int) -> Arg | None:
    # A constant made the plainest of its kind, then of any kind.
    if item == 0 and arg[0] == "float":
        return ["float", "1.5"]
    if item == 1 and arg[0] not in ("ref", "int"):
        return ["int", 1]
    if item == 2 and arg[0] == "int":
        return ["int", 1]
    return None


_REPLACEMENTS: tuple[Callable[[Arg, int], Arg | None], ...] = (_item_alone, _without_item, _plain)


def _with_node(recipe: Recipe, index: int, node: Any) -> Recipe:
    nodes = list(recipe["nodes"])
    nodes[index] = node
    return {**recipe, "nodes": nodes}


def _simpler_inputs(recipe: Recipe) -> Iterator[Recipe]:
    """Defaults passed instead, then tensors of the plainest fill, dtype and shape."""
    inputs = recipe["inputs"]
    if recipe["passed"] < len(inputs):
        yield {**recipe, "passed": recipe["passed"] + 1}
    for position, spec in enumerate(inputs):
        simpler: list[dict[str, Any]] = []
        if "default" in spec and position < recipe["passed"]:
            simpler.append({key: value for key, value in spec.items() if key != "default"})
        if spec["kind"] == "tensor":
            if spec.get("fill", "arange") != "arange" or spec.get("offset", 0):
                simpler.append({**spec, "fill": "arange", "offset": 0})
            if spec.get("dtype") != "float32":
                simpler.append({**spec, "dtype": "float32"})
            if spec.get("shape") not in ([], [1]):
                simpler.append({**spec, "shape": [1]})
                simpler.append({**spec, "shape": []})
        for made in simpler:
            changed = list(inputs)
            changed[position] = cast(recipes.InputSpec, made)
            yield {**recipe, "inputs": changed}


def _simpler_modules(recipe: Recipe) -> Iterator[Recipe]:
    """Pieces of the plainest dtype, fewest outputs and keys (the first key kept, where a getitem reads it)."""
    for index, spec in enumerate(recipe["modules"]):
        simpler: list[dict[str, Any]] = []
        if spec.get("dtype", "float32") != "float32":
            simpler.append({**spec, "dtype": "float32"})
        if spec.get("arity", 1) > 1:
            simpler.append({**spec, "arity": 1})
        keys = spec.get("keys", [])
        for key in keys if len(keys) > 1 else ():
            simpler.append({**spec, "keys": [key]})
        for made in simpler:
            modules = list(recipe["modules"])
            modules[index] = cast(recipes.ModuleSpec, made)
            yield {**recipe, "modules": modules}


def _unused_parts(recipe: Recipe) -> Iterator[Recipe]:
    """Modules and buffers no node uses, removed (the graph stays as it was, the recipe reads shorter)."""
    used_modules = {node["module"] for node in recipe["nodes"] if node["op"] == "call_module"}
    for index in reversed(range(len(recipe["modules"]))):
        if index not in used_modules:
            nodes = [
                {**node, "module": node["module"] - (node["module"] > index)} if node["op"] == "call_module" else node
                for node in recipe["nodes"]
            ]
            yield cast(
                Recipe,
                {
                    **recipe,
                    "nodes": nodes,
                    "modules": [m for position, m in enumerate(recipe["modules"]) if position != index],
                    "targets": [t for position, t in enumerate(recipe["targets"]) if position != index],
                },
            )
    used_buffers = {node["buffer"] for node in recipe["nodes"] if node["op"] == "get_attr"}
    for index in reversed(range(len(recipe["buffers"]))):
        if index not in used_buffers:
            nodes = [
                {**node, "buffer": node["buffer"] - (node["buffer"] > index)} if node["op"] == "get_attr" else node
                for node in recipe["nodes"]
            ]
            buffers = [b for position, b in enumerate(recipe["buffers"]) if position != index]
            yield cast(Recipe, {**recipe, "nodes": nodes, "buffers": buffers})


def size(recipe: Recipe) -> int:
    """How big a recipe is, for keeping the smaller of two: values, arguments, names and inputs' elements."""
    return (
        len(recipe["inputs"]) * 4
        + len(recipe["nodes"]) * 4
        + _occurrences(recipe)
        + len(recipe.get("names", {}))
        + len(recipe.get("labels", {}))
        + len(recipe.get("meta", []))
    )
