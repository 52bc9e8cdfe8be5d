# `make run`: set up .venv and run the default campaign. `make test`: set up and run every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?= config/config.yaml
# The report goes beside the campaign's results unless given: make report REPORT=my.html
REPORT ?= $(shell $(BIN)/python -c 'import sys, yaml; print("results/%s/report.html" % yaml.safe_load(open(sys.argv[1]))["campaign"])' $(CONFIG))
export OMP_NUM_THREADS ?= 1
# CPU build on these machines (a local wheel); on GPU nodes: make TORCH="torch==2.13.0" with your CUDA index.
TORCH ?= torch==2.13.0

.PHONY: run report status test test-fast test-mattergen test-sevennet test-slurm lint dry-run prefetch clean

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[chgnet,chemeleon,dft,mace,mp,slurm,dev]"
	touch $@

# The config is checked first (one line per problem, before Snakemake reads it); the console shows
# progress, not every job's details (drop QUIET= to see them; each job's own log has its progress).
QUIET ?= --quiet rules host
run: $(BIN)/activate
	@$(BIN)/crystal-campaign check --configfile $(CONFIG)
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) -s workflow/Snakefile $(QUIET)
	@$(BIN)/crystal-campaign summary --configfile $(CONFIG)

# Finish the campaign if needed (a no-op when done), then write its self-contained HTML report.
report: run
	$(BIN)/snakemake --configfile $(CONFIG) -s workflow/Snakefile --report $(REPORT)
	@echo "report: $(REPORT)"

dry-run: $(BIN)/activate
	@$(BIN)/crystal-campaign check --configfile $(CONFIG)
	$(BIN)/snakemake --dry-run --configfile $(CONFIG) -s workflow/Snakefile

lint: $(BIN)/activate
	$(BIN)/ruff check src scripts tests benchmarks
	$(BIN)/ruff format --check src scripts tests benchmarks
	$(BIN)/snakemake --lint -s workflow/Snakefile

# Every stage, each under its budget, with timings (.ci/stages); the stage targets run one each.
test: $(BIN)/activate lint
	bash .ci/stages

# Debian's Chromium for the report's browser test (tests/test_plots.py); apt-get needs root.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null

test-fast: $(BIN)/activate $(CHROMIUM)
	$(BIN)/pytest -m "not mattergen and not sevennet and not slurm and not resume"

# Builds the separate CPU MatterGen environment (a no-op when it is up to date), then its tests.
MATTERGEN_ENV ?= .venv-mattergen
test-mattergen: $(BIN)/activate
	PYTHON=$(PYTHON) bash envs/build-mattergen-env.sh $(MATTERGEN_ENV)
	MATTERGEN_PYTHON=$(abspath $(MATTERGEN_ENV))/bin/python $(BIN)/pytest -m mattergen

# Builds the separate SevenNet environment (a no-op when it is up to date), then its tests.
SEVENNET_ENV ?= .venv-sevennet
test-sevennet: $(BIN)/activate
	PYTHON=$(PYTHON) bash envs/build-sevennet-env.sh $(SEVENNET_ENV)
	SEVENNET_PYTHON=$(abspath $(SEVENNET_ENV))/bin/python $(BIN)/pytest -m sevennet

# Installs Debian's SLURM + munge if missing (root) and starts a one-node cluster for two pytest
# processes (kills mid-relaxation; the rest), beside the local kill/resume tests: all three
# mostly wait (on the scheduler's status checks, on sentinels), so they overlap well.
test-slurm: $(BIN)/activate
	tests/slurm/cluster.sh install
	tests/slurm/cluster.sh start
	export CRYSTAL_CAMPAIGN_TEST_CLUSTER_UP=1; \
	$(BIN)/pytest -m resume -p no:cacheprovider > .pytest-resume.log 2>&1 & local=$$!; \
	$(BIN)/pytest -m slurm -k relaxed -p no:cacheprovider > .pytest-slurm.log 2>&1 & relaxed=$$!; \
	$(BIN)/pytest -m slurm -k "not relaxed" -p no:cacheprovider; rest=$$?; \
	wait $$relaxed; relaxed=$$?; wait $$local; resume=$$?; \
	cat .pytest-slurm.log .pytest-resume.log; rm -f .pytest-slurm.log .pytest-resume.log; \
	tests/slurm/cluster.sh stop; \
	test $$rest -eq 0 && test $$relaxed -eq 0 && test $$resume -eq 0

prefetch: $(BIN)/activate
	$(BIN)/crystal-campaign prefetch --configfile $(CONFIG)

status: $(BIN)/activate
	@$(BIN)/crystal-campaign status --configfile $(CONFIG)

clean:
	rm -rf results .snakemake
