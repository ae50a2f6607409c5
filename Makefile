# Two commands do everything (each creates the virtual environment it needs):
#   make repro   run the whole DVC pipeline
#   make test    run the tests
# and for a pull request: make diff [BASE=main] [HEAD=rev]  (Markdown: params, findings, metrics, figures)
# after dvc exp run -S 'families.<family>.<key>=<value>': make exp FAMILY=<family>  (that family's columns only)
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: repro test bench lint diff exp stability mlflow-server mlflow-server-stop

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
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.mlflow_logging
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.dask_scaling
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.round_size
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.stage_vs_book

# A PostgreSQL-backed `mlflow server` on 127.0.0.1 (throw-away cluster in a temp dir); prints MLFLOW_TRACKING_URI.
mlflow-server: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tools.mlflow_server start

mlflow-server-stop: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tools.mlflow_server stop

BASE ?= main
FORMAT ?= md
diff: $(BIN)/.installed
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tools.compare $(BASE) $(HEAD) --format $(FORMAT)

# One family's experiments: its headline metrics and the params that differ, not the 500-odd columns of
# `dvc exp show`; EXP_FLAGS passes more flags to it, e.g. EXP_FLAGS="-n 3" or EXP_FLAGS=-A
exp: $(BIN)/.installed
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tools.exp_table $(FAMILY) -- $(EXP_FLAGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Verdicts on two disjoint seed sets, per family: make stability [FAMILIES="capacity adam"]
stability: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tools.stability $(FAMILIES)
