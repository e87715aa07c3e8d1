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

import importlib
import inspect
import re
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

    def refused(self, error: BaseException) -> str | None:
        """The construct this target refuses by design in `error`, or None where `error` is a failure."""
        if isinstance(error, self.unsupported):
            return (str(error).strip().splitlines() or [""])[0][:80] or type(error).__name__
        return next((found for refusal in self.refusals if (found := refusal.refused(error))), None)


#: What vLLM's `generate_execution_code` refuses by design: the ops a stitching graph never holds
#: (`get_attr`, `call_method`: "Unsupported node from codegen: %x : ... = get_attr[target=...]"),
#: and a submodule call inside a GraphModule piece it inlines.
VLLM_REFUSALS: tuple[Refusal, ...] = (
    Refusal(RuntimeError, r"^Unsupported node from codegen: .* = (?P<construct>[a-z_]+)\[target="),
    Refusal(RuntimeError, r"^call_module is not allowed for codegen target", "call_module inside an inlined piece"),
)


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
    return Target(spec, compile_graph, claims, description=f"{module_name}.{attribute}")
