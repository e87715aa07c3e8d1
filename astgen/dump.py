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
unpickle objects, evaluate text or load compiled code is refused, and so is
one whose shape expressions hold integers or exponents past
`MAX_EXPRESSION_INT`/`MAX_EXPONENT`, or take sympy longer than
`--sympy-seconds` (default 10) to parse. Trusted or not, no member of a
`.pt2` may inflate past `--max-member-bytes` (default 1 GiB). A pickled
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

# A .pt2's weights are members of their own: a gigabyte covers one tensor of a
# large model; an archive a few kilobytes big that claims more is a zip bomb.
DEFAULT_MAX_MEMBER_BYTES = 1 << 30
DEFAULT_SYMPY_SECONDS = 10.0
# Shape expressions are sizes: integers past 2**64 and exponents past 64 are
# no size, and make sympy compute numbers of millions of digits.
MAX_EXPRESSION_INT = 2**64
MAX_EXPONENT = 64
MAX_EXPRESSION_CHARS = 10_000
_POWERS = frozenset({"Pow", "PowByNatural", "FloatPow"})


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
    parser.add_argument(
        "--max-member-bytes",
        type=int,
        default=DEFAULT_MAX_MEMBER_BYTES,
        metavar="N",
        help=f"refuse a .pt2 any member of which inflates past N bytes (default: {DEFAULT_MAX_MEMBER_BYTES})",
    )
    parser.add_argument(
        "--sympy-seconds",
        type=float,
        default=DEFAULT_SYMPY_SECONDS,
        metavar="S",
        help=f"refuse a .pt2 whose shape expressions take sympy longer than S seconds (default: {DEFAULT_SYMPY_SECONDS:g})",
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


def load_program(
    path: Path,
    *,
    trust_pickle: bool = False,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    sympy_seconds: float = DEFAULT_SYMPY_SECONDS,
) -> torch.fx.GraphModule:
    """The module of a program saved by `torch.export.save`.

    `torch.export.load` unpickles with `weights_only=False` wherever the
    archive asks it to (or a weights-only load fails), evaluates the shape
    expressions it holds with `sympy.sympify` and loads compiled AOTInductor
    code. Unless the file is trusted, the archive is checked first (see
    `check_archive`), and the very bytes checked are loaded, weights-only.
    Trusted or not, no member may inflate past `max_member_bytes`.
    """
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a .pt2 file")
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    data = path.read_bytes()
    try:
        check_member_sizes(data, max_member_bytes)
    except UnsafeArchive as error:
        raise UsageError(f"cannot load {path}: {error}") from None
    if not trust_pickle:
        try:
            check_archive(data, max_member_bytes=max_member_bytes, sympy_seconds=sympy_seconds)
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


def check_member_sizes(data: bytes, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES) -> None:
    """Raise `UnsafeArchive` if a member of the zip `data` inflates past `max_member_bytes`.

    The sizes are the ones the archive declares, which both readers hold it
    to: `zipfile` and torch's miniz reader stop at the declared size.
    """
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as error:
        raise BadArchive(f"not a .pt2 archive ({error})") from None
    for member in members:
        if member.file_size > max_member_bytes:
            raise UnsafeArchive(
                f"member {member.filename!r} inflates to {member.file_size} bytes, past the cap of "
                f"{max_member_bytes} (--max-member-bytes)"
            )


def check_archive(
    data: bytes, *, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES, sympy_seconds: float = DEFAULT_SYMPY_SECONDS
) -> None:
    """Raise `UnsafeArchive` unless loading `data` weights-only runs nothing from it.

    The archive is read as torch reads it (`PT2ArchiveReader`), and also as
    `zipfile` reads it, which `torch.export.load` falls back to for the
    older format: both must see one archive of the current format. No member
    may inflate past `max_member_bytes`; the shape expressions must be plain
    sympy within the bounds above, and parse within `sympy_seconds` in all.
    """
    check_member_sizes(data, max_member_bytes)
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
        expressions: list[str] = []
        for name in files:
            if name.startswith("models/") and name.endswith(".json"):
                _check_expressions(json.loads(reader.read_string(name)), name, expressions)
            elif name.startswith("data/constants/") and name.endswith("_config.json"):
                for fqn, entry in json.loads(reader.read_string(name)).get("config", {}).items():
                    if not str(entry.get("path_name", "")).startswith(TENSOR_CONSTANT_FILENAME_PREFIX):
                        raise UnsafeArchive(f"constant {fqn!r} is a pickled object, not a tensor")
        _parse_within(expressions, sympy_seconds)
    except UnsafeArchive:
        raise
    except Exception as error:  # a malformed archive: torch would fail on it too, maybe after unpickling
        raise UnsafeArchive(f"cannot read it as a .pt2 archive ({type(error).__name__}: {error})") from None


def _check_expressions(value: object, where: str, found: list[str]) -> None:
    """Check every shape expression in a model's JSON; collect them in `found`."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "expr_str" and isinstance(item, str):
                _check_expression(item, where)
                found.append(item)
            else:
                _check_expressions(item, where, found)
    elif isinstance(value, list):
        for item in value:
            _check_expressions(item, where, found)


class _OutOfTime(Exception):
    pass


def _parse_within(expressions: list[str], seconds: float) -> None:
    """Parse the checked expressions as torch.export.load will (`sympy.sympify`), within `seconds` in all.

    The bounds above keep sympy's work small; this is the backstop. It needs
    `SIGALRM`, so it holds in the main thread of a POSIX process, which is
    where the command line runs; elsewhere the expressions are parsed unboxed.
    """
    if not expressions:
        return
    import signal
    import threading

    import sympy

    boxed = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()

    def out_of_time(signum: int, frame: object) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, out_of_time) if boxed else None
    try:
        if boxed:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        for text in expressions:
            # Checked above as a tree of plain sympy calls on bounded numbers: sympify evaluates it.
            sympy.sympify(text)
    except _OutOfTime:
        raise UnsafeArchive(f"its shape expressions take sympy longer than {seconds:g}s (--sympy-seconds)") from None
    except Exception as error:  # a checked expression sympy refuses: torch.export.load would fail on it too
        raise UnsafeArchive(f"sympy cannot parse a shape expression ({type(error).__name__}: {error})") from None
    finally:
        if boxed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _check_expression(text: str, where: str) -> None:
    if len(text) > MAX_EXPRESSION_CHARS:
        raise UnsafeArchive(f"{where} holds a shape expression of {len(text)} characters, no size's")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise UnsafeArchive(f"{where} holds a shape expression that is no sympy expression: {text[:80]!r}") from None

    def check(node: ast.AST, exponent: bool = False) -> None:
        match node:
            case (
                ast.Constant(value=int() | float() as number)
                | ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=int() | float() as number))
            ):
                bound = MAX_EXPONENT if exponent else MAX_EXPRESSION_INT
                if isinstance(number, bool) or abs(number) <= bound:
                    return
                raise UnsafeArchive(
                    f"{where} holds a shape expression with {'an exponent' if exponent else 'a number'} "
                    f"past {bound}: {text[:80]!r}"
                )
            case ast.Name(id=name) if name in _SYMPY_NAMES:
                return
            case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords) if name in _SYMPY_CALLS:
                for index, argument in enumerate(args):
                    pattern = _SYMPY_STRING_ARGUMENT.get(name)
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        if index != 0 or pattern is None or not pattern.fullmatch(argument.value):
                            break
                        if name == "Float" and not _small_float(argument.value):
                            break
                    else:
                        # `Integer(k)` as an exponent is bounded as an exponent, as a bare `k` is.
                        check(
                            argument, exponent or (name in _POWERS and index == 1) or (name == "Integer" and exponent)
                        )
                else:
                    if all(
                        keyword.arg is not None
                        and isinstance(keyword.value, ast.Constant)
                        and type(keyword.value.value) in (bool, int)
                        for keyword in keywords
                    ):
                        return
        raise UnsafeArchive(f"{where} holds a shape expression that is not plain sympy: {text[:80]!r}")

    try:
        check(tree.body)
    except RecursionError:
        raise UnsafeArchive(f"{where} holds a shape expression nested too deeply: {text[:80]!r}") from None


def _small_float(digits: str) -> bool:
    """A Float's digits as sympy gets them: few, with an exponent a double can hold."""
    exponent = digits.lower().partition("e")[2]
    try:
        return len(digits) <= 40 and (not exponent or abs(int(exponent)) <= 400)
    except ValueError:
        return False


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
        gm = load_program(
            Path(target),
            trust_pickle=args.trust_pickle,
            max_member_bytes=args.max_member_bytes,
            sympy_seconds=args.sympy_seconds,
        )
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
