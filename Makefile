# Setup is two commands: `make demo` and `make test`. Both create .venv from .python-version.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# pyenv resolves .python-version (3.10); fall back to a python3.10 on PATH.
BASE_PYTHON ?= $(shell pyenv which python 2>/dev/null || command -v python3.10)
STAMP := $(VENV)/.installed
DEMO_OUT ?= experiments
# pytest workers (pytest-xdist); each test file runs whole on one worker, so module fixtures
# (and Brian2's Cython cache) are never shared between processes. TEST_JOBS=0: one process.
TEST_JOBS ?= 2
TEST_ARGS := $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

.PHONY: venv demo test test-fast lint type bench docs clean

venv: $(STAMP)

$(STAMP): pyproject.toml .python-version
	@test -n "$(BASE_PYTHON)" || { echo "error: Python 3.10 not found: install it with pyenv (pyenv install 3.10)"; exit 2; }
	@$(BASE_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || { echo "error: $(BASE_PYTHON) is not Python 3.10 (lava-nc 0.10.0 needs 3.10)"; exit 2; }
	$(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The main job on built-in defaults: train on CartPole-v1, compile for Loihi 2, play 10 episodes
# on the Lava simulator (checked step by step against the torch engine).
demo: $(STAMP)
	@start=$$(date +%s); \
	$(VENV)/bin/alchemy train --out $(DEMO_OUT) && \
	$(VENV)/bin/alchemy compile --target loihi2 --root $(DEMO_OUT) && \
	$(VENV)/bin/alchemy run --backend sim --episodes 10 --root $(DEMO_OUT) && \
	echo "demo finished in $$(( $$(date +%s) - start )) s"

test: $(STAMP)
	$(PY) -m pytest -q $(TEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q $(TEST_ARGS) -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check neuralalchemy compile sim hardware tests benchmarks main.py

type: $(STAMP)
	$(VENV)/bin/mypy neuralalchemy

bench: $(STAMP)
	@$(PY) -c 'import stable_baselines3, sb3_contrib, reservoirpy' 2>/dev/null || $(PY) -m pip install --quiet -e '.[bench]'
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Regenerate the configuration reference, then build the HTML with warnings as errors.
docs: $(STAMP)
	$(PY) -c 'from neuralalchemy.config import reference_markdown as r; open("docs/configuration.md", "w").write(r())'
	@$(PY) -c 'import sphinx, myst_parser' 2>/dev/null || $(PY) -m pip install --quiet -e '.[docs]'
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "documentation: docs/_build/html/index.html"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
