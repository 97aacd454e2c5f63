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
UV_VERSION := 0.13.9
UV := $(BIN)/uv
# uv installs from uv.lock (pyproject.toml's pins, resolved): seconds instead of pip's minutes.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(BIN)/python
AWS_DEFAULT_REGION ?= us-east-1
export AWS_DEFAULT_REGION
TEMPLATES := infrastructure/template.yaml infrastructure/region.yaml
LOCK_INPUTS := uv.lock pyproject.toml test-tools/pyproject.toml
# The Lambda's runtime dependencies, exported from the lock (boto3 and what it pulls in come
# with the python3.12 runtime, so they stay out of the artifact).
LAMBDA_EXPORT := $(UV) export --frozen --no-dev --no-hashes --no-emit-project --no-emit-workspace \
	--no-emit-package boto3 --no-emit-package botocore --no-emit-package s3transfer \
	--no-emit-package urllib3 --no-emit-package python-dateutil --no-emit-package six \
	--format requirements-txt --no-header --quiet
DEV_EXPORT := $(UV) export --frozen --all-groups --all-extras --no-hashes --no-emit-project \
	--no-emit-workspace --format requirements-txt --no-header --quiet

.PHONY: help venv demo-env lint typecheck imports unit test-fast pytest validate build checkov \
	test bench demo local clean lock lock-check

help:
	@echo "make demo       run the whole pipeline locally and print what happened"
	@echo "make test       everything CI runs: lint, types, import contracts, tests, templates"
	@echo "make test-fast  unit tests only (under 30 s)"
	@echo "make local      a long-running local stack for the producer/consumer tools"
	@echo "make bench      distributor latency/request-count benchmark (docs/benchmarks.md)"
	@echo "make lock       re-resolve uv.lock and re-export the requirements files"

# --- environments ---------------------------------------------------------------------------
# uv itself comes from the package index into the virtualenv; everything else from uv.lock.
$(UV):
	@test -n "$(PYTHON)" || { echo "error: need python3.12 (or python3 >= 3.11) on PATH" >&2; exit 1; }
	@echo "creating $(VENV) with $(PYTHON)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# What `make demo` needs: the package with its command line, and the local stack.
$(BIN)/.demo-installed: $(LOCK_INPUTS) | $(UV)
	$(UV) sync --frozen --inexact --no-default-groups --group demo --extra cli --quiet
	touch $@

# Everything for development and CI.
$(BIN)/.installed: $(LOCK_INPUTS) | $(UV)
	$(UV) sync --frozen --inexact --all-extras --group dev --quiet
	touch $@ $(BIN)/.demo-installed

venv: $(BIN)/.installed
demo-env: $(BIN)/.demo-installed

$(CHECKOV_VENV)/.installed: requirements-checkov.txt | $(UV)
	test -x $(CHECKOV_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.txt
	touch $@

# Re-resolve after editing pyproject.toml; commit uv.lock and the three requirements files.
lock: $(UV)
	$(UV) lock
	{ echo "# The Lambda's runtime dependencies (boto3 comes with the python3.12 runtime)."; \
	  echo "# Exported from uv.lock by make lock; make test checks it still matches."; \
	  $(LAMBDA_EXPORT); } > requirements.txt
	{ echo "# Everything for development (pip install -r requirements-dev.txt -e . -e test-tools)."; \
	  echo "# Exported from uv.lock by make lock; make test checks it still matches."; \
	  $(DEV_EXPORT); } > requirements-dev.txt
	$(UV) pip compile --quiet --universal --python-version 3.11 --no-header \
		requirements-checkov.in -o requirements-checkov.txt

# The committed requirements files must say what uv.lock says.
lock-check: venv
	$(UV) lock --check
	diff -u <(grep -v '^#' requirements.txt) <($(LAMBDA_EXPORT) | grep -v '^#')
	diff -u <(grep -v '^#' requirements-dev.txt) <($(DEV_EXPORT) | grep -v '^#')

# --- checks ---------------------------------------------------------------------------------
lint: venv
	$(BIN)/ruff check src tests test-tools
	$(BIN)/ruff format --check --quiet src tests test-tools

typecheck: venv
	$(BIN)/mypy

# Import contracts (pyproject.toml [tool.importlinter]): the core imports no component, no
# component imports another, the shipped package never imports the development tools.
imports: venv
	$(BIN)/lint-imports --no-cache

# Unit tests only: no moto server, no subprocesses.
unit test-fast: venv
	$(BIN)/python -m pytest -q tests/unit

pytest: venv
	$(BIN)/python -m pytest -q

validate: venv
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --template infrastructure/template.yaml --region $(AWS_DEFAULT_REGION)
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --template infrastructure/region.yaml --region $(AWS_DEFAULT_REGION)
	$(BIN)/cfn-lint $(TEMPLATES)

# The Lambda artifacts (src/Makefile decides what goes in each), then the test that reads them.
build: venv
	@test -n "$(PY312)" || { echo "error: sam build needs python3.12 (the Lambda runtime); none found" >&2; exit 1; }
	PATH="$(dir $(PY312)):$$PATH" SAM_CLI_TELEMETRY=0 $(BIN)/sam build \
		--template infrastructure/template.yaml --build-dir .aws-sam/build --cached --cache-dir .aws-sam/cache
	ORCHESTRATOR_ARTIFACT_DIR=.aws-sam/build $(BIN)/python -m pytest -q tests/artifact

# The templates, the worker's Kubernetes manifests and its Dockerfile.
CHECKOV := $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download
checkov: $(CHECKOV_VENV)/.installed
	$(CHECKOV) --framework cloudformation $(foreach t,$(TEMPLATES),--file $(t))
	$(CHECKOV) --framework kubernetes --directory infrastructure/k8s
	$(CHECKOV) --framework dockerfile --file infrastructure/docker/worker.Dockerfile

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
	PATH="$(dir $(PY312)):$$PATH" SAM_CLI_TELEMETRY=0 $(BIN)/orchestrator deploy \
		--env $(DEPLOY_ENV) --primary-region $(PRIMARY_REGION) --regions "$(REGIONS)" \
		$(if $(PROFILE),--profile $(PROFILE)) $(DEPLOY_ARGS)

test: lock-check lint typecheck imports pytest validate build checkov
	@echo "make test: all checks passed"

bench: build
	$(BIN)/python tests/benchmarks/bench_distributor.py

# --- local stack (docs/local-stack.md) -------------------------------------------------------
# moto server + the real distributor behind a Lambda-like SQS poller, in one process.
#   make demo  [DEMO_FLAGS="--count 500 --seed 3 --report reports/demo.html"]
#   make local [LOCAL_FLAGS=--workers]
#   make invoke EVENT=events/sqs-three-requests.json
demo: demo-env
	$(BIN)/orchestrator demo $(DEMO_FLAGS)

local: demo-env
	$(BIN)/orchestrator local $(LOCAL_FLAGS)

.PHONY: invoke
invoke: demo-env
	@test -n "$(EVENT)" || { echo "usage: make invoke EVENT=events/<file>.json" >&2; exit 2; }
	$(BIN)/orchestrator invoke -e $(EVENT)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache reports
