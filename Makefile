# Two commands do all the set-up on a fresh machine (Python 3.11+):
#   make demo   installs into .venv and runs the main job on the sandboxes and SQLite
#   make test   installs into .venv (with test tools) and runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Tests mostly wait on servers and subprocesses: three workers finish in about half the time.
PYTEST_WORKERS ?= 3

.PHONY: demo test lint bench install

$(BIN)/optibridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/optibridge

install: $(BIN)/optibridge

demo: install
	$(BIN)/optibridge demo $(ARGS)

lint: install
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy src tests $(wildcard bench)

test: lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench all --quick
