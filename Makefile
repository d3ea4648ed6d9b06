# ulasan: `make run` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_VERSION ?= 3.11
# The virtual environment lives outside the clone, keyed by the lock file and the clone's path
# (the project is installed editable, so two clones must not share one), so re-runs are cheap.
LOCK_HASH := $(shell sha256sum uv.lock | cut -c1-12)
PATH_HASH := $(shell pwd -P | sha256sum | cut -c1-8)
VENV ?= $(HOME)/.cache/ulasan/venv-$(LOCK_HASH)-$(PATH_HASH)
export UV_PROJECT_ENVIRONMENT := $(VENV)
BIN := $(VENV)/bin
# uv: the one on PATH, else a private copy in its own venv (Debian's Python is externally
# managed, PEP 668: `pip install` into it is refused, and a fresh Debian 12 has no pip at all)
UV_VENV ?= $(HOME)/.cache/ulasan/uv-venv
UV ?= $(shell command -v uv 2>/dev/null || echo $(UV_VENV)/bin/uv)
ULASAN := $(BIN)/ulasan
# the uv that installed the project, for the tests that run `uv export` on the lock
export ULASAN_UV := $(UV)
PYTEST_ARGS ?=

.PHONY: help setup system-deps uv venv run test test-unit lint schemas stack-up stack-down stack-status clean-state

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

system-deps:  ## apt-get install java, maven, postgresql and prometheus where missing
	@ULASAN_UV_VENV="$(UV_VENV)" bash deploy/local/install-system-deps.sh

uv:  ## uv: the one on PATH, else a private copy in ~/.cache/ulasan/uv-venv (system Python untouched)
	@[ -x "$(UV)" ] || { echo "installing uv into $(UV_VENV)"; \
		python3 -m venv "$(UV_VENV)" && "$(UV_VENV)/bin/pip" install --quiet uv; }
	@"$(UV)" --version

venv: $(VENV)/.installed  ## the locked virtual environment (uv), linked at .venv
$(VENV)/.installed: uv.lock pyproject.toml
	@$(MAKE) --no-print-directory uv
	$(UV) sync --frozen --all-extras --python $(PYTHON_VERSION)
	@touch $@
	@ln -sfn $(VENV) .venv

setup: system-deps venv  ## everything `run` and `test` need
	@ln -sfn $(VENV) .venv

run: setup  ## every process (stack, workers, gateway, trainer, UI), the stream, the loop
	$(ULASAN) run --profile demo

test: setup  ## the import contracts, then bring the stack up, run every test, bring it down
	$(BIN)/lint-imports --no-cache
	$(ULASAN) stack up
	@rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; $(ULASAN) stack down || true; exit $$rc

test-unit: venv  ## unit tests only, no services
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: venv  ## ruff, mypy and the import-linter contracts (layers, independence)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

schemas: venv  ## re-export the JSON Schema files of the events
	$(ULASAN) schemas export

stack-up: setup  ## start Kafka, PostgreSQL, MLflow and Prometheus on 127.0.0.1
	$(ULASAN) stack up
stack-down: venv  ## stop the local stack
	$(ULASAN) stack down
stack-status: venv  ## what runs, what does not
	$(ULASAN) stack status

.PHONY: helm deploy-check
helm:  ## build helm from the Go module proxy once (~/.cache/ulasan/bin, deploy/tools/install-helm.sh)
	@bash deploy/tools/install-helm.sh >/dev/null

deploy-check: venv helm  ## the chart (lint, render, Kubernetes schemas), compose and workflow checks
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/pytest tests/unit/deploy $(PYTEST_ARGS)
