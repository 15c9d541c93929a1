# ProcOS Knowledge Engine: the two commands a new user needs are `make install` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test chaos lint bench bench-docs bench-docs-render demo clean

## install: virtualenv + the package with its test tools (embedded PostgreSQL+pgvector comes with the
##          pgserver wheel), the system `zstd`/`tar` used to cross-check packs, `gpg` and `age` (signed and
##          encrypted bundles, checked against the stock tools), `chromium` (the panel's browser tests drive it
##          with Playwright; Playwright's own browser download is never used), and bpmnlint 11.
install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@missing=""; for tool in zstd gpg age chromium; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	pkgs=$$(echo "$$missing" | sed 's/gpg/gnupg/'); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { apt-get update -qq && apt-get install -y -qq $$pkgs >/dev/null; } \
	      || echo "note: apt-get could not install$$pkgs; the tests that need them will be skipped"; \
	  else echo "note: install$$pkgs (e.g. sudo apt-get install$$pkgs) to run the tests that need them"; fi; fi
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-audit --no-fund --no-save bpmnlint@11 >/dev/null 2>&1 \
	    || echo "note: npm install bpmnlint@11 failed; the BPMN lint test will be skipped"; \
	else echo "note: node/npm not found; the BPMN lint test will be skipped"; fi
	@echo "installed: activate with '. $(BIN)/activate', then run 'procos demo' or 'make test'"

## test: the whole suite (lint included) against real PostgreSQL+pgvector, FAISS and SpiffWorkflow.
test:
	$(BIN)/ruff check engine tests bench scripts tools
	$(BIN)/python -m pytest -q

## chaos: the whole reliability campaign (tests/chaos, all trials; tens of minutes), seeded by CHAOS_SEED
##        (default: the time; the seed is printed), writing docs/reliability.json and its figures into
##        docs/reliability.md. `make test` runs a small sample of it (CHAOS_SEED or seed 1).
CHAOS_SEED ?= $(shell date +%s)
chaos:
	@echo "reliability campaign, seed $(CHAOS_SEED) (reproduce: make chaos CHAOS_SEED=$(CHAOS_SEED))"
	CHAOS_FULL=1 CHAOS_SEED=$(CHAOS_SEED) CHAOS_REPORT=docs/reliability.json $(BIN)/python -m pytest -q \
	  -p no:cacheprovider tests/chaos; status=$$?; \
	  $(BIN)/python tools/render_reliability.py docs/reliability.json docs/reliability.md; exit $$status

bench:
	$(BIN)/python bench/bench_store.py --count 100000 --dim 768

## bench-docs: measure restore at 100k and 1M x 768 (bench_restore.py; the 1M run takes about an hour on
##             2 cores) and regenerate docs/benchmarks.md with its plots. bench-docs-render: only render.
bench-docs:
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/bench_restore.py --count 100000 --dim 768 --sweep --repeat 2 --out bench/results/restore_100000x768.json
	$(BIN)/python bench/bench_restore.py --count 1000000 --dim 768 --jobs 1,2 --out bench/results/restore_1000000x768.json
	$(BIN)/python bench/bench_hnsw_graph.py --count 50000 --dim 256 --builds 3 --out bench/results/hnsw_graph_50000x256.json
	$(MAKE) bench-docs-render

bench-docs-render:
	$(BIN)/python bench/make_docs.py

demo:
	$(BIN)/procos demo

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache *.egg-info
