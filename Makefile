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

.PHONY: lab test test-broker setup rabbitmq broker stop lint browser-deps fonts clean

lab: broker fonts
	@echo "==> Opening JupyterLab on notebooks/ (http://127.0.0.1:$(LAB_PORT)); Ctrl-C stops it, the broker keeps running ('make stop' stops it)."
	@$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.root_dir=notebooks \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

test:
	@export TEST_T0=$$(date +%s) TUTORIAL_BROKER=private; \
	$(MAKE) --no-print-directory setup rabbitmq browser-deps fonts site-deps && bash scripts/test.sh

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
	@$(PY) -m helpers cluster stop

browser-deps:
	@bash scripts/ensure_chromium.sh

# A CJK font for the Chinese edition's diagrams and charts (never fails: says what to install)
fonts:
	@bash scripts/ensure_fonts.sh

lint: setup
	@$(VENV)/bin/ruff check helpers tests notebooks benchmarks scripts examples site conftest.py

# Run the notebooks against a broker you name (your Docker or cloud RabbitMQ):
#   make test-broker AMQP_URL=amqp://user:password@host:5672/vhost
# Every cell must run without error and leave nothing behind; outputs that differ from the
# committed ones (another version, another broker) are reported, not failed.
test-broker: setup
	@test -n "$(AMQP_URL)" || { echo "Set AMQP_URL, e.g. make test-broker AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F" >&2; exit 1; }
	@AMQP_URL='$(AMQP_URL)' NBVAL_REPORT_DIFFS=1 $(VENV)/bin/pytest -q $(NBVAL) notebooks

# After changing the English text of a chapter: bring locale/zh_CN/LC_MESSAGES/*.po in step
# (changed cells turn fuzzy) and rebuild notebooks/zh/ (docs/authoring.md, "Translations").
.PHONY: translations
translations: setup
	@$(PY) scripts/i18n.py extract
	@$(PY) scripts/i18n.py build

# The published site (issue 22): the executed chapters as static pages, nothing run, nothing
# loaded from another host; English in site/_build/html/en/, Chinese in zh_CN/ once
# notebooks/zh/ is complete. `make site-deps` installs requirements-site.txt into .venv (the
# diagrams are the static pictures saved in the notebooks: no widget manager to fetch).
.PHONY: site site-deps
SITE_STAMP := $(VENV)/.installed-site-requirements

site: site-deps
	@$(PY) scripts/site_build.py
	@echo "==> Open site/_build/html/index.html, or serve it: $(PY) -m http.server -b 127.0.0.1 -d site/_build/html"

site-deps: $(SITE_STAMP)

$(SITE_STAMP): requirements-site.txt $(STAMP)
	@echo "==> Installing requirements-site.txt (Sphinx, myst-nb, the theme)"
	@$(PY) -m pip install --quiet -r requirements-site.txt > $(VENV)/pip-site.log 2>&1 || { tail -40 $(VENV)/pip-site.log; echo "pip could not install requirements-site.txt (full log: $(VENV)/pip-site.log)." >&2; exit 1; }
	@touch $(SITE_STAMP)

clean: stop
	rm -rf $(VENV) .rabbitmq test-artifacts
	@echo "The reference RabbitMQ's root filesystem is kept (shared by every checkout): remove it with .venv/bin/python -m helpers rabbitmq remove before make clean, or rm -rf ~/.cache/rabbitmq-pika-tutorial."
