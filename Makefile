# Leadflow: `make run` starts the whole system here, `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run migrate test test-unit test-integration lint format bench clean tools

install: $(STAMP)

# The locked versions (hashes checked) of the dev, local and otel extras, then Leadflow.
$(STAMP): pyproject.toml requirements/development.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/development.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Lock files: every dependency's exact version and hashes, resolved from the package index
# alone for Python 3.11 on Linux (the image's and CI's). requirements/production.txt is what
# the image installs (tracing's otel extra; no dev, no local extra). Run after changing the
# dependencies in pyproject; `make lock LOCK_ARGS=--upgrade` moves every pin to the newest.
PIP_COMPILE := PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile \
	--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: lock
lock: install
	$(PIP_COMPILE) $(LOCK_ARGS) --extra otel -o requirements/production.txt pyproject.toml
	$(PIP_COMPILE) $(LOCK_ARGS) --extra dev --extra local --extra otel -o requirements/development.txt pyproject.toml

migrate: install
	$(BIN)/leadflow db upgrade

# The local stack runs in development (LEADFLOW_ENV, unless set): every service alone
# defaults to production.
run: migrate
	$(BIN)/leadflow run

test: install tools
	$(BIN)/pytest

# promtool checks and unit-tests the alert rules (Debian's prometheus package ships it).
# chromium is the browser the console's browser tests and `make screenshots` drive
# (Playwright, from the dev extra, with the system browser: its own download is not used).
tools:
	@command -v promtool >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
	  || echo "promtool is missing (apt-get install prometheus): the alert-rule tests will skip"
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  chromium fonts-dejavu-core; } \
	  || echo "chromium is missing (apt-get install chromium): the console's browser tests fail"

.PHONY: screenshots
# PNGs of each console page into docs/screenshots/ (the README shows them), taken by the
# system chromium from a local stack with demo leads.
screenshots: install tools
	PYTHONPATH=. $(BIN)/python docs/screenshots/take.py

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration

.PHONY: demo
demo: install
	$(BIN)/leadflow demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared/leadflow cli services tests

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The end-to-end part runs on this PostgreSQL server (SQLite, with a note, if it does not
# answer). Pass options with E2E_ARGS, e.g. make bench E2E_ARGS="--quick --only rates,burst".
BENCH_POSTGRES ?= $(or $(LEADFLOW_TEST_POSTGRES_URL),postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)

# The benches start services against local brokers and databases: development.
bench chaos: export LEADFLOW_ENV ?= development

bench: install
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
	  || { echo "make bench needs wrk (apt-get install wrk)"; exit 2; }
	PYTHONPATH=. $(BIN)/python bench/intake.py
	$(BIN)/python bench/scoring_engine.py
	PYTHONPATH=. $(BIN)/python bench/scoring_history.py
	PYTHONPATH=. $(BIN)/python bench/scoring_batches.py
	$(BIN)/python bench/routing_engine.py
	PYTHONPATH=. $(BIN)/python bench/router_batches.py
	PYTHONPATH=. $(BIN)/python bench/reporting_batches.py
	PYTHONPATH=. $(BIN)/python bench/sla_batches.py
	PYTHONPATH=. $(BIN)/python bench/console_render.py --postgres '$(BENCH_POSTGRES)' \
	  --sqlite-if-unreachable
	PYTHONPATH=. $(BIN)/python bench/end_to_end.py --postgres '$(BENCH_POSTGRES)' \
	  --sqlite-if-unreachable $(E2E_ARGS)

.PHONY: chaos
# Random (seeded) infrastructure faults under a steady lead stream; see README "Chaos".
# Pass options with CHAOS_ARGS, e.g. make chaos CHAOS_ARGS="--seconds 60 --seed 7".
chaos: install
	PYTHONPATH=. $(BIN)/python bench/chaos.py $(CHAOS_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
