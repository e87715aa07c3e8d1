"""A drop-in for vLLM's `vllm.compilation.codegen`: the same two functions, the same contract.

`generate_execution_code(split_gm)` returns `(code, submod_names)`;
`compile_execution_fn(code, submod_callables, submod_names)` returns a callable
that runs the stitching graph with the given submodule callables. The code is
astgen's: built as an AST from the typed IR, so constants vLLM's generator
cannot render (inf, nan, devices, get_attr tensors, ...) work, and the code
text is only ever unparsed from the tree.

Objects other than submodules are bound by reference, so `code` alone cannot
carry them: `generate_execution_code` records them for `compile_execution_fn`
of the same code text in this process, for as long as `split_gm` is alive.
Code text from elsewhere is parsed and accepted when it reads no global but
builtins and submodules. Two live graphs can give the same code text while
binding different objects (two copies of a model, different weights): the
text alone cannot say which one is meant, so it is refused, never guessed.
"""

from __future__ import annotations

import ast
import builtins
import dis
import threading
import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch.fx

from astgen import ir
from astgen.compiled import GeneratedCode, bind, code_cache, function_code
from astgen.errors import CodegenError
from astgen.lower import fast_callable, lower
from astgen.passes import clean_name

FUNCTION_NAME = "execution_fn"


# eq=False: entries are told apart by identity; comparing their bindings would compare tensors.
@dataclass(frozen=True, eq=False)
class _Recorded:
    generated: GeneratedCode
    # Bindings with every submodule slot emptied: the registry must not keep
    # a model's pieces alive.
    bindings: tuple[object, ...]
    slot_of_target: dict[str, int]


# Every live graph's entry, by code text.
_recorded: dict[str, list[_Recorded]] = {}
# Reentrant: `_forget` is a weakref finalizer, which the garbage collector may
# run inside a section that already holds the lock, on the same thread.
_lock = threading.RLock()


def _forget(code: str, entry: _Recorded) -> None:
    with _lock:
        entries = _recorded.get(code, [])
        if entry in entries:
            entries.remove(entry)
        if not entries:
            _recorded.pop(code, None)


def _same_object(a: object, b: object) -> bool:
    # Each lowering makes its own bound-method object (`process_inputs`).
    return a is b or (isinstance(a, types.MethodType) and a == b)


def generate_execution_code(split_gm: torch.fx.GraphModule) -> tuple[str, list[str]]:
    """Python source for `split_gm`'s stitching graph, and its submodule targets in call order."""
    lowered = lower(split_gm, name=FUNCTION_NAME)
    generated = code_cache.get(lowered.function)
    submod_names: list[str] = []
    slot_of_target: dict[str, int] = {}
    for instruction in lowered.function.body:
        if isinstance(instruction, ir.CallModule):
            target = instruction.target
            if target not in slot_of_target:
                submod_names.append(target)
                slot_of_target[target] = instruction.module.slot
    submodule_slots = set(slot_of_target.values())
    bindings = tuple(None if slot in submodule_slots else obj for slot, obj in enumerate(lowered.bindings))
    entry = _Recorded(generated, bindings, slot_of_target)
    code = generated.source
    with _lock:
        _recorded.setdefault(code, []).append(entry)
    weakref.finalize(split_gm, _forget, code, entry)
    return code, submod_names


def compile_execution_fn(
    code: str,
    submod_callables: Mapping[str, Callable[..., Any]],
    submod_names: list[str],
) -> Callable[..., Any]:
    """The callable for `code`, calling `submod_callables[name]` for each name in `submod_names`."""
    missing = [name for name in submod_names if name not in submod_callables]
    if missing:
        raise CodegenError(f"submod_callables lacks {', '.join(map(repr, missing))}")
    with _lock:
        entries = list(_recorded.get(code, ()))
    if not entries:
        return _compile_foreign(code, submod_callables, submod_names)
    entry = entries[-1]
    if any(not all(map(_same_object, other.bindings, entry.bindings)) for other in entries[:-1]):
        raise CodegenError(
            f"{len(entries)} live graphs generated this code text but bind different objects "
            "(constants, get_attr tensors); the text cannot say which graph is meant"
        )
    bindings = list(entry.bindings)
    for name in submod_names:
        if name not in entry.slot_of_target:
            raise CodegenError(f"the code never calls submodule {name!r}")
        bindings[entry.slot_of_target[name]] = fast_callable(submod_callables[name])
    unbound = [target for target in entry.slot_of_target if target not in submod_names]
    if unbound:
        raise CodegenError(f"the code calls {', '.join(map(repr, unbound))}, which submod_names lacks")
    return bind(entry.generated, tuple(bindings))


def _compile_foreign(
    code: str, submod_callables: Mapping[str, Callable[..., Any]], submod_names: list[str]
) -> Callable[..., Any]:
    """Code text this process did not generate: parse it, check its shape, bind submodules by name."""
    try:
        tree = ast.parse(code, filename="<execution code>")
    except SyntaxError as error:
        raise CodegenError(f"execution code does not parse: {error.msg} (line {error.lineno})") from None
    definitions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    if len(definitions) != 1 or len(tree.body) != 1:
        raise CodegenError("execution code must define exactly one function and nothing else")
    for statement in definitions[0].body:
        if not isinstance(statement, (ast.Assign, ast.Delete, ast.Return)):
            raise CodegenError(f"execution code holds a {type(statement).__name__} statement (line {statement.lineno})")
    by_name = {clean_name(f"{name}_fn"): name for name in submod_names}
    compiled = function_code(tree, f"<astgen:{definitions[0].name}>")
    namespace: dict[str, Any] = {"__builtins__": builtins.__dict__, "__name__": "astgen.generated"}
    for global_name in compiled.co_names:
        if global_name in by_name:
            namespace[global_name] = fast_callable(submod_callables[by_name[global_name]])
        elif not hasattr(builtins, global_name) and _reads_global(compiled, global_name):
            raise CodegenError(
                f"execution code reads {global_name!r}, an object only the process that generated "
                "the code can bind: call generate_execution_code in this process"
            )
    arguments = definitions[0].args
    if arguments.defaults or any(default is not None for default in arguments.kw_defaults):
        # A default is an object the generating process bound; text only names it.
        raise CodegenError(
            "execution code has parameter defaults, which only the process that generated "
            "the code can bind: call generate_execution_code in this process"
        )
    return types.FunctionType(compiled, namespace, definitions[0].name)


def _reads_global(function_code: types.CodeType, name: str) -> bool:
    return any(
        instruction.opname == "LOAD_GLOBAL" and instruction.argval == name
        for instruction in dis.get_instructions(function_code)
    )
