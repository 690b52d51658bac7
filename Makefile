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

.PHONY: run test lint format bench setup system-deps compile uncompile clean

# The hot path, compiled by mypyc to C extensions beside its sources (proxy/compiled.py
# says which modules and why). COMPILE=0 leaves it interpreted; `make uncompile` removes
# what an earlier build left. Rebuilt when any source changes: compiled code relies on
# the types and constants of what it imports, compiled or not.
COMPILE ?= 1
COMPILED := $(VENV)/.tenantgate-compiled
SOURCES  := $(shell find proxy tenancy rewriter -name '*.py')

$(STAMP): pyproject.toml requirements.lock | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

$(PURE_STAMP): pyproject.toml requirements.lock | system-deps
	$(PYTHON) -m venv $(PURE)
	$(PURE)/bin/pip install -q --upgrade pip
	$(PURE)/bin/pip install -q -c requirements.lock -e '.[dev]'
	$(PURE)/bin/pip uninstall -q -y sqlglotc
	touch $@

$(COMPILED): $(STAMP) setup.py $(SOURCES)
	TENANTGATE_COMPILE=1 $(BIN)/python setup.py -q build_ext --inplace >/dev/null
	touch $@

system-deps:
	@scripts/system-deps.sh --with-server

setup: system-deps $(STAMP) $(if $(filter 1,$(COMPILE)),$(COMPILED))

compile: $(STAMP) $(COMPILED)

uncompile:
	find proxy -name '*.so' -delete
	rm -rf $(COMPILED) build

run: setup
	$(BIN)/tenantgate demo --dir var/demo

# Test processes (pytest-xdist), each with its own PostgreSQL and T-SQL engine, a test
# file apiece: the suite waits on servers half the time, so two halve it on two CPUs
# (docs/decisions.md, "Two test processes"). TEST_WORKERS=0 runs it in one process.
# tests/faults runs alone afterwards: it compares latencies under a fault with those
# before it, and another test's load coming or going in between would be read as the
# fault's doing.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile

# The set-up in two jobs: the second environment installs while the compiler runs.
test:
	@$(MAKE) --no-print-directory -j2 setup $(PURE_STAMP)
	TENANTGATE_SQLGLOTC=1 $(BIN)/python -m pytest $(XDIST) --ignore=tests/faults
	TENANTGATE_SQLGLOTC=1 $(BIN)/python -m pytest -q tests/faults
	# PostgreSQL and SQLite tenants once more through the ODBC drivers (SQL Server is
	# ODBC in the run above already; driver_independent tests never read the setting).
	TENANTGATE_SQLGLOTC=1 TENANTGATE_TEST_DRIVERS=odbc $(BIN)/python -m pytest -q $(XDIST) \
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

clean: uncompile
	rm -rf $(VENV) $(PURE) var .pytest_cache .mypy_cache .ruff_cache
