"""proxy.demo.seed.seed_tenant on a real PostgreSQL server through psqlODBC."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pyodbc
import pytest

from proxy.demo import seed as ss
from tests.support.pg import PgServer

# It never reads TENANTGATE_TEST_DRIVERS (the seeder on psqlODBC connections it opens
# itself): the ODBC pass of `make test` would repeat it unchanged, so it runs in the
# native pass only (pyproject.toml).
pytestmark = [pytest.mark.integration, pytest.mark.driver_independent]


@contextlib.contextmanager
def connect(pg: PgServer, database: str) -> Iterator[pyodbc.Connection]:
    # BoolsAsChar=0: booleans come back as bool (the service's template sets it too).
    conn = pyodbc.connect(pg.odbc(database, BoolsAsChar="0"), autocommit=True, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def catalog_columns(conn: pyodbc.Connection, table: str, schema: str = "public") -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        schema,
        table,
    ).fetchall()
    return [r[0] for r in rows]


def test_seed_800_custom_columns(pg: PgServer, pg_database: str) -> None:
    custom = ss.custom_columns(800)
    with connect(pg, pg_database) as conn:
        started = time.perf_counter()
        counts = ss.seed_tenant(conn, "postgresql", contacts=1000, custom_columns=custom, seed=3)
        elapsed = time.perf_counter() - started
        assert conn.autocommit  # restored after the one-transaction load
        assert counts == ss.SeedCounts(accounts=200, contacts=1000, opportunities=500)
        assert ss.row_counts(conn, "postgresql") == {
            "Accounts": 200,
            "Contacts": 1000,
            "Opportunities": 500,
        }
        for table, base in ss.BASE_MODEL.items():
            expected = base + ([c.name for c in custom] if table == "Contacts" else [])
            assert catalog_columns(conn, table) == expected  # physical spelling kept

        cur = conn.execute('SELECT * FROM "Contacts" WHERE "ContactID" = 1')
        row = tuple(cur.fetchone())
        first = next(ss.generate_rows("Contacts", counts, seed=3, custom=custom))
        # Every value survives the driver: same data as the generator made.
        assert len(row) == len(first)
        for col, got, want in zip(ss.table_columns("Contacts", custom), row, first, strict=True):
            assert got == want, col.name
    # Budget ~20 s (measured about 4 s: 1 s generating values, 3 s executemany).
    assert elapsed < 60, f"seeding took {elapsed:.1f} s"


def test_types_foreign_keys_and_identity(pg: PgServer, pg_database: str) -> None:
    custom = ss.custom_columns(20)
    with connect(pg, pg_database) as conn:
        ss.seed_tenant(conn, "postgresql", contacts=100, custom_columns=custom, seed=1)
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = 'Contacts'"
            ).fetchall()
        )
        assert types["ContactID"] == "integer"
        assert types["Email"] == "character varying"
        assert types["Revenue"] == "numeric"
        assert types["IsActive"] == "boolean"
        assert types["BirthDate"] == "date"
        assert types["CreatedAt"] == "timestamp without time zone"
        assert types["Custom_ShoeSize"] == "numeric"
        mismatched = conn.execute(
            'SELECT COUNT(*) FROM "Opportunities" o JOIN "Contacts" c '
            'ON c."ContactID" = o."ContactID" WHERE c."AccountID" <> o."AccountID"'
        ).fetchone()[0]
        assert mismatched == 0
        with pytest.raises(pyodbc.IntegrityError):
            conn.execute(
                'INSERT INTO "Opportunities" ("AccountID", "Name", "Stage", "IsClosed", '
                "\"CreatedAt\") VALUES (99999, 'x', 'Prospecting', false, now())"
            )
        # The identity was moved past the seeded ids: inserting without one works.
        new_id = conn.execute(
            'INSERT INTO "Contacts" ("FirstName", "LastName", "IsActive", "CreatedAt") '
            "VALUES ('New', 'Person', true, now()) RETURNING \"ContactID\""
        ).fetchone()[0]
        assert new_id == 101


def test_schema_per_tenant_layout(pg: PgServer, pg_database: str) -> None:
    with connect(pg, pg_database) as conn:
        conn.execute('CREATE SCHEMA "t2"')
        conn.execute('CREATE SCHEMA "t3"')
        ss.seed_tenant(conn, "postgresql", contacts=20, schema="t2", seed=2)
        ss.seed_tenant(
            conn, "postgresql", contacts=30, schema="t3", custom_columns=ss.custom_columns(5)
        )
        assert ss.row_counts(conn, "postgresql", schema="t2")["Contacts"] == 20
        assert ss.row_counts(conn, "postgresql", schema="t3")["Contacts"] == 30
        assert len(catalog_columns(conn, "Contacts", "t3")) == len(ss.BASE_MODEL["Contacts"]) + 5
        assert catalog_columns(conn, "Contacts", "public") == []


def test_failed_load_leaves_nothing(pg: PgServer, pg_database: str) -> None:
    with connect(pg, pg_database) as conn:
        conn.execute('CREATE TABLE "Opportunities" (x int)')  # the third CREATE TABLE fails
        with pytest.raises(pyodbc.Error):
            ss.seed_tenant(conn, "postgresql", contacts=10)
        assert conn.autocommit
        assert catalog_columns(conn, "Accounts") == []  # rolled back with the rest
