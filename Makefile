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

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# Generates the synthetic benchmark (first run only), trains the demo config from scratch,
# evaluates it and prints the mAP table. Artefacts land in $(DEMO_WORKDIR).
demo: venv
	rm -rf $(DEMO_WORKDIR)
	time $(BIN)/python -m asl_jax.main --config=configs/demo.py --workdir=$(DEMO_WORKDIR)

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) workdirs .jax_cache .pytest_cache
