"""ControllerDirectory against real controller databases: SQLite (ODBC) and PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tenancy.controller import ControllerDirectory, CustomerRecord
from tenancy.errors import ControllerUnavailable, TenantMisconfigured
from tenancy.sources import ConnectionSource, odbc_source
from tests.support.pg import PgServer

# It never reads TENANTGATE_TEST_DRIVERS (controller directories on ODBC sources it
# opens itself): the ODBC pass of `make test` would repeat it unchanged, so it runs in
# the native pass only (pyproject.toml).
pytestmark = pytest.mark.driver_independent

SECRET = "pa55-w0rd-xyz"
ROWS = [
    (1, "alpha.example", f"Driver=SQLite3;Database=/srv/t1.db;Pwd={SECRET}"),
    (2, "Beta.Example", "Driver={PostgreSQL Unicode};Server=db1;Database=t2"),
    (3, None, "Driver=SQLite3;Database=/srv/t3.db"),
]


@pytest.fixture
def sqlite_controller(tmp_path: Path) -> str:
    path = tmp_path / "controller.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE Customer (customer_id INTEGER PRIMARY KEY, domainname TEXT, "
            "sqlconnectstring TEXT)"
        )
        db.executemany("INSERT INTO Customer VALUES (?, ?, ?)", ROWS)
        db.execute('CREATE TABLE "Tenant Map" ("TenantId" INTEGER, "Host" TEXT, "Dsn" TEXT)')
        db.execute("""INSERT INTO "Tenant Map" VALUES (7, 'gamma.example', 'Driver=SQLite3')""")
        db.execute("CREATE TABLE tenants (id INTEGER, host TEXT, dsn TEXT)")
        db.execute("INSERT INTO tenants VALUES (8, 'delta.example', 'Driver=SQLite3')")
        db.execute("INSERT INTO tenants VALUES (9, 'dup.example', 'a')")
        db.execute("INSERT INTO tenants VALUES (10, 'DUP.example', 'b')")
        db.commit()
    return f"Driver=SQLite3;Database={path}"


@pytest.fixture
def pg_controller(pg: PgServer, pg_database: str) -> str:
    with contextlib.closing(pg.connect(pg_database)) as conn:
        conn.execute(
            'CREATE TABLE "Customer" (customer_id bigint PRIMARY KEY, domainname text, '
            "sqlconnectstring text)"
        )
        for row in ROWS:
            conn.execute('INSERT INTO "Customer" VALUES (?, ?, ?)', *row)
        conn.execute(
            'CREATE SCHEMA ctl; CREATE TABLE ctl."Tenants" ("Id" int, "Host" text, "Dsn" text)'
        )
        conn.execute("""INSERT INTO ctl."Tenants" VALUES (8, 'delta.example', 'x')""")
    return pg.odbc(pg_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def directory(request: pytest.FixtureRequest) -> ControllerDirectory:
    if request.param == "sqlite":
        text = request.getfixturevalue("sqlite_controller")
    else:
        text = request.getfixturevalue("pg_controller")
    return ControllerDirectory(odbc_source(text))


@pytest.mark.integration
def test_by_id(directory: ControllerDirectory) -> None:
    record = directory.by_id(1)
    assert record == CustomerRecord(1, "alpha.example", ROWS[0][2] or "")
    assert directory.by_id(3) == CustomerRecord(3, "", "Driver=SQLite3;Database=/srv/t3.db")
    assert directory.by_id(404) is None


@pytest.mark.integration
def test_by_domain_is_case_insensitive(directory: ControllerDirectory) -> None:
    for domain in ("beta.example", "BETA.EXAMPLE", "Beta.Example"):
        record = directory.by_domain(domain)
        assert record is not None
        assert (record.customer_id, record.domain) == (2, "Beta.Example")
    assert directory.by_domain("nobody.example") is None


@pytest.mark.integration
def test_domain_is_bound_not_interpolated(directory: ControllerDirectory) -> None:
    assert directory.by_domain("x' OR '1'='1") is None
    assert directory.by_domain('x" OR 1=1 --') is None


@pytest.mark.integration
def test_ping(directory: ControllerDirectory) -> None:
    directory.ping()


@pytest.mark.integration
def test_record_repr_hides_the_connection_string(directory: ControllerDirectory) -> None:
    record = directory.by_id(1)
    assert record is not None
    assert SECRET not in repr(record)
    assert "Driver" not in repr(record)
    assert SECRET in record.connection_string


def test_custom_table_and_columns_sqlite(sqlite_controller: str) -> None:
    source = odbc_source(sqlite_controller)
    quoted = ControllerDirectory(
        source, table="Tenant_Map", id_column="TenantId", domain_column="Host"
    )
    with pytest.raises(ControllerUnavailable):  # "Tenant_Map" is not "Tenant Map"
        quoted.ping()
    plain = ControllerDirectory(
        source, table="tenants", id_column="id", domain_column="host", connection_column="dsn"
    )
    plain.ping()
    assert plain.by_domain("DELTA.example") == CustomerRecord(8, "delta.example", "Driver=SQLite3")
    assert plain.by_id(8) is not None
    with pytest.raises(TenantMisconfigured):
        plain.by_domain("dup.example")  # two customers differ only by case


@pytest.mark.integration
def test_custom_table_and_columns_postgresql(pg_controller: str) -> None:
    directory = ControllerDirectory(
        odbc_source(pg_controller),
        table="ctl.Tenants",
        id_column="Id",
        domain_column="Host",
        connection_column="Dsn",
    )
    directory.ping()
    assert directory.by_domain("Delta.Example") == CustomerRecord(8, "delta.example", "x")
    assert directory.by_id(8) is not None


@pytest.mark.parametrize(
    "bad",
    [
        {"table": "Customer; DROP TABLE x"},
        {"table": 'Cust"omer'},
        {"table": "a.b.c.d"},
        {"table": ""},
        {"id_column": "customer id"},
        {"domain_column": "x.y"},
        {"connection_column": "1abc"},
    ],
)
def test_identifiers_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        ControllerDirectory(odbc_source("Driver=SQLite3;Database=:memory:"), **bad)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_unreachable_controller_is_unavailable_without_secrets(pg: PgServer) -> None:
    text = (
        "Driver={PostgreSQL Unicode};Server=127.0.0.1;"
        f"Port={_closed_port()};Database=controller;Uid=admin;Pwd={{{SECRET}}}"
    )
    directory = ControllerDirectory(odbc_source(text, timeout=3))
    calls: list[Callable[[], object]] = [
        lambda: directory.by_id(1),
        lambda: directory.by_domain("a.example"),
        directory.ping,
    ]
    for call in calls:
        with pytest.raises(ControllerUnavailable) as info:
            call()
        message = str(info.value)
        assert SECRET not in message
        assert "Uid" not in message and "admin" not in message
        assert info.value.__cause__ is None and info.value.__suppress_context__
        assert info.value.details.get("sqlstate")
        assert info.value.code == "controller_unavailable"


@pytest.mark.integration
def test_wrong_password_is_unavailable_without_secrets(pg: PgServer, pg_database: str) -> None:
    # The private cluster trusts every local login, so a wrong database stands in.
    text = pg.odbc(f"missing_{pg_database}") + f";Pwd={{{SECRET}}}"
    directory = ControllerDirectory(odbc_source(text, timeout=3))
    with pytest.raises(ControllerUnavailable) as info:
        directory.ping()
    assert SECRET not in str(info.value)
    assert pg_database not in str(info.value)


class PoolSaturated(Exception):
    """Stands for the proxy's own pool error."""


def test_foreign_errors_propagate_unchanged() -> None:
    @contextlib.contextmanager
    def saturated() -> Iterator[Any]:
        raise PoolSaturated("no connection within 2 s")
        yield

    source: ConnectionSource = saturated
    directory = ControllerDirectory(source)
    with pytest.raises(PoolSaturated):
        directory.by_id(1)
