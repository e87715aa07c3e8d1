"""A drop-in for vLLM's `vllm.compilation.codegen`: the functions vLLM imports, with vLLM's contract.

    code, submod_names, consts = generate_execution_code(split_gm)
    fn = compile_execution_fn(code, submod_callables, submod_names, consts)

As in vLLM today, children of `split_gm` that are plain `GraphModule`s (the
eager attention pieces) are inlined, so only the other pieces need
callables; objects that are not literals travel in `consts`, once each by
identity, in graph order; and `(code, submod_names, consts)` is what vLLM
pickles into its AOT compile cache and rebuilds the function from in a later
process, without the graph.

The code is astgen's portable text (see `astgen.emit`): built as an AST from
the typed IR, so constants vLLM's generator cannot write (inf, nan, get_attr
tensors, ...) work. Its prelude binds pieces and constants once, so a call
reads globals, not `__vllm_submods__[i]` through a `functools.partial`.
Operators and torch functions are named in the text, since an `OpOverload`
does not pickle. `submod_names` lists the pieces the code calls; vLLM also
lists its inlined ones, which need no callable in either.

`compile_execution_fn` lifts any text into astgen's IR (`astgen.lift`)
before anything of it runs, and compiles what the IR says: astgen's own,
vLLM's of today (`__vllm_submods__`, `__vllm_consts__`, inlined functions,
spliced into the entry), and the seed generator's of earlier caches (with
`consts=None`). vLLM's own operator namespace, `vllm`, is trusted besides
`aten` and `prims`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.fx

from astgen import ir, trace
from astgen.compiled import GeneratedCode, code_cache
from astgen.emit import emit
from astgen.loader import bind_verified, verified
from astgen.lower import lower
from astgen.passes import run_passes

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
    """Code for `split_gm` defining `fn_name`, the pieces it calls, and its constants.

    `consts` and `const_index` (object id -> index in `consts`) may be shared
    with earlier calls, as vLLM shares them across the graphs it inlines: new
    constants are appended, known ones reused. With `with_submod=False` a
    graph that calls a submodule is refused, as vLLM refuses it.
    """
    if not with_submod:
        for node in split_gm.graph.find_nodes(op="call_module"):
            raise RuntimeError(f"call_module is not allowed for codegen target {node.target}.")
    consts = [] if consts is None else consts
    const_index = {} if const_index is None else const_index
    with trace.timed("astgen.lower"):
        lowered = lower(split_gm, name=fn_name, inline=True)
    pieces, const_globals = ir.tables(lowered.function)
    shared = bool(consts)
    index_of_slot: dict[int, int] = {}
    for g in const_globals:
        obj = lowered.bindings[g.slot]
        index = const_index.get(id(obj))
        if index is None:
            index = const_index[id(obj)] = len(consts)
            consts.append(obj)
        index_of_slot[g.slot] = index
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


def generate_execution_code(split_gm: torch.fx.GraphModule) -> tuple[str, list[str], list[Any]]:
    """Python source for `split_gm`'s stitching graph, the pieces it calls in call order, and its constants."""
    return generate_execution_code_with_name(split_gm, FUNCTION_NAME, with_submod=True)


def compile_execution_fn(
    code: str,
    submod_callables: Mapping[str, Callable[..., Any]],
    submod_names: list[str],
    consts: list[Any] | None = None,
) -> Callable[..., Any]:
    """The function `code` defines, calling `submod_callables[name]` for each piece it calls.

    `submod_callables` may hold more callables than the code calls, and may
    lack inlined pieces. `consts=None` loads text written before vLLM had
    consts. The text is lifted into the IR before anything of it runs; a
    refusal is a `CodegenError` naming the line.
    """
    trace.loaded(code)
    with trace.timed("astgen.load"):
        found = verified(code, trusted_namespaces=TRUSTED_NAMESPACES)
        return bind_verified(found, submod_callables, submod_names, consts, TRUSTED_NAMESPACES)
