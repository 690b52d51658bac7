"""End to end: PostgreSQL's JDBC driver (Debian's libpostgresql-jdbc-java) from a
single-file Java program (tests/e2e/jdbc/TenantgateJdbc.java), through tenantgate's
wire front end, on a SQLite and a PostgreSQL tenant: prepared statements past the
driver's server-side prepare threshold, a committed and a rolled-back transaction,
and a refusal's SQLSTATE."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.test_pgwire import SECRET, TENANTS, USER, Wire, wire
from tests.support.stack import ROOT

__all__ = ["wire"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.e2e

JAR = Path("/usr/share/java/postgresql.jar")
PROGRAM = ROOT / "tests" / "e2e" / "jdbc" / "TenantgateJdbc.java"


@pytest.mark.parametrize("tenant", TENANTS)
def test_jdbc_prepares_commits_and_rolls_back(wire: Wire, tenant: str) -> None:
    java = shutil.which("java")
    if java is None or not JAR.exists():
        pytest.skip("java and libpostgresql-jdbc-java are installed by scripts/system-deps.sh")
    marker = f"jdbc-{uuid.uuid4().hex[:8]}"
    url = f"jdbc:postgresql://{wire.host}:{wire.port}/{tenant}?sslmode=disable"
    done = subprocess.run(
        [java, "-cp", str(JAR), str(PROGRAM), url, USER, SECRET, marker],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["product"] == "PostgreSQL"
    assert lines["selected"] == "8"
    assert lines["kept"] == "2", "the failed batch's first row is not kept either"
    assert lines["batch"].startswith("23"), lines["batch"]  # integrity constraint violation
    assert lines["refused"] == "42703"
    assert wire.stored(tenant, marker) == 2
