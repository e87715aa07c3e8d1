"""The checks: properties a split graph's compiled function must have, each by name.

`check_recipe(recipe)` builds a drawn graph (`astgen.testing.recipe`) and runs
the checks of `CHECK_DESCRIPTIONS` on astgen's compile of it; with `targets`
it runs, for each other target (`astgen.testing.targets`), the checks that
target claims, and compares two targets with each other. Tensors compare
exactly (`astgen.testing.oracles.difference`). A failure is a
`PropertyFailure`, deduplicated by `signature`: the target, the check and a
summary stable across graphs. This module imports no Hypothesis: the
reproducers that `python -m astgen.fuzz` writes call `report` here.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import os
import pickle
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.fx

from astgen import loader, rendered, vllm
from astgen.compiled import CompiledGraph, compile_graph, compile_lowered, generate
from astgen.errors import CodegenError
from astgen.lift import nodes
from astgen.loader import load
from astgen.lower import lower
from astgen.passes import run_passes
from astgen.testing import recipe as recipes
from astgen.testing.findings import error_summary, error_type, normalized
from astgen.testing.oracles import (
    Liveness,
    Probe,
    difference,
    expected_liveness,
    hooked,
    probing_modules,
    probing_pieces,
    submodules,
)
from astgen.testing.targets import ASTGEN, FOREIGN_CHECKS, Target, resolve

#: Every check by name, with the property it holds astgen to.
CHECK_DESCRIPTIONS: dict[str, str] = {
    "verifier": "the IR verifies after lowering and after every pass",
    "interpreter": "the result equals torch.fx.Interpreter(gm).run(*args), exactly",
    "graphmodule": "it equals gm(*args) too, where FX's own codegen can print the graph",
    "vllm": "the vLLM drop-in (astgen.vllm) agrees",
    "liveness": "at every submodule call exactly the values still needed later are alive",
    "statements": "a prelude of imports and assignments, then one function whose body holds only Assign, Delete and Return",
    "artifact": "the artifact's text lifts into the loader's IR and rebuilds the function, consts through pickle",
    "roundtrip": "ast.parse(ast.unparse(tree)) equals the tree; every lineno is its line in .source",
    "deterministic": "fresh compiles of the same graph, rebuilt, give byte-identical source",
    "traceback": "a submodule's exception shows the generated line, the FX node and a note naming it",
    "payloads": "no payload in a node name, keyword or string constant ever runs",
    "loader": "the artifact's text lifts to IR that emits it again; mutants of it are refused or run with no audit event",
}
CHECKS: tuple[str, ...] = tuple(CHECK_DESCRIPTIONS)


#: Every check a target can claim, astgen's and the others'.
ALL_CHECKS: tuple[str, ...] = tuple(dict.fromkeys((*CHECKS, *FOREIGN_CHECKS)))


class PropertyFailure(AssertionError):
    """A graph on which a target breaks a property. `summary` is stable across graphs; `detail` is not.

    `kind` is what the root cause is grouped by (`astgen.testing.findings`):
    the summary, with an exception's type for its normalized message, and
    `site`, where a target's exception was raised in its own code
    (`Target.site`; "" for none), which joins root causes across constructs.
    """

    def __init__(
        self,
        check: str,
        summary: str,
        detail: str = "",
        target: str = ASTGEN,
        kind: str | None = None,
        site: str = "",
    ) -> None:
        self.check = check
        self.summary = summary
        self.detail = detail
        self.target = target
        self.kind = summary if kind is None else kind
        self.site = site
        super().__init__(f"[{target} {check}] {summary}" + (f"\n{detail}" if detail else ""))


def check_liveness(
    gm: torch.fx.GraphModule,
    args: Sequence[Any],
    compiled: CompiledGraph | None = None,
    expected: Liveness | None = None,
) -> None:
    """At each submodule call, the tensors alive are exactly those a later node still reads (`oracles.Liveness`).

    `compiled` is astgen's compile of `gm` where the caller has one, and
    `expected` the oracle's `expected_liveness(gm, args)`: each is made
    here otherwise.
    """
    if expected is None:
        expected = expected_liveness(gm, args)
    probe = Probe()
    # astgen calls a hook-free GraphModule piece through its `forward`,
    # past `nn.Module.__call__`: with the probe's hooks on, such a graph binds
    # other callables, so it is compiled under them. Any other piece is bound
    # as the module itself, whose hooks run whenever it is called.
    fresh = compiled is None or any(isinstance(module, torch.fx.GraphModule) for module in submodules(gm).values())
    with probing_modules(gm, probe):
        if fresh:
            compiled = compile_graph(gm)
        assert compiled is not None
        compiled.fn(*args)
    if probe.order != list(range(len(expected.calls))):
        raise PropertyFailure(
            "liveness", "submodule calls differ from the graph's", f"{probe.order}\n{compiled.source}"
        )
    found = expected.mismatch(probe.alive_at)
    if found:
        raise PropertyFailure(
            "liveness",
            "values alive at a submodule call are not exactly those needed later",
            f"{found}\n{compiled.source}",
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
        # The loader's own lift, kept in its code cache: `load` below and the loader check reuse it.
        loader.verified(code)
    except CodegenError as error:
        raise PropertyFailure("artifact", "the loader refuses astgen's own text", f"{error}\n{code}") from None
    loaded = load((code, names, _through_pickle(consts)), {name: gm.get_submodule(name) for name in names})
    found = difference(expected, loaded(*args))
    if found:
        raise PropertyFailure("artifact", "the function rebuilt from the artifact differs", f"{found}\n{code}")


def check_roundtrip(compiled: CompiledGraph) -> None:
    source = compiled.source
    # The tree parsed back from the text is the truth about each line: where
    # the two trees are equal, a statement's lineno is its line if it equals
    # the parsed statement's, on one line.
    parsed = ast.parse(source)
    if _trees_differ(compiled.tree, parsed):
        raise PropertyFailure("roundtrip", "unparse -> parse changes the tree", source)
    *prelude, definition = compiled.tree.body
    *parsed_prelude, parsed_definition = parsed.body
    for statement, truth in zip(prelude, parsed_prelude, strict=True):
        if statement.lineno != truth.lineno or truth.end_lineno != truth.lineno:
            raise PropertyFailure("roundtrip", "a prelude statement's lineno is not its line", source)
    if definition.lineno != parsed_definition.lineno:
        raise PropertyFailure("roundtrip", "the def's lineno is not its line", source)
    body = zip(definition.body, parsed_definition.body, strict=True)  # type: ignore[attr-defined]
    for index, (statement, truth) in enumerate(body):
        if (
            statement.lineno != definition.lineno + 1 + index
            or statement.lineno != truth.lineno
            or truth.end_lineno != truth.lineno
        ):
            text = ast.unparse(statement)
            raise PropertyFailure("roundtrip", "a statement's lineno is not its line", f"{text!r}\n{source}")
        for node in nodes(statement):
            if getattr(node, "lineno", statement.lineno) != statement.lineno:
                raise PropertyFailure(
                    "roundtrip", "a node's lineno differs from its statement's", ast.unparse(statement)
                )


def _trees_differ(a: Any, b: Any) -> bool:
    """Whether `ast.dump` would tell the two apart: node types, fields, and other values by repr.

    A walk instead of comparing two dumps, which build a string of each whole tree.
    """
    stack = [(a, b)]
    while stack:
        a, b = stack.pop()
        if isinstance(a, ast.AST):
            if type(a) is not type(b):
                return True
            stack.extend((getattr(a, name, None), getattr(b, name, None)) for name in a._fields)
        elif isinstance(a, list):
            if not isinstance(b, list) or len(a) != len(b):
                return True
            stack.extend(zip(a, b, strict=True))
        elif type(a) is not type(b) or repr(a) != repr(b):
            # By repr, as `ast.dump` compares: -0.0 is not 0.0, and nan is nan.
            return True
    return False


def check_deterministic(compiled: CompiledGraph, gm: torch.fx.GraphModule, rebuild: Callable[[], Any] | None) -> None:
    """A fresh compile, of the graph built anew where it can be, gives the same bytes as the first."""
    # Lowered and generated afresh (no code cache); only its text is compared, so nothing is bound or compiled.
    again = generate(lower(rebuild()[0] if rebuild is not None else gm).function).source
    if again != compiled.source:
        raise PropertyFailure(
            "deterministic", "compiling the graph again gives other source", f"{compiled.source}\n---\n{again}"
        )


class _Planted(Exception):
    """Raised inside a submodule to check where the traceback points."""


def _explode(module: Any, args: Any) -> None:
    raise _Planted(type(module).__name__)


def check_traceback(gm: torch.fx.GraphModule, args: Sequence[Any], compiled: CompiledGraph | None = None) -> None:
    """Make each submodule raise in turn: the first call to it must be the line the traceback shows.

    `compiled`, astgen's compile of `gm` where the caller has one, is called
    as it is where the raising module is bound as itself (see `check_liveness`).
    """
    modules = submodules(gm)
    first_calls: dict[int, tuple[torch.nn.Module, torch.fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            module = modules[node.target]
            first_calls.setdefault(id(module), (module, node))
    for module, node in first_calls.values():
        with hooked([module], pre=_explode):
            raising = compiled
            if raising is None or isinstance(module, torch.fx.GraphModule):
                raising = compile_graph(gm)
            try:
                raising(*args)
            except _Planted as error:
                caught = error
            else:
                raise PropertyFailure("traceback", "an exception raised in a submodule vanished", node.name)
        stack = traceback.extract_tb(caught.__traceback__)
        frames = [frame for frame in stack if frame.filename == raising.filename]
        if len(frames) != 1 or frames[0].lineno is None:
            raise PropertyFailure("traceback", "the generated frame is not in the traceback", repr(frames))
        line = raising.source.splitlines()[frames[0].lineno - 1].strip()
        origin = raising.generated.origin_of_line(frames[0].lineno)
        if origin is None or origin.node != node.name:
            raise PropertyFailure("traceback", "the raising line is not the submodule's call", f"{line}\n{origin}")
        # The generated frame as the printed traceback writes it: frames are printed one by one, and a
        # frame printed once is never folded into "[Previous line repeated ...]". Printing the others,
        # each line parsed again for its carets, was most of this check's time.
        if frames[0].line != line or line not in stack.format_frame_summary(frames[0]):
            raise PropertyFailure("traceback", "the traceback does not show the generated line", line)
        if not any(f"FX node {node.name!r}" in note for note in getattr(caught, "__notes__", ())):
            raise PropertyFailure("traceback", "no note names the FX node", repr(getattr(caught, "__notes__", None)))


def check_vllm(gm: torch.fx.GraphModule, args: Sequence[Any], expected: Any) -> None:
    code, names, consts = vllm.generate_execution_code(gm)
    recalled = rendered.recall(code) is not None
    # vLLM hands over every child; the inlined ones are never called.
    function = vllm.compile_execution_fn(code, submodules(gm), names, consts)
    found = difference(expected, function(*args))
    if found:
        raise PropertyFailure("vllm", "the vLLM drop-in differs from the interpreter", f"{found}\n{code}")
    if not recalled:
        return
    # The text binds the code it was rendered with; a later process lifts it from vLLM's cache.
    try:
        verified = loader.verified(code, trusted_namespaces=vllm.TRUSTED_NAMESPACES)
    except CodegenError as error:
        raise PropertyFailure("vllm", "a text the lift refuses was bound from memory", f"{error}\n{code}") from None
    lifted = loader.bind_verified(verified, submodules(gm), names, consts, vllm.TRUSTED_NAMESPACES)
    found = difference(expected, lifted(*args))
    if found:
        raise PropertyFailure("vllm", "the lifted vLLM text differs from the interpreter", f"{found}\n{code}")


def _mentions_payload(gm: torch.fx.GraphModule) -> bool:
    """Whether a payload sits anywhere FX's string codegen would paste it."""
    return any(
        recipes.CANARY in text
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
        # A lazy GraphModule (as recipes build) prints its code only when asked.
        getattr(gm, "real_recompile", gm.recompile)()
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
) -> dict[str, Any]:
    """Run astgen's `checks` on one graph; raise `PropertyFailure` (or astgen's own error) on the first that fails.

    Returns what was seen on the way: `result` (astgen's, where it ran),
    `graphmodule` (what FX's own codegen did, see `check_graphmodule`) and
    `coverage`: for each check run, whether it could observe anything on
    this graph (liveness and traceback need a submodule call, graphmodule a
    graph FX can print, payloads a payload in the graph).
    """
    wanted = set(checks)
    unknown = wanted - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks: {', '.join(sorted(unknown))}")
    recipes.clear_payload_canary()
    # The liveness oracle's interpreter run gives the expected result too: one run serves both.
    liveness = expected_liveness(gm, args) if "liveness" in wanted else None
    expected = liveness.result if liveness is not None else torch.fx.Interpreter(gm).run(*args)
    seen: dict[str, Any] = {}
    # One lowering serves the verifier and the compile every check shares:
    # the IR is frozen, so the passes that verify it cannot change it.
    with _stage("verifier" if "verifier" in wanted else "compile"):
        lowered = lower(gm)
    with _stage("verifier"):
        if "verifier" in wanted:
            run_passes(lowered.function, check=True)
    with _stage("compile"):
        compiled = compile_lowered(lowered)
    if "interpreter" in wanted or "graphmodule" in wanted:
        try:
            actual = seen["result"] = compiled(*args)
        except Exception as error:
            raise PropertyFailure(
                "interpreter", f"raises {_summary(error, gm)} where the interpreter returns", compiled.source
            ) from error
        found = difference(expected, actual) if "interpreter" in wanted else None
        if found:
            raise PropertyFailure("interpreter", "astgen differs from the interpreter", f"{found}\n{compiled.source}")
    calls_a_piece = any(node.op == "call_module" for node in gm.graph.nodes)
    observes = {"liveness": calls_a_piece, "traceback": calls_a_piece, "payloads": _mentions_payload(gm)}
    steps: list[tuple[str, Callable[[], None]]] = [
        ("statements", lambda: check_statements(compiled)),
        ("roundtrip", lambda: check_roundtrip(compiled)),
        ("deterministic", lambda: check_deterministic(compiled, gm, rebuild)),
        ("liveness", lambda: check_liveness(gm, args, compiled, liveness)),
        ("traceback", lambda: check_traceback(gm, args, compiled)),
        ("vllm", lambda: check_vllm(gm, args, expected)),
        ("artifact", lambda: check_artifact(compiled, gm, args, expected)),
        ("loader", lambda: check_loader(compiled)),
    ]
    for name, step in steps:
        if name in wanted:
            with _stage(name):
                step()
    if recipes.payload_executed():
        recipes.clear_payload_canary()
        if "payloads" in wanted:
            raise PropertyFailure("payloads", "a payload from the graph was executed", compiled.source)
    if "graphmodule" in wanted:
        seen["graphmodule"] = check_graphmodule(gm, args, expected, actual)
        observes["graphmodule"] = seen["graphmodule"] == "agrees"
    seen["coverage"] = {f"{ASTGEN} {check}": observes.get(check, True) for check in CHECKS if check in wanted}
    return seen


@contextlib.contextmanager
def _stage(name: str) -> Iterator[None]:
    try:
        yield
    except PropertyFailure:
        raise
    except Exception as error:
        error.add_note(f"astgen.fuzz: raised during check {name!r}")
        raise


# ---------------------------------------------------------------- other targets


def _names(gm: torch.fx.GraphModule) -> set[str]:
    """What a message may name that changes from graph to graph: node names, module and buffer targets.

    Not a placeholder's target: FX names the node `inf_1` for a parameter `inf`,
    and `name 'inf' is not defined` is about the constant, whatever the graph."""
    return {node.name for node in gm.graph.nodes} | {
        node.target
        for node in gm.graph.nodes
        if node.op in ("call_module", "get_attr") and isinstance(node.target, str)
    }


def _summary(error: BaseException, gm: torch.fx.GraphModule, site: str = "") -> str:
    """An exception as a finding's summary: its type, normalized message and where it was raised
    (its site in the target's own code where it has one, so one signature is one site)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = site
    if frames and not site:
        frame = frames[-1]
        # Generated code's line numbers change with the graph; a source file's do not.
        line = f":{frame.lineno}" if os.path.exists(frame.filename) else ""
        where = f"{normalized(Path(frame.filename).name)}:{frame.name}{line}"
    return error_summary(error, _names(gm), where)


def _formatted(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


@dataclass(frozen=True)
class Refused:
    """A target's refusal by design of a graph (`Target.refusals`): the construct it refused."""

    construct: str


def check_target(
    target: Target,
    gm: torch.fx.GraphModule,
    args: Sequence[Any],
    checks: Iterable[str],
    expected: Any,
    coverage: dict[str, bool] | None = None,
) -> Any:
    """Run the checks of `checks` that `target` claims on one graph; its result, or a `Refused` where
    it refuses the graph by design.

    The target gets callables for the pieces, through which its piece calls
    are observed (liveness) and made to raise (exceptions). `coverage`, where
    given, gets for each check whether it observed the target: liveness and
    exceptions see nothing of a target that calls no piece (one that inlines
    them), payloads nothing of a graph without one.
    """
    wanted = set(checks) & target.claims
    observed = dict.fromkeys(sorted(wanted), False)
    if coverage is not None:
        coverage.update({f"{target.name} {check}": False for check in observed})
    modules = submodules(gm)
    current: dict[str, Callable[..., Any]] = dict(modules)

    def piece(name: str) -> Callable[..., Any]:
        return lambda *a, **k: current[name](*a, **k)

    def fail(check: str, summary: str, detail: str = "", kind: str | None = None, site: str = "") -> PropertyFailure:
        if recipes.payload_executed() and "payloads" in wanted:
            return PropertyFailure("payloads", "a payload from the graph was executed", detail, target.name)
        return PropertyFailure(check, summary, detail, target.name, kind, site)

    def raised(error: Exception, compiling: bool) -> PropertyFailure | Refused:
        # A refusal by design is no finding, so it never has a site to join findings at.
        construct = target.refused(error)
        if construct is not None:
            return Refused(construct)
        site = target.site(error)
        summary, kind = _summary(error, gm, site), error_type(error) + (f" at {site}" if site else "")
        if compiling:
            return fail(
                "interpreter", f"compiling raises {summary}", _formatted(error), f"compiling raises {kind}", site
            )
        where = "where the interpreter returns"
        return fail("interpreter", f"raises {summary} {where}", _formatted(error), f"raises {kind} {where}", site)

    try:
        function = target.compile(gm, {name: piece(name) for name in modules})
    except Exception as error:
        outcome = raised(error, compiling=True)
        if isinstance(outcome, Refused):
            return outcome
        raise outcome from error
    probe = Probe()
    current.update(probing_pieces(gm, probe))
    try:
        actual = function(*args)
    except Exception as error:
        outcome = raised(error, compiling=False)
        if isinstance(outcome, Refused):
            return outcome
        raise outcome from error
    finally:
        current.update(modules)
    observed.update(
        interpreter=True,
        agree=True,
        liveness=bool(probe.order),
        exceptions=bool(probe.order),
        payloads=_mentions_payload(gm),
    )
    if coverage is not None:
        coverage.update({f"{target.name} {check}": observed[check] for check in wanted})
    if recipes.payload_executed() and "payloads" in wanted:
        raise fail("payloads", "")
    if "interpreter" in wanted:
        found = difference(expected, actual)
        if found:
            raise fail("interpreter", "differs from the interpreter", found)
    if "liveness" in wanted:
        calls = probe.order
        if len(set(calls)) != len(calls) or any(call < 0 for call in calls):
            raise fail("liveness", "calls a piece more often than the graph does", repr(calls))
        found = expected_liveness(gm, args).mismatch(probe.alive_at, calls)
        if found:
            raise fail("liveness", "values alive at a piece call are not exactly those needed later", found)
    if "exceptions" in wanted:
        nodes = list(gm.graph.find_nodes(op="call_module"))
        for name in dict.fromkeys(str(nodes[call].target) for call in probe.order):
            planted = _Planted(name)

            def explode(*a: Any, planted: _Planted = planted, **k: Any) -> Any:
                raise planted

            current[name] = explode
            try:
                function(*args)
            except _Planted as error:
                if error is not planted:
                    raise fail("exceptions", "another piece's exception came out") from error
            except Exception as error:
                raise fail(
                    "exceptions", f"a piece's exception came out as {error_type(error)}", _formatted(error)
                ) from error
            else:
                raise fail("exceptions", "an exception raised in a piece vanished", name)
            finally:
                current[name] = modules[name]
    if recipes.payload_executed() and "payloads" in wanted:
        raise fail("payloads", "")
    return actual


def check_recipe(
    recipe: recipes.Recipe, checks: Iterable[str] = CHECKS, targets: Sequence[Target] | None = None
) -> dict[str, Any]:
    """Build the graph `recipe` describes and run `checks` on it, for astgen or for each of `targets` (`check_built`)."""
    gm, args = recipes.build(recipe)
    return check_built(gm, args, checks, targets, rebuild=lambda: recipes.build(recipe))


def check_built(
    gm: torch.fx.GraphModule,
    args: Sequence[Any],
    checks: Iterable[str] = CHECKS,
    targets: Sequence[Target] | None = None,
    *,
    rebuild: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Run `checks` on a graph, for astgen or for each of `targets`; `rebuild` makes the same graph anew.

    With two targets their results are compared too (the `agree` check).
    Returns what `check_graph` saw, for astgen, with `coverage` for every
    target's checks (see `check_graph`, `check_target`) and `refused`: the
    targets that refused the graph by design, with the construct refused.
    """
    chosen = list(targets) if targets else [resolve(ASTGEN)]
    wanted = set(checks)
    agreed: bool | None = None
    if len(chosen) == 2 and "agree" in wanted:
        agreed = _check_agree(chosen, gm, args)
    seen: dict[str, Any] = {}
    coverage: dict[str, bool] = {}
    refused: dict[str, str] = {}
    expected: Any = None
    for target in chosen:
        if target.name == ASTGEN:
            seen = check_graph(gm, args, wanted & set(CHECKS), rebuild=rebuild)
            coverage.update(seen["coverage"])
            continue
        if expected is None:
            recipes.clear_payload_canary()
            expected = (torch.fx.Interpreter(gm).run(*args),)
        recipes.clear_payload_canary()
        outcome = check_target(target, gm, args, wanted, expected[0], coverage)
        if isinstance(outcome, Refused):
            refused[target.name] = outcome.construct
    if agreed is not None:
        coverage["+".join(target.name for target in chosen) + " agree"] = agreed
    return {**seen, "coverage": coverage, "refused": refused}


def _check_agree(chosen: Sequence[Target], gm: torch.fx.GraphModule, args: Sequence[Any]) -> bool:
    """Two targets that both return must return the same: checked first, as what a differential run is for.

    Returns whether both returned, so that the two could be compared."""
    results = []
    for target in chosen:
        recipes.clear_payload_canary()
        try:
            results.append(target.compile(gm, submodules(gm))(*args))
        except Exception:
            return False  # a refusal or a failure of its own, which its own checks report
    recipes.clear_payload_canary()
    (first, a), (second, b) = zip((target.name for target in chosen), results, strict=True)
    found = difference(a, b, f"{first} -> {second}")
    if found:
        raise PropertyFailure("agree", f"{first} and {second} differ", found, f"{first}+{second}")
    return True


def signature(error: BaseException) -> str:
    """What makes two failures the same bug: the target, the check and its summary, or where astgen raised what."""
    if isinstance(error, PropertyFailure):
        return f"{error.target} {error.check}: {error.summary}"
    stage = next(
        (note.split("check ")[-1].strip("'") for note in getattr(error, "__notes__", ()) if "astgen.fuzz" in note),
        "build",
    )
    frames = traceback.extract_tb(error.__traceback__)
    inner = next(
        (f for f in reversed(frames) if f"{os.sep}astgen{os.sep}" in f.filename), frames[-1] if frames else None
    )
    where = f"{Path(inner.filename).name}:{inner.name}" if inner is not None else "?"
    return f"{ASTGEN} {stage}: {error_type(error)} in {where}"


def kind(error: BaseException) -> str:
    """What a root cause is grouped by, beside its construct: the target, the check and the kind of error
    (an exception's type, not its message)."""
    if isinstance(error, PropertyFailure):
        return f"{error.target} {error.check}: {error.kind}"
    return signature(error)


def _shown(label: str, run: Callable[[], Any]) -> None:
    try:
        print(f"{label}: returns {run()!r}")
    except Exception as error:
        print(f"{label}: raises {type(error).__name__}: {error}")


def _call(target: Target, gm: torch.fx.GraphModule, args: Sequence[Any]) -> Any:
    return target.compile(gm, submodules(gm))(*args)


def report(
    graph: Callable[[], tuple[torch.fx.GraphModule, tuple[Any, ...]]],
    targets: Sequence[str] | None = None,
    expected_signature: str | None = None,
) -> int:
    """What a reproducer script runs: print the graph `graph()` builds, what the interpreter returns,
    each target's code and what it did, then check it; 1 while it fails, 0 once it passes.
    `targets` are names `targets.resolve` takes."""
    gm, args = graph()
    # Targets are imported by name, as the campaign (`python -m`) imported them: from the working directory too.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    chosen = [resolve(name) for name in (targets or [ASTGEN])]
    print("FX graph:")
    print(gm.graph)
    _shown("torch.fx.Interpreter", lambda: torch.fx.Interpreter(gm).run(*args))
    for target in chosen:
        if target.show is not None:
            try:
                print(f"{target.name} generates:")
                print(target.show(gm))
            except Exception as error:
                print(f"{target.name} cannot generate code: {type(error).__name__}: {error}")
        _shown(target.name, functools.partial(_call, target, gm, args))
    recipes.clear_payload_canary()
    try:
        seen = check_built(gm, args, ALL_CHECKS, chosen, rebuild=graph)
    except PropertyFailure as error:
        # The failure's own account: the difference, or the target's exception and traceback.
        print(f"FAILS: {signature(error)}")
        print(error.detail)
        return 1
    except Exception as error:
        print(f"FAILS: {signature(error)}")
        print("".join(traceback.format_exception(error)))
        return 1
    refused = seen.get("refused")
    if refused:
        print(f"refused by design: {refused}")
    print("passes" + (f" (it failed with: {expected_signature})" if expected_signature else ""))
    return 0


# ---------------------------------------------------------------- loader: the text's language, audited

# Mutants per graph: each is one load and call in the audited subprocess the whole run shares.
_LOADER_MUTANTS = 4
_loader_server: list[Any] = []


def check_loader(compiled: CompiledGraph) -> None:
    """The artifact's text is in the loader's language exactly (lifting and emitting it gives it back),
    and mutants of it (`astgen.testing.mutants`) are refused or run with no audit event (`astgen.testing.audit`)."""
    import atexit
    import random

    from astgen.testing import audit, mutants

    code, names, _ = compiled.artifact()
    # `Verified.source` is the text unparsed from the IR emitted from the lift (`loader.compile_text`).
    if loader.verified(code).source != code:
        raise PropertyFailure("loader", "lifting astgen's text and emitting its IR gives another text", code)
    if not _loader_server:
        server = audit.AuditServer().__enter__()
        atexit.register(server.__exit__, None, None, None)
        _loader_server.append(server)
    base = audit.Case(code, tuple("identity" for _ in names))
    rng = random.Random(code)
    batch = mutants.random_mutants(rng, base, _LOADER_MUTANTS)
    found = audit.violations(batch, _loader_server[0].check(batch))
    if found:
        raise PropertyFailure("loader", "a mutant of the text raised an audit event or imported a module", found[0])
