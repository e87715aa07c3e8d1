"""Fuzz targets: the code generators a campaign holds to the interpreter's behaviour.

A target takes a split `GraphModule` and the callables to use for its pieces
(by call_module target) and returns a function of the graph's inputs, or
raises `Unsupported` (or another exception type it declares) for a graph it
does not claim to handle: a refusal, not a finding. Each target names the
checks it claims (`FOREIGN_CHECKS`); astgen itself claims every check of
`astgen.testing.checks.CHECKS`.

`--target` takes one of these names:

- `astgen` (the default): astgen itself, with all of its checks;
- `graphmodule`: FX's own codegen (`GraphModule` recompiled, pieces installed in its `__dict__` as vLLM does);
- `interpreter`: `torch.fx.Interpreter`, with the pieces as its submodules;
- `vllm-api:MODULE`: any module with vLLM's `generate_execution_code` and
  `compile_execution_fn` (`vllm.compilation.codegen`, `astgen.vllm`, the
  string-template example `benchmarks.string_baseline`); both the
  `(code, names)` and `(code, names, consts)` shapes;
- `package.module:NAME`: a `Target`, a function returning one, or a function
  `(gm, pieces) -> callable`, which claims the result, exception and payload checks.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx

Pieces = Mapping[str, Callable[..., Any]]

#: The checks a target other than astgen can claim, with what each holds it to.
FOREIGN_CHECKS: dict[str, str] = {
    "interpreter": "it compiles the graph and returns what torch.fx.Interpreter returns, exactly",
    "exceptions": "an exception raised in a piece propagates unchanged",
    "payloads": "no payload in a node name, keyword or string constant ever runs",
    "liveness": "at every piece call exactly the values still needed later are alive",
    "agree": "two targets given together return the same result (differential runs)",
}


class Unsupported(Exception):
    """A target's refusal of a graph it does not claim to handle; a campaign skips the graph for it."""


@dataclass(frozen=True)
class Refusal:
    """What a target refuses by design: an exception of `exception`'s type whose message matches `pattern`.

    The construct refused is the pattern's `construct` group where it has one
    (vLLM names the op it does not support), else `construct`.
    """

    exception: type[BaseException]
    pattern: str
    construct: str = ""

    def refused(self, error: BaseException) -> str | None:
        """The construct `error` refuses, or None where it is no refusal of this kind."""
        if not isinstance(error, self.exception):
            return None
        found = re.search(self.pattern, str(error))
        if found is None:
            return None
        return found.groupdict().get("construct") or self.construct or type(error).__name__


@dataclass(frozen=True)
class Target:
    """A code generator under test. `compile(gm, pieces)` gives the function to run.

    A graph it refuses by design (an exception in `unsupported`, or one a
    `refusals` entry matches) is counted as refused, by construct, never as a failure.
    """

    name: str
    compile: Callable[[torch.fx.GraphModule, Pieces], Callable[..., Any]]
    claims: frozenset[str] = frozenset({"interpreter", "exceptions", "payloads"})
    unsupported: tuple[type[BaseException], ...] = (Unsupported,)
    description: str = field(default="", compare=False)
    refusals: tuple[Refusal, ...] = ()
    #: The code it generates for a graph, for reproducers to print; None where it has none to show.
    show: Callable[[torch.fx.GraphModule], str] | None = field(default=None, compare=False)
    #: The modules (or packages) that are its own code, where a failure's `site` can lie.
    code: tuple[str, ...] = field(default=(), compare=False)

    def refused(self, error: BaseException) -> str | None:
        """The construct this target refuses by design in `error`, or None where `error` is a failure."""
        if isinstance(error, self.unsupported):
            return (str(error).strip().splitlines() or [""])[0][:80] or type(error).__name__
        return next((found for refusal in self.refusals if (found := refusal.refused(error))), None)

    def site(self, error: BaseException) -> str:
        """Where in this target's own code `error` was raised, or "" where that is no line of it.

        The raising frame must be a line of `code` (a raise, an assert, or a
        call into C that raised), every frame from the first of `code` down to
        it a real file: a failure inside generated code, or inside another
        library the target called, has no site, nor has a SyntaxError (its
        text, generated, is at fault). The site is that line and the lines
        of `code` that called it, innermost first, each function once (a
        recursion is one call), as paths from the directory holding the
        module's top package: `vllm/compilation/codegen.py:96 (from :159)`.
        A helper that raises for many callers gives each caller's failures
        a site of their own.
        """
        if not self.code or isinstance(error, SyntaxError):
            return ""
        frames = [(frame.f_code, line) for frame, line in _frames(error.__traceback__)]
        own = [index for index, (code, _) in enumerate(frames) if _own_path(code.co_filename, self.code)]
        if not own or own[-1] != len(frames) - 1:
            return ""
        if any(not os.path.isfile(code.co_filename) for code, _ in frames[own[0] :]):
            return ""
        chain: list[tuple[str, int]] = []
        previous: types.CodeType | None = None
        for index in reversed(own):
            code, line = frames[index]
            if code is not previous:
                chain.append((_own_path(code.co_filename, self.code) or "", line))
            previous = code
        (path, line), callers = chain[0], chain[1:]
        named = ", ".join(f":{at}" if where == path else f"{where}:{at}" for where, at in callers)
        return f"{path}:{line}" + (f" (from {named})" if named else "")


#: What vLLM's `generate_execution_code` refuses by design: the ops a stitching graph never holds
#: (`get_attr`, `call_method`: "Unsupported node from codegen: %x : ... = get_attr[target=...]"),
#: and a submodule call inside a GraphModule piece it inlines.
VLLM_REFUSALS: tuple[Refusal, ...] = (
    Refusal(RuntimeError, r"^Unsupported node from codegen: .* = (?P<construct>[a-z_]+)\[target="),
    Refusal(RuntimeError, r"^call_module is not allowed for codegen target", "call_module inside an inlined piece"),
)


def _frames(tb: types.TracebackType | None) -> list[tuple[types.FrameType, int]]:
    """A traceback's frames with their lines, outermost first."""
    found = []
    while tb is not None:
        found.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return found


@functools.cache
def _code_root(module_name: str) -> tuple[str, str, bool] | None:
    """A module's source (its file, or its package's directory), the directory holding its top package
    (what a site's paths are relative to), and whether the source is a package; None where it has no file."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    locations = list(getattr(module, "__path__", ()))
    source = locations[0] if locations else getattr(module, "__file__", None)
    if not source:
        return None
    source = os.path.abspath(source)
    # vllm/compilation/codegen.py and torch/fx/ alike: one directory up per dotted part, and one more.
    root = source
    for _ in range(module_name.count(".") + 1):
        root = os.path.dirname(root)
    return source, root, bool(locations)


def _own_path(filename: str, modules: tuple[str, ...]) -> str | None:
    """`filename` relative to the directory of its top package where it is a file of `modules`, else None."""
    path = os.path.abspath(filename)
    for name in modules:
        found = _code_root(name)
        if found is None:
            continue
        source, root, package = found
        if path == source or (package and path.startswith(source + os.sep)):
            return os.path.relpath(path, root).replace(os.sep, "/")
    return None


ASTGEN = "astgen"


def _astgen(gm: torch.fx.GraphModule, pieces: Pieces) -> Callable[..., Any]:
    from astgen.compiled import compile_graph

    return compile_graph(gm, pieces).fn


def _source(gm: torch.fx.GraphModule) -> str:
    from astgen.compiled import compile_graph

    return compile_graph(gm).source


def _graphmodule(gm: torch.fx.GraphModule, pieces: Pieces) -> Callable[..., Any]:
    module = torch.fx.GraphModule(gm, gm.graph)
    for name, piece in pieces.items():
        # An instance attribute is found before `nn.Module.__getattr__` looks at
        # submodules: vLLM installs its compiled pieces the same way.
        module.__dict__[name] = piece
    return module.forward


class _PieceInterpreter(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, pieces: Pieces) -> None:
        super().__init__(gm)
        self.pieces = pieces

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        return self.pieces[target](*args, **kwargs)


def _interpreter(gm: torch.fx.GraphModule, pieces: Pieces) -> Callable[..., Any]:
    return lambda *args: _PieceInterpreter(gm, pieces).run(*args)


def vllm_api(module_name: str) -> Target:
    """A target of any module exposing vLLM's `generate_execution_code` and `compile_execution_fn`."""
    module = importlib.import_module(module_name)
    generate, compile_fn = module.generate_execution_code, module.compile_execution_fn

    def compile_graph(gm: torch.fx.GraphModule, pieces: Pieces) -> Callable[..., Any]:
        generated = generate(gm)
        # vLLM before constants returned (code, names), as the seed's generator does; today (code, names, consts).
        if len(generated) == 3:
            code, names, consts = generated
            return compile_fn(code, dict(pieces), names, consts)  # type: ignore[no-any-return]
        code, names = generated
        return compile_fn(code, dict(pieces), names)  # type: ignore[no-any-return]

    return Target(
        f"vllm-api:{module_name}",
        compile_graph,
        frozenset({"interpreter", "exceptions", "payloads", "liveness"}),
        description=f"{module_name}.generate_execution_code + compile_execution_fn",
        refusals=VLLM_REFUSALS,
        show=lambda gm: str(generate(gm)[0]),
        code=(module_name,),
    )


BUILTIN: dict[str, Callable[[], Target]] = {
    ASTGEN: lambda: Target(ASTGEN, _astgen, frozenset(), description="astgen itself, every check", show=_source),
    "graphmodule": lambda: Target(
        "graphmodule",
        _graphmodule,
        frozenset({"interpreter", "exceptions", "payloads", "liveness"}),
        description="FX's own codegen: GraphModule.recompile() and its forward",
    ),
    "interpreter": lambda: Target(
        "interpreter",
        _interpreter,
        frozenset({"interpreter", "exceptions", "payloads"}),
        description="torch.fx.Interpreter",
    ),
}


def resolve(spec: str) -> Target:
    """The target `spec` names (see the module's docstring); `ValueError` naming what is wrong otherwise."""
    if spec in BUILTIN:
        return BUILTIN[spec]()
    if spec.startswith("vllm-api:"):
        module_name = spec.removeprefix("vllm-api:")
        try:
            return vllm_api(module_name)
        except ImportError as error:
            raise ValueError(f"--target {spec}: cannot import {module_name}: {error}") from None
        except AttributeError as error:
            raise ValueError(f"--target {spec}: not vLLM's API: {error}") from None
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"--target {spec}: give {', '.join(BUILTIN)}, vllm-api:MODULE or package.module:NAME")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--target {spec}: {error}") from None
    if isinstance(found, Target):
        return found
    if not callable(found):
        raise ValueError(f"--target {spec}: {attribute} is neither a Target nor callable")
    try:
        required = [
            p
            for p in inspect.signature(found).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        required = [None]  # type: ignore[list-item]
    if not required:
        made = found()
        if not isinstance(made, Target):
            raise ValueError(f"--target {spec}: {attribute}() returned {type(made).__name__}, not a Target")
        return made
    wants_pieces = len(required) >= 2

    def compile_graph(gm: torch.fx.GraphModule, pieces: Pieces) -> Callable[..., Any]:
        return found(gm, pieces) if wants_pieces else found(gm)  # type: ignore[no-any-return]

    # Pieces it does not take cannot be made to raise: the exceptions check needs them.
    default = ("interpreter", "exceptions", "payloads") if wants_pieces else ("interpreter", "payloads")
    claims = frozenset(getattr(found, "claims", default))
    return Target(spec, compile_graph, claims, description=f"{module_name}.{attribute}", code=(module_name,))
