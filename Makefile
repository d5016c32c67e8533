# Set-up and everyday commands. `make run` starts the service; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The example architecture plugins (entry points in `unlearn.architectures`); the tests use them.
PLUGINS := $(wildcard examples/plugins/*/pyproject.toml)

.PHONY: install run demo test lint format services browser migrate bench bench-quick bench-text deploy-check images compose-check clean

$(STAMP): pyproject.toml clients/python/pyproject.toml $(PLUGINS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# The pinned CPU build of torch first: a looser requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	# The client package (the `unlearn` command, the audit verifier the service also uses), editable.
	$(PY) -m pip install --quiet -e ./clients/python
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

install: $(STAMP)

## Start the API on :$PORT (default 8000) and one worker on embedded defaults (SQLite file, ./var/blobs, local Redis).
run: install
	bash scripts/run.sh

## Drive the running service end to end (data set, train, delete, poll, download, evidence).
demo: install
	$(PY) scripts/demo.py

migrate: install
	$(PY) -m app.core.migrate

## Make sure PostgreSQL and Redis answer, starting them where this machine has them.
services:
	bash scripts/ensure-services.sh

## Headless Chromium and chromium-driver for the browser tests (Debian packages; apt-get where this runs as root).
browser:
	bash scripts/install-browser.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install services browser lint
	$(PY) -m pytest

## Unlearning-quality and scaling benchmark (not part of the tests).
bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

## Unlearning quality on the text-transformer plugin (token ids) against retraining.
bench-text: install
	$(PY) -m bench.text

## Check the Dockerfile and compose file without a Docker engine.
deploy-check: install
	$(PY) -m pytest -q tests/deploy

## Build the images (needs a Docker engine).
images:
	docker compose build

## Build the compose stack on this host and drive it end to end (not part of `make test`; docs/deploy.md).
## Root on Debian: installs docker.io when absent, starts dockerd, builds its own base images (no registry pull).
compose-check: install
	PY=$(PY) bash scripts/compose-check.sh

clean:
	rm -rf var .pytest_cache .ruff_cache
