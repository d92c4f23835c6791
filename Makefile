# cloudrun-mesh. `make plan` shows what `pulumi up` would do, offline; `make test` runs the suite.
# Both create the virtualenv from the requirements files when needed.
PYTHON ?= python3
VENV ?= .venv
STACK ?= dev
ARGS ?=
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: plan test verify bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.txt | $(BIN)/python
	$(PIP) -r requirements.txt
	touch $@

$(DEV): requirements.txt requirements-dev.txt $(RUNTIME)
	$(PIP) -r requirements-dev.txt
	touch $@

plan: $(RUNTIME)
	$(BIN)/python -m cloudrun_mesh plan --stack $(STACK) $(ARGS)

test: $(DEV)
	$(BIN)/python -m pytest -q

verify: $(RUNTIME)
	$(BIN)/python -m cloudrun_mesh verify --stack $(STACK) $(ARGS)

bench: $(DEV)
	$(BIN)/python bench/bench.py $(ARGS)

clean:
	rm -rf build
