# The two commands of the README: `make run` and `make test`. Both set up .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# uv installs the pinned set of constraints.txt with parallel downloads, in seconds where pip
# takes minutes; pip installs uv itself, at this version. Bytecode is compiled at install, as pip
# does: where PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile each import.
UV_VERSION := 0.13.8
DAGSTER_HOST ?= 127.0.0.1
DAGSTER_PORT ?= 3000
export PLATFORM_DATA_DIR ?= $(CURDIR)/.data
export DAGSTER_HOME ?= $(PLATFORM_DATA_DIR)/dagster_home
# The drift reports' links point at the report server `make run` starts beside the UI.
export PLATFORM_REPORTS_URL ?= http://$(DAGSTER_HOST):$(shell echo $$(($(DAGSTER_PORT) + 1)))

.PHONY: setup instance run test test-prod test-e2e lint bench bench-quick constraints

setup: $(VENV)/.installed

# The Dagster instance under $(DAGSTER_HOME), its storage created by one process (processes that
# open a new instance at once race on its schema: `dagster dev`'s, or CLI runs in parallel) and
# each model's training pool limited before the first run may hold it.
instance: setup
	$(BIN)/python platform/bootstrap.py --instance-only

# Reinstall whenever pyproject.toml or the pinned versions change; the stamp records the last
# good install. Versions come from constraints.txt, the set the tests passed with.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0])'
	@echo "Setting up $(VENV) with $$($(PYTHON) --version), once (pyproject.toml or constraints.txt changed, or first run):"
	@$(PYTHON) -m venv $(VENV)
	@echo "  installing uv $(UV_VERSION), which installs the rest ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@echo "  installing the platform and its packages at the pinned versions (dagster, duckdb, scikit-learn, evidently, ...) ..."
	@$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]'
	@echo "  done: $$($(BIN)/python -m pip list --disable-pip-version-check 2>/dev/null | tail -n +3 | wc -l) packages in $(VENV)."
	@touch $@

# Pin what pyproject.toml's ranges resolve to today, from a fresh environment.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .venv-constraints/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-constraints

# Bootstraps, then serves Dagster and the reports until Ctrl-C (platform/run.py says how);
# `make run RUN_ARGS=--no-bootstrap` serves the instance as it is.
run: setup
	@PLATFORM_REPLAY=$${PLATFORM_REPLAY:-on} $(BIN)/python platform/run.py --host $(DAGSTER_HOST) --port $(DAGSTER_PORT) $(RUN_ARGS)

# Everything but the browser journeys, which have their own target (both run in CI: .ci/run).
test: setup
	$(BIN)/pytest --ignore=tests/e2e -n 2 --dist loadgroup

# Only the production profiles (S3, PostgreSQL and Redis servers and Celery workers started by the
# tests; also in `make test`).
test-prod: setup
	$(BIN)/pytest tests/prod

# The journeys of docs/tour.md in headless Chromium against `platform/run.py` on a temporary
# instance (a few minutes); installs Debian's chromium first when it is missing.
test-e2e: setup
	bash tests/e2e/install_browser.sh
	$(BIN)/pytest tests/e2e

# Benchmarks, not part of `make test`: each starts from a fresh temporary lake and Dagster instance,
# prints its figures beside their targets and records them in $(PLATFORM_DATA_DIR)/bench/.
bench: setup
	$(BIN)/python -m bench.suite

bench-quick: setup
	$(BIN)/python -m bench.suite --quick

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
