"""Reproducers: a minimal failing graph as a script of a few lines of FX API that reads as a bug report.

`reproducer_source(recipe, signature, targets)` writes the graph a recipe
describes as the `torch.fx.Graph` calls that build it (`graph()`), then runs
`astgen.testing.checks.report` on it: the FX graph, what the interpreter
returns, what each target did (its code, its result or its exception), and
the verdict; the script exits 1 while the failure reproduces. The script is
an `ast` tree unparsed; every value in it is a literal or a name built as a
tree, never text spliced into code. It needs torch and astgen (the pieces
and the check), not Hypothesis.
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from astgen.testing import recipe as recipes
from astgen.testing.targets import ASTGEN

Recipe = recipes.Recipe

# Names the script itself binds; a variable named after a node takes another name.
_TAKEN = frozenset(
    {"math", "operator", "sys", "torch", "checks", "graph", "g", "gm", "args", "modules", "SIGNATURE", "TARGETS"}
    | {"ROOT_CAUSE", "Piece", "Pair", "Opaque", "pack", "make_tensor", "record_meta", "traced_piece"}
)


def _name(node: str) -> ast.Name:
    return ast.Name(node, ast.Load())


def _attribute(dotted: str) -> ast.expr:
    first, *rest = dotted.split(".")
    made: ast.expr = _name(first)
    for part in rest:
        made = ast.Attribute(made, part, ast.Load())
    return made


def _call(function: ast.expr, args: Sequence[ast.expr] = (), **keywords: ast.expr) -> ast.Call:
    return ast.Call(function, list(args), [ast.keyword(key, value) for key, value in keywords.items()])


def _float(value: float) -> ast.expr:
    if math.isnan(value):
        return _attribute("math.nan")
    if math.isinf(value):
        made = _attribute("math.inf")
        return ast.UnaryOp(ast.USub(), made) if value < 0 else made
    if math.copysign(1.0, value) < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))
    return ast.Constant(value)


def _int(value: int) -> ast.expr:
    return ast.UnaryOp(ast.USub(), ast.Constant(-value)) if value < 0 else ast.Constant(value)


def _plain(value: Any) -> ast.expr:
    """A JSON-plain value (a spec of `make_tensor`, a piece's keys) as a literal tree."""
    if isinstance(value, dict):
        return ast.Dict([ast.Constant(key) for key in value], [_plain(item) for item in value.values()])
    if isinstance(value, (list, tuple)):
        return ast.List([_plain(item) for item in value], ast.Load())
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(value)
    return ast.Constant(value)


class _Writer:
    """Turns a recipe into the statements of `graph()`."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.variables: list[str] = []
        self.used: set[str] = set()
        gm, _ = recipes.build(recipe)
        self.fx_names = [node.name for node in gm.graph.nodes if node.op != "output"]
        self.imports: set[str] = set()

    def variable(self, index: int) -> str:
        wanted = self.fx_names[index] if index < len(self.fx_names) else f"v{index}"
        if not wanted.isidentifier() or wanted in _TAKEN or wanted in self.used or not wanted.isascii():
            wanted = f"v{index}"
        self.used.add(wanted)
        return wanted

    def arg(self, arg: recipes.Arg) -> ast.expr:
        tag = arg[0]
        if tag == "ref":
            return _name(self.variables[arg[1]])
        if tag == "int":
            return _int(int(arg[1]))
        if tag == "float":
            if not math.isfinite(float(arg[1])):
                self.imports.add("math")
            return _float(float(arg[1]))
        if tag in ("bool", "str"):
            return ast.Constant(recipes.decode(arg, lambda index: None))
        if tag == "none":
            return ast.Constant(None)
        if tag == "ellipsis":
            return ast.Constant(Ellipsis)
        if tag == "bytes":
            return ast.Constant(bytes.fromhex(arg[1]))
        if tag == "complex":
            parts = (float(arg[1]), float(arg[2]))
            if not all(math.isfinite(part) for part in parts):
                self.imports.add("math")
            return _call(_name("complex"), [_float(part) for part in parts])
        if tag == "dtype":
            return _attribute(f"torch.{arg[1]}")
        if tag == "device":
            return _call(_attribute("torch.device"), [ast.Constant(arg[1])])
        if tag == "opaque":
            self.imports.add("Opaque")
            return _call(_name("Opaque"), [ast.Constant(arg[1])])
        if tag == "slice":
            return _call(_name("slice"), [self.arg(part) for part in arg[1:4]])
        if tag == "tuple":
            return ast.Tuple([self.arg(item) for item in arg[1]], ast.Load())
        if tag == "list":
            return ast.List([self.arg(item) for item in arg[1]], ast.Load())
        if tag == "dict":
            return ast.Dict([self.arg(key) for key, _ in arg[1]], [self.arg(value) for _, value in arg[1]])
        if tag == "pair":
            self.imports.add("Pair")
            return _call(_name("Pair"), [self.arg(arg[1]), self.arg(arg[2])])
        raise ValueError(f"unknown recipe tag {tag!r}")

    def function(self, name: str) -> ast.expr:
        function = recipes.FUNCTIONS[name]
        if name == "pack":
            self.imports.add("pack")
            return _name("pack")
        if name.startswith("torch."):
            return _attribute(name)
        if getattr(function, "__module__", None) in ("_operator", "operator"):
            self.imports.add("operator")
            return _attribute(f"operator.{name}")
        return _name(name)

    def module(self, spec: recipes.ModuleSpec) -> ast.expr:
        if spec["kind"] == "traced":
            self.imports.add("traced_piece")
            return _call(_name("traced_piece"))
        self.imports.add("Piece")
        arguments = [ast.Constant(spec["out"])]
        keywords: dict[str, ast.expr] = {}
        if spec.get("arity", 1) != 1:
            keywords["arity"] = ast.Constant(spec["arity"])
        if spec.get("keys"):
            keywords["keys"] = _plain(list(spec["keys"]))
        if spec.get("dtype", "float32") != "float32":
            keywords["dtype"] = ast.Constant(spec["dtype"])
        return _call(_name("Piece"), arguments, **keywords)

    def statements(self) -> list[ast.stmt]:
        recipe = self.recipe
        labels = recipe.get("labels", {})
        body: list[ast.stmt] = []
        modules: dict[str, ast.expr] = {}
        for index, module_name in enumerate(recipe["targets"]):
            modules[module_name] = self.module(recipe["modules"][index])
        for buffer in recipe["buffers"]:
            self.imports.add("make_tensor")
            modules[buffer["name"]] = _call(_name("make_tensor"), [_plain(dict(buffer))])
        graph = _name("g")
        body.append(_assign("g", _call(_attribute("torch.fx.Graph"))))
        for position, spec in enumerate(recipe["inputs"]):
            keywords = {"default_value": self.arg(spec["default"])} if "default" in spec else {}
            parameter = labels.get(str(position), f"arg{position}")
            variable = self.variable(position)
            self.variables.append(variable)
            placeholder = _call(ast.Attribute(graph, "placeholder", ast.Load()), [ast.Constant(parameter)], **keywords)
            body.append(_assign(variable, placeholder))
        for node in recipe["nodes"]:
            index = len(self.variables)
            args = ast.Tuple([self.arg(arg) for arg in node.get("args", ())], ast.Load())
            kwargs = ast.Dict(
                [ast.Constant(key) for key, _ in node.get("kwargs", ())],
                [self.arg(value) for _, value in node.get("kwargs", ())],
            )
            op = node["op"]
            target: ast.expr
            if op == "call_module":
                target = ast.Constant(recipe["targets"][node["module"]])
            elif op == "get_attr":
                target = ast.Constant(recipe["buffers"][node["buffer"]]["name"])
            elif op == "call_method":
                target = ast.Constant(node["method"])
            else:
                target = self.function(node["function"])
            arguments: list[ast.expr] = [target] if op == "get_attr" else [target, args]
            if op != "get_attr" and kwargs.keys:
                arguments.append(kwargs)
            keywords = {}
            label = labels.get(str(index))
            if label is not None:
                # A name asked of FX's namespace, as a tracer asks for it: only create_node takes one.
                arguments = [ast.Constant(op), target, args, kwargs]
                keywords["name"] = ast.Constant(label)
                call = _call(ast.Attribute(graph, "create_node", ast.Load()), arguments, **keywords)
            else:
                call = _call(ast.Attribute(graph, op, ast.Load()), arguments)
            variable = self.variable(index)
            self.variables.append(variable)
            body.append(_assign(variable, call))
        body.append(ast.Expr(_call(ast.Attribute(graph, "output", ast.Load()), [self.arg(recipe["output"])])))
        body += self.hostile_names()
        root = ast.Dict([ast.Constant(name) for name in modules], list(modules.values()))
        hostile = bool(recipe.get("names"))
        # FX prints a GraphModule's code when it is made; one of hostile names made lazily, as `build` does.
        module_class = "_LazyGraphModule" if hostile else "torch.fx.GraphModule"
        if hostile:
            self.imports.add("_LazyGraphModule")
        body.append(_assign("gm", _call(_attribute(module_class), [root, graph])))
        if recipe.get("meta"):
            self.imports.add("record_meta")
        arguments = []
        for spec in recipe["inputs"][: recipe["passed"]]:
            if spec["kind"] == "tensor":
                arguments.append(self.tensor(spec))
            else:
                arguments.append(self.arg(spec["value"]))
        body.append(_assign("args", ast.Tuple(arguments, ast.Load())))
        if recipe.get("meta"):
            nodes = ast.List([_name(self.variables[index]) for index in recipe["meta"]], ast.Load())
            body.append(ast.Expr(_call(_name("record_meta"), [_name("gm"), nodes, _name("args")])))
        body.append(ast.Return(ast.Tuple([_name("gm"), _name("args")], ast.Load())))
        return body

    def tensor(self, spec: recipes.InputSpec) -> ast.expr:
        """An input tensor in torch's own calls, as `make_tensor` makes it; `make_tensor` where nan and inf fill it."""
        dtype = getattr(torch, spec["dtype"])
        if spec.get("fill") == "special" and dtype.is_floating_point:
            self.imports.add("make_tensor")
            return _call(_name("make_tensor"), [_plain({key: v for key, v in spec.items() if key != "default"})])
        shape = spec["shape"]
        made: ast.expr = _call(
            _attribute("torch.arange"), [ast.Constant(math.prod(shape))], dtype=_attribute("torch.float64")
        )
        made = _call(ast.Attribute(made, "mul", ast.Load()), [ast.Constant(0.5)])
        if spec.get("offset", 0):
            made = _call(ast.Attribute(made, "sub", ast.Load()), [ast.Constant(spec["offset"])])
        made = _call(
            ast.Attribute(made, "reshape", ast.Load()), [ast.Tuple([ast.Constant(n) for n in shape], ast.Load())]
        )
        if dtype is torch.bool:
            return _call(ast.Attribute(made, "gt", ast.Load()), [ast.Constant(0)])
        return _call(ast.Attribute(made, "to", ast.Load()), [_attribute(f"torch.{spec['dtype']}")])

    def hostile_names(self) -> list[ast.stmt]:
        """Names set past FX's namespace, as `recipe.build` sets them (a name taken already is skipped)."""
        made: list[ast.stmt] = []
        taken = set(self.fx_names_before_hostile())
        for index, name in sorted(self.recipe.get("names", {}).items(), key=lambda item: int(item[0])):
            position = int(index)
            if name in taken:
                continue
            taken.add(name)
            variable = _name(self.variables[position])
            made.append(_assign_attribute(variable, "name", ast.Constant(name)))
            if position < len(self.recipe["inputs"]) and not name.startswith("*"):
                made.append(_assign_attribute(variable, "target", ast.Constant(name)))
        return made

    def fx_names_before_hostile(self) -> list[str]:
        without = {**self.recipe, "names": {}}
        gm, _ = recipes.build(without)  # type: ignore[arg-type]
        return [node.name for node in gm.graph.nodes if node.op != "output"]


def _assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign([ast.Name(name, ast.Store())], value)


def _assign_attribute(owner: ast.expr, attribute: str, value: ast.expr) -> ast.Assign:
    return ast.Assign([ast.Attribute(owner, attribute, ast.Store())], value)


_RECIPE_NAMES = ("Pair", "Opaque", "Piece", "make_tensor", "pack", "record_meta", "traced_piece")


def reproducer_source(
    recipe: Recipe, failure_signature: str, targets: Sequence[str] = (ASTGEN,), root_cause: str | None = None
) -> str:
    """The reproducer script of `recipe`'s graph, failing with `failure_signature` on `targets`."""
    writer = _Writer(recipe)
    body = writer.statements()
    imports: list[ast.stmt] = []
    for module in ("math", "operator"):
        if module in writer.imports:
            imports.append(ast.Import([ast.alias(module)]))
    imports.append(ast.Import([ast.alias("sys")]))
    imports.append(ast.Import([ast.alias("torch")]))
    imports.append(ast.Import([ast.alias("torch.fx")]))
    if "_LazyGraphModule" in writer.imports:
        imports.append(ast.ImportFrom("torch.fx._lazy_graph_module", [ast.alias("_LazyGraphModule")], 0))
    imports.append(ast.ImportFrom("astgen.testing", [ast.alias("checks")], 0))
    from_recipe = [name for name in _RECIPE_NAMES if name in writer.imports]
    if from_recipe:
        imports.append(ast.ImportFrom("astgen.testing.recipe", [ast.alias(name) for name in from_recipe], 0))
    cause = root_cause or failure_signature
    doc = (
        f"astgen fuzz reproducer: {cause}\n\n"
        "`graph()` builds the smallest graph found with FX's API; running this file prints the graph,\n"
        "what torch.fx.Interpreter returns and what each target did, and exits 1 while the bug is there.\n"
        "It needs torch and astgen (the pieces and the check), not Hypothesis.\n"
    )
    main = ast.If(
        ast.Compare(_name("__name__"), [ast.Eq()], [ast.Constant("__main__")]),
        [
            ast.Expr(
                _call(
                    _attribute("sys.exit"),
                    [
                        _call(
                            _attribute("checks.report"),
                            [_name("graph"), _name("TARGETS"), _name("SIGNATURE")],
                        )
                    ],
                )
            )
        ],
        [],
    )
    script = ast.Module(
        [
            ast.Expr(ast.Constant(doc)),
            *imports,
            _assign("SIGNATURE", ast.Constant(failure_signature)),
            _assign("ROOT_CAUSE", ast.Constant(cause)),
            _assign("TARGETS", _plain(list(targets))),
            ast.FunctionDef(
                name="graph", args=ast.arguments([], [], None, [], [], None, []), body=body, decorator_list=[]
            ),
            main,
        ],
        [],
    )
    return ast.unparse(ast.fix_missing_locations(script)) + "\n"


def write_reproducer(
    out: Path,
    recipe: Recipe,
    failure_signature: str,
    targets: Sequence[str] = (ASTGEN,),
    root_cause: str | None = None,
) -> Path | None:
    """Write a reproducer unless one for the same root cause exists; return its path when new."""
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1((root_cause or failure_signature).encode()).hexdigest()[:12]
    path = out / f"repro_{digest}.py"
    text = reproducer_source(recipe, failure_signature, targets, root_cause)
    try:
        with path.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        return None
    return path
