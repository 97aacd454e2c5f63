# Multi-Region Inference Orchestrator — every task a newcomer needs, top to bottom.
#   make demo   the whole pipeline on this machine (moto server, no AWS account, no Docker)
#   make test   lint, types, every test, template checks, sam build, checkov
SHELL := /bin/bash
.DEFAULT_GOAL := help

# --- interpreters ---------------------------------------------------------------------------
# Lambda runs python3.12: find one (pyenv shims may exist but fail, so each candidate is run).
PY312 := $(shell for p in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null); do \
	if "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then command -v "$$p"; break; fi; done)
# Everything but `sam build` also runs on python3 >= 3.11.
PY311 := $(shell for p in python3 python3.11; do \
	if "$$p" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' >/dev/null 2>&1; then command -v "$$p"; break; fi; done)
PYTHON := $(or $(PY312),$(PY311))

VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
AWS_DEFAULT_REGION ?= us-east-1
export AWS_DEFAULT_REGION
TEMPLATES := infrastructure/template.yaml infrastructure/region.yaml

.PHONY: help venv lint typecheck unit pytest validate build checkov test bench demo local clean

help:
	@echo "make demo    run the whole pipeline locally and print what happened"
	@echo "make local   a long-running local stack for the producer/consumer tools"
	@echo "make test    lint, type-check, tests, sam validate, cfn-lint, sam build, checkov"
	@echo "make bench   distributor latency/request-count benchmark (docs/benchmarks.md)"

# --- environments ---------------------------------------------------------------------------
$(BIN)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "error: need python3.12 (or python3 >= 3.11) on PATH" >&2; exit 1; }
	@echo "creating $(VENV) with $(PYTHON)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# --- checks ---------------------------------------------------------------------------------
lint: venv
	$(BIN)/ruff check src tests test-tools infrastructure

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest -q

validate: venv
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --template infrastructure/template.yaml --region $(AWS_DEFAULT_REGION)
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --template infrastructure/region.yaml --region $(AWS_DEFAULT_REGION)
	$(BIN)/cfn-lint $(TEMPLATES)

build: venv
	@test -n "$(PY312)" || { echo "error: sam build needs python3.12 (the Lambda runtime); none found" >&2; exit 1; }
	PATH="$(dir $(PY312)):$$PATH" SAM_CLI_TELEMETRY=0 $(BIN)/sam build \
		--template infrastructure/template.yaml --build-dir .aws-sam/build --cached --cache-dir .aws-sam/cache

checkov: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		$(foreach t,$(TEMPLATES),--file $(t))

# One command to real AWS (docs/deployment.md): region.yaml in every other region, then the
# primary stack with their queues. make deploy DEPLOY_ENV=prod REGIONS=us-west-2 PROFILE=p
DEPLOY_ENV ?= dev
PRIMARY_REGION ?= us-east-1
REGIONS ?= us-west-2,us-west-1
PROFILE ?=
DEPLOY_ARGS ?=
.PHONY: deploy
deploy: venv
	@test -n "$(PY312)" || { echo "error: sam build needs python3.12 (the Lambda runtime); none found" >&2; exit 1; }
	PATH="$(dir $(PY312)):$$PATH" PYTHONPATH=src:infrastructure SAM_CLI_TELEMETRY=0 $(BIN)/python -m deployer \
		--env $(DEPLOY_ENV) --primary-region $(PRIMARY_REGION) --regions "$(REGIONS)" \
		$(if $(PROFILE),--profile $(PROFILE)) $(DEPLOY_ARGS)

test: lint typecheck pytest validate build checkov
	@echo "make test: all checks passed"

bench: venv
	$(BIN)/python tests/benchmarks/bench_distributor.py

# --- local stack (docs/local-stack.md) -------------------------------------------------------
# moto server + the real distributor behind a Lambda-like SQS poller, in one process.
#   make demo  [DEMO_FLAGS="--count 500 --seed 3 --report reports/demo.html"]
#   make local [LOCAL_FLAGS=--workers]
#   make invoke EVENT=events/sqs-three-requests.json
demo: venv
	PYTHONPATH=src:test-tools$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/python -m localrun.demo $(DEMO_FLAGS)

local: venv
	PYTHONPATH=src:test-tools$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/python -m localrun.console $(LOCAL_FLAGS)

.PHONY: invoke
invoke: venv
	@test -n "$(EVENT)" || { echo "usage: make invoke EVENT=events/<file>.json" >&2; exit 2; }
	PYTHONPATH=src:test-tools$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/python -m localrun.invoke -e $(EVENT)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache reports
