# CyberPeace Alliance — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000
export PYTHONPATH := $(CURDIR)

.PHONY: run test test-postgres venv deps system-deps lint bench clean

$(VENV)/.deps: requirements.txt requirements-dev.txt
	@PYTHON=$(PYTHON) bash scripts/setup-venv.sh
	@touch $@

deps: $(VENV)/.deps

## make run: virtualenv, packages, migrations, demo data; then web + Celery worker + beat.
run: deps
	@bash scripts/run.sh

## make test: everything, with real redis-server, Celery worker, aiosmtpd, PostgreSQL, chromium.
test: deps system-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

## The same suite on PostgreSQL (a throwaway cluster on loopback is started by the tests).
test-postgres: deps system-deps
	ALLIANCE_TEST_DB=postgresql $(PY) -m pytest $(PYTEST_ARGS)

system-deps:
	@bash scripts/system-deps.sh

lint: deps
	$(VENV)/bin/ruff check .

bench: deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
