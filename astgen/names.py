"""Names in generated code: the rules for them, and the one namespace that hands them out.

Every stage that names something asks here. Lowering takes FX's names and
fresh ones for what it adds (`Namespace`, as `torch.fx.graph._Namespace` is
FX's); `passes.assign_names` makes them clean (`clean_name`); `emit` reuses
dead names of the same `stem`; a piece's callable is `piece_name(target)`.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable

# Names the text of a portable artifact gives a meaning of its own: the
# modules its prelude imports. Keywords and builtins could not be read back.
RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | frozenset({"torch", "operator"})
)
_INVALID = re.compile(r"[^A-Za-z0-9_]")
_INVALID_RUN = re.compile(r"_*[^A-Za-z0-9_]+_*")
# What a fresh name appends to its base (`x_1`), and so what a stem drops.
SUFFIX_CHARACTERS = "0123456789_"


def is_identifier(name: str) -> bool:
    """Whether `name` can be written as itself where Python expects a name: a
    keyword argument, an attribute, a function's name. ASCII only, as
    `is_clean_name` explains."""
    return name.isascii() and name.isidentifier() and not keyword.iskeyword(name)


def is_clean_name(name: str) -> bool:
    """A name that survives `unparse` -> `parse` as itself, shadows nothing, and that the loader accepts.

    ASCII only: Python folds Unicode identifiers by NFKC when parsing, so two
    distinct names could become one. No leading underscore: the loader
    refuses builtins' names and dunders in text (`astgen.lift`), and dunders are the
    loader's own (`__astgen_consts__`).
    """
    return name.isascii() and name.isidentifier() and name not in RESERVED and not name.startswith("_")


def clean_name(name: str) -> str:
    """The readable identifier closest to `name` that `is_clean_name` accepts."""
    # A run of characters no identifier holds, with the underscores around
    # it, becomes one underscore: `x; __import__('os')` reads `x_import_os`.
    cleaned = _INVALID_RUN.sub("_", name).strip("_") if _INVALID.search(name) else name
    # A trailing underscore is ordinary (`l_x_`); a leading one the loader refuses.
    cleaned = cleaned.lstrip("_")
    # Nothing readable left (`é`, `_`, ``).
    if not cleaned:
        cleaned = "v"
    elif cleaned[0].isdigit():
        cleaned = "v" + cleaned
    if cleaned in RESERVED:
        cleaned += "_"
    return cleaned


def stem(name: str) -> str:
    """`name` without the suffix a fresh name appends: `getitem_907` -> `getitem`."""
    return name.rstrip(SUFFIX_CHARACTERS)


def piece_name(target: str) -> str:
    """The global a `call_module` target's callable is bound to: the call's
    result is named after the target, so the callee takes a name of its own."""
    return f"{target}_fn"


class Namespace:
    """The names of one function, and fresh ones on demand.

    `taken` is every name `fresh` must avoid: those given out, and those
    reserved for later (FX's node names, before their nodes are lowered).
    `given` is the names given out so far: a reserved name can still be
    claimed, once, by what it was reserved for.
    """

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self.taken: set[str] = set(reserved)
        self.given: set[str] = set()
        # Per base, the first suffix `fresh` has not yet found taken: every
        # name before it stays taken (only `release` frees one, and it forgets
        # these), so a base asked for again does not test them again. Without
        # it the n-th `max_1` of n spliced pieces tested n names.
        self.next_suffix: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        """`base`, or `base_1`, `base_2`, ...: the first that is not taken; now given."""
        taken = self.taken
        suffix = self.next_suffix.get(base)
        if suffix is None:
            name, suffix = base, 1
        else:
            name, suffix = f"{base}_{suffix}", suffix + 1
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        self.next_suffix[base] = suffix
        taken.add(name)
        self.given.add(name)
        return name

    def claim(self, name: str) -> str:
        """`name` itself unless it was given already (it may be reserved), else a fresh one."""
        if name in self.given:
            return self.fresh(name)
        self.taken.add(name)
        self.given.add(name)
        return name

    def give(self, names: Iterable[str]) -> None:
        """Mark `names` given: fixed by something else (the function's own name, a signature)."""
        for name in names:
            self.taken.add(name)
            self.given.add(name)

    def release(self, name: str) -> None:
        """Unreserve `name` if it was never given, so `fresh(name)` may give it."""
        if name not in self.given:
            self.taken.discard(name)
            self.next_suffix.clear()
