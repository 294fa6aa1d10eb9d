# Two commands set everything up on a fresh machine (Python 3.11+): `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
DEMO_WORKDIR ?= workdirs/demo
# Transparent huge pages for XLA's per-step buffers (asl_jax/hugepages.py): read by glibc at start-up.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: venv demo test lint format bench clean

# The pinned set, then the checkout itself, editable and changing no pin: that puts the console
# scripts (asl-train, ...) in $(BIN).
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# Generates the synthetic benchmark (first run only), trains the demo config from scratch,
# evaluates it and prints the mAP table. Artefacts land in $(DEMO_WORKDIR).
demo: venv
	rm -rf $(DEMO_WORKDIR)
	time $(BIN)/python -m asl_jax.cli.train --config=demo.py --workdir=$(DEMO_WORKDIR)

# The whole suite, in TEST_WORKERS processes (pytest-xdist; a test file stays in one worker, so its
# module fixtures compile once). One process alone used 1.3 of CI's 2 cores: most tests wait on
# one compiling or Python thread. `TEST_WORKERS=0 make test` runs it in this process.
TEST_WORKERS ?= 2
test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Speed and memory benchmarks -> bench/RESULTS.md (~1 h on 2 cores), e.g.
# make bench BENCH_ARGS="--quick --only bench_evaluation --out_dir /tmp/bench".
bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) workdirs .jax_cache .pytest_cache
