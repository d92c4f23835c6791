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

.PHONY: plan policy test verify bench clean

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

clean:
	rm -rf build
