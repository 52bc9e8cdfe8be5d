# `make run`: set up .venv and run the default campaign. `make test`: set up and run every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?= config/config.yaml
export OMP_NUM_THREADS ?= 1
# CPU build on these machines (a local wheel); on GPU nodes: make TORCH="torch==2.13.0" with your CUDA index.
TORCH ?= torch==2.13.0

.PHONY: run test lint dry-run clean

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[chgnet,dev]"
	touch $@

run: $(BIN)/activate
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) -s workflow/Snakefile
	@$(BIN)/python -m crystal_campaign.cli summary --configfile $(CONFIG)

dry-run: $(BIN)/activate
	$(BIN)/snakemake --dry-run --configfile $(CONFIG) -s workflow/Snakefile

lint: $(BIN)/activate
	$(BIN)/ruff check src scripts tests benchmarks
	$(BIN)/ruff format --check src scripts tests benchmarks
	$(BIN)/snakemake --lint -s workflow/Snakefile

test: $(BIN)/activate lint
	$(BIN)/pytest

clean:
	rm -rf results .snakemake
