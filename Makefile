# Quick start on a fresh Debian 12 machine: `make run` and `make test`.
# Both do their own set-up: system packages (apt, where missing), a virtual
# environment, and the pinned dependencies.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tenantgate-installed
# A second environment without sqlglotc (sqlglot's compiled modules), so that the
# pure-Python sqlglot the rewriter also supports stays tested. Cached like .venv.
PURE       := .venv-pure
PURE_STAMP := $(PURE)/.tenantgate-installed

.PHONY: run test lint format bench setup system-deps clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

$(PURE_STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(PURE)
	$(PURE)/bin/pip install -q --upgrade pip
	$(PURE)/bin/pip install -q -c requirements.lock -e '.[dev]'
	$(PURE)/bin/pip uninstall -q -y sqlglotc
	touch $@

system-deps:
	@scripts/system-deps.sh --with-server

setup: system-deps $(STAMP)

run: setup
	$(BIN)/tenantgate demo --dir var/demo

test: setup $(PURE_STAMP)
	TENANTGATE_SQLGLOTC=1 $(BIN)/python -m pytest
	# PostgreSQL and SQLite tenants once more through the ODBC drivers (SQL Server is
	# ODBC in the run above already; driver_independent tests never read the setting).
	TENANTGATE_SQLGLOTC=1 TENANTGATE_TEST_DRIVERS=odbc $(BIN)/python -m pytest -q \
		-m "not sqlserver and not driver_independent" \
		--ignore=tests/integration/drivers tests/integration tests/e2e
	TENANTGATE_SQLGLOTC=0 $(PURE)/bin/python -m pytest -q -p no:cacheprovider tests/unit/rewriter

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy proxy rewriter tenancy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	@scripts/system-deps.sh --with-server --with-bench
	$(BIN)/python benchmarks/point_select.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/rewrite.py
	$(BIN)/python benchmarks/churn.py --sqlserver
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) $(PURE) var .pytest_cache .mypy_cache .ruff_cache
