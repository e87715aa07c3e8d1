"""`python -m astgen.dump`: print the code astgen generates for a graph.

    python -m astgen.dump                          # the default example
    python -m astgen.dump --example toy --format ir
    python -m astgen.dump mypkg.models:make_graph --annotate

A target `package.module:factory` names a callable returning a GraphModule.
Bad input prints one line to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from collections.abc import Sequence

import torch.fx

from astgen import examples
from astgen.compiled import compile_graph
from astgen.errors import CodegenError
from astgen.ir import format_function
from astgen.render import RENDERERS, to_source

FORMATS = ("source", "ir", "ast")


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m astgen.dump", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help="package.module:factory returning a torch.fx.GraphModule")
    parser.add_argument("--example", choices=sorted(examples.EXAMPLES), help="a built-in example graph")
    parser.add_argument("--format", choices=FORMATS, default="source", help="what to print (default: source)")
    parser.add_argument("--renderer", choices=RENDERERS, default="unparse", help="astor wraps long lines")
    parser.add_argument("--annotate", action="store_true", help="comment each line with its FX node and user line")
    return parser


def load_factory_graph(target: str) -> torch.fx.GraphModule:
    """Call `package.module:factory` and check that it returns a GraphModule."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"target {target!r} is not of the form package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # importing runs the module's code: any failure is the target's
        raise UsageError(f"cannot import module {module_name!r}: {type(error).__name__}: {error}") from None
    factory: object = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}")
        factory = getattr(factory, part)
    try:
        graph = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    except Exception as error:  # the factory is user code: report its failure, not our traceback
        raise UsageError(f"{target} raised {type(error).__name__}: {error}") from None
    if not isinstance(graph, torch.fx.GraphModule):
        raise UsageError(f"{target} gave a {type(graph).__name__}, not a torch.fx.GraphModule")
    return graph


def render(gm: torch.fx.GraphModule, *, format: str, renderer: str, annotate: bool) -> str:
    compiled = compile_graph(gm)
    if format == "ir":
        return format_function(compiled.ir) + "\n"
    if format == "ast":
        return ast.dump(compiled.tree, indent=2) + "\n"
    return to_source(compiled.tree, compiled.ir, renderer=renderer, annotate=annotate)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.target and args.example:
            raise UsageError("give a target or --example, not both")
        if args.target:
            gm = load_factory_graph(args.target)
        else:
            gm = examples.EXAMPLES[args.example or examples.DEFAULT_EXAMPLE]()
        sys.stdout.write(render(gm, format=args.format, renderer=args.renderer, annotate=args.annotate))
    except (UsageError, CodegenError) as error:
        # One line, whatever the message holds: a CodegenError adds its node on lines of its own.
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"astgen.dump: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
