"""Every transpile case with ``rows`` runs on real PostgreSQL, real SQLite (through
the "SQLite3" ODBC driver, as in production) and a real T-SQL engine over TDS (once
per SQL Server ODBC driver), and returns the same rows on each.

The tables of ``tests/fixtures/rewriter/transpile_*.toml`` are created with each
backend's types for the declared T-SQL ones; values are compared after a small
normalisation (dates as ISO text, decimals as floats), since the drivers return
SQLite's dates as text and PostgreSQL's and SQL Server's as ``date``/``datetime``.

SQL Server runs the generated SQL as the service does: bound to the tenant's database
and ``dbo`` (``[db].[dbo].[People]``) on a connection whose current database is
``master``, so a name the qualifier missed would not find the table.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyodbc
import pytest

from proxy.demo.seed import quote_identifier
from rewriter import parse_statement, rewrite
from tenancy.metadata import Column, TableMetadata
from tests.support.pg import PgServer
from tests.support.tds import TdsServer
from tests.unit.rewriter.test_transpile import CASES, TABLES, TranspileCase, shapes

# It never reads TENANTGATE_TEST_DRIVERS (rewritten SQL run on connections it opens
# itself): the ODBC pass of `make test` would repeat it unchanged, so it runs in the
# native pass only (pyproject.toml).
pytestmark = pytest.mark.driver_independent

NULL = "__NULL__"
# Declared T-SQL type -> PostgreSQL DDL type (SQLite takes the T-SQL names as they are).
PG_TYPES = {"int": "integer", "datetime": "timestamp", "nvarchar": "varchar", "bit": "boolean"}
BACKEND_ROWS = [c for c in CASES if c.rows is not None]


def _ddl_type(declared: str, backend: str) -> str:
    if backend == "sqlserver":
        return declared
    if backend == "sqlite":
        return declared.upper()
    base, _, rest = declared.partition("(")
    return PG_TYPES.get(base, base) + (f"({rest}" if rest else "")


def _create(conn: pyodbc.Connection, backend: str) -> None:
    """The tables with each backend's types for the declared T-SQL ones. On SQL Server the
    connection must be inside the database (Babelfish refuses three-part-name DDL)."""
    for table in TABLES.values():
        columns = ", ".join(
            f"{quote_identifier(name, backend)} {_ddl_type(ty, backend)}"
            for name, ty in table.columns
        )
        name = quote_identifier(table.name, backend)
        conn.execute(f"CREATE TABLE {name} ({columns})")
        marks = ", ".join("?" for _ in table.columns)
        for row in table.rows:
            values = [None if v == NULL else v for v in row]
            conn.execute(f"INSERT INTO {name} VALUES ({marks})", values)


@pytest.fixture(scope="module")
def pg_conn(pg: PgServer) -> Iterator[pyodbc.Connection]:
    name = pg.create_database("transpile")
    try:
        with contextlib.closing(pg.connect(name)) as conn:
            _create(conn, "postgresql")
            yield conn
    finally:
        pg.drop_database(name)


@pytest.fixture(scope="module")
def sqlite_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pyodbc.Connection]:
    path = tmp_path_factory.mktemp("transpile") / "tenant.db"
    with contextlib.closing(
        pyodbc.connect(f"Driver=SQLite3;Database={path}", autocommit=True)
    ) as conn:
        _create(conn, "sqlite")
        yield conn


@pytest.fixture(scope="module")
def tds_transpile_database(tds_server: TdsServer) -> Iterator[str]:
    name = tds_server.create_database("transpile")
    try:
        with contextlib.closing(tds_server.connect(database=name)) as conn:
            _create(conn, "sqlserver")
        yield name
    finally:
        tds_server.drop_database(name)


def _normal(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | float):
        number = float(value)
        return int(number) if number.is_integer() else number
    return value


def _expected(case: TranspileCase) -> list[list[Any]]:
    assert case.rows is not None
    return [[None if v == NULL else _normal(v) for v in row] for row in case.rows]


def run(
    conn: pyodbc.Connection,
    case: TranspileCase,
    backend: str,
    *,
    catalog: str | None = None,
    schema: str | None = None,
) -> list[list[Any]]:
    parsed = parse_statement(case.sql, dialect=case.dialect)
    plan = rewrite(parsed, tables=shapes(), backend=backend)
    values = [case.params[key] for key in plan.param_order]  # type: ignore[index]
    cursor = conn.execute(plan.bind(catalog=catalog, schema=schema), values)
    assert tuple(d[0] for d in cursor.description) == plan.columns
    return [[_normal(v) for v in row] for row in cursor.fetchall()]


@pytest.mark.parametrize("case", BACKEND_ROWS, ids=lambda c: c.name)
def test_same_rows_on_postgresql_and_sqlite(
    case: TranspileCase, pg_conn: pyodbc.Connection, sqlite_conn: pyodbc.Connection
) -> None:
    ran = 0
    for backend, conn in (("postgresql", pg_conn), ("sqlite", sqlite_conn)):
        if backend in case.refusals:
            continue
        assert run(conn, case, backend) == _expected(case), backend
        ran += 1
    assert ran >= 1


@pytest.mark.parametrize("case", BACKEND_ROWS, ids=lambda c: c.name)
def test_same_rows_on_sqlserver(
    case: TranspileCase,
    tds_transpile_database: str,
    tds_master_connection: pyodbc.Connection,
) -> None:
    if case.dialect != "tsql" and "sqlserver" in case.refusals:
        # The postgres/sqlite dialects' own constructs (RANGE n PRECEDING) may have no
        # SQL Server form; their refusal there is checked by the unit test.
        pytest.skip(f"{case.dialect} construct refused on SQL Server")
    assert "sqlserver" not in case.refusals, "T-SQL with rows must run on SQL Server"
    rows = run(
        tds_master_connection, case, "sqlserver", catalog=tds_transpile_database, schema="dbo"
    )
    if case.babelfish_deviates:
        # The rows are SQL Server's documented ones; Babelfish's differ (noticed here
        # the day it is fixed).
        assert rows != _expected(case), "Babelfish now agrees: drop babelfish_deviates"
        pytest.xfail(f"Babelfish deviates from SQL Server: {case.babelfish_deviates}")
    assert rows == _expected(case)


def test_sqlite_behind_the_odbc_driver_has_right_and_full_joins(
    sqlite_conn: pyodbc.Connection,
) -> None:
    version = sqlite_conn.execute("SELECT sqlite_version()").fetchone()[0]
    assert tuple(int(p) for p in version.split(".")) >= (3, 39)


# -- identifiers (issue #3 item 5) ------------------------------------------------------


def test_postgresql_columns_differing_only_by_case(pg: PgServer, pg_database: str) -> None:
    """PostgreSQL quoted identifiers are exact: a logical name picks the exact spelling,
    else the one column it matches ignoring case; the output keeps physical spelling."""
    with contextlib.closing(pg.connect(pg_database)) as conn:
        conn.execute('CREATE TABLE "Twins" ("Name" text, "name" text, "Id" integer)')
        conn.execute("""INSERT INTO "Twins" VALUES ('upper', 'lower', 1)""")
        shape = TableMetadata.build(
            "Twins",
            [
                Column("Name", "text", True),
                Column("name", "text", True),
                Column("Id", "integer", True),
            ],
        )
        for written, expected in (("Name", "upper"), ("name", "lower"), ("ID", 1), ("[id]", 1)):
            sql = f"SELECT {written} FROM TWINS"
            plan = rewrite(parse_statement(sql), tables={"twins": shape}, backend="postgresql")
            rows = conn.execute(plan.bind(catalog=None, schema=None)).fetchall()
            assert [tuple(r) for r in rows] == [(expected,)], written
            assert re.search(r'"(Name|name|Id)"', plan.sql)


def test_sqlite_identifiers_are_case_insensitive(tmp_path: Path) -> None:
    with contextlib.closing(
        pyodbc.connect(f"Driver=SQLite3;Database={tmp_path / 'x.db'}", autocommit=True)
    ) as conn:
        conn.execute('CREATE TABLE "Things" ("ThingName" text)')
        conn.execute("INSERT INTO Things VALUES ('x')")
        shape = TableMetadata.build("Things", [Column("ThingName", "text", True)])
        plan = rewrite(
            parse_statement("SELECT thingname FROM THINGS"),
            tables={"things": shape},
            backend="sqlite",
        )
        cursor = conn.execute(plan.bind(catalog=None, schema=None))
        assert [d[0] for d in cursor.description] == ["ThingName"]
        assert [tuple(r) for r in cursor.fetchall()] == [("x",)]
