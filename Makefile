# Each target creates its own virtualenv, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: venv tools js-deps test test-quick lint demo bench bench-ingest soak clean

$(BIN)/fanout: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/fanout

venv: $(BIN)/fanout

# promtool and prometheus (Debian's package) for tests/deploy, installed once, as root.
# Where no policy-rc.d forbids it the package's init script starts a daemon on :9090:
# stop that one (by its pid file); the tests run their own on 127.0.0.1.
tools:
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends prometheus && \
	    { [ ! -x /etc/init.d/prometheus ] || /etc/init.d/prometheus stop >/dev/null 2>&1 || true; }; \
	  else echo "tools: promtool missing, needs root and apt-get: tests/deploy will skip"; fi; }


# @senx/warp10 (npm) for tests/warp10/test_clients.py, into a gitignored cache; the test
# installs it on demand too, so this only saves the first test its wait.
JS_DEPS := .cache/warp10-js/node_modules/@senx/warp10/package.json
$(JS_DEPS): tests/warp10/js/package.json
	@if command -v npm >/dev/null; then \
	  mkdir -p .cache/warp10-js && \
	  cp tests/warp10/js/package.json .cache/warp10-js/package.json && \
	  npm install --prefix .cache/warp10-js --no-audit --no-fund; \
	else echo "npm not found: the @senx/warp10 tests will skip"; fi

js-deps: $(JS_DEPS)

test: venv tools js-deps
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
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .cache
