# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs unit property integration fuzz fuzz-vllm bench clean redis-server

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build on this machine's disk: a range
	# alone would let pip fetch a CUDA build of several GB.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Integration environments, one per framework tested against: $(1) the folder,
# $(2) the framework's pinned release, $(3) the pinned packages its modules import.
# Frameworks pin a CUDA torch of several GB, so torch 2.13.0 CPU comes first and
# the framework and its imports come with --no-deps.
define integration_env
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet torch==2.13.0
	$(1)/bin/python -m pip install --quiet --no-deps $(2)
	$(1)/bin/python -m pip install --quiet --no-deps -r $(3)
	$(1)/bin/python -m pip install --quiet --no-deps -e .
	touch $(1)/.installed
endef

# The real vLLM 0.33.0, for tests_vllm/ (docs/vllm.md).
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): requirements/vllm-cpu.txt pyproject.toml
	$(call integration_env,$(VLLM_VENV),vllm==0.33.0,requirements/vllm-cpu.txt)

# The real SGLang 0.5.23, for tests_sglang/ (docs/sglang.md).
SGLANG_VENV := .venv-sglang
SGLANG_PY := $(SGLANG_VENV)/bin/python
SGLANG_STAMP := $(SGLANG_VENV)/.installed

$(SGLANG_STAMP): requirements/sglang-cpu.txt pyproject.toml
	$(call integration_env,$(SGLANG_VENV),sglang==0.5.23,requirements/sglang-cpu.txt)

demo: $(STAMP)
	$(PY) -m astgen.dump

lint: $(STAMP)
	$(VENV)/bin/ruff check astgen tests tests_vllm tests_sglang property_tests benchmarks scripts
	$(VENV)/bin/ruff format --check astgen tests tests_vllm tests_sglang property_tests benchmarks scripts
	$(VENV)/bin/mypy

# The pages of docs/ (mkdocs.yml), into site/; strict: a broken link or reference fails.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

# tests/test_redis.py runs a real Redis server (Debian package redis-server);
# CI runs as root on Debian, so a missing server is installed here.
redis-server:
	command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)

# The unit suite runs in a random order (pytest-randomly), so a test that
# depends on another's leftovers fails at once; the seed is printed first,
# and `make unit TEST_SEED=N` replays that order.
ifndef TEST_SEED
TEST_SEED := $(shell $(PYTHON) -c 'import random; print(random.randrange(1 << 32))')
endif
# tests/vllm_0_33_codegen.py reads vLLM's own generator from the vLLM environment.
unit: $(STAMP) $(VLLM_STAMP) redis-server
	@echo "unit tests in random order, seed $(TEST_SEED) (replay: make unit TEST_SEED=$(TEST_SEED))"
	$(PY) -m pytest -n 2 -p randomly --randomly-seed=$(TEST_SEED) tests

# Bounded and derandomized: the "ci" Hypothesis profile in property_tests/conftest.py.
property: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -n 2 property_tests

integration: $(VLLM_STAMP) $(SGLANG_STAMP)
	$(VLLM_PY) -m pytest tests_vllm
	$(SGLANG_PY) -m pytest tests_sglang

test: lint docs unit property integration

# A campaign; failures become reproducer scripts in fuzz-out/ and stay saved in FUZZ_DB
# (a directory, or redis://host:port to share them between machines), which
# campaigns replay first and never delete from. It holds no passing graphs.
FUZZ_SECONDS ?= 60
FUZZ_WORKERS ?= 2
FUZZ_DB ?= .hypothesis/fuzz
# What to fuzz: astgen by default; e.g. FUZZ_TARGETS=vllm-api:benchmarks.string_baseline,
# or two targets (space-separated) for a differential run.
FUZZ_TARGETS ?= astgen
fuzz: $(STAMP)
	$(PY) -m astgen.fuzz --seconds $(FUZZ_SECONDS) --workers $(FUZZ_WORKERS) --db $(FUZZ_DB) --out fuzz-out \
		$(foreach target,$(FUZZ_TARGETS),--target $(target))

bench: $(STAMP) $(VLLM_STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(SGLANG_VENV) build dist site *.egg-info .hypothesis .mypy_cache .ruff_cache

# A campaign against the real vLLM 0.33 generator (vllm.compilation.codegen) in the vLLM
# environment; root causes and reproducers in fuzz-out/vllm (docs/fuzzing.md shows a run).
FUZZ_VLLM_SECONDS ?= 120
fuzz-vllm: $(VLLM_STAMP)
	PYTHONPATH=$(CURDIR) $(VLLM_PY) -m astgen.fuzz --seconds $(FUZZ_VLLM_SECONDS) --workers $(FUZZ_WORKERS) \
		--db none --out fuzz-out/vllm --target vllm-api:vllm.compilation.codegen
