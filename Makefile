# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit property fuzz bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build on this machine's disk: a range
	# alone would let pip fetch a CUDA build of several GB.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m astgen.dump

lint: $(STAMP)
	$(VENV)/bin/ruff check astgen tests property_tests benchmarks
	$(VENV)/bin/ruff format --check astgen tests property_tests benchmarks
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -n 2 tests

property: $(STAMP)
	$(PY) -m pytest -n 2 property_tests

test: lint unit property

fuzz: $(STAMP)
	$(PY) -m astgen.fuzz --seconds 60 --workers 2 --out fuzz-out

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) build dist *.egg-info .hypothesis .mypy_cache .ruff_cache
