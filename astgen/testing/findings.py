"""Findings: a failure's stable signature, and the FX construct a minimal failing graph is made of.

Two failures are the same root cause when the same target fails the same
check with the same kind of error on the same construct, or raises the same
exception type at the same site of its own code (`Finding.site`). `normalized`
takes out of an error message what varies between occurrences of one bug
(file names of generated code, counters, line numbers, addresses, plural
forms, node names, Python's SyntaxError wording), so a signature stays put
while a graph shrinks. `construct` reads a minimal recipe (see
`astgen.testing.minimize`) for the one feature the failure needs, and
`group_key` is what a campaign reports once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from astgen.testing import recipe as recipes

# What varies between occurrences of one bug, most specific first.
_VARYING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"<eval_with_key>\.\d+"), "<generated>"),
    (re.compile(r"<string>"), "<generated>"),
    (re.compile(r"0x[0-9a-fA-F]+"), "0x_"),
    (re.compile(r"\bline \d+"), "line N"),
    (re.compile(r"\(args = .*"), ""),
    (re.compile(r"\[num_users=\d+\]"), ""),
    (re.compile(r"target=[^\]]*\]"), "target=_]"),
    (re.compile(r"%\S+"), "%_"),
    (re.compile(r"\b(argument|value|element|item|index|key|positional argument)s\b"), r"\1"),
    (re.compile(r"'<node>'(?:,? and '<node>'|, '<node>')+"), "'<node>'"),
    (re.compile(r"\d+"), "N"),
)

#: Python's own wording for text it cannot parse changes with the text; the type is the bug.
_UNPARSABLE = (SyntaxError,)


def error_type(error: BaseException) -> str:
    """The type a finding names: a SyntaxError of any wording (IndentationError, TabError) is a SyntaxError."""
    return "SyntaxError" if isinstance(error, _UNPARSABLE) else type(error).__name__


def normalized(message: str, names: Iterable[str] = ()) -> str:
    """The first line of an error message without what changes from occurrence to occurrence."""
    # Node names first, whole: a name may hold quotes, spaces and line breaks of its own.
    for name in sorted((name for name in names if name), key=len, reverse=True):
        message = message.replace(repr(name), "'<node>'").replace(f"%{name}", "%_")
    line = (message.strip().splitlines() or [""])[0]
    for pattern, replacement in _VARYING:
        line = pattern.sub(replacement, line)
    return line.strip()[:120]


def error_summary(error: BaseException, names: Iterable[str], where: str) -> str:
    """`Type: normalized message in where`; a SyntaxError's wording is dropped (see `error_type`)."""
    message = "" if isinstance(error, _UNPARSABLE) else normalized(str(error), names)
    return error_type(error) + (f": {message}" if message else "") + (f" in {where}" if where else "")


# ---------------------------------------------------------------- constructs


@dataclass(frozen=True)
class Feature:
    """One construct a recipe holds, and the edit that takes it out.

    `rank` orders how specific a construct is: a constant's kind says more
    about a failure than the node it is passed to. `neutral` gives the
    recipe without the feature (a finite float for inf, no default, a plain
    name), or None where only removing the node takes it out.
    """

    rank: int
    label: str
    neutral: Callable[[recipes.Recipe], recipes.Recipe] | None = None


HOSTILE = "hostile input"

_NODE_RANK = 2
_CONSTANT_RANK = 5


def constant_label(arg: recipes.Arg) -> str | None:
    """The construct a constant argument is, or None for a reference to a value."""
    tag = arg[0]
    if tag == "ref":
        return None
    if tag == "float":
        return "a float constant" if math.isfinite(float(arg[1])) else "a non-finite float constant (inf, nan)"
    if tag == "complex":
        parts = (float(arg[1]), float(arg[2]))
        finite = all(math.isfinite(part) for part in parts)
        return "a complex constant" if finite else "a complex constant with inf or nan"
    if tag == "pair":
        return "a namedtuple constant"
    if tag == "int":
        return "an int constant" if abs(int(arg[1])) < 2**63 else "an int constant beyond 64 bits"
    return {
        "bool": "a bool constant",
        "none": "None",
        "ellipsis": "Ellipsis",
        "str": "a str constant",
        "bytes": "a bytes constant",
        "dtype": "a torch.dtype constant",
        "device": "a torch.device constant",
        "opaque": "an object with no literal form",
        "slice": "a slice constant",
        "tuple": "a tuple",
        "list": "a list",
        "dict": "a dict",
    }.get(tag, tag)


def _neutral_constant(arg: recipes.Arg) -> recipes.Arg:
    tag = arg[0]
    if tag == "float":
        return ["float", "1.5"]
    if tag == "complex":
        return ["complex", "1.5", "-2.5"]
    if tag == "pair":
        return ["tuple", [arg[1], arg[2]]]
    if tag == "int":
        return ["int", 1]
    return ["int", 1]


def _constants_in(arg: recipes.Arg) -> Iterator[recipes.Arg]:
    """Every constant inside an argument, containers and their items both."""
    tag = arg[0]
    if tag == "ref":
        return
    yield arg
    if tag in ("tuple", "list"):
        for item in arg[1]:
            yield from _constants_in(item)
    elif tag == "dict":
        for key, value in arg[1]:
            yield from _constants_in(key)
            yield from _constants_in(value)
    elif tag in ("pair",):
        yield from _constants_in(arg[1])
        yield from _constants_in(arg[2])
    elif tag == "slice":
        for part in arg[1:4]:
            yield from _constants_in(part)


def map_args(
    recipe: recipes.Recipe, change: Callable[[recipes.Arg], recipes.Arg], *, keys: bool = True
) -> recipes.Recipe:
    """The recipe with `change` applied to every argument, default and the output, innermost first;
    with `keys=False` not to a getitem's key (the getitem's construct, see `_all_args`)."""

    def walk(arg: recipes.Arg) -> recipes.Arg:
        tag = arg[0]
        if tag in ("tuple", "list"):
            arg = [tag, [walk(item) for item in arg[1]]]
        elif tag == "dict":
            arg = [tag, [[walk(key), walk(value)] for key, value in arg[1]]]
        elif tag == "pair":
            arg = [tag, walk(arg[1]), walk(arg[2])]
        elif tag == "slice":
            arg = [tag, *(walk(part) for part in arg[1:4])]
        return change(arg)

    inputs = [
        dict(spec, default=walk(spec["default"])) if "default" in spec else dict(spec) for spec in recipe["inputs"]
    ]
    nodes = []
    for node in recipe["nodes"]:
        made = dict(node)
        if "args" in node:
            getitem = not keys and node["op"] == "call_function" and node["function"] == "getitem"
            made["args"] = [arg if getitem and position else walk(arg) for position, arg in enumerate(node["args"])]
        if "kwargs" in node:
            made["kwargs"] = [[key, walk(value)] for key, value in node["kwargs"]]
        nodes.append(made)
    return {**recipe, "inputs": inputs, "nodes": nodes, "output": walk(recipe["output"])}  # type: ignore[typeddict-item]


def _renumbered(recipe: recipes.Recipe, removed: int, substitute: recipes.Arg) -> recipes.Recipe:
    """Value `removed` gone: references to it become `substitute`, later values move down by one."""

    def change(arg: recipes.Arg) -> recipes.Arg:
        if arg[0] != "ref":
            return arg
        if arg[1] == removed:
            return substitute
        return ["ref", arg[1] - 1] if arg[1] > removed else arg

    made = map_args(recipe, change)

    def moved(index: str) -> str | None:
        number = int(index)
        if number == removed:
            return None
        return str(number - 1 if number > removed else number)

    for key in ("names", "labels"):
        if key in recipe:
            kept = {moved(index): name for index, name in recipe[key].items()}  # type: ignore[literal-required]
            made[key] = {index: name for index, name in kept.items() if index is not None}  # type: ignore[literal-required]
    if "meta" in recipe:
        made["meta"] = [int(index) for value in recipe["meta"] if (index := moved(str(value))) is not None]
    return made


def without_value(recipe: recipes.Recipe, value: int) -> recipes.Recipe:
    """The recipe without input or node `value`; what read it reads its first argument, another input, or 1."""
    inputs = len(recipe["inputs"])
    if value >= inputs:
        node = recipe["nodes"][value - inputs]
        refs = [arg for arg in node.get("args", ()) if arg[0] == "ref"]
        substitute: recipes.Arg = refs[0] if refs else ["int", 1]
        made = _renumbered(recipe, value, substitute)
        made["nodes"] = [spec for position, spec in enumerate(made["nodes"]) if position != value - inputs]
        return made
    others = [position for position in range(inputs) if position != value]
    substitute = ["ref", others[0]] if others else ["int", 1]
    made = _renumbered(recipe, value, substitute)
    made["inputs"] = [spec for position, spec in enumerate(made["inputs"]) if position != value]
    made["passed"] = recipe["passed"] - (1 if value < recipe["passed"] else 0)
    return made


def _without_values(values: list[int]) -> Callable[[recipes.Recipe], recipes.Recipe]:
    """The edit that removes the inputs or nodes `values` (see `without_value`)."""

    def edit(recipe: recipes.Recipe) -> recipes.Recipe:
        for value in sorted(values, reverse=True):
            recipe = without_value(recipe, value)
        return recipe

    return edit


def _all_args(recipe: recipes.Recipe) -> Iterator[recipes.Arg]:
    """Every argument, default and the output; a getitem's key is the getitem's construct, not a constant's."""
    for spec in recipe["inputs"]:
        if "default" in spec:
            yield spec["default"]
    for node in recipe["nodes"]:
        getitem = node["op"] == "call_function" and node["function"] == "getitem"
        yield from node.get("args", ())[:1] if getitem else node.get("args", ())
        yield from (value for _, value in node.get("kwargs", ()))
    yield recipe["output"]


def function_label(name: str) -> str:
    """A call_function construct by the module its target lives in: a bug in naming one operator names them all."""
    function = recipes.FUNCTIONS[name]
    module = getattr(function, "__module__", None) or "builtins"
    if module == "_operator":
        module = "operator"
    return f"call_function {module}.*" if module != "builtins" else f"call_function builtins.{name}"


def _getitem_label(node: recipes.NodeSpec) -> str:
    key = node["args"][1] if len(node.get("args", ())) > 1 else ["none"]
    kind = {"int": "an int", "str": "a str"}.get(key[0], "a slice or tuple")
    return f"getitem by {kind} key"


def features(recipe: recipes.Recipe) -> list[Feature]:
    """The constructs a recipe holds, each with the edit that takes it out where there is one."""
    found: list[Feature] = []
    if recipe.get("names"):
        found.append(Feature(9, f"{HOSTILE}: a node name set past FX's namespace", _without_names))
    keys = [key for node in recipe["nodes"] for key, _ in node.get("kwargs", ()) if recipes.hostile_keyword(key)]
    if keys:
        found.append(Feature(9, f"{HOSTILE}: a keyword no call can spell", _renamed_keywords))
    attributes = [*recipe["targets"], *(buffer["name"] for buffer in recipe["buffers"])]
    if any(recipes.hostile_attribute(name) for name in attributes):
        found.append(Feature(9, f"{HOSTILE}: a module attribute no tracer names"))
    labels: dict[str, None] = {}
    for arg in _all_args(recipe):
        for constant in _constants_in(arg):
            label = constant_label(constant)
            if label is not None:
                labels.setdefault(label)
    for label in labels:
        found.append(Feature(_CONSTANT_RANK, label, _neutralized(label)))
    if recipe.get("labels"):
        found.append(Feature(6, "a node name a tracer gives (through FX's namespace)", _without_labels))
    if not recipe["inputs"]:
        found.append(Feature(4, "a graph with no placeholder"))
    if any(position >= recipe["passed"] for position in range(len(recipe["inputs"]))):
        found.append(Feature(4, "a placeholder left to its default", _all_passed))
    ints = [position for position, spec in enumerate(recipe["inputs"]) if spec["kind"] == "int"]
    if ints:
        found.append(Feature(3, "an int placeholder (a SymInt size)", _without_values(ints)))
    if recipe.get("meta"):
        found.append(Feature(1, "node.meta['val'] on a submodule call", _without_meta))
    by_label: dict[str, list[int]] = {}
    ranks: dict[str, int] = {}
    first = len(recipe["inputs"])
    for index, node in enumerate(recipe["nodes"]):
        op = node["op"]
        if op == "call_function" and node["function"] == "getitem":
            label, rank = _getitem_label(node), 3
        elif op == "call_function":
            label, rank = function_label(node["function"]), _NODE_RANK
        elif op in ("call_method", "get_attr"):
            label, rank = op, _NODE_RANK
        elif recipe["modules"][node["module"]]["kind"] == "traced":
            label, rank = "call_module of a GraphModule piece", _NODE_RANK
        else:
            label, rank = "call_module", 1
        by_label.setdefault(label, []).append(first + index)
        ranks[label] = rank
        if node.get("kwargs"):
            found.append(Feature(1, f"{op} with a keyword argument"))
    # A node's construct is taken out with the nodes themselves: what read them reads their first argument.
    found += [Feature(ranks[label], label, _without_values(values)) for label, values in by_label.items()]
    unique: dict[str, Feature] = {}
    for feature in found:
        unique.setdefault(feature.label, feature)
    return sorted(unique.values(), key=lambda feature: -feature.rank)


def _without_names(recipe: recipes.Recipe) -> recipes.Recipe:
    return {**recipe, "names": {}}


def _without_labels(recipe: recipes.Recipe) -> recipes.Recipe:
    return {**recipe, "labels": {}}


def _renamed_keywords(recipe: recipes.Recipe) -> recipes.Recipe:
    nodes = []
    for node in recipe["nodes"]:
        kwargs = node.get("kwargs")
        if kwargs:
            plain = iter(name for name in ("alpha", "key", "other", "more") if name not in {k for k, _ in kwargs})
            renamed = [[next(plain) if recipes.hostile_keyword(key) else key, value] for key, value in kwargs]
            node = {**node, "kwargs": renamed}  # type: ignore[typeddict-item]
        nodes.append(node)
    return {**recipe, "nodes": nodes}


def _neutralized(label: str) -> Callable[[recipes.Recipe], recipes.Recipe]:
    return lambda recipe: map_args(
        recipe, lambda arg: _neutral_constant(arg) if constant_label(arg) == label else arg, keys=False
    )


def _all_passed(recipe: recipes.Recipe) -> recipes.Recipe:
    inputs = [{key: value for key, value in spec.items() if key != "default"} for spec in recipe["inputs"]]
    return {**recipe, "inputs": inputs, "passed": len(inputs)}  # type: ignore[typeddict-item]


def _without_meta(recipe: recipes.Recipe) -> recipes.Recipe:
    return {**recipe, "meta": []}


#: What a graph does under the checks: it passes, it is no valid graph, or it fails with a signature.
PASSES, INVALID = "passes", "invalid"


@dataclass(frozen=True)
class Diagnosis:
    """What a minimal failing recipe fails on: its construct, and the signatures it fails with
    once one other feature is taken out (see `root_causes`)."""

    construct: str
    becomes: frozenset[str] = frozenset()


def diagnose(recipe: recipes.Recipe, outcome: Callable[[recipes.Recipe], str]) -> Diagnosis:
    """The construct a minimal failing recipe fails on, by what taking each feature out does.

    The most specific feature whose removal makes the graph pass; else one
    whose removal leaves a valid graph that fails otherwise (two bugs
    overlap: a dropped default and a slice getitem); else a feature no edit
    takes out (no placeholder at all), or the most specific. Passing comes
    first, not merely failing otherwise: a node named `_operator` turns a
    NameError into an UnboundLocalError, and is not what the bug is; the
    NameError it then fails with is kept in `becomes`.
    `outcome` gives `PASSES`, `INVALID` or the signature a recipe fails with.
    """
    held = features(recipe)
    original = outcome(recipe)
    results = {feature.label: outcome(feature.neutral(recipe)) for feature in held if feature.neutral is not None}
    becomes = frozenset(result for result in results.values() if result not in (PASSES, INVALID, original))
    for feature in held:
        if results.get(feature.label) == PASSES:
            return Diagnosis(feature.label, becomes)
    for feature in held:
        if results.get(feature.label) not in (None, INVALID, original):
            return Diagnosis(feature.label, becomes)
    fixed = [feature for feature in held if feature.neutral is None]
    return Diagnosis((fixed or held)[0].label if held else "the graph's output", becomes)


def construct(recipe: recipes.Recipe, outcome: Callable[[recipes.Recipe], str]) -> str:
    """The construct of `diagnose`."""
    return diagnose(recipe, outcome).construct


def group_key(signature_kind: str, label: str) -> str:
    """What a campaign reports once: the target, the check and the kind of error, on the construct."""
    return f"{signature_kind} on {label}"


# ---------------------------------------------------------------- root causes


@dataclass(frozen=True)
class Finding:
    """One group as workers report it: a kind of error (`error`) of one check (`scope`: the target
    and the check) on one construct, the signatures its graphs failed with, what its minimal
    reproducer fails with once one more feature is taken out, and how many runs failed so.
    `site` is where the target raised it in its own code (`targets.Target.site`), "" for none;
    `error` names it too, so two sites are two groups."""

    scope: str
    error: str
    construct: str
    signatures: frozenset[str]
    becomes: frozenset[str] = frozenset()
    runs: int = 0
    site: str = ""

    @property
    def key(self) -> str:
        return group_key(f"{self.scope}: {self.error}", self.construct)

    def joined(self, other: Finding) -> Finding:
        """The same group seen again (another worker, another graph): signatures, outcomes and runs summed."""
        return Finding(
            self.scope,
            self.error,
            self.construct,
            self.signatures | other.signatures,
            self.becomes | other.becomes,
            self.runs + other.runs,
            self.site,
        )

    def masks(self, other: Finding) -> bool:
        """Whether this is `other`'s failure under one more feature: same check and construct, and
        taking a feature out of this one's reproducer makes it fail as `other` does."""
        return self.scope == other.scope and self.construct == other.construct and bool(self.becomes & other.signatures)

    def shares_site(self, other: Finding) -> bool:
        """Whether both were raised at one site of the target's own code, by one check with one
        exception type: one line to fix, whatever construct reached it."""
        return bool(self.site) and (self.scope, self.error, self.site) == (other.scope, other.error, other.site)


@dataclass(frozen=True)
class RootCause:
    """Findings that are one bug: `key` and `reproducer` are those of the finding the others mask
    (or, joined at a site, of the one with the most runs); `errors` and `constructs` give each
    member's exception type and construct, with its runs, the named one first."""

    key: str
    runs: int
    errors: tuple[tuple[str, int], ...]
    members: tuple[str, ...]
    constructs: tuple[tuple[str, int], ...] = ()

    @property
    def parts(self) -> tuple[tuple[str, int], ...]:
        """What tells the members apart, with the runs of each: exception types, constructs, or both."""
        errors = {error for error, _ in self.errors}
        constructs = {construct for construct, _ in self.constructs}
        if len(constructs) <= 1:
            named = [error for error, _ in self.errors]
        elif len(errors) <= 1:
            named = [construct for construct, _ in self.constructs]
        else:
            named = [
                f"{error} on {construct}"
                for (error, _), (construct, _) in zip(self.errors, self.constructs, strict=True)
            ]
        counted: dict[str, int] = {}
        for name, (_, runs) in zip(named, self.errors, strict=True):
            counted[name] = counted.get(name, 0) + runs
        return tuple(counted.items())

    @property
    def label(self) -> str:
        """The line a summary prints: the key, its runs, and what tells its members apart where they differ."""
        parts = self.parts
        if len(parts) <= 1:
            return f"{self.key} [{self.runs} runs]"
        return f"{self.key} [{self.runs} runs: " + ", ".join(f"{name} {runs}" for name, runs in parts) + "]"


def _error_name(error: str) -> str:
    """The exception type in a kind of error (`raises NameError where ...`), or the kind itself."""
    words = [word for word in error.split() if word.endswith(("Error", "Exception", "Interrupt", "Warning"))]
    return words[0] if words else error


def root_causes(found: Iterable[Finding]) -> list[RootCause]:
    """One root cause per bug: findings on the same check and construct are one where one masks
    another (`Finding.masks`), and findings raised at one site of the target's own code, with one
    exception type, are one whatever their construct (`Finding.shares_site`); apart from that, two
    kinds of error, constructs or checks are two.

    The cause is named after the finding that masks none of its group (the
    plainest failure), most runs first; causes are ordered by runs.
    """
    merged: dict[str, Finding] = {}
    for finding in found:
        known = merged.get(finding.key)
        merged[finding.key] = finding if known is None else known.joined(finding)
    parent = {key: key for key in merged}

    def root(key: str) -> str:
        while parent[key] != key:
            key = parent[key]
        return key

    for key, finding in merged.items():
        for other_key, other in merged.items():
            if key != other_key and (finding.masks(other) or finding.shares_site(other)):
                parent[root(key)] = root(other_key)
    groups: dict[str, list[Finding]] = {}
    for key in merged:
        groups.setdefault(root(key), []).append(merged[key])
    causes = []
    for members in groups.values():
        plain = [m for m in members if not any(m.masks(other) for other in members if other is not m)]
        named = max(plain or members, key=lambda finding: finding.runs)
        ordered = sorted(members, key=lambda finding: (finding is not named, -finding.runs))
        causes.append(
            RootCause(
                named.key,
                sum(finding.runs for finding in members),
                tuple((_error_name(finding.error), finding.runs) for finding in ordered),
                tuple(finding.key for finding in ordered),
                tuple((finding.construct, finding.runs) for finding in ordered),
            )
        )
    return sorted(causes, key=lambda cause: -cause.runs)
