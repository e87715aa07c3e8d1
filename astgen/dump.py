"""`python -m astgen.dump`: print the code astgen generates for a graph.

    python -m astgen.dump                          # the default example
    python -m astgen.dump --example toy --format ir
    python -m astgen.dump mypkg.models:make_graph --annotate
    python -m astgen.dump model.pt2 --split-at aten.scaled_dot_product_attention.default

A target `package.module:factory` names a callable returning a GraphModule.
A target `*.pt2` is a program saved by `torch.export.save`: it is split (at
attention ops unless `--split-at` says otherwise) and its stitching graph is
printed. A pickled GraphModule (`*.pt`, `*.pkl`) is loaded only with
`--trust-pickle`, since unpickling runs whatever code the file names.
Bad input prints one line to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch.fx

from astgen import examples
from astgen.compiled import compile_graph
from astgen.errors import CodegenError
from astgen.ir import format_function
from astgen.render import RENDERERS, to_source
from astgen.split import ATTENTION_OPS, SplitAt, Target, parse_target, split_graph

FORMATS = ("source", "ir", "ast")
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle")


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the usage too: bad input gets one line, like every other.
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m astgen.dump", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "target",
        nargs="?",
        help="package.module:factory returning a torch.fx.GraphModule, a torch.export .pt2 file, "
        "or a pickled GraphModule (.pt, .pkl; with --trust-pickle)",
    )
    parser.add_argument("--example", choices=sorted(examples.EXAMPLES), help="a built-in example graph")
    parser.add_argument("--format", choices=FORMATS, default="source", help="what to print (default: source)")
    parser.add_argument("--renderer", choices=RENDERERS, default="unparse", help="astor wraps long lines")
    parser.add_argument("--annotate", action="store_true", help="comment each line with its FX node and user line")
    parser.add_argument(
        "--split-at",
        action="append",
        metavar="OP",
        help="split the graph at this op, such as aten.scaled_dot_product_attention.default (repeatable; "
        "a .pt2 program is split at attention ops unless given)",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a pickled GraphModule: unpickling runs arbitrary code, so only for files you trust",
    )
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


def load_program(path: Path) -> torch.fx.GraphModule:
    """The module of a program saved by `torch.export.save`."""
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    # torch.export.load logs a traceback before it tries the older format;
    # the one line below says what went wrong.
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.ERROR)
    try:
        program = torch.export.load(path)
    except Exception as error:  # a corrupt or foreign file: any failure is the file's
        raise UsageError(f"cannot load {path} with torch.export.load: {type(error).__name__}: {error}") from None
    finally:
        export_log.setLevel(level)
    return program.module()


def load_pickled_graph(path: Path, *, trust_pickle: bool) -> torch.fx.GraphModule:
    """A GraphModule saved by `torch.save`: unpickled only when the user trusts the file."""
    if not trust_pickle:
        raise UsageError(
            f"refusing to unpickle {path}: unpickling runs arbitrary code from the file; "
            "pass --trust-pickle if you trust it, or save the model with torch.export.save as .pt2"
        )
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        graph = torch.load(path, weights_only=False)
    except Exception as error:  # as for load_program
        raise UsageError(f"cannot unpickle {path}: {type(error).__name__}: {error}") from None
    if not isinstance(graph, torch.fx.GraphModule):
        raise UsageError(f"{path} holds a {type(graph).__name__}, not a torch.fx.GraphModule")
    return graph


def split_targets(names: Sequence[str]) -> list[Target]:
    targets = []
    for name in names:
        try:
            targets.append(parse_target(name))
        except ValueError as error:
            raise UsageError(f"--split-at: {error}") from None
    return targets


def load_graph(args: argparse.Namespace) -> torch.fx.GraphModule:
    """The graph the command line names, split if it asks for it or names a .pt2 program."""
    if args.target and args.example:
        raise UsageError("give a target or --example, not both")
    split_at: SplitAt | None = split_targets(args.split_at) if args.split_at else None
    target = args.target
    if target and target.endswith(".pt2"):
        gm = load_program(Path(target))
        split_at = split_at or ATTENTION_OPS
    elif target and target.endswith(PICKLE_SUFFIXES):
        gm = load_pickled_graph(Path(target), trust_pickle=args.trust_pickle)
    elif target:
        gm = load_factory_graph(target)
    else:
        gm = examples.EXAMPLES[args.example or examples.DEFAULT_EXAMPLE]()
    return gm if split_at is None else split_graph(gm, split_at).stitching


def render(gm: torch.fx.GraphModule, *, format: str, renderer: str, annotate: bool) -> str:
    compiled = compile_graph(gm)
    if format == "ir":
        return format_function(compiled.ir) + "\n"
    if format == "ast":
        return ast.dump(compiled.tree, indent=2) + "\n"
    return to_source(compiled.tree, compiled.ir, renderer=renderer, annotate=annotate)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        gm = load_graph(args)
        sys.stdout.write(render(gm, format=args.format, renderer=args.renderer, annotate=args.annotate))
    except (UsageError, CodegenError) as error:
        # One line, whatever the message holds: a CodegenError adds its node on lines of its own.
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"astgen.dump: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
