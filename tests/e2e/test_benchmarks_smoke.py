"""Every benchmark still runs: each is started at a tiny size and must exit 0 and print
its report. Benchmarks are not run in CI otherwise, and one that silently broke (as the
throughput floor did when reads gained a row cap) would print nothing worth quoting.
The figures themselves are not checked here: they are measured, not asserted.

Each benchmark runs on this run's PostgreSQL server and T-SQL engine (passed on as
``TENANTGATE_TEST_PG_DSN`` and ``TENANTGATE_TEST_TDS_DSN``, which the benchmarks honour
like the tests do) rather than starting a cluster and an engine of its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.pg import PgServer
from tests.support.tds import TdsServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

# rewrite.py, metadata_memory.py, overheads.py and prepared_admission.py start no
# service (the first two pick their client library by flag), tenant_phases.py and
# memory.py name the native driver, and churn.py's stack names no driver
# (tests/support/churn.py): none reads TENANTGATE_TEST_DRIVERS, so the ODBC pass of
# `make test` leaves them out. The others serve their tenants through
# tests/support/stack.py, which does read it.
SAME_ON_EITHER = pytest.mark.driver_independent


def _run(script: str, args: list[str], marker: str, *marks: pytest.MarkDecorator) -> Any:
    return pytest.param(script, args, marker, id=script, marks=marks)


RUNS = [
    _run("point_select.py", ["--requests", "100"], "overhead:"),
    _run("rewrite.py", ["--rounds", "5", "--wide-rounds", "3"], "targets:", SAME_ON_EITHER),
    _run(
        "metadata_memory.py",
        ["--tenants", "50", "--wide-tenants", "3", "--reps", "1"],
        "tenant",
        SAME_ON_EITHER,
    ),
    _run("churn.py", ["--seconds", "4", "--tenants", "2"], "violations: 0", SAME_ON_EITHER),
    _run("throughput.py", ["--rounds", "1", "--seconds", "1"], "throughput / floor"),
    _run("compare.py", ["--tiny"], "req/s / naive"),
    _run("pgbench_compare.py", ["--tiny"], "tg/PgBouncer"),
    _run("overheads.py", ["--rounds", "1", "--n", "200"], "medians of", SAME_ON_EITHER),
    _run("in_process.py", ["--requests", "200", "--rounds", "1"], "CPU µs per request"),
    _run("prepared_admission.py", ["--statements", "2000"], "TinyLFU", SAME_ON_EITHER),
    _run("tenant_phases.py", ["--tenants", "30", "--requests", "50"], "median µs", SAME_ON_EITHER),
    _run(
        "memory.py",
        ["--statements", "40", "--in-items", "200", "--long-chars", "5000"],
        "RSS growth, 1st flood",
        SAME_ON_EITHER,
    ),
]


def _pgbench() -> str | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/pgbench")
    return found[0] if found else shutil.which("pgbench")


def _missing_tools(script: str) -> list[str]:
    """The load tools ``script`` needs and this machine lacks (CI need not have them:
    `make bench` installs them)."""
    if script == "throughput.py":
        return [t for t in ("wrk",) if shutil.which(t) is None]
    if script == "compare.py":
        missing = [t for t in ("wrk", "pgbouncer") if shutil.which(t) is None]
        return missing + ([] if _pgbench() else ["pgbench"])
    if script == "pgbench_compare.py":
        missing = [t for t in ("pgbouncer",) if shutil.which(t) is None]
        return missing + ([] if _pgbench() else ["pgbench"])
    return []


@pytest.fixture(scope="module")
def servers_env(pg: PgServer, optional_tds_server: TdsServer | None) -> dict[str, str]:
    """The environment of a benchmark: this one, plus the DSNs of the running servers."""
    user = quote(pg.user, safe="") + (f":{quote(pg.password, safe='')}" if pg.password else "")
    env = {
        **os.environ,
        "TENANTGATE_TEST_PG_DSN": f"postgresql://{user}@{pg.host}:{pg.port}/{pg.admin_database}",
    }
    tds = optional_tds_server
    if tds is not None:
        env["TENANTGATE_TEST_TDS_DSN"] = (
            f"Server={tds.host},{tds.port};UID={tds.user};PWD={tds.password};Encrypt={tds.encrypt}"
        )
    return env


@pytest.mark.parametrize(("script", "args", "marker"), RUNS)
def test_benchmark_runs(
    script: str, args: list[str], marker: str, servers_env: dict[str, str]
) -> None:
    missing = _missing_tools(script)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (make bench installs them)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT, env=servers_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert marker in done.stdout, done.stdout[-2000:]
