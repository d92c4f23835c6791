# cloudrun-mesh. `make plan` shows what `pulumi up` would do, offline; `make policy` runs the policy
# pack on it; `make test` runs the suite.
# Each creates the virtualenv from the requirements files when needed.
PYTHON ?= python3
VENV ?= .venv
STACK ?= dev
ARGS ?=
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
POLICY_PACK := $(VENV)/.policy-installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/.installed
# The checks the sample fails on purpose, each with its reason in README ("The sample workload"):
# anything else failing makes `make checkov` fail.
CHECKOV_ACCEPTED := CKV_K8S_43,CKV_K8S_11,CKV2_K8S_6,CKV_K8S_21

.PHONY: plan policy test verify bench checkov clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.txt | $(BIN)/python
	$(PIP) -r requirements.txt
	touch $@

$(DEV): requirements.txt requirements-dev.txt $(RUNTIME)
	$(PIP) -r requirements-dev.txt
	touch $@

# The policy pack's own requirements (pulumi-policy), so the offline run uses what `pulumi preview` loads.
$(POLICY_PACK): policy/requirements.txt $(RUNTIME)
	$(PIP) -r policy/requirements.txt
	touch $@

plan: $(RUNTIME)
	$(BIN)/python -m cloudrun_mesh plan --stack $(STACK) $(ARGS)

policy: $(POLICY_PACK)
	$(BIN)/python -m cloudrun_mesh policy --stack $(STACK) $(ARGS)

test: $(DEV)
	$(BIN)/python -m pytest -q

verify: $(RUNTIME)
	$(BIN)/python -m cloudrun_mesh verify --stack $(STACK) $(ARGS)

bench: $(DEV)
	$(BIN)/python bench/bench.py $(ARGS)

$(CHECKOV): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# Checkov's Kubernetes checks on the stack's rendered manifests (README, "The sample workload").
# --skip-download: no request to Prisma Cloud for guidelines; BC_SKIP_MAPPING likewise.
checkov: $(RUNTIME) $(CHECKOV)
	$(BIN)/python -m cloudrun_mesh plan --stack $(STACK) > /dev/null
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --directory build/plan/$(STACK)/k8s --framework kubernetes \
		--skip-check $(CHECKOV_ACCEPTED) --skip-download --compact --quiet $(ARGS)

clean:
	rm -rf build
