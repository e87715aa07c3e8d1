"""A drop-in for vLLM's `vllm.compilation.codegen`: the functions vLLM imports, with vLLM 0.33's contract.

    code, submod_names, consts = generate_execution_code(split_gm)
    fn = compile_execution_fn(code, submod_callables, submod_names, consts)

`generate_execution_code` writes vLLM's own dialect (`astgen.vllm_form`):
children of `split_gm` that are plain `GraphModule`s become
`__vllm_inlined_submods__<i>` functions, the others are called as
`__vllm_submods__[i]`, and objects that are not literals travel in `consts`,
once each by identity, in the order vLLM numbers them. `(code,
submod_names, consts)` is what vLLM pickles into its AOT compile cache, and
stock vLLM loads it as it loads its own; where vLLM's generator writes text
that fails (inf, nan, `_operator.add`, refused opcodes), this writes what it
meant.

`compile_execution_fn` given the very text `generate_execution_code` just
returned binds the code compiled from the trees it was rendered from
(`astgen.rendered`). It lifts any other text into astgen's IR
(`astgen.lift`) before anything of it runs, and compiles what the IR says: astgen's own,
vLLM's of today (`__vllm_submods__`, `__vllm_consts__`, inlined functions,
spliced into the entry), and the seed generator's of earlier caches (with
`consts=None`). vLLM's own operator namespace, `vllm`, is trusted besides
`aten` and `prims`.

`register`, the `vllm.general_plugins` entry point, installs these functions
in vLLM when `ASTGEN_VLLM=1`; `install` and `uninstall` do it by hand
(docs/vllm.md).
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib
import logging
import os
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch.fx

from astgen import ir, rendered, trace, vllm_form
from astgen.compiled import GeneratedCode, code_cache
from astgen.emit import emit
from astgen.loader import bind_verified, verified
from astgen.lower import lower
from astgen.passes import run_passes
from astgen.render import unparse

FUNCTION_NAME = "execution_fn"
# The operator namespaces vLLM's stitching code calls besides aten and prims.
TRUSTED_NAMESPACES = ("vllm",)


def generate_execution_code_with_name(
    split_gm: torch.fx.GraphModule,
    fn_name: str,
    with_submod: bool,
    consts: list[Any] | None = None,
    const_index: dict[int, int] | None = None,
) -> tuple[str, list[str], list[Any]]:
    """The defs for `split_gm` (inlined pieces first, then `fn_name`), the pieces it lists, and its constants.

    `consts` and `const_index` (object id -> index in `consts`) may be shared
    with earlier calls, as vLLM shares them across the graphs it inlines: new
    constants are appended, known ones reused. With `with_submod=False` a
    graph that calls a submodule is refused, as vLLM refuses it.
    """
    consts = [] if consts is None else consts
    const_index = {} if const_index is None else const_index
    before = len(consts)
    try:
        with trace.timed("astgen.lower"):
            functions, submod_names, function = vllm_form.stitching_functions(
                split_gm, fn_name, with_submod, consts, const_index
            )
    except vllm_form.UnnamedCallee:
        _forget(consts, const_index, before)
        return _portable(split_gm, fn_name, consts, const_index)
    with ir.too_deep_is_an_error(function, "render the source of"):
        source = unparse(ast.Module(body=vllm_form.defs(functions), type_ignores=[]), vllm_form.names(functions))
    trace.generated_source(source, function)
    return source, submod_names, consts


def generate_execution_code(split_gm: torch.fx.GraphModule) -> tuple[str, list[str], list[Any]]:
    """vLLM's text for `split_gm`'s stitching graph, the pieces it lists (`__vllm_submods__` order), its constants."""
    with _collector_paused():
        return _generate_execution_code(split_gm)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector held off while a text and its code are made, if it was on.

    Making them allocates an IR object or tree node per value read, tens of
    thousands for a big graph, none in a cycle: reference counts free them.
    The collections those allocations set off found nothing to free and,
    each walking the objects torch keeps alive, took half the time of
    `generate_execution_code` at 3,000 FX nodes (113 ms against 58 ms).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _generate_execution_code(split_gm: torch.fx.GraphModule) -> tuple[str, list[str], list[Any]]:
    consts: list[Any] = []
    # The imports, a blank line, then the first def.
    first_line = len(vllm_form.IMPORTS) + 2
    try:
        with trace.timed("astgen.lower"):
            functions, submod_names, function = vllm_form.stitching_functions(
                split_gm, FUNCTION_NAME, True, consts, {}, first_line
            )
    except vllm_form.UnnamedCallee:
        return _portable(split_gm, FUNCTION_NAME, [], {})
    with ir.too_deep_is_an_error(function, "render the source of"):
        source = unparse(vllm_form.module(functions), vllm_form.names(functions, len(vllm_form.IMPORTS)))
    trace.generated_source(source, function)
    # `compile_execution_fn` of this very text binds the code of these trees instead of lifting it.
    with trace.timed("astgen.compile"):
        rendered.remember(source, functions, TRUSTED_NAMESPACES)
    return source, submod_names, consts


def _forget(consts: list[Any], const_index: dict[int, int], before: int) -> None:
    """Drop the constants a refused attempt appended past `before`."""
    for obj in consts[before:]:
        del const_index[id(obj)]
    del consts[before:]


def _portable(
    split_gm: torch.fx.GraphModule, fn_name: str, consts: list[Any], const_index: dict[int, int]
) -> tuple[str, list[str], list[Any]]:
    """astgen's portable text (`astgen.emit`) for a graph that calls a function no path names.

    Its prelude binds such a callee from the consts table by name, which
    astgen's loader accepts; stock vLLM loads neither this nor its own text
    for the graph (vLLM writes the function's qualified name, which the text
    never imports).
    """
    with trace.timed("astgen.lower"):
        lowered = lower(split_gm, name=fn_name, inline=True)
    pieces, const_globals = ir.tables(lowered.function)
    shared = bool(consts)
    index_of_slot: dict[int, int] = {}
    for g in const_globals:
        obj = lowered.bindings[g.slot]
        if id(obj) not in const_index:
            const_index[id(obj)] = len(consts)
            consts.append(obj)
        index_of_slot[g.slot] = const_index[id(obj)]
    if shared:
        # Indices past earlier graphs' constants: this text is its own.
        with trace.timed("astgen.passes"):
            function = run_passes(lowered.function)
        with trace.timed("astgen.emit"):
            tree = emit(function, index_of_slot)
        generated: GeneratedCode = GeneratedCode(function, tree)
    else:
        generated = code_cache.get(lowered.function)
    trace.generated(generated)
    return generated.source, [g.piece for g in pieces if g.piece is not None], consts


def _node_ref(arg: Any, consts: list[Any], const_index: dict[int, int]) -> str:
    """`arg`, an FX node argument, as vLLM's text writes it: an expression, unparsed.

    Nodes by name, containers item by item, exact literals as literals, any
    other object (also NaN) as `__vllm_consts__[i]`, one slot per object.
    """
    return ast.unparse(_argument(arg, consts, const_index))


def _argument(arg: Any, consts: list[Any], const_index: dict[int, int]) -> ast.expr:
    if isinstance(arg, torch.fx.Node):
        return ast.Name(id=arg.name, ctx=ast.Load())
    if type(arg) in (list, tuple):
        items = [_argument(item, consts, const_index) for item in arg]
        return ast.List(elts=items, ctx=ast.Load()) if type(arg) is list else ast.Tuple(elts=items, ctx=ast.Load())
    if type(arg) is dict:
        keys: list[ast.expr | None] = [_argument(key, consts, const_index) for key in arg]
        return ast.Dict(keys=keys, values=[_argument(value, consts, const_index) for value in arg.values()])
    if ir.is_exact_literal(arg):
        return ast.Constant(value=arg)
    index = const_index.get(id(arg))
    if index is None:
        index = const_index[id(arg)] = len(consts)
        consts.append(arg)
    return ast.Subscript(
        value=ast.Name(id=vllm_form.CONSTS, ctx=ast.Load()), slice=ast.Constant(value=index), ctx=ast.Load()
    )


def compile_execution_fn(
    code: str,
    submod_callables: Mapping[str, Callable[..., Any]],
    submod_names: list[str],
    consts: list[Any] | None = None,
) -> Callable[..., Any]:
    """The function `code` defines, calling `submod_callables[name]` for each piece it calls.

    `submod_callables` may hold more callables than the code calls, and may
    lack inlined pieces. `consts=None` loads text written before vLLM had
    consts. A text `generate_execution_code` just returned, exactly, binds
    the code it was rendered with; any other is lifted into the IR before
    anything of it runs, and a refusal is a `CodegenError` naming the line.
    """
    trace.loaded(code)
    with trace.timed("astgen.load"):
        remembered = rendered.recall(code)
        if remembered is not None:
            return rendered.bind(remembered, submod_callables, submod_names, consts, TRUSTED_NAMESPACES)
        found = verified(code, trusted_namespaces=TRUSTED_NAMESPACES)
        return bind_verified(found, submod_callables, submod_names, consts, TRUSTED_NAMESPACES)


# ---------------------------------------------------------------- the vLLM plugin

ENABLE_VARIABLE = "ASTGEN_VLLM"

# Where vLLM 0.33 looks the functions up: its codegen module, and each module
# that imported them by name (`from vllm.compilation.codegen import ...`), so
# replacing them in codegen alone would leave those copies stock. Newer trees
# move codegen to `vllm.backends.compiler.codegen` and alias the old path.
_CODEGEN_MODULES = ("vllm.compilation.codegen", "vllm.backends.compiler.codegen")
_LOOKUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "vllm.compilation.codegen",
        ("generate_execution_code", "generate_execution_code_with_name", "compile_execution_fn", "_node_ref"),
    ),
    ("vllm.compilation.backends", ("generate_execution_code", "compile_execution_fn")),
    ("vllm.compilation.caching", ("compile_execution_fn",)),
)
_OPTIONAL_LOOKUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "vllm.backends.compiler.codegen",
        ("generate_execution_code", "generate_execution_code_with_name", "compile_execution_fn", "_node_ref"),
    ),
)

# (module name, attribute) -> vLLM's own function, for `uninstall`.
_replaced: dict[tuple[str, str], Any] = {}
_logger = logging.getLogger(__name__)


def register() -> None:
    """The `vllm.general_plugins` entry point: installs astgen when `ASTGEN_VLLM=1`, else does nothing."""
    if os.environ.get(ENABLE_VARIABLE) == "1":
        install()
    else:
        _logger.debug("astgen: %s is not 1; vLLM's own codegen stays", ENABLE_VARIABLE)


def install() -> list[str]:
    """Put astgen's functions wherever this vLLM looks them up; the `module.name`s replaced.

    Idempotent. Refuses, before replacing anything, a vLLM whose modules do not
    hold the functions where vLLM 0.33 holds them.
    """
    targets = _targets()
    installed: list[str] = []
    for module, names in targets:
        for name in names:
            current = getattr(module, name)
            key = (module.__name__, name)
            if key not in _replaced:
                _replaced[key] = current
            setattr(module, name, _OURS[name])
            installed.append(f"{module.__name__}.{name}")
    _logger.info("astgen: vLLM's stitching codegen is astgen's (%s)", ", ".join(installed))
    return installed


def uninstall() -> None:
    """Put vLLM's own functions back where `install` replaced them."""
    for (module_name, name), original in _replaced.items():
        setattr(sys.modules[module_name], name, original)
    if _replaced:
        _logger.info("astgen: vLLM's own stitching codegen is back (%d names)", len(_replaced))
    _replaced.clear()


def _targets() -> list[tuple[types.ModuleType, tuple[str, ...]]]:
    targets: list[tuple[types.ModuleType, tuple[str, ...]]] = []
    for module_name, names in _LOOKUPS:
        module = _module(module_name)
        if module is None:
            raise RuntimeError(f"astgen does not know this vLLM's layout: it has no module {module_name}")
        targets.append((module, names))
    for module_name, names in _OPTIONAL_LOOKUPS:
        module = _module(module_name)
        if module is not None:
            targets.append((module, names))
    for module, names in targets:
        for name in names:
            current = getattr(module, name, None)
            ours = current is _OURS[name]
            if current is None or not (ours or getattr(current, "__module__", None) in _CODEGEN_MODULES):
                raise RuntimeError(
                    f"astgen does not know this vLLM's layout: {module.__name__}.{name} is "
                    f"{'missing' if current is None else repr(current)}, not vLLM's codegen function"
                )
    return targets


def _module(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and name.startswith(error.name):
            return None
        raise


_OURS: dict[str, Any] = {
    "generate_execution_code": generate_execution_code,
    "generate_execution_code_with_name": generate_execution_code_with_name,
    "compile_execution_fn": compile_execution_fn,
    "_node_ref": _node_ref,
}
