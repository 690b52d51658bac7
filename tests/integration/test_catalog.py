"""Catalog reads on real PostgreSQL and SQLite tenants; SQL Server as generated SQL text."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyodbc
import pytest

from tenancy import catalog
from tenancy.backends import BackendKind
from tenancy.catalog import Column
from tenancy.connstr import parse
from tenancy.errors import MetadataUnavailable, TenantMisconfigured
from tenancy.location import TenantLocation
from tenancy.metadata import BaseModel, MetadataCache
from tenancy.sources import ConnectionSource, odbc_source
from tests.support.pg import PgServer

# It never reads TENANTGATE_TEST_DRIVERS (catalog reads on connection sources it opens
# itself): the ODBC pass of `make test` would repeat it unchanged, so it runs in the
# native pass only (pyproject.toml).
pytestmark = pytest.mark.driver_independent

WIDE = 800


def sqlite_location(path: Path) -> TenantLocation:
    return TenantLocation(
        kind=BackendKind.SQLITE,
        connect=parse(f"Driver=SQLite3;Database={path}"),
        pool_key=f"sqlite:{path}",
        server_key="sqlite",
        catalog=None,
        schema=None,
        database=str(path),
    )


def pg_location(pg: PgServer, database: str, schema: str | None = None) -> TenantLocation:
    return TenantLocation(
        kind=BackendKind.POSTGRESQL,
        connect=parse(pg.odbc(database)),
        pool_key=f"postgresql://{pg.host}:{pg.port}/{database}",
        server_key=f"postgresql://{pg.host}:{pg.port}",
        catalog=None,
        schema=schema,
        database=database,
    )


def sqlserver_location(catalog_name: str | None, schema: str | None = "dbo") -> TenantLocation:
    return TenantLocation(
        kind=BackendKind.SQLSERVER,
        connect=parse("Driver={ODBC Driver 18 for SQL Server};Server=sql1;Uid=app;Pwd=x"),
        pool_key="sqlserver://sql1:1433/app",
        server_key="sqlserver://sql1:1433",
        catalog=catalog_name,
        schema=schema,
        database=catalog_name,
    )


def source_for(location: TenantLocation) -> ConnectionSource:
    return odbc_source(location.connect.to_odbc())


@contextlib.contextmanager
def connect(location: TenantLocation) -> Iterator[Any]:
    with source_for(location)() as conn:
        yield conn


# -- SQLite -------------------------------------------------------------------------


@pytest.fixture
def sqlite_tenant(tmp_path: Path) -> TenantLocation:
    path = tmp_path / "tenant.db"
    custom = ", ".join(f'"Custom{i:03d}" TEXT' for i in range(WIDE))
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f'CREATE TABLE "Contacts" ("ContactID" INTEGER PRIMARY KEY, {custom})')
        db.execute(
            'CREATE TABLE "MixedCase" ("FirstName" VARCHAR(50) NOT NULL, "lastNAME" NUMERIC)'
        )
        db.execute('CREATE TABLE "Seq" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, v)')
        db.execute(
            'CREATE VIEW "ActiveContacts" AS SELECT "ContactID", "Custom001" FROM "Contacts"'
        )
        db.commit()
    return sqlite_location(path)


def test_sqlite_wide_table(sqlite_tenant: TenantLocation) -> None:
    with connect(sqlite_tenant) as conn:
        found = catalog.read_table(conn, sqlite_tenant, "contacts")
    assert found is not None
    name, columns = found
    assert name == "Contacts"
    assert len(columns) == WIDE + 1
    assert columns[0] == Column("ContactID", "INTEGER", True)
    assert [c.name for c in columns[1:]] == [f"Custom{i:03d}" for i in range(WIDE)]


def test_sqlite_matches_odbc_sqlcolumns(sqlite_tenant: TenantLocation) -> None:
    with connect(sqlite_tenant) as conn:
        found = catalog.read_table(conn, sqlite_tenant, "Contacts")
        odbc = [row.column_name for row in conn.cursor().columns(table="Contacts")]
    assert found is not None
    assert [c.name for c in found[1]] == odbc


def test_sqlite_mixed_case_views_and_absent(sqlite_tenant: TenantLocation) -> None:
    with connect(sqlite_tenant) as conn:
        mixed = catalog.read_table(conn, sqlite_tenant, "MIXEDCASE")
        view = catalog.read_table(conn, sqlite_tenant, "activecontacts")
        assert catalog.read_table(conn, sqlite_tenant, "Orders") is None
        assert catalog.read_table(conn, sqlite_tenant, "sqlite_master") is None
        assert catalog.read_table(conn, sqlite_tenant, "sqlite_sequence") is None
        assert catalog.read_table(conn, sqlite_tenant, "Mixed%") is None
        tables = catalog.list_tables(conn, sqlite_tenant)
    assert mixed == (
        "MixedCase",
        [Column("FirstName", "VARCHAR(50)", False), Column("lastNAME", "NUMERIC", True)],
    )
    assert view is not None and view[0] == "ActiveContacts"
    assert [c.name for c in view[1]] == ["ContactID", "Custom001"]
    assert tables == ["ActiveContacts", "Contacts", "MixedCase", "Seq"]


# -- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def pg_tenant(pg: PgServer, pg_database: str) -> TenantLocation:
    custom = ", ".join(f'"Custom{i:03d}" text' for i in range(WIDE))
    with contextlib.closing(pg.connect(pg_database)) as conn:
        conn.execute(f'CREATE TABLE "Contacts" ("ContactID" integer PRIMARY KEY, {custom})')
        conn.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
        conn.execute(
            'CREATE TABLE "Typed" ("Name" varchar(50) NOT NULL, "Code" char(3), '
            '"Amount" numeric(10,2), "Ratio" numeric, "Tags" text[], "Mood" mood, '
            '"At" timestamp, "Flag" boolean, "Big" bigint)'
        )
        conn.execute('CREATE TABLE "Foo" (a int)')
        conn.execute("CREATE TABLE foo (b int)")
        conn.execute('CREATE TABLE "Bar" (c int)')
        conn.execute(
            'CREATE VIEW "ActiveContacts" AS SELECT "ContactID", "Custom001" FROM "Contacts"'
        )
    return pg_location(pg, pg_database)


@pytest.mark.integration
def test_postgresql_wide_table(pg_tenant: TenantLocation) -> None:
    with connect(pg_tenant) as conn:
        found = catalog.read_table(conn, pg_tenant, "contacts")
    assert found is not None
    name, columns = found
    assert name == "Contacts"
    assert len(columns) == WIDE + 1
    assert columns[0] == Column("ContactID", "integer", False)
    assert columns[-1] == Column(f"Custom{WIDE - 1:03d}", "text", True)
    assert [c.name for c in columns[1:]] == [f"Custom{i:03d}" for i in range(WIDE)]


@pytest.mark.integration
def test_postgresql_types(pg_tenant: TenantLocation) -> None:
    with connect(pg_tenant) as conn:
        found = catalog.read_table(conn, pg_tenant, "Typed")
    assert found is not None
    assert found[1] == [
        Column("Name", "character varying(50)", False),
        Column("Code", "character(3)", True),
        Column("Amount", "numeric(10,2)", True),
        Column("Ratio", "numeric", True),
        Column("Tags", "text[]", True),
        Column("Mood", "mood", True),
        Column("At", "timestamp without time zone", True),
        Column("Flag", "boolean", True),
        Column("Big", "bigint", True),
    ]


@pytest.mark.integration
def test_postgresql_name_matching(pg_tenant: TenantLocation) -> None:
    with connect(pg_tenant) as conn:
        exact_upper = catalog.read_table(conn, pg_tenant, "Foo")
        exact_lower = catalog.read_table(conn, pg_tenant, "foo")
        ambiguous = catalog.read_table(conn, pg_tenant, "FOO")
        unique = catalog.read_table(conn, pg_tenant, "BAR")
    assert exact_upper == ("Foo", [Column("a", "integer", True)])
    assert exact_lower == ("foo", [Column("b", "integer", True)])
    assert ambiguous is None
    assert unique == ("Bar", [Column("c", "integer", True)])


@pytest.mark.integration
def test_postgresql_views_absent_and_system_tables(pg_tenant: TenantLocation) -> None:
    with connect(pg_tenant) as conn:
        view = catalog.read_table(conn, pg_tenant, "activecontacts")
        for hidden in ("pg_class", "pg_attribute", "columns", "tables", "Orders", "pg_stat%"):
            assert catalog.read_table(conn, pg_tenant, hidden) is None, hidden
        tables = catalog.list_tables(conn, pg_tenant)
    assert view == (
        "ActiveContacts",
        [Column("ContactID", "integer", True), Column("Custom001", "text", True)],
    )
    assert tables == ["ActiveContacts", "Bar", "Contacts", "Foo", "Typed", "foo"]


@pytest.mark.integration
def test_postgresql_schema_per_tenant(pg: PgServer, pg_database: str) -> None:
    with contextlib.closing(pg.connect(pg_database)) as conn:
        conn.execute('CREATE TABLE public."Contacts" ("ContactID" int, "Public" text)')
        for schema, extra in (("tenant_a", ""), ("Tenant B", ', "Shoe" int'), ("tenant_c", "")):
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'CREATE TABLE "{schema}"."Contacts" ("ContactID" int{extra})')
        conn.execute('CREATE TABLE tenant_a."Only_A" (x int)')
    a = pg_location(pg, pg_database, "tenant_a")
    b = pg_location(pg, pg_database, "Tenant B")
    c = pg_location(pg, pg_database, "tenant_c")
    public = pg_location(pg, pg_database)
    with connect(a) as conn:
        assert catalog.read_table(conn, a, "contacts") == (
            "Contacts",
            [Column("ContactID", "integer", True)],
        )
        found_b = catalog.read_table(conn, b, "Contacts")
        assert found_b is not None and [col.name for col in found_b[1]] == ["ContactID", "Shoe"]
        found_public = catalog.read_table(conn, public, "Contacts")
        assert found_public is not None and len(found_public[1]) == 2
        assert catalog.read_table(conn, b, "Only_A") is None
        assert catalog.list_tables(conn, a) == ["Contacts", "Only_A"]
        assert catalog.list_tables(conn, b) == ["Contacts"]

    # Through the cache: tenants with identical shapes share one object.
    base = BaseModel({"Contacts": ["ContactID"]})
    cache = MetadataCache(source_for=source_for, base_model=base, ttl=60, negative_ttl=5)
    meta_a, meta_b, meta_c = (cache.get(loc, "Contacts") for loc in (a, b, c))
    assert meta_a is not None and meta_b is not None
    assert meta_a is meta_c
    assert meta_b.custom_columns == ("Shoe",)
    assert cache.get(a, "Only_A") is not None
    assert cache.get(b, "Only_A") is None


@pytest.mark.integration
def test_postgresql_metadata_unavailable(pg: PgServer) -> None:
    location = pg_location(pg, f"missing_{uuid.uuid4().hex[:8]}")
    cache = MetadataCache(
        source_for=lambda loc: odbc_source(loc.connect.to_odbc() + ";Pwd={zz-secret}"),
        base_model=BaseModel({}),
        ttl=60,
        negative_ttl=5,
    )
    with pytest.raises(MetadataUnavailable) as info:
        cache.get(location, "Contacts")
    assert "zz-secret" not in str(info.value)
    assert location.server_key in str(info.value)
    with pytest.raises(MetadataUnavailable):
        cache.list_tables(location)


# -- SQL Server: the generated text (no server here) ---------------------------------


def test_sqlserver_columns_sql() -> None:
    sql, params = catalog.sqlserver_columns_query(sqlserver_location("tenant_42"), "Contacts")
    assert sql == (
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, "
        "NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE "
        "FROM [tenant_42].INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = ? AND LOWER(TABLE_NAME) = LOWER(?) "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION"
    )
    assert params == ("dbo", "Contacts")


def test_sqlserver_tables_sql() -> None:
    sql, params = catalog.sqlserver_tables_query(sqlserver_location("t", "sales"))
    assert sql == (
        "SELECT TABLE_NAME FROM [t].INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'VIEW') ORDER BY TABLE_NAME"
    )
    assert params == ("sales",)


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("plain", "[plain]"),
        ("we]ird", "[we]]ird]"),
        ("a]]b", "[a]]]]b]"),
        (
            "x].INFORMATION_SCHEMA.COLUMNS; DROP DATABASE y; --",
            "[x]].INFORMATION_SCHEMA.COLUMNS; DROP DATABASE y; --]",
        ),
        ("with space", "[with space]"),
        ("[bracketed]", "[[bracketed]]]"),
    ],
)
def test_sqlserver_catalog_is_bracket_quoted(name: str, quoted: str) -> None:
    sql, params = catalog.sqlserver_columns_query(sqlserver_location(name), "T")
    assert f"FROM {quoted}.INFORMATION_SCHEMA.COLUMNS WHERE" in sql
    assert sql.count("?") == 2 and params == ("dbo", "T")


def test_sqlserver_defaults_and_bad_names() -> None:
    sql, params = catalog.sqlserver_columns_query(sqlserver_location(None, None), "T'x")
    assert "FROM INFORMATION_SCHEMA.COLUMNS" in sql
    assert "T'x" not in sql and params == ("dbo", "T'x")
    for bad in ("", "x" * 129, "a\x00b"):
        with pytest.raises(TenantMisconfigured):
            catalog.sqlserver_columns_query(sqlserver_location(bad), "T")


def test_sqlserver_row_types() -> None:
    location = sqlserver_location("t")
    # Feed rows shaped like INFORMATION_SCHEMA.COLUMNS through the SQL Server converter.
    rows = [
        ("T", "Name", "nvarchar", 50, None, None, "NO"),
        ("T", "Body", "nvarchar", -1, None, None, "YES"),
        ("T", "Price", "decimal", None, 10, 2, "YES"),
        ("T", "Id", "int", None, 10, 0, "NO"),
    ]
    convert = catalog._ROW_TO_COLUMN[BackendKind.SQLSERVER]
    assert [convert(r) for r in rows] == [
        Column("Name", "nvarchar(50)", False),
        Column("Body", "nvarchar(max)", True),
        Column("Price", "decimal(10,2)", True),
        Column("Id", "int", False),
    ]
    assert catalog.columns_query(location, "T") == catalog.sqlserver_columns_query(location, "T")


def test_postgresql_and_sqlite_sql_bind_everything() -> None:
    location = TenantLocation(
        kind=BackendKind.POSTGRESQL,
        connect=parse("Driver={PostgreSQL Unicode};Server=h"),
        pool_key="p",
        server_key="s",
        catalog=None,
        schema="t'1",
        database="d",
    )
    sql, params = catalog.postgresql_columns_query(location, "x'; --")
    assert "t'1" not in sql and "x'; --" not in sql
    assert params == ("t'1", "x'; --")
    sql, params = catalog.sqlite_columns_query("x'; --")
    assert "x'; --" not in sql and params == ("x'; --",)


def test_pyodbc_is_qmark() -> None:
    assert pyodbc.paramstyle == "qmark"
