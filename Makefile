# cloudrun-mesh. `make` lists the targets; `make plan` shows what `pulumi up` would do, offline;
# `make test` runs the linters and the suite. Each creates the virtualenv from the locks when needed.
PYTHON ?= python3
VENV ?= .venv
STACK ?= dev
ARGS ?=
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# The locks pin every package (with hashes) to what the tests ran with; `make upgrade` moves them.
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --no-header --quiet

CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/.installed
# The checks the sample fails on purpose, each with its reason in docs/sample-workload.md:
# anything else failing makes `make checkov` fail.
CHECKOV_ACCEPTED := CKV_K8S_43,CKV_K8S_11,CKV2_K8S_6

.DEFAULT_GOAL := help
.PHONY: help plan policy test test-fast snapshots lint verify bench checkov upgrade clean

help: ## list the targets
	@echo "usage: make <target> [STACK=dev] [ARGS='...']"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1|\2/' | awk -F'|' '{printf "  %-11s %s\n", $$1, $$2}'

$(BIN)/python:
	@echo "Creating $(VENV) with $(PYTHON) ..."
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.txt pyproject.toml | $(BIN)/python
	@echo "Installing the program's locked dependencies into $(VENV) (about a minute the first time) ..."
	$(PIP) --require-hashes -r requirements.txt
	$(PIP) --no-deps -e .
	@touch $@

$(DEV): requirements-dev.lock pyproject.toml | $(BIN)/python
	@echo "Installing the locked test and lint tools into $(VENV) (about a minute the first time) ..."
	$(PIP) --require-hashes -r requirements-dev.lock
	$(PIP) --no-deps -e .
	@touch $@ $(RUNTIME)

plan: $(RUNTIME) ## the offline plan of STACK (no cloud, no Pulumi CLI): printout, plan.json, manifests
	$(BIN)/python -m cloudrun_mesh plan --stack $(STACK) $(ARGS)

policy: $(DEV) ## the policy pack on STACK's offline plan (exit 1 on a mandatory violation)
	$(BIN)/python -m cloudrun_mesh policy --stack $(STACK) $(ARGS)

lint: $(DEV) ## ruff and mypy on the code; actionlint and zizmor run as tests (tests/test_workflow_linters.py)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint ## the linters, then the whole suite
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: $(DEV) ## the suite without the tests marked slow (real-time waits, large inputs)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

snapshots: $(DEV) ## after editing, adding or removing a stack file: rewrite the URN snapshots and doc examples
	$(BIN)/python -m pytest -q --update-snapshots $(ARGS)

verify: $(RUNTIME) ## the guide's curl against a deployed STACK (python -m cloudrun_mesh verify --help)
	$(BIN)/python -m cloudrun_mesh verify --stack $(STACK) $(ARGS)

bench: $(DEV) ## the benchmark script (bench/README.md)
	$(BIN)/python bench/bench.py $(ARGS)

upgrade: $(DEV) ## re-resolve both locks to the newest versions the ranges in pyproject.toml allow, then test
	$(BIN)/uv pip compile pyproject.toml --upgrade $(LOCK_FLAGS) -o requirements.txt
	$(BIN)/uv pip compile pyproject.toml --upgrade --extra dev $(LOCK_FLAGS) -o requirements-dev.lock
	$(MAKE) test

$(CHECKOV): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

# --skip-download: no request to Prisma Cloud for guidelines; BC_SKIP_MAPPING likewise.
checkov: $(RUNTIME) $(CHECKOV) ## Checkov's Kubernetes checks on STACK's rendered manifests (own virtualenv)
	$(BIN)/python -m cloudrun_mesh plan --stack $(STACK) > /dev/null
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --directory build/plan/$(STACK)/k8s --framework kubernetes \
		--skip-check $(CHECKOV_ACCEPTED) --skip-download --compact --quiet $(ARGS)

clean: ## remove build/ (plans, reports, manifests)
	rm -rf build
