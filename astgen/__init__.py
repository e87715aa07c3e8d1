"""astgen: FX stitching graphs compiled to Python functions through a typed IR and `ast`.

The pipeline, one module a stage:

    lower (FX -> IR)  ->  passes (IR -> IR)  ->  emit (IR -> ast)  ->  compiled (ast -> function)

and back from a portable artifact (code text, piece names, constants):

    lift (text -> IR)  ->  emit  ->  loader (compile, cache, bind)  ->  function
"""

from astgen._version import __version__ as __version__
from astgen.compiled import Artifact, CompiledGraph, compile_graph
from astgen.emit import emit
from astgen.errors import CodegenError, VerifyError
from astgen.ir import format_function, verify
from astgen.loader import load
from astgen.lower import Lowered, lower
from astgen.passes import run_passes

# The torch.compile backend lives in `astgen.piecewise`; `astgen.backend` is its factory.
from astgen.piecewise import Backend, backend
from astgen.render import to_source
from astgen.split import Split, split_graph

__all__ = [
    "Artifact",
    "Backend",
    "CodegenError",
    "CompiledGraph",
    "Lowered",
    "Split",
    "VerifyError",
    "backend",
    "compile_graph",
    "emit",
    "format_function",
    "load",
    "lower",
    "run_passes",
    "split_graph",
    "to_source",
    "verify",
]
