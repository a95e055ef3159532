# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
STORE ?= data/store
CATALOG ?= 100000

.PHONY: setup run test serve bench lint format clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python -m service.demo --catalog $(CATALOG)

test: setup
	$(BIN)/python -m pytest -q

serve: setup
	$(BIN)/python -m service --host $(HOST) --port $(PORT) --workers $(WORKERS) --store-path $(STORE)

bench: setup
	$(BIN)/python -m pytest tests/performance/benchmarks/ --benchmark-only

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks .hypothesis
