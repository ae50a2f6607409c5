# Two commands do everything (each creates the virtual environment it needs):
#   make repro   run the whole DVC pipeline
#   make test    run the tests
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: repro test bench lint

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

repro: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q

bench: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.capacity_nodes

lint: $(BIN)/.installed
	$(BIN)/ruff check .
