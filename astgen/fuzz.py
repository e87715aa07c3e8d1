"""The properties every split graph must satisfy, and campaigns that search for a graph that breaks one.

`check_recipe(recipe)` builds a drawn graph (`astgen.strategies`) and runs
the checks of `CHECK_DESCRIPTIONS` on it, each by name. Tensors compare
exactly: dtype, shape, nan where nan, the sign of zero. FX's own codegen fails
on some names and constants; ``graphmodule`` skips those graphs.

`python -m astgen.fuzz` runs the same checks as a campaign: worker processes,
a live progress line, a shared Hypothesis example database (a directory or
Redis) and a standalone reproducer script per distinct failure.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gc
import hashlib
import importlib.metadata
import json
import math
import multiprocessing
import operator
import os
import pickle
import queue
import sys
import time
import traceback
import unittest
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.fx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase, ReadOnlyDatabase

from astgen import allowlist, ir, strategies, vllm
from astgen.compiled import CompiledGraph, compile_graph
from astgen.errors import CodegenError
from astgen.loader import load
from astgen.lower import lower
from astgen.passes import run_passes

#: Every check by name, with the property it holds astgen to.
CHECK_DESCRIPTIONS: dict[str, str] = {
    "verifier": "the IR verifies after lowering and after every pass",
    "interpreter": "the result equals torch.fx.Interpreter(gm).run(*args), exactly",
    "graphmodule": "it equals gm(*args) too, where FX's own codegen can print the graph",
    "vllm": "the vLLM drop-in (astgen.vllm) agrees",
    "liveness": "at every submodule call exactly the values still needed later are alive",
    "statements": "a prelude of imports and assignments, then one function whose body holds only Assign, Delete and Return",
    "artifact": "the artifact's text passes the loader's allow-list and rebuilds the function, consts through pickle",
    "roundtrip": "ast.parse(ast.unparse(tree)) equals the tree; every lineno is its line in .source",
    "deterministic": "fresh compiles of the same graph, rebuilt, give byte-identical source",
    "traceback": "a submodule's exception shows the generated line, the FX node and a note naming it",
    "payloads": "no payload in a node name, keyword or string constant ever runs",
}
CHECKS: tuple[str, ...] = tuple(CHECK_DESCRIPTIONS)


class PropertyFailure(AssertionError):
    """A graph on which astgen breaks a property. `summary` is stable across graphs; `detail` is not."""

    def __init__(self, check: str, summary: str, detail: str = "") -> None:
        self.check = check
        self.summary = summary
        self.detail = detail
        super().__init__(f"[{check}] {summary}" + (f"\n{detail}" if detail else ""))


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


# ---------------------------------------------------------------- liveness probes


def _tensors_in(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from _tensors_in(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors_in(item, (*path, key))


Label = tuple[int, tuple[Any, ...]]


class _Probe:
    """Forward hooks on submodules: each call records which returned tensors are still alive.

    A tensor is labelled by (call number, path in that call's result), which
    is the same in the interpreter's run and astgen's.
    """

    def __init__(self) -> None:
        self.tracked: dict[int, tuple[weakref.ref[torch.Tensor], Label]] = {}
        self.alive_at: list[frozenset[Label]] = []
        self.calls = 0

    def before(self, module: Any, args: Any) -> None:
        self.alive_at.append(frozenset(label for ref, label in self.tracked.values() if ref() is not None))

    def after(self, module: Any, args: Any, result: Any) -> None:
        for path, tensor in _tensors_in(result):
            known = self.tracked.get(id(tensor))
            if known is None or known[0]() is not tensor:
                self.tracked[id(tensor)] = (weakref.ref(tensor), (self.calls, path))
        self.calls += 1

    def labels_in(self, value: Any) -> frozenset[Label]:
        """The tracked tensors `value` keeps alive: those it holds, and the bases of views it holds."""
        labels = set()
        for _, tensor in _tensors_in(value):
            for candidate in (tensor, tensor._base):
                known = self.tracked.get(id(candidate)) if candidate is not None else None
                if known is not None and known[0]() is candidate:
                    labels.add(known[1])
        return frozenset(labels)


@contextlib.contextmanager
def _hooked(
    modules: Iterable[torch.nn.Module],
    pre: Callable[..., Any] | None = None,
    post: Callable[..., Any] | None = None,
) -> Iterator[None]:
    """Forward (pre-)hooks on `modules` for the duration; the generated code calls hooked modules through them."""
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


class _Labelling(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, probe: _Probe) -> None:
        super().__init__(gm)
        self.probe = probe
        self.labels: dict[torch.fx.Node, frozenset[Label]] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        self.labels[n] = self.probe.labels_in(result)
        return result


def _submodules(gm: torch.fx.GraphModule) -> dict[str, torch.nn.Module]:
    return {
        node.target: gm.get_submodule(node.target)
        for node in gm.graph.nodes
        if node.op == "call_module" and isinstance(node.target, str)
    }


def _is_getitem(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target is operator.getitem


def check_liveness(gm: torch.fx.GraphModule, args: Sequence[Any]) -> None:
    """At each submodule call, the tracked tensors alive are exactly those a later node still reads."""
    modules = list(dict.fromkeys(_submodules(gm).values()))
    reference = _Probe()
    with _hooked(modules, post=reference.after):
        labelling = _Labelling(gm, reference)
        labelling.run(*args)
    probe = _Probe()
    with _hooked(modules, pre=probe.before, post=probe.after):
        compiled = compile_graph(gm)
        compiled.fn(*args)
    nodes = list(gm.graph.nodes)
    position = {node: index for index, node in enumerate(nodes)}
    by_name = {node.name: node for node in nodes}
    # A tuple that `unpack_tuples` took apart is read once, at its first
    # getitem or straight from the call that made it; from there on only the
    # positions read later stay alive. Where, the IR says: by position.
    unpacked: dict[torch.fx.Node, int] = {}
    for instruction in compiled.ir.body:
        origin = getattr(instruction, "origin", None)
        if origin is None:
            continue
        if isinstance(instruction, ir.Unpack):
            first = by_name[origin.node]
            unpacked[first.args[0]] = position[first]  # type: ignore[index]
        elif isinstance(getattr(instruction, "result", None), tuple):
            unpacked[by_name[origin.node]] = position[by_name[origin.node]]
    calls = [node for node in nodes if node.op == "call_module"]
    if len(probe.alive_at) != len(calls):
        raise PropertyFailure("liveness", "submodule call count differs", f"{len(probe.alive_at)} != {len(calls)}")
    for call, alive in zip(calls, probe.alive_at, strict=True):
        here = position[call]
        needed: set[Label] = set()
        for value in nodes[:here]:
            later = [user for user in value.users if position[user] >= here]
            if value in unpacked and unpacked[value] < here:
                # Its getitems already ran, as one unpacking: each read result
                # lives on its own; the tuple only where something else reads it.
                for user in later:
                    if _is_getitem(user):
                        needed |= labelling.labels[user] if user.users else frozenset()
                    else:
                        needed |= labelling.labels[value]
            elif later:
                needed |= labelling.labels[value]
        if alive != needed:
            extra, missing = sorted(alive - needed, key=repr), sorted(needed - alive, key=repr)
            raise PropertyFailure(
                "liveness",
                "values alive at a submodule call are not exactly those needed later",
                f"at {call.name!r}: alive but dead in the graph {extra}; needed but freed {missing}\n{compiled.source}",
            )


# ---------------------------------------------------------------- the other checks


def check_statements(compiled: CompiledGraph) -> None:
    *prelude, definition = compiled.tree.body
    if not isinstance(definition, ast.FunctionDef):
        raise PropertyFailure("statements", "the module does not end in a function definition", ast.dump(compiled.tree))
    for statement in prelude:
        if not isinstance(statement, (ast.Import, ast.Assign)):
            raise PropertyFailure(
                "statements", f"a {type(statement).__name__} statement before the def", ast.unparse(statement)
            )
    for statement in definition.body:
        if not isinstance(statement, (ast.Assign, ast.Delete, ast.Return)):
            raise PropertyFailure("statements", f"a {type(statement).__name__} statement", ast.unparse(statement))


def _through_pickle(consts: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        return tuple(pickle.loads(pickle.dumps(consts)))
    except (pickle.PicklingError, AttributeError, TypeError):
        return consts  # objects of a local class: an artifact holds them as they are


def check_artifact(compiled: CompiledGraph, gm: torch.fx.GraphModule, args: Sequence[Any], expected: Any) -> None:
    code, names, consts = compiled.artifact()
    try:
        allowlist.check(ast.parse(code))
    except CodegenError as error:
        raise PropertyFailure("artifact", "the loader refuses astgen's own text", f"{error}\n{code}") from None
    loaded = load((code, names, _through_pickle(consts)), {name: gm.get_submodule(name) for name in names})
    found = difference(expected, loaded(*args))
    if found:
        raise PropertyFailure("artifact", "the function rebuilt from the artifact differs", f"{found}\n{code}")


def check_roundtrip(compiled: CompiledGraph) -> None:
    source = compiled.source
    if ast.dump(ast.parse(source)) != ast.dump(compiled.tree):
        raise PropertyFailure("roundtrip", "unparse -> parse changes the tree", source)
    lines = source.splitlines()
    *prelude, definition = compiled.tree.body
    for statement in prelude:
        if lines[statement.lineno - 1] != ast.unparse(statement):
            raise PropertyFailure("roundtrip", "a prelude statement's lineno is not its line", source)
    if not lines[definition.lineno - 1].startswith("def "):
        raise PropertyFailure("roundtrip", "the def's lineno is not its line", source)
    for index, statement in enumerate(definition.body):  # type: ignore[attr-defined]
        text = ast.unparse(statement)
        if statement.lineno != definition.lineno + 1 + index or lines[statement.lineno - 1].strip() != text:
            raise PropertyFailure("roundtrip", "a statement's lineno is not its line", f"{text!r}\n{source}")
        for node in ast.walk(statement):
            if getattr(node, "lineno", statement.lineno) != statement.lineno:
                raise PropertyFailure("roundtrip", "a node's lineno differs from its statement's", text)


def check_deterministic(compiled: CompiledGraph, gm: torch.fx.GraphModule, rebuild: Callable[[], Any] | None) -> None:
    """A fresh compile, of the graph built anew where it can be, gives the same bytes as the first."""
    again = compile_graph(rebuild()[0] if rebuild is not None else gm, cache=False).source
    if again != compiled.source:
        raise PropertyFailure(
            "deterministic", "compiling the graph again gives other source", f"{compiled.source}\n---\n{again}"
        )


class _Planted(Exception):
    """Raised inside a submodule to check where the traceback points."""


def _explode(module: Any, args: Any) -> None:
    raise _Planted(type(module).__name__)


def check_traceback(gm: torch.fx.GraphModule, args: Sequence[Any]) -> None:
    """Make each submodule raise in turn: the first call to it must be the line the traceback shows."""
    submodules = _submodules(gm)
    first_calls: dict[int, tuple[torch.nn.Module, torch.fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            module = submodules[node.target]
            first_calls.setdefault(id(module), (module, node))
    for module, node in first_calls.values():
        with _hooked([module], pre=_explode):
            compiled = compile_graph(gm)
            try:
                compiled(*args)
            except _Planted as error:
                caught = error
            else:
                raise PropertyFailure("traceback", "an exception raised in a submodule vanished", node.name)
        frames = [frame for frame in traceback.extract_tb(caught.__traceback__) if frame.filename == compiled.filename]
        if len(frames) != 1 or frames[0].lineno is None:
            raise PropertyFailure("traceback", "the generated frame is not in the traceback", repr(frames))
        line = compiled.source.splitlines()[frames[0].lineno - 1].strip()
        origin = compiled.generated.origin_of_line(frames[0].lineno)
        if origin is None or origin.node != node.name:
            raise PropertyFailure("traceback", "the raising line is not the submodule's call", f"{line}\n{origin}")
        if frames[0].line != line or line not in "".join(traceback.format_exception(caught)):
            raise PropertyFailure("traceback", "the traceback does not show the generated line", line)
        if not any(f"FX node {node.name!r}" in note for note in getattr(caught, "__notes__", ())):
            raise PropertyFailure("traceback", "no note names the FX node", repr(getattr(caught, "__notes__", None)))


def check_vllm(gm: torch.fx.GraphModule, args: Sequence[Any], expected: Any) -> None:
    code, names, consts = vllm.generate_execution_code(gm)
    # vLLM hands over every child; the inlined ones are never called.
    function = vllm.compile_execution_fn(code, _submodules(gm), names, consts)
    found = difference(expected, function(*args))
    if found:
        raise PropertyFailure("vllm", "the vLLM drop-in differs from the interpreter", f"{found}\n{code}")


def _mentions_payload(gm: torch.fx.GraphModule) -> bool:
    """Whether a payload sits anywhere FX's string codegen would paste it."""
    return any(
        strategies.CANARY in text
        for node in gm.graph.nodes
        for text in (node.name, str(node.target), repr(node.args), repr(dict(node.kwargs)))
    )


def check_graphmodule(gm: torch.fx.GraphModule, args: Sequence[Any], expected: Any, actual: Any) -> str:
    """Compare astgen's result with FX's own codegen, where FX can print the graph.

    FX pastes reprs into source text, so it cannot print some graphs (names,
    opaque objects) and misprints others (a complex -0.0). Where FX's result
    equals the interpreter's, astgen's must equal it too. Returns what FX did:
    'agrees', 'payload' (not run: FX would paste the payload), 'cannot print'
    or 'misprints'.
    """
    if _mentions_payload(gm):
        return "payload"
    try:
        gm.real_recompile()  # type: ignore[operator]
        # `forward` rather than `gm(...)`: FX's call wrapper prints to stderr on errors.
        from_fx = gm.forward(*args)
    except Exception:
        return "cannot print"
    if difference(expected, from_fx):
        return "misprints"
    found = difference(from_fx, actual)
    if found:
        raise PropertyFailure("graphmodule", "astgen differs from FX's GraphModule", found)
    return "agrees"


# ---------------------------------------------------------------- driver


def check_graph(
    gm: torch.fx.GraphModule,
    args: Sequence[Any],
    checks: Iterable[str] = CHECKS,
    *,
    rebuild: Callable[[], Any] | None = None,
) -> None:
    """Run `checks` on one graph; raise `PropertyFailure` (or astgen's own error) on the first that fails."""
    wanted = set(checks)
    unknown = wanted - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks: {', '.join(sorted(unknown))}")
    strategies.clear_payload_canary()
    expected = torch.fx.Interpreter(gm).run(*args)
    with _stage("verifier"):
        if "verifier" in wanted:
            run_passes(lower(gm).function, check=True)
    with _stage("compile"):
        compiled = compile_graph(gm)
    if "interpreter" in wanted or "graphmodule" in wanted:
        with _stage("interpreter"):
            actual = compiled(*args)
        found = difference(expected, actual) if "interpreter" in wanted else None
        if found:
            raise PropertyFailure("interpreter", "astgen differs from the interpreter", f"{found}\n{compiled.source}")
    steps: list[tuple[str, Callable[[], None]]] = [
        ("statements", lambda: check_statements(compiled)),
        ("roundtrip", lambda: check_roundtrip(compiled)),
        ("deterministic", lambda: check_deterministic(compiled, gm, rebuild)),
        ("liveness", lambda: check_liveness(gm, args)),
        ("traceback", lambda: check_traceback(gm, args)),
        ("vllm", lambda: check_vllm(gm, args, expected)),
        ("artifact", lambda: check_artifact(compiled, gm, args, expected)),
    ]
    for name, step in steps:
        if name in wanted:
            with _stage(name):
                step()
    if strategies.payload_executed():
        strategies.clear_payload_canary()
        if "payloads" in wanted:
            raise PropertyFailure("payloads", "a payload from the graph was executed", compiled.source)
    if "graphmodule" in wanted:
        check_graphmodule(gm, args, expected, actual)


@contextlib.contextmanager
def _stage(name: str) -> Iterator[None]:
    try:
        yield
    except PropertyFailure:
        raise
    except Exception as error:
        error.add_note(f"astgen.fuzz: raised during check {name!r}")
        raise


def check_recipe(recipe: strategies.Recipe, checks: Iterable[str] = CHECKS) -> None:
    """Build the graph `recipe` describes and run `checks` on it."""
    gm, args = strategies.build(recipe)
    check_graph(gm, args, checks, rebuild=lambda: strategies.build(recipe))


def signature(error: BaseException) -> str:
    """What makes two failures the same bug: the check and its summary, or where astgen raised what."""
    if isinstance(error, PropertyFailure):
        return f"{error.check}: {error.summary}"
    stage = next(
        (note.split("check ")[-1].strip("'") for note in getattr(error, "__notes__", ()) if "astgen.fuzz" in note),
        "build",
    )
    frames = traceback.extract_tb(error.__traceback__)
    inner = next(
        (f for f in reversed(frames) if f"{os.sep}astgen{os.sep}" in f.filename), frames[-1] if frames else None
    )
    where = f"{Path(inner.filename).name}:{inner.name}" if inner is not None else "?"
    return f"{stage}: {type(error).__name__} in {where}"


def reproduce(recipe: strategies.Recipe, expected_signature: str | None = None) -> int:
    """What a reproducer script runs: print the graph and astgen's code, check it, print the difference."""
    gm, args = strategies.build(recipe)
    print("FX graph:")
    print(gm.graph)
    try:
        print("astgen source:")
        print(compile_graph(gm).source)
    except Exception as error:
        print(f"astgen cannot compile it: {type(error).__name__}: {error}")
    try:
        check_graph(gm, args, rebuild=lambda: strategies.build(recipe))
    except Exception as error:
        print(f"FAILS: {signature(error)}")
        print("".join(traceback.format_exception(error)))
        return 1
    print("passes" + (f" (it failed with: {expected_signature})" if expected_signature else ""))
    return 0


# The reproducer is a fixed program; only the two constants change, set in its tree.
_REPRODUCER = '''"""astgen fuzz reproducer: rebuilds the shrunk graph, runs astgen and the FX interpreter, prints the difference.

Run it with `python THIS_FILE`; it exits 1 while the failure reproduces.
"""
import json
import sys

from astgen import fuzz

SIGNATURE = None
RECIPE = None

if __name__ == "__main__":
    sys.exit(fuzz.reproduce(json.loads(RECIPE), SIGNATURE))
'''


def reproducer_source(recipe: strategies.Recipe, failure_signature: str) -> str:
    tree = ast.parse(_REPRODUCER)
    constants = {"SIGNATURE": failure_signature, "RECIPE": json.dumps(recipe)}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
            name = statement.targets[0].id
            if name in constants:
                statement.value = ast.Constant(constants[name])
    return ast.unparse(tree) + "\n"


def write_reproducer(out: Path, recipe: strategies.Recipe, failure_signature: str) -> Path | None:
    """Write a reproducer unless one for the same signature exists; return its path when new."""
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(failure_signature.encode()).hexdigest()[:12]
    path = out / f"repro_{digest}.py"
    try:
        with path.open("x", encoding="utf-8") as file:
            file.write(reproducer_source(recipe, failure_signature))
    except FileExistsError:
        return None
    return path


# ---------------------------------------------------------------- campaigns


class UsageError(ValueError):
    """Options no campaign can run with; the CLI prints the message on one line and exits 2."""


def open_database(spec: str | None) -> ExampleDatabase | None:
    """`redis://host:port[/db]` for Hypothesis's Redis database, a directory path, or None for none."""
    if spec is None or spec == "none":
        return None
    if spec.startswith(_REDIS_SCHEMES):
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase

        return RedisExampleDatabase(redis.Redis.from_url(spec, socket_connect_timeout=5))
    return DirectoryBasedExampleDatabase(spec)


_REDIS_SCHEMES = ("redis://", "rediss://")


def check_database(spec: str | None, replay: bool = False) -> None:
    """Raise `UsageError` unless `spec` names a database a campaign can use now (a Redis server is asked)."""
    if spec is None or spec == "none":
        if replay:
            raise UsageError("--replay replays a database: give one with --db DIR or --db redis://host:port")
        return
    if spec.startswith(_REDIS_SCHEMES):
        try:
            import redis
        except ImportError:
            raise UsageError(f"--db {spec} needs the redis package: pip install 'astgen[fuzz]'") from None
        try:
            redis.Redis.from_url(spec, socket_connect_timeout=5).ping()
        except (ValueError, redis.RedisError) as error:
            raise UsageError(f"--db {spec}: cannot reach Redis: {error}") from None
        return
    path = Path(spec)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--db {spec} is not a directory")
    if replay and not path.exists():
        raise UsageError(f"--db {spec} does not exist: there is nothing to replay")


def check_options(
    *,
    seconds: float | None,
    max_examples: int | None,
    workers: int,
    database: str | None,
    out: Path,
    replay: bool,
    kinds: Sequence[str],
    max_nodes: int,
    checks: Sequence[str],
    seed: int | None,
) -> None:
    """Raise `UsageError` for options `campaign` cannot run with, before any worker starts."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if seconds is not None and not seconds > 0:
        raise UsageError(f"--seconds must be more than 0, not {seconds}")
    if max_examples is not None and max_examples < 1:
        raise UsageError(f"--max-examples must be at least 1, not {max_examples}")
    if max_nodes < 1:
        raise UsageError(f"--max-nodes must be at least 1, not {max_nodes}")
    unknown = [check for check in checks if check not in CHECKS]
    if unknown or not checks:
        named = f"unknown checks: {', '.join(unknown)}" if unknown else "no check given"
        raise UsageError(f"{named}; the checks are {', '.join(CHECKS)}")
    unknown = [kind for kind in kinds if kind not in strategies.KINDS]
    if unknown:
        raise UsageError(f"unknown kinds: {', '.join(unknown)}; the kinds are {', '.join(strategies.KINDS)}")
    try:
        strategies.recipes(kinds=kinds, max_nodes=max_nodes)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if seed is not None and database not in (None, "none"):
        raise UsageError("a seeded campaign saves nothing to the example database: give --seed or --db, not both")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a directory")
    check_database(database, replay)


class _OutOfTime(BaseException):
    """Raised from the property at the deadline. Not an Exception, so Hypothesis stops at once
    instead of taking it for a failure to shrink."""


@dataclass
class _Worker:
    """One campaign process: Hypothesis runs in batches until the deadline or its share of examples."""

    index: int
    deadline: float
    examples: int
    database: str | None
    out: Path
    report: Any
    replay: bool
    kinds: tuple[str, ...]
    max_nodes: int
    checks: tuple[str, ...]
    seed: int | None = None
    count: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    last_report: float = 0.0

    def run(self) -> None:
        torch.set_num_threads(1)
        # Drawn graphs call torch in every legal and deprecated way; its
        # warnings are not findings and would bury the progress line.
        warnings.simplefilter("ignore")
        database = open_database(self.database)
        strategy = strategies.recipes(kinds=self.kinds, max_nodes=self.max_nodes)
        found: dict[str, tuple[strategies.Recipe, str]] = {}
        failing_runs = 0

        def campaign_property(recipe: strategies.Recipe) -> None:
            nonlocal failing_runs
            if time.monotonic() >= self.deadline:
                raise _OutOfTime
            self.count += 1
            self.tick()
            try:
                check_recipe(recipe, self.checks)
            except Exception as error:
                # Hypothesis replays the shrunk example last, so it wins.
                found[signature(error)] = (recipe, str(error))
                failing_runs += 1
                raise

        # Saved failures are replayed first, and through a read-only view:
        # one that no longer fails here may still fail for the worker that
        # saved it (other code, other checks), so a campaign deletes nothing.
        read_only: ExampleDatabase | None = ReadOnlyDatabase(database) if database is not None else None
        replaying = read_only is not None
        batches = 0
        started = time.monotonic()
        while time.monotonic() < self.deadline and self.count < self.examples:
            if replaying:
                phases = [Phase.explicit, Phase.reuse]
                batch_database = read_only
            else:
                phases = [Phase.generate, Phase.shrink]
                batch_database = database
            # Batches sized to end near the deadline, so failures are reported as they come.
            elapsed = time.monotonic() - started
            rate = self.count / elapsed if self.count and elapsed > 0 else 20.0
            left = rate * (self.deadline - time.monotonic())
            batch = max(5, min(200, self.examples - self.count, int(min(left, 200))))
            test = settings(
                database=batch_database,
                max_examples=batch,
                deadline=None,
                phases=phases,
                suppress_health_check=list(HealthCheck),
                report_multiple_bugs=True,
                print_blob=False,
            )(given(strategy)(campaign_property))
            if self.seed is not None:
                # One seed per worker and batch: each batch draws new graphs,
                # and the same campaign draws the same ones.
                test = seed(f"{self.seed}:{self.index}:{batches}")(test)
            batches += 1
            # Hypothesis reports falsifying examples on stdout; the reproducers say it better.
            failing = failing_runs
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                try:
                    test()
                except _OutOfTime:
                    pass
                except unittest.SkipTest:
                    # Hypothesis had nothing to run: a replay of an empty database.
                    pass
                except Exception:
                    # A property failure is what a campaign is for; anything
                    # else (a broken strategy, bad settings) must not spin silently.
                    if failing_runs == failing:
                        raise
            for failure_signature, (recipe, message) in found.items():
                if failure_signature not in self.failures:
                    self.failures[failure_signature] = message
                    path = write_reproducer(self.out, recipe, failure_signature)
                    self.report.put(("failure", self.index, failure_signature, str(path) if path else None))
            if self.replay:
                break
            replaying = False
        self.tick(force=True)
        self.report.put(("done", self.index, self.count, len(self.failures)))

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_report > 0.25:
            self.last_report = now
            self.report.put(("progress", self.index, self.count, len(self.failures)))


def _work(worker: _Worker) -> None:
    worker.run()


class _Progress:
    """The live progress line on stderr, fed by every worker's reports."""

    def __init__(self, workers: int, stream: Any, start: float) -> None:
        self.start = start
        self.counts = [0] * workers
        self.finished = [False] * workers
        self.signatures: dict[str, str | None] = {}
        self.stream = stream
        # On a terminal the line redraws in place; in a log, a line every few seconds.
        self.interval = 0.25 if getattr(stream, "isatty", lambda: False)() else 10.0
        self.shown = 0.0

    def put(self, message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind in ("progress", "done"):
            self.counts[index] = message[2]
            self.finished[index] = self.finished[index] or kind == "done"
        elif kind == "failure" and message[2] not in self.signatures:
            self.signatures[message[2]] = message[3]
            where = f"\n  reproducer: {message[3]}" if message[3] else ""
            self.stream.write(f"failure: {message[2]}{where}\n")
        now = time.monotonic()
        if now - self.shown >= self.interval or all(self.finished):
            self.shown = now
            end = "\r" if self.interval < 1 else "\n"
            self.stream.write(f"[astgen.fuzz] {self.line()}{end}")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        total = sum(self.counts)
        return (
            f"{elapsed:6.1f}s  graphs: {total} ({total / max(elapsed, 1e-9):.0f}/s)"
            f"  failures: {len(self.signatures)}  workers: {len(self.counts)}"
        )


class _Relay:
    """Worker 0's report channel in a campaign of several: its reports and the queued ones of the others."""

    def __init__(self, progress: _Progress, reports: Any) -> None:
        self.progress = progress
        self.reports = reports

    def put(self, message: tuple[Any, ...]) -> None:
        self.progress.put(message)
        self.drain()

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.progress.put(self.reports.get_nowait())


# Time kept after the last graph for the workers to report and exit and the
# summary to print; measured on 2 busy cores, with margin.
_SHUTDOWN_SECONDS = 0.5


def _run_several(workers: int, worker: Callable[[int, Any], _Worker], progress: _Progress, end: float) -> None:
    """Worker 0 here, the others spawned; all stopped by `end`."""
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    processes = [context.Process(target=_work, args=(worker(index, reports),)) for index in range(1, workers)]
    for process in processes:
        process.start()
    # This process, torch imported, is worker 0 while the others start
    # (their first seconds go to importing torch), and relays their reports.
    relay = _Relay(progress, reports)
    worker(0, relay).run()
    # A worker still starting (torch's import, on a busy machine) or
    # inside one long check at the end is stopped there: the deadline
    # holds. What it found and reported stays; the database keeps the rest.
    stop = end - _SHUTDOWN_SECONDS / 2
    while not all(progress.finished) and time.monotonic() < stop:
        try:
            progress.put(reports.get(timeout=max(0.0, min(0.5, stop - time.monotonic()))))
        except queue.Empty:
            if not any(process.is_alive() for process in processes):
                break
    stopped = 0
    for index, process in enumerate(processes, start=1):
        process.join(timeout=max(0.0, min(10.0, stop - time.monotonic())))
        if process.is_alive():
            # One that has reported is only finalizing torch's modules; the others lose their last graphs.
            process.terminate()
            process.join()
            stopped += not progress.finished[index]
        elif process.exitcode != 0:
            progress.put(("failure", 0, f"campaign: a worker process exited with {process.exitcode}", None))
    if stopped:
        # Not drained: a stopped worker may have left half a message in the queue.
        progress.stream.write(f"astgen.fuzz: {stopped} worker(s) still busy at the deadline were stopped\n")
    else:
        relay.drain()
    # Hypothesis keeps worker 0's property, and through it the relay: unhooked,
    # the queue can go, and its semaphores with it (see `os._exit` below).
    relay.reports = None


def campaign(
    *,
    seconds: float | None,
    max_examples: int | None,
    workers: int,
    database: str | None,
    out: Path,
    replay: bool = False,
    kinds: Sequence[str] = strategies.KINDS,
    max_nodes: int = 8,
    checks: Sequence[str] = CHECKS,
    stream: Any = None,
    seed: int | None = None,
    started: float | None = None,
) -> int:
    """Run a campaign, with a progress line on `stream` (stderr); return the number of distinct failures.

    One worker runs in this process; more run as spawned processes, sharing
    the example database and the reproducer directory. `seconds` counts from
    `started` (a `time.monotonic()` value; default now) and covers the
    workers' start and exit. With a `seed` the campaign draws the same graphs
    every time it runs; Hypothesis saves nothing from a seeded run, so a seed
    and a database exclude each other. The database only ever gains entries:
    saved failures are replayed read-only (`replay` does nothing else).
    Raises `UsageError` for options it cannot run with, before anything runs.
    """
    out = Path(out)
    check_options(
        seconds=seconds,
        max_examples=max_examples,
        workers=workers,
        database=database,
        out=out,
        replay=replay,
        kinds=kinds,
        max_nodes=max_nodes,
        checks=checks,
        seed=seed,
    )
    stream = stream or sys.stderr
    progress = _Progress(workers, stream, time.monotonic() if started is None else started)
    end = progress.start + seconds if seconds is not None else math.inf
    deadline = end - _SHUTDOWN_SECONDS
    share = math.ceil(max_examples / workers) if max_examples is not None else sys.maxsize

    def worker(index: int, report: Any) -> _Worker:
        return _Worker(
            index, deadline, share, database, out, report, replay, tuple(kinds), max_nodes, tuple(checks), seed
        )

    if workers == 1:
        worker(0, progress).run()
    else:
        _run_several(workers, worker, progress, end)
    elapsed = time.monotonic() - progress.start
    total = sum(progress.counts)
    if not total:
        stream.write(
            "astgen.fuzz: the database holds no failure saved by this campaign property\n"
            if replay
            else f"astgen.fuzz: no graph checked: start-up took the {seconds}s given\n"
        )
    print(
        f"astgen.fuzz: {total} graphs in {elapsed:.1f}s ({total / max(elapsed, 1e-9):.0f} graphs/s,"
        f" {workers} worker{'s' if workers > 1 else ''}), {len(progress.signatures)} distinct failures"
    )
    for failure_signature, path in progress.signatures.items():
        print(f"  {failure_signature}" + (f" -> {path}" if path else ""))
    return len(progress.signatures)


# ---------------------------------------------------------------- the command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _version() -> str:
    import astgen

    found = getattr(astgen, "__version__", None)
    return str(found) if found else importlib.metadata.version("astgen")


def _epilog() -> str:
    width = max(map(len, (*strategies.KINDS, *CHECKS)))
    kinds = "\n".join(f"  {kind:<{width}}  {text}" for kind, text in strategies.KIND_DESCRIPTIONS.items())
    checks = "\n".join(f"  {check:<{width}}  {text}" for check, text in CHECK_DESCRIPTIONS.items())
    shaping = ", ".join(kind for kind in strategies.KINDS if kind not in strategies.NODE_KINDS)
    return (
        f"kinds (--kinds, default: all of them):\n{kinds}\n"
        f"  ({shaping} only shape nodes: give them with a kind that makes nodes)\n\n"
        f"checks (--checks, default: all of them):\n{checks}\n\n"
        "The database holds the failing graphs Hypothesis saved (the shrunk one and the\n"
        "steps toward it), never a passing one; campaigns and --replay only add to it.\n\n"
        "exit status: 0 no failure, 1 a failure found (a reproducer each in --out), 2 bad usage"
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m astgen.fuzz",
        description=(__doc__ or "").splitlines()[0],
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"astgen {_version()}")
    parser.add_argument(
        "--seconds",
        type=float,
        help="stop after this long, start-up and shutdown included (default: 60; none with --max-examples)",
    )
    parser.add_argument(
        "--max-examples", type=int, help="stop after this many graphs, over all workers (default: none)"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    parser.add_argument("--db", help="example database: a directory, redis://host:port[/db], or none (default: none)")
    parser.add_argument(
        "--out", type=Path, default=Path("fuzz-out"), help="where reproducers go (default: %(default)s)"
    )
    parser.add_argument(
        "--replay", action="store_true", help="only replay the failures saved in --db, read-only; draw nothing new"
    )
    parser.add_argument("--kinds", default=",".join(strategies.KINDS), help="kinds to draw, comma-separated (below)")
    parser.add_argument("--max-nodes", type=int, default=8, help="nodes a graph has at most (default: %(default)s)")
    parser.add_argument("--checks", default=",".join(CHECKS), help="checks to run, comma-separated (below)")
    parser.add_argument("--seed", type=int, help="draw the same graphs on every run (default: random); not with --db")
    return parser


def main(argv: Sequence[str] | None = None, *, started: float | None = None) -> int:
    """The command line; returns the exit status. `started`: what `campaign` counts `--seconds` from."""
    parser = _parser()
    try:
        options = parser.parse_args(argv)
        seconds = options.seconds if options.seconds is not None or options.max_examples is not None else 60.0
        failures = campaign(
            seconds=seconds,
            max_examples=options.max_examples,
            workers=options.workers,
            database=options.db,
            out=options.out,
            replay=options.replay,
            kinds=[kind for kind in options.kinds.split(",") if kind],
            max_nodes=options.max_nodes,
            checks=[check for check in options.checks.split(",") if check],
            seed=options.seed,
            started=started,
        )
    except UsageError as error:
        print(f"{parser.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 1 if failures else 0


def _process_age() -> float:
    """Seconds since this process started, as Linux's /proc tells; 0 where it cannot."""
    try:
        with open("/proc/self/stat", encoding="ascii", errors="replace") as stat:
            # Field 22 is the start in clock ticks after boot; field 2, the
            # command name in parentheses, may hold spaces: count from its end.
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


if __name__ == "__main__":
    # `--seconds` is the whole run: the interpreter's start and torch's import count.
    status = main(started=time.monotonic() - _process_age())
    # All is written, and finalizing torch's modules would add half a second
    # past the deadline. The report queue sits in a reference
    # cycle; collected, its semaphores are released instead of reported leaked.
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
