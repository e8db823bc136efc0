# Two commands for a fresh machine: `make quickstart` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test test-slow lint quickstart bench suite clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python scripts/make_suite.py --check
	$(BIN)/python -m pytest -q -n auto

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

quickstart: $(STAMP)
	$(BIN)/imitate quickstart

bench: $(STAMP)
	$(BIN)/python benchmarks/env_speed.py
	$(BIN)/python benchmarks/policy.py
	$(BIN)/python benchmarks/demos.py
	$(BIN)/python benchmarks/eval.py
	$(BIN)/python benchmarks/expert.py --episodes 100

suite: $(STAMP)
	$(BIN)/python scripts/make_suite.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
