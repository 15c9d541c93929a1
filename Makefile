# ProcOS Knowledge Engine: the two commands a new user needs are `make install` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint bench demo clean

## install: virtualenv + the package with its test tools (embedded PostgreSQL+pgvector comes with the
##          pgserver wheel), the system `zstd`/`tar` used to cross-check packs, and bpmnlint 11.
install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@command -v zstd >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { apt-get update -qq && apt-get install -y -qq zstd >/dev/null; } \
	      || echo "note: apt-get could not install zstd; the pack cross-check test will be skipped"; \
	  else echo "note: install zstd (e.g. sudo apt-get install zstd) to run the pack cross-check tests"; fi; }
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-audit --no-fund --no-save bpmnlint@11 >/dev/null 2>&1 \
	    || echo "note: npm install bpmnlint@11 failed; the BPMN lint test will be skipped"; \
	else echo "note: node/npm not found; the BPMN lint test will be skipped"; fi
	@echo "installed: activate with '. $(BIN)/activate', then run 'procos demo' or 'make test'"

## test: the whole suite (lint included) against real PostgreSQL+pgvector, FAISS and SpiffWorkflow.
test:
	$(BIN)/ruff check engine tests bench scripts
	$(BIN)/python -m pytest -q

bench:
	$(BIN)/python bench/bench_store.py --count 100000 --dim 768

demo:
	$(BIN)/procos demo

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache *.egg-info
