"""The SQLite demo (proxy.demo) read back through the real SQLite ODBC driver, and the
pure parts of proxy.demo.seed it is built from."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyodbc
import pytest

from proxy.demo import seed as ss
from proxy.demo.layout import DemoLayout, create_demo, odbc_sqlite
from tenancy import connstr

CUSTOM = {1: 0, 2: 20, 3: 800}


@contextlib.contextmanager
def odbc(connection_string: str) -> Iterator[pyodbc.Connection]:
    conn = pyodbc.connect(connection_string, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def column_names(conn: pyodbc.Connection, table: str) -> list[str]:
    cur = conn.cursor()
    rows = sorted(cur.columns(table=table), key=lambda r: r.ordinal_position)
    return [r.column_name for r in rows]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoLayout, float]:
    directory = tmp_path_factory.mktemp("demo")
    started = time.perf_counter()
    layout = create_demo(directory)
    return layout, time.perf_counter() - started


def test_creation_is_fresh(demo: tuple[DemoLayout, float]) -> None:
    # How long creation takes (about 3 s on a 2-core box) is a figure for the
    # benchmarks, not an assertion: it would fail on a machine ten times slower.
    layout, _ = demo
    assert not layout.reused


def test_controller_rows(demo: tuple[DemoLayout, float]) -> None:
    layout, _ = demo
    assert layout.controller_connection_string == (
        f"Driver=SQLite3;Database={layout.directory / 'controller.db'}"
    )
    with odbc(layout.controller_connection_string) as conn:
        rows = conn.execute(
            "SELECT customer_id, domainname, sqlconnectstring FROM Customer ORDER BY customer_id"
        ).fetchall()
        assert column_names(conn, "Customer") == ["customer_id", "domainname", "sqlconnectstring"]
    assert [(r[0], r[1]) for r in rows] == [
        (1, "alpha.example"),
        (2, "beta.example"),
        (3, "gamma.example"),
    ]
    for cid, _domain, cs in rows:
        parsed = connstr.parse(cs)
        assert parsed["driver"] == "SQLite3"
        path = Path(parsed["database"])
        assert path.is_absolute()
        assert path == layout.directory / f"tenant_{cid}.db"
        assert path.is_file()
        assert cs == layout.tenant(cid).connection_string


def test_domain_names_are_unique(demo: tuple[DemoLayout, float]) -> None:
    layout, _ = demo
    with (
        odbc(layout.controller_connection_string) as conn,
        pytest.raises(pyodbc.Error),
    ):
        conn.execute("INSERT INTO Customer VALUES (4, 'alpha.example', 'Driver=SQLite3')")


@pytest.mark.parametrize("customer_id", [1, 2, 3])
def test_tenant_tables_counts_and_columns(demo: tuple[DemoLayout, float], customer_id: int) -> None:
    layout, _ = demo
    tenant = layout.tenant(customer_id)
    with odbc(tenant.connection_string) as conn:
        counts = ss.row_counts(conn, "sqlite")
        assert counts["Contacts"] >= 1000
        assert counts == {"Accounts": 200, "Contacts": 1000, "Opportunities": 500}
        for table, base in ss.BASE_MODEL.items():
            names = column_names(conn, table)
            assert names[: len(base)] == base, table
            custom = names[len(base) :]
            expected = CUSTOM[customer_id] if table == "Contacts" else 0
            assert len(custom) == expected, table
        assert len(tenant.custom_columns) == CUSTOM[customer_id]
        # Foreign keys hold: an opportunity's contact belongs to its account.
        orphans = conn.execute(
            'SELECT COUNT(*) FROM "Opportunities" o JOIN "Contacts" c '
            'ON c."ContactID" = o."ContactID" WHERE c."AccountID" <> o."AccountID"'
        ).fetchone()[0]
        assert orphans == 0
        missing = conn.execute(
            'SELECT COUNT(*) FROM "Contacts" c LEFT JOIN "Accounts" a '
            'ON a."AccountID" = c."AccountID" WHERE a."AccountID" IS NULL'
        ).fetchone()[0]
        assert missing == 0


def test_custom_column_names(demo: tuple[DemoLayout, float]) -> None:
    layout, _ = demo
    with odbc(layout.tenant(3).connection_string) as conn:
        custom = column_names(conn, "Contacts")[len(ss.BASE_MODEL["Contacts"]) :]
    assert custom[:2] == ["Custom_Region", "Custom_ShoeSize"]
    first_cf = next(i for i, name in enumerate(custom) if name.startswith("cf_"))
    assert all(name.startswith("Custom_") for name in custom[:first_cf])
    assert custom[first_cf].startswith("cf_0001_")
    assert custom[-1].startswith(f"cf_{800 - first_cf:04d}_")
    # Tenant 2's fields are the first 20 of tenant 3's: one query can span both.
    assert [c.name for c in layout.tenant(2).custom_columns] == custom[:20]


def test_values_read_back_through_odbc_with_their_types(demo: tuple[DemoLayout, float]) -> None:
    layout, _ = demo
    with odbc(layout.tenant(2).connection_string) as conn:
        cur = conn.execute(
            'SELECT "ContactID", "FirstName", "Email", "IsActive", "CreatedAt", '
            '"Custom_ShoeSize", "Custom_LastEventDate" FROM "Contacts" ORDER BY "ContactID"'
        )
        rows = cur.fetchall()
    assert [r[0] for r in rows] == list(range(1, 1001))
    first = rows[0]
    assert isinstance(first[1], str) and first[1]
    assert "@" in first[2] and first[2].endswith(".example")
    assert all(isinstance(r[3], bool) for r in rows)
    assert all(isinstance(r[4], dt.datetime) for r in rows)
    sizes = [r[5] for r in rows if r[5] is not None]
    assert sizes and all(7 <= s <= 13 for s in sizes)
    dates = [r[6] for r in rows if r[6] is not None]
    assert dates and all(type(d) is dt.date for d in dates)
    assert 0 < sum(r[5] is None for r in rows) < 500  # custom fields are sparse, not empty


def test_select_star_on_800_columns(demo: tuple[DemoLayout, float]) -> None:
    layout, _ = demo
    with odbc(layout.tenant(3).connection_string) as conn:
        cur = conn.execute('SELECT * FROM "Contacts" WHERE "ContactID" = ?', 7)
        row = cur.fetchone()
        assert len(cur.description) == len(ss.BASE_MODEL["Contacts"]) + 800
    assert row[0] == 7


def test_reused_when_complete(demo: tuple[DemoLayout, float]) -> None:
    layout, _ = demo
    mtimes = {p: p.stat().st_mtime_ns for p in layout.directory.glob("*.db")}
    again = create_demo(layout.directory)
    assert again.reused
    assert again.controller_connection_string == layout.controller_connection_string
    assert {p: p.stat().st_mtime_ns for p in layout.directory.glob("*.db")} == mtimes
    assert not list(layout.directory.glob(".demo-build-*"))


def test_interrupted_or_changed_demo_is_rebuilt(tmp_path: Path) -> None:
    first = create_demo(tmp_path, contacts=30)
    assert not first.reused
    assert create_demo(tmp_path, contacts=30).reused
    # A different size is a different demo.
    bigger = create_demo(tmp_path, contacts=40)
    assert not bigger.reused
    with odbc(bigger.tenant(1).connection_string) as conn:
        assert ss.row_counts(conn, "sqlite")["Contacts"] == 40
    # An interrupted run: a tenant file half written, the manifest gone, staging left.
    (tmp_path / "demo.json").unlink()
    (tmp_path / ".demo-build-killed").mkdir()
    (tmp_path / "tenant_3.db").write_bytes(b"not a database")
    rebuilt = create_demo(tmp_path, contacts=40)
    assert not rebuilt.reused
    with odbc(rebuilt.tenant(3).connection_string) as conn:
        assert ss.row_counts(conn, "sqlite")["Contacts"] == 40
    assert create_demo(tmp_path, contacts=40).reused
    assert not list(tmp_path.glob(".demo-build-*"))


def test_same_data_every_time(tmp_path: Path) -> None:
    a = create_demo(tmp_path / "a", contacts=25)
    b = create_demo(tmp_path / "b", contacts=25)
    for ta, tb in zip(a.tenants, b.tenants, strict=True):
        with (
            contextlib.closing(sqlite3.connect(ta.path)) as da,
            contextlib.closing(sqlite3.connect(tb.path)) as db,
        ):
            for table in ss.TABLE_ORDER:
                query = f'SELECT * FROM "{table}" ORDER BY 1'
                assert da.execute(query).fetchall() == db.execute(query).fetchall()


def test_odbc_sqlite_quotes_only_when_needed() -> None:
    assert odbc_sqlite(Path("/srv/a.db")) == "Driver=SQLite3;Database=/srv/a.db"
    quoted = odbc_sqlite(Path("/srv/a;b}.db"))
    assert connstr.parse(quoted)["database"] == "/srv/a;b}.db"


def test_rejects_empty_demo(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="contacts"):
        create_demo(tmp_path, contacts=0)


# ------------------------------------------------------------------ schema_seed, pure parts


def test_base_model_shape() -> None:
    assert list(ss.BASE_MODEL) == ["Accounts", "Contacts", "Opportunities"]
    assert 15 <= len(ss.BASE_MODEL["Contacts"]) <= 20
    assert ss.BASE_MODEL["Contacts"][:2] == ["ContactID", "AccountID"]
    for table, cols in ss.TABLES.items():
        assert [c.name for c in cols] == ss.BASE_MODEL[table]
        assert cols[0].primary_key
    refs = {(t, c.name): c.references for t, cols in ss.TABLES.items() for c in cols}
    assert refs[("Opportunities", "ContactID")] == "Contacts"
    assert refs[("Opportunities", "AccountID")] == "Accounts"


@pytest.mark.parametrize(
    ("spec", "sqlite", "postgresql", "sqlserver"),
    [
        ("integer", "INTEGER", "integer", "int"),
        ("text(50)", "VARCHAR(50)", "varchar(50)", "nvarchar(50)"),
        ("decimal(18,2)", "NUMERIC(18,2)", "numeric(18,2)", "decimal(18,2)"),
        ("boolean", "BOOLEAN", "boolean", "bit"),
        ("date", "DATE", "date", "date"),
        ("datetime", "DATETIME", "timestamp", "datetime2"),
    ],
)
def test_logical_types(spec: str, sqlite: str, postgresql: str, sqlserver: str) -> None:
    t = ss.LogicalType.parse(spec)
    assert str(t) == spec
    assert (t.sql("sqlite"), t.sql("postgresql"), t.sql("sqlserver")) == (
        sqlite,
        postgresql,
        sqlserver,
    )


@pytest.mark.parametrize("bad", ["text", "decimal(5)", "integer(3)", "blob", "decimal(2,3)"])
def test_bad_logical_types(bad: str) -> None:
    with pytest.raises(ValueError):
        ss.LogicalType.parse(bad)


def test_identifiers_are_quoted_per_backend() -> None:
    assert ss.quote_identifier('we"ird', "postgresql") == '"we""ird"'
    assert ss.quote_identifier("we]ird", "sqlserver") == "[we]]ird]"
    assert ss.qualified_name("Contacts", "sqlserver", "dbo") == "[dbo].[Contacts]"
    ddl = ss.create_table_sql("Contacts", "postgresql", schema="t2")
    assert ddl.startswith('CREATE TABLE "t2"."Contacts" (')
    assert '"ContactID" integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY' in ddl
    assert 'REFERENCES "t2"."Accounts" ("AccountID")' in ddl
    col = ss.custom_columns(1)[0]
    assert ss.add_column_sql("Contacts", col, "sqlserver") == (
        "ALTER TABLE [Contacts] ADD [Custom_Region] nvarchar(50) NULL"
    )
    with pytest.raises(ValueError):
        ss.quote_identifier("x", "oracle")


def test_custom_columns_are_deterministic_and_varied() -> None:
    cols = ss.custom_columns(800)
    assert cols == ss.custom_columns(800)
    assert len({c.name.casefold() for c in cols}) == 800
    assert cols[0].name == "Custom_Region"
    assert {c.type.kind for c in cols} == {"integer", "text", "decimal", "boolean", "date",
                                           "datetime"}  # fmt: skip
    other = ss.custom_columns(20, seed=2)
    assert {c.name for c in other} != {c.name for c in cols[:20]}
    assert ss.custom_columns(0) == []


def test_rows_are_deterministic_and_base_values_ignore_custom_columns() -> None:
    counts = ss.SeedCounts.for_contacts(50)
    plain = list(ss.generate_rows("Contacts", counts, seed=7))
    custom = ss.custom_columns(30)
    wide = list(ss.generate_rows("Contacts", counts, seed=7, custom=custom))
    assert plain == list(ss.generate_rows("Contacts", counts, seed=7))
    assert [r[: len(plain[0])] for r in wide] == plain
    assert all(len(r) == len(ss.BASE_MODEL["Contacts"]) + 30 for r in wide)
    assert plain != list(ss.generate_rows("Contacts", counts, seed=8))
    for row in wide:
        for col, value in zip(ss.table_columns("Contacts", custom), row, strict=True):
            if value is None:
                assert col.nullable, col.name
            elif col.type.kind == "text":
                assert isinstance(value, str) and len(value) <= (col.type.length or 0)
            elif col.type.kind == "decimal":
                assert isinstance(value, Decimal)
                assert value.as_tuple().exponent == -(col.type.scale or 0)
                assert len(value.as_tuple().digits) <= (col.type.precision or 0)


def test_sql_literals() -> None:
    assert ss.sql_literal("O'Brien", "sqlserver") == "N'O''Brien'"
    assert ss.sql_literal(True, "postgresql") == "TRUE"
    assert ss.sql_literal(False, "sqlserver") == "0"
    assert ss.sql_literal(Decimal("1.50"), "sqlite") == "1.50"
    assert ss.sql_literal(dt.datetime(2024, 1, 2, 3, 4, 5), "sqlserver") == "'2024-01-02T03:04:05'"
    assert ss.sql_literal(dt.date(2024, 1, 2), "postgresql") == "'2024-01-02'"
    assert ss.sql_literal(None, "sqlite") == "NULL"


def test_seed_tenant_through_the_sqlite_odbc_driver(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    custom = ss.custom_columns(12)
    with odbc(f"Driver=SQLite3;Database={path}") as conn:
        counts = ss.seed_tenant(conn, "sqlite", contacts=40, custom_columns=custom, seed=5)
        assert conn.autocommit  # restored after the load
        assert ss.row_counts(conn, "sqlite") == {
            "Accounts": counts.accounts,
            "Contacts": 40,
            "Opportunities": counts.opportunities,
        }
        got = conn.execute('SELECT * FROM "Contacts" ORDER BY 1').fetchall()
        # Identity: an insert without an id gets the next one.
        conn.execute('INSERT INTO "Contacts" ("FirstName", "LastName", "IsActive", "CreatedAt") '
                     "VALUES ('New', 'Person', 1, '2025-01-01 00:00:00')")  # fmt: skip
        assert conn.execute('SELECT MAX("ContactID") FROM "Contacts"').fetchone()[0] == 41
    # The ODBC load and the stdlib load store the same values.
    via_stdlib = tmp_path / "s.db"
    with contextlib.closing(sqlite3.connect(via_stdlib)) as db:
        ss.seed_tenant(db, "sqlite", contacts=40, custom_columns=custom, seed=5)
    with odbc(f"Driver=SQLite3;Database={via_stdlib}") as conn:
        assert conn.execute('SELECT * FROM "Contacts" ORDER BY 1').fetchall() == got
