# Two commands for users (see README.md):
#   make lab    set up, make sure a broker runs, open JupyterLab on notebooks/
#   make test   set up, make sure a broker runs, run every test and every notebook
# Both are idempotent: a second run reuses .venv and the running broker.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
NBVAL := --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-current-env
LAB_PORT ?= 8888

.PHONY: lab test setup rabbitmq broker stop lint unit notebooks notebooks-again browser-deps clean

lab: broker
	@echo "==> Opening JupyterLab on notebooks/ (http://127.0.0.1:$(LAB_PORT)); Ctrl-C stops it, the broker keeps running ('make stop' stops it)."
	@$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.root_dir=notebooks \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

test:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory broker browser-deps lint unit notebooks notebooks-again; rc=$$?; \
	echo "==> make test: $$(( $$(date +%s) - start )) s wall time ($$([ $$rc = 0 ] && echo passed || echo FAILED))"; \
	exit $$rc

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed: found " + sys.version.split()[0])'
	@echo "==> Creating the virtual environment $(VENV) and installing requirements.txt (first time: a few minutes)"
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create a virtual environment: on Debian/Ubuntu install python3-venv (sudo apt-get install python3-venv)." >&2; exit 1; }
	@$(PY) -m pip install --quiet --upgrade pip > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip install --quiet -r requirements.txt >> $(VENV)/pip.log 2>&1 || { tail -40 $(VENV)/pip.log; echo "pip could not install requirements.txt (full log: $(VENV)/pip.log)." >&2; exit 1; }
	@touch $(STAMP)

rabbitmq:
	@bash scripts/ensure_rabbitmq.sh

broker: setup rabbitmq
	@$(PY) -m helpers broker start

stop: setup
	@$(PY) -m helpers broker stop

browser-deps:
	@bash scripts/ensure_chromium.sh

lint: setup
	@echo "==> ruff"
	@$(VENV)/bin/ruff check helpers tests notebooks benchmarks conftest.py

unit: setup
	@echo "==> Unit tests of the helpers, against the real broker"
	@$(VENV)/bin/pytest -q tests

notebooks: setup
	@echo "==> Every notebook under nbval (outputs compared), checking each leaves nothing on the broker"
	@$(VENV)/bin/pytest -q $(NBVAL) notebooks

notebooks-again: setup
	@echo "==> Every notebook again, in reverse order: they must pass twice in a row and in any order"
	@NOTEBOOK_ORDER=reverse $(VENV)/bin/pytest -q $(NBVAL) notebooks

clean: stop
	rm -rf $(VENV) .rabbitmq test-artifacts
