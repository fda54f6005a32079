# The two commands: `make run` and `make test`. Both install what they need themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install services lint bench clean

# setup.py compiles broker/native.py's NATIVE modules (mypyc): an edit to one of them reinstalls
$(STAMP): pyproject.toml setup.py broker/native.py broker/entities/expand.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## Start the broker (1026) and the IoT agents (4041, 7896) on the embedded store.
run: $(STAMP)
	$(PY) -m broker

## Install FerretDB and Mosquitto when needed, then run the whole test suite against them.
test: $(STAMP) services
	$(PY) -m pytest

services:
	@bash scripts/install-services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
