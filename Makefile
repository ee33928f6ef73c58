# Each target creates its own virtualenv, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: venv test test-quick lint demo bench bench-ingest soak clean

$(BIN)/fanout: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/fanout

venv: $(BIN)/fanout

test: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

test-quick: venv
	$(BIN)/python -m pytest -q -m 'not slow'

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

demo: venv
	$(BIN)/fanout demo

soak: venv
	FANOUT_SOAK_SECONDS=600 $(BIN)/python -m pytest -q tests/faults/test_soak.py

bench-ingest: venv
	$(BIN)/python bench/ingest.py

# end to end: lag, isolation, catch-up and CPU per target (bench/README.md); about 6 minutes
bench: venv
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/e2e.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache
