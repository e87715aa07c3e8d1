"""astgen: FX stitching graphs compiled to Python functions through a typed IR and `ast`.

The pipeline, one module a stage:

    lower (FX -> IR)  ->  passes (IR -> IR)  ->  emit (IR -> ast)  ->  compiled (ast -> function)
"""

from astgen.compiled import CompiledGraph, compile_graph
from astgen.emit import emit
from astgen.errors import CodegenError
from astgen.ir import format_function, verify
from astgen.lower import Lowered, lower
from astgen.passes import run_passes
from astgen.render import to_source

__all__ = [
    "CodegenError",
    "CompiledGraph",
    "Lowered",
    "compile_graph",
    "emit",
    "format_function",
    "lower",
    "run_passes",
    "to_source",
    "verify",
]
