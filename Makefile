# One entry point: every target bootstraps the local virtual environment first,
# so a fresh machine needs nothing but python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
# Every Python process these targets start writes the bytecode of what it
# imports, and the next reads it, even where the machine sets
# PYTHONDONTWRITEBYTECODE (an empty value unsets it): the suite starts hundreds
# (pytest workers, deportwatch commands, crawl children, Celery workers), and
# without the cache each compiles every module it imports again. On 2 cores
# this halves a pytest worker's collection, 9.3 s to 4.3 s of CPU.
export PYTHONDONTWRITEBYTECODE =
# pytest workers (pytest-xdist): twice the cores, because the end-to-end tests
# spend much of their time waiting on crawls, brokers and timeouts (a clean
# clone's whole make test on 2 cores, with PostgreSQL, minutes apart: 4 workers
# 5 min 28 s, 5 workers 5 min 56 s; BENCHMARKS.md); JOBS=0 runs the suite in
# one process.
# --dist loadfile --no-loadscope-reorder: each test file goes whole to one
# worker, in the collected order, which tests/file_order.py makes longest first
# (by tests/durations.json): the longest files start at once, an idle worker
# takes the next file, and the run ends on short files (longest-processing-time
# scheduling). A file's module-scoped fixtures (the fault matrix's crawls) are
# built once.
JOBS ?= $(shell $(PYTHON) -c 'import os; print(2 * (os.cpu_count() or 1))')

.PHONY: install run test lint typecheck unit eval bench reliability clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# pywb's environment needs no pip of its own (uv installs into it): 0.2 s
	# to make where a venv with pip takes 4 s.
	$(PYTHON) -m venv --without-pip $(VENV)/pywb
	# uv installs the same versions pip would resolve, in parallel and from its
	# cache: about 20 s where pip took 55 s (2 cores, warm caches), the first
	# step of every clean clone's make test. It compiles no bytecode up front
	# (pip compiles every file of every package); the first import of a
	# module writes it, see PYTHONDONTWRITEBYTECODE above.
	$(BIN)/python -m pip install --quiet uv
	# pywb (the evidence replay test's, in a venv of its own) installs at the same time.
	$(BIN)/uv pip install --quiet --python $(VENV)/pywb/bin/python 'pywb>=2.8,<3' & pywb=$$!; \
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]' && wait $$pywb
	touch $(STAMP)

## One-off crawl of every enabled source into ./data/archive.db
## (offline: make run ARGS="--replay tests/fixtures/web")
run: $(STAMP)
	$(BIN)/deportwatch crawl --all $(ARGS)

## Lint, formatting and types beside the test suite (they take a core for half a
## minute while the suite's first tests wait on crawls); each one's lines as they come
test: $(STAMP)
	@$(MAKE) --no-print-directory -j3 --output-sync=line lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder $(ARGS)

## Flagging quality on the labeled texts (EVALUATION.md)
eval: $(STAMP)
	$(BIN)/python -m bench.eval_flagging

## The reliability tests, and RELIABILITY.md written from their results
## (set DEPORTWATCH_TEST_DATABASE_URL=postgresql://... to include PostgreSQL)
reliability: $(STAMP)
	$(BIN)/python -m tests.reliability_report

## Benchmarks (BENCHMARKS.md); BENCH_POSTGRES=postgresql://... also crawls into PostgreSQL
BENCH_POSTGRES ?=
bench: $(STAMP)
	$(BIN)/python -m bench.flag_throughput --articles 2000
	$(BIN)/python -m bench.crawl_throughput --pages 5000 $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
