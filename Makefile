# One bootstrap for everything: Python deps into .venv, npm tools with `npm ci`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: bootstrap postgres demo test test-fast lint bench clean

bootstrap: $(VENV)/.installed node_modules/.installed postgres

# PostgreSQL server binaries for the test fixture (tests/support/postgres.py starts its
# own throwaway cluster on a loopback port); the Debian package, only when none is found.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; }

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: bootstrap
	$(BIN)/lphedge demo

test: bootstrap
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# No chain, no subprocess (markers set by tests/conftest.py), no backtest over recorded
# history (slow), properties at 10 examples each; `make test` runs all of it.
test-fast: bootstrap
	LPHEDGE_HYPOTHESIS_PROFILE=fast $(BIN)/pytest -n 2 -m "not chain and not cli and not slow" -q $(PYTEST_ARGS)

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/mypy policies adapters bot

bench: bootstrap
	$(BIN)/python -m bench.lp_math
	$(BIN)/python -m bench.read_positions
	$(BIN)/python -m bench.decide
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.test_fast

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
