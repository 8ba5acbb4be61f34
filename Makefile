# Model Commons: `make run` (the embedded demo) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PORT ?= 8000
export PYTHONPATH := $(CURDIR)/platform:$(CURDIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Extras with torch-based runners; CI installs them all (see .ci/run).
EXTRAS ?= dev,browser
STAMP := $(VENV)/.installed-$(shell echo "$(EXTRAS)" | tr ',' '-')-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: venv install sandbox-tools run migrate seed test lint typecheck bench fixtures clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || PYTHON=python3; $${PYTHON:-python3} -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools

$(STAMP): $(PY) pyproject.toml client/pyproject.toml
	@if echo "$(EXTRAS)" | grep -qE 'hf|lmeval|embeddings'; then \
	  echo ">> installing torch==2.13.0 (CPU wheel) first"; $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q -e ./client
	rm -f $(VENV)/.installed-*; touch $(STAMP)

# The runner sandbox needs bubblewrap (Debian's bubblewrap package): installed here when missing and this runs as
# root with apt; otherwise it says how. Without it workers refuse sandboxed jobs, unless MC_SANDBOX=weak.
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo ">> installing bubblewrap (the runner sandbox)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null; }; \
	  else \
	    echo "!! bubblewrap (bwrap) is missing: install it (sudo apt-get install bubblewrap); until then workers"; \
	    echo "!! refuse sandboxed jobs unless MC_SANDBOX=weak (see /readyz)"; \
	  fi; }

venv install: $(STAMP) sandbox-tools

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: seed
	$(PY) manage.py collectstatic --noinput -v 0
	@echo ""
	@echo "  Model Commons is starting on http://127.0.0.1:$(PORT)/   (API docs: http://127.0.0.1:$(PORT)/api/docs/)"
	@data="$${MC_VAR_DIR:-$${XDG_DATA_HOME:-$$HOME/.local/share}/modelcommons}"; \
	  echo "  database: $${DATABASE_URL:-sqlite ($$data/modelcommons.sqlite3)}   broker: $${CELERY_BROKER_URL:-filesystem:// ($$data/broker)}"
	@echo "  demo accounts: maintainer, reviewer1, reviewer2, alice, bob   password: $${DEMO_PASSWORD:-commons-demo}"
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" PORT=$(PORT) $(BIN)/honcho start -f Procfile

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy apps workers platform/modelcommons
	$(BIN)/mypy --config-file client/pyproject.toml client/src/modelcommons_client
	$(PY) manage.py check
	DJANGO_SETTINGS_MODULE=modelcommons.settings.test $(PY) manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy apps workers platform/modelcommons
	$(BIN)/mypy --config-file client/pyproject.toml client/src/modelcommons_client

bench: install
	$(PY) tests/perf/run_all.py $(BENCH_ARGS)

fixtures: install
	$(PY) fixtures/digits/build.py

clean:
	rm -rf $(VENV) var .pytest_cache
