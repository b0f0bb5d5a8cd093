# CyberPeace Alliance — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000
export PYTHONPATH := $(CURDIR)

.PHONY: run test test-postgres scale venv deps system-deps node-deps lint bench clean

$(VENV)/.deps: requirements.txt requirements-dev.txt
	@PYTHON=$(PYTHON) bash scripts/setup-venv.sh
	@touch $@

deps: $(VENV)/.deps

# The npm packages (Chart.js and Cytoscape.js into static/vendor/, axe-core for the browser
# tests), again when package-lock.json changes.
node_modules/.package-lock.json: package.json package-lock.json
	@bash scripts/node-deps.sh
	@touch $@

node-deps: node_modules/.package-lock.json

## make run: virtualenv, packages, migrations, demo data; then web + Celery worker + beat.
run: deps
	@$(MAKE) --no-print-directory node-deps || echo "Without node and npm, charts show as tables and the note graph as a list."
	@bash scripts/run.sh

## make test: everything, with real redis-server, Celery worker, aiosmtpd, PostgreSQL, chromium.
# (The scale check is its own target, `make scale`, so CI runs it once.)
test: deps system-deps node-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy alliance
	$(PY) -m pytest --ignore=tests/scale $(PYTEST_ARGS)

## The same suite on PostgreSQL (a throwaway cluster on loopback is started by the tests).
## tests/deploy is left out: it starts its own SQLite and PostgreSQL databases in either pass.
## Tests marked nodb read no database: they ran in `make test` and would run the same here.
test-postgres: deps system-deps node-deps
	ALLIANCE_TEST_DB=postgresql $(PY) -m pytest --ignore=tests/scale --ignore=tests/deploy -m "not nodb" $(PYTEST_ARGS)

## The scale check: two gunicorn processes and two Celery workers started from deploy/, one
## beat, on PostgreSQL + Redis on loopback, under a bounded load (SCALE_SECONDS, default 75).
scale: deps system-deps
	$(PY) -m pytest tests/scale -p no:cacheprovider $(PYTEST_ARGS)

system-deps:
	@bash scripts/system-deps.sh

## make lint: ruff (style, security, complexity) over the tree, mypy (mypy.ini) over alliance/.
lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy alliance

bench: deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts node_modules
