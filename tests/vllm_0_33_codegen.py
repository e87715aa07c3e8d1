"""vLLM 0.33.0's own generator, `vllm/compilation/codegen.py`, read from the installed wheel.

The tests run astgen's loader on text the real generator writes. The module
imports only torch, so it is loaded by path (`benchmarks.vllm033`) from the
vLLM environment `make` builds (`.venv-vllm`, which `make unit` depends on),
or from `$ASTGEN_VLLM_CODEGEN`. Without it the tests that import this fail:
they are never skipped.
"""

from __future__ import annotations

from benchmarks import vllm033

_module, _where = vllm033.load()
if _module is None:
    raise ImportError(f"{_where}; `make .venv-vllm/.installed` installs vLLM 0.33.0")

generate_execution_code = _module.generate_execution_code
compile_execution_fn = _module.compile_execution_fn
