"""`python -m astgen.dump`: print the code astgen generates for a graph.

    python -m astgen.dump                          # the default example
    python -m astgen.dump --example toy --format ir
    python -m astgen.dump mypkg.models:make_graph --annotate
    python -m astgen.dump model.pt2 --split-at aten.scaled_dot_product_attention.default

A target `package.module:factory` names a callable returning a GraphModule.
A target `*.pt2` is a program saved by `torch.export.save`: it is split (at
attention ops unless `--split-at` says otherwise) and its stitching graph is
printed. Without `--trust-pickle` a `.pt2` is checked before anything in it
is loaded, and its tensors are loaded weights-only: an archive that would
unpickle objects, evaluate text or load compiled code is refused. A pickled
GraphModule (`*.pt`, `*.pkl`) is loaded only with `--trust-pickle`, since
unpickling runs whatever code the file names.
Bad input prints one line to stderr and exits with status 2; a bug in astgen
(`VerifyError`) is reported as an internal error, with status 3.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import json
import logging
import os
import pickle
import re
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch.fx

import astgen
from astgen import examples
from astgen.compiled import compile_graph
from astgen.errors import EXIT_INTERNAL_ERROR, CodegenError, VerifyError, a_or_an, graph_module_hint
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
    parser.add_argument(
        "--renderer",
        choices=RENDERERS,
        help="with --format source: unparse (default), or astor, which wraps long lines",
    )
    parser.add_argument(
        "--annotate", action="store_true", help="with --format source: comment each line with its FX node and user line"
    )
    parser.add_argument(
        "--split-at",
        action="append",
        metavar="OP",
        help="split the graph at this op, such as aten.scaled_dot_product_attention.default or "
        "torch.nn.functional.scaled_dot_product_attention (repeatable; an error when no node calls any; "
        "a .pt2 program is split at attention ops unless given)",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a pickled GraphModule, or a .pt2 whatever it holds: loading such files can run arbitrary code, "
        "so only for files you trust",
    )
    parser.add_argument("--version", action="version", version=f"astgen {astgen.__version__}")
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
        raise UsageError(
            f"{target} gave {a_or_an(type(graph).__name__)}, not a torch.fx.GraphModule{graph_module_hint(graph)}"
        )
    return graph


def load_program(path: Path, *, trust_pickle: bool = False) -> torch.fx.GraphModule:
    """The module of a program saved by `torch.export.save`.

    `torch.export.load` unpickles with `weights_only=False` wherever the
    archive asks it to (or a weights-only load fails), evaluates the shape
    expressions it holds with `sympy.sympify` and loads compiled AOTInductor
    code. Unless the file is trusted, the archive is checked first (see
    `check_archive`), and the very bytes checked are loaded, weights-only.
    """
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a .pt2 file")
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    data = path.read_bytes()
    if not trust_pickle:
        try:
            check_archive(data)
        except BadArchive as error:
            raise UsageError(f"cannot load {path}: {error}") from None
        except UnsafeArchive as error:
            raise UsageError(
                f"refusing to load {path} without --trust-pickle: {error}; pass --trust-pickle if you trust the file"
            ) from None
    # torch.export.load logs a traceback before it tries the older format;
    # the one line below says what went wrong.
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.ERROR)
    try:
        with contextlib.nullcontext() if trust_pickle else _weights_only_loads():
            program = torch.export.load(io.BytesIO(data))
    except Exception as error:  # a corrupt or foreign file: any failure is the file's
        if isinstance(error, pickle.UnpicklingError) and not trust_pickle:
            raise UsageError(
                f"refusing to load {path} without --trust-pickle: it holds a pickle that is not only tensors; "
                "pass --trust-pickle if you trust the file"
            ) from None
        raise UsageError(f"cannot load {path} with torch.export.load: {type(error).__name__}: {error}") from None
    finally:
        export_log.setLevel(level)
    return program.module()


class UnsafeArchive(Exception):
    """A .pt2 archive that loading might run code from."""


class BadArchive(UnsafeArchive):
    """A file that is no .pt2 archive at all."""


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Every `torch.load` inside is weights-only, whatever `weights_only` its caller passes."""
    # torch.load reads these on each call; the documented override of an explicit weights_only=False.
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {name: os.environ.get(name) for name in names}
    os.environ[names[0]] = "1"
    os.environ.pop(names[1], None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# What torch.export.save writes; anything else is refused, not guessed at.
_ARCHIVE_FILES = ("archive_format", "archive_version", "byteorder")
_ARCHIVE_DIRS = (".data/", "models/", "data/weights/", "data/constants/", "data/sample_inputs/", "extra/")
# `expr_str` is `sympy.srepr` of a shape expression, which torch.export.load
# hands to `sympy.sympify`, that is `eval`. Accepted: calls of these sympy
# classes and torch's shape functions on numbers, symbol names and the
# constants below; a string only as the name of a Symbol or the digits of a Float.
_SYMPY_CALLS = frozenset(
    {
        *("Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs"),
        *("floor", "ceiling", "Piecewise", "ExprCondPair", "And", "Or", "Not"),
        *("Equality", "Unequality", "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan"),
        *("FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt"),
        *("CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv"),
        *("IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal"),
        *("ToFloat", "Identity"),
    }
)
_SYMPY_NAMES = frozenset({"oo", "zoo", "nan", "true", "false", "int_oo"})
_SYMPY_STRING_ARGUMENT = {"Symbol": re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "Float": re.compile(r"[-+]?[0-9.e+-]+")}


def check_archive(data: bytes) -> None:
    """Raise `UnsafeArchive` unless loading `data` weights-only runs nothing from it.

    The archive is read as torch reads it (`PT2ArchiveReader`), and also as
    `zipfile` reads it, which `torch.export.load` falls back to for the
    older format: both must see one archive of the current format.
    """
    try:
        from torch.export.pt2_archive import PT2ArchiveReader
        from torch.export.pt2_archive.constants import ARCHIVE_VERSION_VALUE, TENSOR_CONSTANT_FILENAME_PREFIX
    except ImportError:
        raise UnsafeArchive(f"torch {torch.__version__} has no pt2_archive module to check the archive with") from None
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError) as error:
        raise BadArchive(f"not a .pt2 archive ({error})") from None
    roots = {name.partition("/")[0] for name in names}
    if len(roots) != 1 or len(set(names)) != len(names) or any("/" not in name for name in names):
        raise UnsafeArchive("not one archive folder of distinct files, as torch.export.save writes")
    try:
        reader = PT2ArchiveReader(io.BytesIO(data))
        files = reader.get_file_names()
        if reader.read_string("archive_version") != ARCHIVE_VERSION_VALUE:
            raise UnsafeArchive("an archive version this torch does not write")
        for name in files:
            if name not in _ARCHIVE_FILES and not name.startswith(_ARCHIVE_DIRS):
                raise UnsafeArchive(f"it holds {name!r}, which torch.export.save does not write")
        for name in files:
            if name.startswith("models/") and name.endswith(".json"):
                _check_expressions(json.loads(reader.read_string(name)), name)
            elif name.startswith("data/constants/") and name.endswith("_config.json"):
                for fqn, entry in json.loads(reader.read_string(name)).get("config", {}).items():
                    if not str(entry.get("path_name", "")).startswith(TENSOR_CONSTANT_FILENAME_PREFIX):
                        raise UnsafeArchive(f"constant {fqn!r} is a pickled object, not a tensor")
    except UnsafeArchive:
        raise
    except Exception as error:  # a malformed archive: torch would fail on it too, maybe after unpickling
        raise UnsafeArchive(f"cannot read it as a .pt2 archive ({type(error).__name__}: {error})") from None


def _check_expressions(value: object, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "expr_str" and isinstance(item, str):
                _check_expression(item, where)
            else:
                _check_expressions(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_expressions(item, where)


def _check_expression(text: str, where: str) -> None:
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        raise UnsafeArchive(f"{where} holds a shape expression that is no sympy expression: {text[:80]!r}") from None

    def check(node: ast.AST) -> None:
        match node:
            case ast.Constant(value=int() | float()):
                return
            case ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=int() | float())):
                return
            case ast.Name(id=name) if name in _SYMPY_NAMES:
                return
            case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords) if name in _SYMPY_CALLS:
                for index, argument in enumerate(args):
                    pattern = _SYMPY_STRING_ARGUMENT.get(name)
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        if index != 0 or pattern is None or not pattern.fullmatch(argument.value):
                            break
                    else:
                        check(argument)
                else:
                    if all(
                        keyword.arg is not None
                        and isinstance(keyword.value, ast.Constant)
                        and type(keyword.value.value) in (bool, int)
                        for keyword in keywords
                    ):
                        return
        raise UnsafeArchive(f"{where} holds a shape expression that is not plain sympy: {text[:80]!r}")

    check(tree.body)


def load_pickled_graph(path: Path, *, trust_pickle: bool) -> torch.fx.GraphModule:
    """A GraphModule saved by `torch.save`: unpickled only when the user trusts the file."""
    if not path.is_file():
        raise UsageError(
            f"{path} is a directory, not a pickled GraphModule" if path.is_dir() else f"no such file: {path}"
        )
    if not trust_pickle:
        raise UsageError(
            f"refusing to unpickle {path}: unpickling runs arbitrary code from the file; "
            "pass --trust-pickle if you trust it, or save the model with torch.export.save as .pt2"
        )
    try:
        graph = torch.load(path, weights_only=False)
    except Exception as error:  # as for load_program
        raise UsageError(f"cannot unpickle {path}: {type(error).__name__}: {error}") from None
    if not isinstance(graph, torch.fx.GraphModule):
        raise UsageError(
            f"{path} holds {a_or_an(type(graph).__name__)}, not a torch.fx.GraphModule{graph_module_hint(graph)}"
        )
    return graph


def _python_file_hint(target: str) -> str:
    """What to write instead of a Python file's path: its module and a factory in it."""
    path, _, factory = target.partition(":")
    module = Path(path).with_suffix("")
    parts = module.parts if not module.is_absolute() and ".." not in module.parts else (module.name,)
    where = "" if len(parts) == len(module.parts) else f", run from {module.parent}"
    return (
        f"{path} is a Python file, not a target: name the function in it that returns the GraphModule, "
        f"as module:factory (python -m astgen.dump {'.'.join(parts)}:{factory or 'make_graph'}{where})"
    )


def split_target(name: str) -> Target:
    """An op name (`aten.sdpa.default`, `aten::sdpa`) or a Python function (`torch.nn.functional.sdpa`)."""
    try:
        return parse_target(name)
    except ValueError as error:
        found = _python_function(name)
        if found is None:
            raise UsageError(f"--split-at: {error}, nor a Python function such as torch.relu") from None
        return found


def _python_function(name: str) -> object | None:
    """The callable `package.module.attribute` names, importing the longest module prefix it can."""
    parts = name.strip().split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        return None
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except Exception:  # not a module (or one that fails to import): try a shorter prefix
            continue
        for part in parts[split:]:
            found = getattr(found, part, None)
        return found if callable(found) else None
    return None


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Below errors, `logger` says nothing: dump reports in one line of its own."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def load_graph(args: argparse.Namespace) -> torch.fx.GraphModule:
    """The graph the command line names, split if it asks for it or names a .pt2 program."""
    if args.target and args.example:
        raise UsageError("give a target or --example, not both")
    if args.format != "source" and (args.annotate or args.renderer is not None):
        option = "--annotate" if args.annotate else "--renderer"
        raise UsageError(f"{option} applies to --format source, not --format {args.format}")
    split_at: SplitAt | None = [split_target(name) for name in args.split_at] if args.split_at else None
    target = args.target
    path = Path(target) if target else None
    if path is not None and path.is_dir():
        raise UsageError(f"{target} is a directory, not a .pt2 file, a pickled GraphModule or package.module:factory")
    if target and target.endswith(".pt2"):
        gm = load_program(Path(target), trust_pickle=args.trust_pickle)
    elif target and target.endswith(PICKLE_SUFFIXES):
        gm = load_pickled_graph(Path(target), trust_pickle=args.trust_pickle)
    elif target and target.partition(":")[0].endswith(".py"):
        raise UsageError(_python_file_hint(target))
    elif target and ":" not in target and (os.sep in target or "/" in target or Path(target).is_file()):
        raise UsageError(
            f"{target} is a path, but not of a .pt2 file or a pickled GraphModule ({', '.join(PICKLE_SUFFIXES)})"
        )
    elif target:
        gm = load_factory_graph(target)
    else:
        gm = examples.EXAMPLES[args.example or examples.DEFAULT_EXAMPLE]()
    if split_at is None and not (target and target.endswith(".pt2")):
        return gm
    try:
        with _quiet("astgen"):
            split = split_graph(gm, split_at or ATTENTION_OPS)
    except ValueError as error:
        raise UsageError(f"--split-at: {error}") from None
    if not split.splitting:
        if split_at is not None:
            raise UsageError(f"--split-at {' '.join(args.split_at)}: no node of the graph calls it")
        print(f"astgen.dump: note: no attention op in {target}; printed as one piece (see --split-at)", file=sys.stderr)
    return split.stitching


def render(gm: torch.fx.GraphModule, *, format: str, renderer: str | None, annotate: bool) -> str:
    compiled = compile_graph(gm)
    if format == "ir":
        return format_function(compiled.ir) + "\n"
    if format == "ast":
        return ast.dump(compiled.tree, indent=2) + "\n"
    return to_source(compiled.tree, compiled.ir, renderer=renderer or "unparse", annotate=annotate)


def _one_line(error: Exception) -> str:
    # One line, whatever the message holds: a CodegenError adds its node on lines of its own.
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as done:  # --help and --version print, then exit
            return done.code if isinstance(done.code, int) else 0
        gm = load_graph(args)
        sys.stdout.write(render(gm, format=args.format, renderer=args.renderer, annotate=args.annotate))
    except VerifyError as error:
        # Not the input's fault: say whose it is, with a status of its own.
        print(f"astgen.dump: internal error (a bug in astgen, please report it): {_one_line(error)}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    except (UsageError, CodegenError) as error:
        print(f"astgen.dump: {_one_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
