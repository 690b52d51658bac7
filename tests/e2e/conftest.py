from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import tds
from tests.support.pg import PgServer
from tests.support.stack import SqlServerTenant, Stack, running_stack, sqlserver_tenant_id


@pytest.fixture(scope="session")
def optional_tds_server(request: pytest.FixtureRequest) -> tds.TdsServer | None:
    """The T-SQL engine, or ``None`` when this machine has none.

    The stack is shared by every e2e test: depending on ``tds_server`` directly would
    skip the SQLite and PostgreSQL tests too when there is no engine. A skip becomes
    ``None`` (the SQL Server tests then skip, see ``sqlserver_tenant``); a failure (the
    engine is required in CI) is not caught, so nothing runs on a half stack there.

    When no selected test talks to SQL Server (the ODBC pass of ``make test`` deselects
    them all), the stack goes without SQL Server tenants rather than start the engine
    and seed them for nothing.
    """
    if not any(item.get_closest_marker("sqlserver") for item in request.session.items):
        return None
    try:
        server: tds.TdsServer = request.getfixturevalue("tds_server")
    except pytest.skip.Exception:
        return None
    return server


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    pg: PgServer,
    optional_tds_server: tds.TdsServer | None,
) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e"), pg, optional_tds_server) as s:
        yield s


# One parameter per ODBC driver, with the id and mark that tests/conftest.py counts in
# its "SQL Server over TDS" summary line. ``tds_driver`` cannot be used here: the
# shared ``tenant`` fixture mixes these with SQLite and PostgreSQL parameters.
SQLSERVER_DRIVERS = [pytest.param(d, id=d, marks=pytest.mark.sqlserver) for d in tds.DRIVERS]
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]
BACKENDS += SQLSERVER_DRIVERS


def sqlserver_tenant(
    request: pytest.FixtureRequest, driver: str, custom_columns: int = 20
) -> SqlServerTenant:
    """The stack's SQL Server tenant on ``driver``, or the test's skip (failure in CI)."""
    # Re-raises the engine's own skip (or CI failure) with its reason when it is absent.
    request.getfixturevalue("tds_server")
    stack: Stack = request.getfixturevalue("stack")
    tenant = stack.sqlserver.get(sqlserver_tenant_id(driver, custom_columns))
    if tenant is None:
        reason = f"the {tds.DRIVER_NAMES[driver]} ODBC driver is not installed"
        if tds.required():
            pytest.fail(f"SQL Server tests must run with both drivers in CI: {reason}")
        pytest.skip(reason)
    return tenant


@pytest.fixture(params=SQLSERVER_DRIVERS)
def mssql(request: pytest.FixtureRequest) -> SqlServerTenant:
    """The SQL Server tenant with 20 custom columns, once per ODBC driver."""
    return sqlserver_tenant(request, request.param)


@pytest.fixture(params=BACKENDS)
def tenant(request: pytest.FixtureRequest) -> int:
    """A tenant with 20 custom columns per backend: SQLite (beta.example), PostgreSQL
    (pg12.example) and SQL Server once per driver."""
    backend: str = request.param
    if backend == "sqlite":
        return 2
    if backend == "postgresql":
        return 12
    return sqlserver_tenant(request, backend).customer_id
