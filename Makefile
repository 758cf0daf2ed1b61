# Two commands do all set-up on a fresh machine:
#   make demo   create .venv, install the pinned stack, run the embedded demo
#   make test   the test suite (same venv); .ci/run calls this
# On a SLURM login node, once: make slurm-profile PARTITION=gpu [ACCOUNT=mylab] [FORCE=1]
# installs the profile that `snakemake --profile slurm` finds (docs/cluster.md).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
WORKDIR ?= .
CONFIG ?=

.PHONY: venv demo run test lint report clean slurm-profile

# uv installs exactly the lock (requirements/lock.txt + dev.txt, no resolution): a uv on
# PATH, else the one pinned in dev.txt, put into the venv by the system's pip (a venv
# without pip is made in 0.2 s, with it in 7 s), or by the venv's own where that fails.
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (CI images) Python
# never caches it, and every Snakemake job then compiles torch & co. again (imports 2.3x
# slower: 11.8 s against 5.0 s for the training job's).
UV ?= $(or $(shell command -v uv 2>/dev/null),$(BIN)/uv)
# uv does not read pip's configuration: the places pip finds wheels in (here the local CPU
# torch wheel) are passed on, so torch is that wheel and never a CUDA build from the index.
FIND_LINKS ?= $(shell $(PYTHON) -m pip config list 2>/dev/null \
	| sed -n "s/^[^=]*find-links='\(.*\)'$$/\1/p" | tr ' ' '\n' | sort -u)

$(BIN)/dacapo-flow: requirements/lock.txt requirements/dev.txt pyproject.toml dacapo_core/segment/_flood.c
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	test -x $(UV) || $(PYTHON) -m pip --python $(BIN)/python install -q -c requirements/dev.txt uv \
		|| { $(BIN)/python -m ensurepip >/dev/null && $(BIN)/python -m pip install -q -c requirements/dev.txt uv; }
	$(UV) pip sync -q --compile-bytecode --python $(BIN)/python \
		$(addprefix --find-links ,$(FIND_LINKS)) requirements/lock.txt requirements/dev.txt
	$(UV) pip install -q --python $(BIN)/python --no-deps --reinstall-package dacapo-flow -e .
	$(UV) pip check -q --python $(BIN)/python
	touch $@

venv: $(BIN)/dacapo-flow

demo: run

# make run [CONFIG=config/my_experiment.yaml] [WORKDIR=DIR]: the demo without CONFIG.
# The same command finishes a crashed or killed run: a stale lock is removed (only
# when no Snakemake runs in WORKDIR), incomplete jobs rerun, blockwise stages resume.
run: venv
	$(BIN)/dacapo-flow unlock $(WORKDIR)
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete --directory $(WORKDIR) \
		$(if $(CONFIG),--configfile $(CONFIG))

report: venv
	$(BIN)/snakemake --cores $(CORES) --report report.html

slurm-profile: venv
	$(BIN)/dacapo-flow profile install slurm $(if $(PARTITION),--partition $(PARTITION)) \
		$(if $(ACCOUNT),--account $(ACCOUNT)) $(if $(FORCE),--force)

# Two pytest workers (pytest-xdist), a test file each at a time: the workflow tests spend
# much of their time starting jobs, so two of them share the 2 cores well.
TEST_WORKERS ?= 2
test: venv
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs .snakemake daisy_logs report.html
