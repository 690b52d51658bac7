"""The native PostgreSQL driver (psycopg 3, async) against a real PostgreSQL server.

No mocks. Slow statements are slow by construction (``pg_sleep`` far longer than any
deadline, a backend stopped with SIGSTOP, a session whose ``statement_timeout`` was
switched off behind the driver's back), and time is only asserted with generous
upper bounds, never as "took at least".
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import psycopg
import pytest
from psycopg import sql as psql

from proxy import context as request_context
from proxy import jsonenc
from proxy.drivers.base import Driver, ResultColumn
from proxy.drivers.postgres import PostgresDriver
from proxy.drivers.postgres.conninfo import conn_params
from proxy.drivers.postgres.session import backstop_delay
from proxy.drivers.postgres.statements import PREPARED_MAX
from proxy.drivers.sizing import PoolOptions
from proxy.errors import (
    BackendObjectMissing,
    BackendRejected,
    BackendUnavailable,
    ConnectionLost,
    ConstraintViolation,
    PoolSaturated,
    StatementTimeout,
)
from tenancy import catalog, sources
from tenancy.backends import BackendKind
from tenancy.connstr import parse
from tenancy.errors import TenantMisconfigured
from tenancy.location import TenantLocation, locate
from tests.support.pg import PgServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ODBC_STAT_KEYS = {
    "pool_max",
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_wait_ms",
    "requests_timeouts",
    "connections_num",
    "connections_errors",
    "connections_lost",
}
SLEEP = "SELECT pg_sleep(30)"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- helpers ----------------------------------------------------------------------


def admin(pg: PgServer, database: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=pg.user,
        password=pg.password,
        dbname=database or pg.admin_database,
        autocommit=True,
    )


def location(pg: PgServer, database: str, **extra: str) -> TenantLocation:
    return locate(parse(pg.odbc(database, **extra)), {})


@contextlib.asynccontextmanager
async def open_driver(**options: Any) -> AsyncIterator[PostgresDriver]:
    interval = options.pop("maintenance_interval", None)
    settings: dict[str, Any] = {"acquire_timeout": 10.0}
    settings.update(options)
    driver = PostgresDriver(PoolOptions(**settings), maintenance_interval=interval)
    try:
        yield driver
    finally:
        await driver.aclose()


def server_sessions(pg: PgServer, database: str) -> list[tuple[int, str, str]]:
    """(pid, state, query) of tenantgate's sessions on ``database``."""
    with admin(pg) as conn:
        rows = conn.execute(
            "SELECT pid, coalesce(state, ''), query FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'tenantgate'",
            [database],
        ).fetchall()
    return [(int(pid), str(state), str(query)) for pid, state, query in rows]


def running(pg: PgServer, database: str, needle: str) -> list[int]:
    return [
        pid
        for pid, state, query in server_sessions(pg, database)
        if needle in query and state == "active"
    ]


async def eventually(check: Any, *, within: float = 10.0) -> None:
    """Poll ``check()`` (sync) until true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await anyio.sleep(0.05)


async def backend_pid(driver: PostgresDriver, loc: TenantLocation) -> int:
    result = await driver.run(loc, "SELECT pg_backend_pid()", [], timeout_s=5, max_rows=1)
    pid = result.rows[0][0]
    assert isinstance(pid, int)
    return pid


def stats(driver: PostgresDriver, loc: TenantLocation) -> dict[str, int]:
    return driver.get_stats()[loc.server_key]


@pytest.fixture(scope="module")
def db(pg: PgServer) -> Iterator[str]:
    """One database for the module's read/write tests."""
    name = pg.create_database()
    with admin(pg, name) as conn:
        conn.execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text NOT NULL, "
            "email text UNIQUE, score int CHECK (score >= 0), note text)"
        )
        conn.execute(
            "INSERT INTO contacts SELECT g, 'n' || g, 'e' || g || '@x.org', g, NULL "
            "FROM generate_series(1, 20) g"
        )
    yield name
    pg.drop_database(name)


@pytest.fixture
def loc(pg: PgServer, db: str) -> TenantLocation:
    return location(pg, db)


# -- the Driver seam ---------------------------------------------------------------


async def test_satisfies_the_driver_protocol() -> None:
    async with open_driver() as driver:
        typed: Driver = driver
        assert typed.name == "psycopg"
        assert psycopg.Error in typed.db_errors


async def test_select_insert_update_delete_returning(loc: TenantLocation) -> None:
    async with open_driver() as driver:
        result = await driver.run(
            loc,
            "SELECT id, name FROM contacts WHERE id = ? LIMIT ?",
            [3, 11],
            timeout_s=5,
            max_rows=10,
        )
        assert result.columns == [ResultColumn("id", "integer"), ResultColumn("name", "string")]
        assert result.rows == [[3, "n3"]]
        assert (result.row_count, result.truncated) == (1, False)

        inserted = await driver.run(
            loc,
            "INSERT INTO contacts (id, name, score) VALUES (?, ?, ?), (?, ?, ?)",
            [101, "a", 1, 102, "b", 2],
            timeout_s=5,
            max_rows=10,
        )
        assert (inserted.columns, inserted.rows, inserted.row_count) == ([], [], 2)

        returned = await driver.run(
            loc,
            "UPDATE contacts SET score = score + ? WHERE id >= ? RETURNING id, score",
            [10, 101],
            timeout_s=5,
            max_rows=10,
            count_all_rows=True,
        )
        assert sorted(returned.rows) == [[101, 11], [102, 12]]
        assert returned.row_count == 2

        deleted = await driver.run(
            loc, "DELETE FROM contacts WHERE id >= ?", [101], timeout_s=5, max_rows=10
        )
        assert deleted.row_count == 2
        assert deleted.rows == []

        ddl = await driver.run(
            loc, "CREATE TEMP TABLE scratch (x int)", [], timeout_s=5, max_rows=10
        )
        assert ddl.columns == [] and ddl.row_count == -1


async def test_text_round_trip_and_nulls(loc: TenantLocation) -> None:
    samples = [
        "Grüße, Zoë",
        "日本語テキスト",
        "emoji 🎉🧑‍🚀 and \U0001f600",
        "'quotes' \"and\" \\",
        "%s %% ?",
    ]
    async with open_driver() as driver, driver.connection(loc) as session, session.transaction():
        for i, text in enumerate(samples):
            await session.execute(
                "INSERT INTO contacts (id, name, note) VALUES (?, ?, ?)",
                [200 + i, text, None],
                timeout_s=5,
                max_rows=0,
            )
        result = await session.execute(
            "SELECT name, note, ? AS echo, ? AS nothing FROM contacts WHERE id >= 200 ORDER BY id",
            ["ünïcødé ✓", None],
            timeout_s=5,
            max_rows=100,
        )
        assert [row[0] for row in result.rows] == samples
        assert all(row[1] is None and row[3] is None for row in result.rows)
        assert all(row[2] == "ünïcødé ✓" for row in result.rows)
        await session.execute("DELETE FROM contacts WHERE id >= 200", [], timeout_s=5, max_rows=0)


async def test_type_names_and_values(loc: TenantLocation) -> None:
    sql = (
        "SELECT 1::int2 AS i2, 2::int4 AS i4, 3000000000::int8 AS i8, 4::oid AS o, "
        "1.50::numeric(5,2) AS num, 1.5::float4 AS f4, 2.5::float8 AS f8, true AS b, "
        "'2024-02-29'::date AS d, '2024-02-29 12:34:56'::timestamp AS ts, "
        "'2024-02-29 12:34:56+02'::timestamptz AS tstz, '12:34:56'::time AS t, "
        "'\\x00ff'::bytea AS bin, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, "
        "'x'::text AS txt, 'y'::varchar(3) AS vc, 'z'::char(2) AS bp, 'n'::name AS nm, "
        "NULL::int AS nothing"
    )
    async with open_driver() as driver:
        result = await driver.run(loc, sql, [], timeout_s=5, max_rows=1)
    types = {column.name: column.type for column in result.columns}
    assert types == {
        "i2": "integer",
        "i4": "integer",
        "i8": "integer",
        "o": "integer",
        "num": "decimal",
        "f4": "number",
        "f8": "number",
        "b": "boolean",
        "d": "date",
        "ts": "datetime",
        "tstz": "datetime",
        "t": "time",
        "bin": "binary",
        "u": "uuid",
        "txt": "string",
        "vc": "string",
        "bp": "string",
        "nm": "string",
        "nothing": "integer",
    }
    values = dict(zip(types, result.rows[0], strict=True))
    assert values["i8"] == 3000000000
    assert values["num"] == decimal.Decimal("1.50")
    assert values["b"] is True
    assert values["d"] == datetime.date(2024, 2, 29)
    assert values["ts"] == datetime.datetime(2024, 2, 29, 12, 34, 56)
    tstz = values["tstz"]
    assert isinstance(tstz, datetime.datetime) and tstz.utcoffset() is not None
    assert tstz == datetime.datetime(2024, 2, 29, 10, 34, 56, tzinfo=datetime.UTC)
    assert values["t"] == datetime.time(12, 34, 56)
    assert values["bin"] == b"\x00\xff"
    assert values["u"] == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert values["bp"] == "z "
    assert values["nothing"] is None
    jsonenc.dumps(result.rows)


async def test_exotic_types_come_back_as_encodable_text(loc: TenantLocation) -> None:
    exprs = {
        "js": ("'{\"a\": [1, 2]}'::json", '{"a": [1, 2]}'),
        "jsb": ("'{\"a\": [1, 2]}'::jsonb", '{"a": [1, 2]}'),
        "iv": ("'1 day 2 hours'::interval", "1 day 02:00:00"),
        "ip": ("'10.0.0.1'::inet", "10.0.0.1"),
        "net": ("'10.0.0.0/8'::cidr", "10.0.0.0/8"),
        "arr": ("ARRAY[1, 2, 3]", "{1,2,3}"),
        "tarr": ("ARRAY['a', NULL]", "{a,NULL}"),
        "ivarr": ("ARRAY['1 hour'::interval]", "{01:00:00}"),
        "rng": ("'[1,5)'::int4range", "[1,5)"),
        "ttz": ("'12:00:00+02'::timetz", "12:00:00+02"),
        "mon": ("12.34::money", None),
        "pt": ("'(1,2)'::point", "(1,2)"),
        "bits": ("B'101'::bit(3)", "101"),
        "x": ("'<a/>'::xml", "<a/>"),
        "rec": ("ROW(1, 'a')", "(1,a)"),
        "inf": ("'infinity'::date", "infinity"),
        "ninf": ("'-infinity'::timestamptz", "-infinity"),
        "bc": ("'0044-03-15 BC'::date", "0044-03-15 BC"),
    }
    sql = "SELECT " + ", ".join(f"{expr} AS {name}" for name, (expr, _) in exprs.items())
    async with open_driver() as driver:
        result = await driver.run(loc, sql, [], timeout_s=5, max_rows=1)
    values = dict(zip(exprs, result.rows[0], strict=True))
    for name, (_, expected) in exprs.items():
        assert isinstance(values[name], str), name
        if expected is not None:
            assert values[name] == expected, name
    assert "12.34" in str(values["mon"])
    types = {column.name: column.type for column in result.columns}
    assert types["inf"] == "date" and types["ninf"] == "datetime"
    assert all(types[name] == "string" for name in exprs if name not in ("inf", "ninf", "bc"))
    jsonenc.dumps(result.rows)


async def test_infinity_among_ordinary_dates(loc: TenantLocation) -> None:
    sql = "SELECT d FROM (VALUES ('2024-01-01'::date), ('infinity'), ('2024-01-02')) v(d)"
    async with open_driver() as driver:
        result = await driver.run(loc, sql, [], timeout_s=5, max_rows=10)
    assert result.rows == [
        [datetime.date(2024, 1, 1)],
        ["infinity"],
        [datetime.date(2024, 1, 2)],
    ]


async def test_truncation_and_count_all_rows(loc: TenantLocation) -> None:
    async with open_driver() as driver:
        capped = await driver.run(
            loc, "SELECT id FROM contacts ORDER BY id LIMIT ?", [6], timeout_s=5, max_rows=5
        )
        assert [row[0] for row in capped.rows] == [1, 2, 3, 4, 5]
        assert (capped.row_count, capped.truncated) == (5, True)

        exact = await driver.run(
            loc, "SELECT id FROM contacts ORDER BY id LIMIT ?", [5], timeout_s=5, max_rows=5
        )
        assert (exact.row_count, exact.truncated) == (5, False)

        none = await driver.run(
            loc, "SELECT id FROM contacts WHERE id < 0", [], timeout_s=5, max_rows=5
        )
        assert none.columns == [ResultColumn("id", "integer")]
        assert (none.rows, none.row_count, none.truncated) == ([], 0, False)

        zero = await driver.run(loc, "SELECT id FROM contacts", [], timeout_s=5, max_rows=0)
        assert (zero.rows, zero.row_count, zero.truncated) == ([], 0, True)

        counted = await driver.run(
            loc,
            "UPDATE contacts SET score = score WHERE id <= ? RETURNING id",
            [12],
            timeout_s=5,
            max_rows=3,
            count_all_rows=True,
        )
        assert len(counted.rows) == 3
        assert (counted.row_count, counted.truncated) == (12, True)


async def test_statements_are_prepared_and_reused(loc: TenantLocation) -> None:
    sql = "SELECT name FROM contacts WHERE id = ? /* prepared-probe */"
    async with open_driver(max_size=1) as driver:
        pid = await backend_pid(driver, loc)
        for i in range(1, 6):
            result = await driver.run(loc, sql, [i], timeout_s=5, max_rows=1)
            assert result.rows == [[f"n{i}"]]
        prepared = await driver.run(
            loc,
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE ?",
            ["%prepared-probe%"],
            timeout_s=5,
            max_rows=1,
        )
        assert prepared.rows == [[1]]
        assert await backend_pid(driver, loc) == pid


async def test_a_working_set_a_little_larger_than_the_room_does_not_churn(
    loc: TenantLocation,
) -> None:
    """150 texts in random order on one connection, with room for 100 prepared: a
    statement takes a prepared one's place only when it was seen more often than that
    one was used. Evicting on every second sight, as psycopg does, prepares (and
    deallocates) about twice as many: 280-313 over these 1,500 runs, seeds 0-9 of a
    simulation of both policies, against 135-153."""
    texts = [f"SELECT name FROM contacts WHERE id = ? /* text {i} */" for i in range(150)]
    order = random.Random(0).choices(range(150), k=1500)
    async with open_driver(max_size=1) as driver:
        for i in order:
            result = await driver.run(loc, texts[i], [1], timeout_s=5, max_rows=1)
            assert result.rows == [["n1"]]
        pool = next(iter(driver._pools.values())).pool
        conn = await pool.acquire()
        try:
            assert len(conn.statements) == PREPARED_MAX
            prepares = conn.statements.kept.get_stats()["prepares"]
            assert prepares <= PREPARED_MAX * 2  # prepared ever: 200 at most
        finally:
            pool.release(conn)
        count = "SELECT count(*) FROM pg_prepared_statements"
        held = await driver.run(loc, count, [], timeout_s=5, max_rows=1)
        assert held.rows == [[PREPARED_MAX]]  # the server holds what the driver believes


async def test_result_columns_are_reused(loc: TenantLocation) -> None:
    sql = "SELECT id, name FROM contacts WHERE id = ? /* columns-probe */"
    async with open_driver(max_size=1) as driver:
        first = await driver.run(loc, sql, [1], timeout_s=5, max_rows=1)
        second = await driver.run(loc, sql, [2], timeout_s=5, max_rows=1)
        assert first.columns == second.columns
        assert first.columns is not second.columns  # a copy each: callers may change it
        # Kept with the statement prepared at the second run, not read again.
        pool = next(iter(driver._pools.values())).pool
        assert pool.columns[hash(sql)] == first.columns
        conn = await pool.acquire()
        try:
            assert len(conn.statements) == 1
            ((_, prepared),) = conn.statements.kept.items()
            assert prepared.columns == first.columns
        finally:
            pool.release(conn)


async def test_prepared_statement_survives_a_type_change(pg: PgServer, db: str) -> None:
    loc = location(pg, db)
    with admin(pg, db) as conn:
        conn.execute("CREATE TABLE shifting (id int PRIMARY KEY, v int)")
        conn.execute("INSERT INTO shifting VALUES (1, 7)")
    try:
        sql = "SELECT * FROM (SELECT id, v FROM shifting) q WHERE id = ?"
        async with open_driver(max_size=1) as driver:
            first = await driver.run(loc, sql, [1], timeout_s=5, max_rows=1)
            assert first.rows == [[1, 7]]
            with admin(pg, db) as conn:
                conn.execute("ALTER TABLE shifting ALTER COLUMN v TYPE text")
            second = await driver.run(loc, sql, [1], timeout_s=5, max_rows=1)
            assert second.rows == [[1, "7"]]
            assert second.columns[1] == ResultColumn("v", "string")
    finally:
        with admin(pg, db) as conn:
            conn.execute("DROP TABLE shifting")


async def test_transactions_commit_and_roll_back(loc: TenantLocation) -> None:
    async with open_driver() as driver:
        async with driver.connection(loc) as session:
            async with session.transaction():
                await session.execute(
                    "INSERT INTO contacts (id, name) VALUES (?, ?)",
                    [300, "kept"],
                    timeout_s=5,
                    max_rows=0,
                )
            with pytest.raises(ConstraintViolation):
                async with session.transaction():
                    await session.execute(
                        "INSERT INTO contacts (id, name) VALUES (?, ?)",
                        [301, "undone"],
                        timeout_s=5,
                        max_rows=0,
                    )
                    await session.execute(
                        "INSERT INTO contacts (id, name) VALUES (?, ?)",
                        [300, "duplicate"],
                        timeout_s=5,
                        max_rows=0,
                    )
            with pytest.raises(RuntimeError, match="mine"):
                async with session.transaction():
                    await session.execute(
                        "INSERT INTO contacts (id, name) VALUES (?, ?)",
                        [302, "undone"],
                        timeout_s=5,
                        max_rows=0,
                    )
                    raise RuntimeError("mine")
            result = await session.execute(
                "SELECT id FROM contacts WHERE id >= 300 ORDER BY id",
                [],
                timeout_s=5,
                max_rows=10,
            )
            assert result.rows == [[300]]
            await session.execute(
                "DELETE FROM contacts WHERE id >= 300", [], timeout_s=5, max_rows=0
            )
        # The same connection went back to the pool, idle and reusable.
        assert stats(driver, loc)["connections_lost"] == 0
        assert stats(driver, loc)["pool_available"] == 1


async def test_statement_timeout_is_set_only_when_it_changes(loc: TenantLocation) -> None:
    show = "SELECT current_setting('statement_timeout')"
    async with open_driver(max_size=1) as driver:
        # The connect first: a slow one counts against its request's timeout, which
        # would then not be 2.5 s.
        await driver.run(loc, "SELECT 1", [], timeout_s=9, max_rows=1)
        result = await driver.run(loc, show, [], timeout_s=2.5, max_rows=1)
        assert result.rows == [["2500ms"]]
        # Changed behind the driver's back: the next request with the same timeout
        # sends no SET, so it sees the change; another timeout sets its own.
        await driver.run(
            loc,
            "SELECT set_config('statement_timeout', '1234', false)",
            [],
            timeout_s=2.5,
            max_rows=1,
        )
        assert (await driver.run(loc, show, [], timeout_s=2.5, max_rows=1)).rows == [["1234ms"]]
        assert (await driver.run(loc, show, [], timeout_s=3, max_rows=1)).rows == [["3s"]]


async def test_set_local_timeout_ends_with_its_transaction(loc: TenantLocation) -> None:
    show = "SELECT current_setting('statement_timeout')"
    async with open_driver(max_size=1) as driver, driver.connection(loc) as session:
        await session.execute(show, [], timeout_s=2.5, max_rows=1)
        with pytest.raises(BackendRejected):
            async with session.transaction(timeout_s=2.5):
                inside = await session.execute(show, [], timeout_s=4, max_rows=1)
                assert inside.rows == [["4s"]]
                await session.execute("SELECT 1/0 AS boom", [], timeout_s=4, max_rows=1)
        after = await session.execute(show, [], timeout_s=2.5, max_rows=1)
        assert after.rows == [["2500ms"]]


# -- timeouts ----------------------------------------------------------------------


async def test_server_side_timeout_keeps_the_connection(pg: PgServer, db: str) -> None:
    loc = location(pg, db)
    async with open_driver(max_size=1) as driver:
        pid = await backend_pid(driver, loc)
        start = time.monotonic()
        with pytest.raises(StatementTimeout) as caught:
            await driver.run(loc, SLEEP, [], timeout_s=0.5, max_rows=1)
        assert time.monotonic() - start < 10
        assert caught.value.details["sqlstate"] == "57014"
        assert caught.value.details["timeout_ms"] == 500
        assert isinstance(caught.value.__cause__, psycopg.errors.QueryCanceled)
        assert await backend_pid(driver, loc) == pid
        assert stats(driver, loc)["connections_lost"] == 0
        assert not running(pg, db, "pg_sleep")


async def test_backstop_cancels_when_the_server_timeout_is_off(pg: PgServer, db: str) -> None:
    """The session's statement_timeout is switched off by a statement the driver runs
    but does not interpret: the driver still believes 500 ms is set, sends no SET, and
    only the client-side backstop can stop pg_sleep(30)."""
    loc = location(pg, db)
    async with open_driver(max_size=1) as driver:
        pid = await backend_pid(driver, loc)
        await driver.run(
            loc,
            "SELECT set_config('statement_timeout', '0', false)",
            [],
            timeout_s=0.5,
            max_rows=1,
        )
        start = time.monotonic()
        with pytest.raises(StatementTimeout) as caught:
            await driver.run(loc, SLEEP + " /* backstop */", [], timeout_s=0.5, max_rows=1)
        elapsed = time.monotonic() - start
        assert elapsed < 0.5 + backstop_delay(0.5) + 5
        assert caught.value.details["timeout_ms"] == 500
        # The backstop retires the connection, whatever the server answered.
        assert stats(driver, loc)["connections_lost"] == 1
        await eventually(lambda: not running(pg, db, "backstop"))
        assert await backend_pid(driver, loc) != pid


async def test_backstop_frees_the_request_when_the_server_cannot_answer(
    pg: PgServer, db: str
) -> None:
    """A backend stopped with SIGSTOP reads nothing: neither its statement_timeout nor a
    cancel request can end the statement, so the backstop must close the connection."""
    loc = location(pg, db)
    async with open_driver(max_size=1) as driver:
        pid = await backend_pid(driver, loc)
        try:
            os.kill(pid, signal.SIGSTOP)
        except (PermissionError, ProcessLookupError):
            pytest.skip("cannot signal the server's processes (not local, or not permitted)")
        try:
            start = time.monotonic()
            with pytest.raises(StatementTimeout) as caught:
                await driver.run(loc, SLEEP + " /* frozen */", [], timeout_s=0.5, max_rows=1)
            elapsed = time.monotonic() - start
        finally:
            os.kill(pid, signal.SIGCONT)
        assert elapsed < 0.5 + backstop_delay(0.5) + 5
        assert caught.value.details["timeout_ms"] == 500
        assert stats(driver, loc)["connections_lost"] == 1
        # Once resumed, the backend meets our cancel and the closed socket, and goes.
        await eventually(lambda: pid not in [p for p, _, _ in server_sessions(pg, db)])
        assert await backend_pid(driver, loc) != pid


async def test_cancelled_request_closes_its_connection(pg: PgServer, db: str) -> None:
    loc = location(pg, db)
    async with open_driver(max_size=1) as driver:
        pid = await backend_pid(driver, loc)
        with anyio.move_on_after(0.5) as scope:
            await driver.run(loc, SLEEP + " /* cancelled */", [], timeout_s=20, max_rows=1)
        assert scope.cancelled_caught
        assert stats(driver, loc)["connections_lost"] == 1
        assert stats(driver, loc)["pool_size"] == 0
        await eventually(lambda: not running(pg, db, "cancelled"))
        assert await backend_pid(driver, loc) != pid


# -- broken connections ------------------------------------------------------------


async def test_terminated_idle_connection_is_replaced_before_use(pg: PgServer, db: str) -> None:
    loc = location(pg, db)
    async with open_driver(max_size=1) as driver:
        pid = await backend_pid(driver, loc)
        with admin(pg) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        await eventually(lambda: pid not in [p for p, _, _ in server_sessions(pg, db)])
        # A connection used within validate_idle is lent without a look at its socket.
        await anyio.sleep(PoolOptions().validate_idle)
        new_pid = await backend_pid(driver, loc)
        assert new_pid != pid
        assert stats(driver, loc)["connections_num"] == 2


async def test_a_lost_connection_closes_its_idle_siblings(pg: PgServer, db: str) -> None:
    """After a restart every pooled connection is dead, however recently it was used:
    once one request meets a lost connection, the idle ones are closed."""
    loc = location(pg, db)
    async with open_driver(max_size=2, validate_idle=3600.0) as driver:
        async with driver.connection(loc) as one, driver.connection(loc) as two:
            for session in (one, two):
                await session.execute("SELECT 1", timeout_s=5, max_rows=1)
        pids = [p for p, _, _ in server_sessions(pg, db)]
        assert len(pids) == 2
        with admin(pg) as conn:
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        await eventually(lambda: not server_sessions(pg, db))
        # Trusted without a look (validate_idle is long): the first request meets it.
        with pytest.raises(ConnectionLost):
            await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        assert stats(driver, loc)["pool_available"] == 0
        # The next request opens a fresh connection: no error.
        await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        assert stats(driver, loc)["connections_num"] == 3


async def test_connection_terminated_mid_statement_is_discarded(pg: PgServer, db: str) -> None:
    loc = location(pg, db)
    async with open_driver(max_size=1) as driver:
        pid = await backend_pid(driver, loc)

        async def terminate_when_running() -> None:
            await eventually(lambda: bool(running(pg, db, "terminated")))
            with admin(pg) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", [pid])

        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_when_running)
            with pytest.raises(ConnectionLost) as caught:
                await driver.run(loc, SLEEP + " /* terminated */", [], timeout_s=20, max_rows=1)
        assert caught.value.retry_after
        assert stats(driver, loc)["connections_lost"] == 1
        assert stats(driver, loc)["pool_size"] == 0
        assert await backend_pid(driver, loc) != pid


# -- pool sizing -------------------------------------------------------------------


async def test_pool_cap(pg: PgServer, pg_database: str) -> None:
    loc = location(pg, pg_database)
    seen: list[int] = []

    async def watch(stop: anyio.Event) -> None:
        while not stop.is_set():
            seen.append(len(server_sessions(pg, pg_database)))
            await anyio.sleep(0.02)

    async with open_driver(max_size=2, acquire_timeout=30) as driver:
        stop = anyio.Event()
        async with anyio.create_task_group() as outer:
            outer.start_soon(watch, stop)
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(
                        lambda: driver.run(
                            loc, "SELECT pg_sleep(0.3)", [], timeout_s=10, max_rows=1
                        )
                    )
            stop.set()
        current = stats(driver, loc)
        assert current["pool_size"] <= 2
        assert current["connections_num"] == 2
        assert current["requests_num"] == 6
        assert current["requests_wait_ms"] > 0
    assert max(seen) <= 2


async def test_acquire_timeout_raises_pool_saturated(pg: PgServer, pg_database: str) -> None:
    loc = location(pg, pg_database)
    async with open_driver(max_size=1, acquire_timeout=0.3) as driver:
        async with driver.connection(loc):
            start = time.monotonic()
            with pytest.raises(PoolSaturated) as caught:
                await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
            assert time.monotonic() - start < 5
        assert caught.value.retry_after
        assert caught.value.details["pool_max"] == 1
        assert stats(driver, loc)["requests_timeouts"] == 1
        # The held connection came back and serves the next request.
        result = await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        assert result.rows == [[1]]


async def test_waiters_are_served_first_come_first_served(pg: PgServer, pg_database: str) -> None:
    loc = location(pg, pg_database)
    async with open_driver(max_size=1, acquire_timeout=30) as driver:
        order: list[int] = []

        async def request(i: int) -> None:
            await driver.run(loc, "SELECT pg_sleep(0.02)", [], timeout_s=5, max_rows=1)
            order.append(i)

        async with anyio.create_task_group() as tg, driver.connection(loc):
            for i in range(4):
                tg.start_soon(request, i)
                await eventually(lambda i=i: stats(driver, loc)["requests_waiting"] == i + 1)
            # Leaving the block hands the connection to the oldest waiter, and so on.
        assert order == [0, 1, 2, 3]
        assert stats(driver, loc)["connections_num"] == 1
        assert stats(driver, loc)["requests_waiting"] == 0


async def test_server_cap_across_databases(pg: PgServer) -> None:
    first, second = pg.create_database(), pg.create_database()
    try:
        loc_a, loc_b = location(pg, first), location(pg, second)
        assert loc_a.server_key == loc_b.server_key
        async with open_driver(max_size=5, max_per_server=2, acquire_timeout=0.5) as driver:
            # Two idle connections in A: the server is at its cap.
            async with driver.connection(loc_a), driver.connection(loc_a):
                pass
            assert stats(driver, loc_a)["pool_available"] == 2
            # B needs one: the idle connection of A that waited longest is closed for it.
            result = await driver.run(loc_b, "SELECT 1", [], timeout_s=5, max_rows=1)
            assert result.rows == [[1]]
            assert stats(driver, loc_a)["pool_size"] == 2
            await eventually(lambda: len(server_sessions(pg, first)) == 1)
            assert len(server_sessions(pg, second)) == 1
            # With both permits on loan, a request of either database waits, then fails.
            async with driver.connection(loc_a), driver.connection(loc_b):
                for loc in (loc_a, loc_b):
                    with pytest.raises(PoolSaturated, match="connection cap") as caught:
                        await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
                    assert caught.value.details["pool_max"] == 2
            assert stats(driver, loc_a)["requests_timeouts"] == 2
            assert stats(driver, loc_a)["server_max"] == 2

        async with open_driver(max_size=5, max_per_server=1, acquire_timeout=30) as driver:
            # A connection of A that comes back while B waits for the server's cap is
            # closed, and its permit goes to B.
            done = anyio.Event()

            async def in_b() -> None:
                await driver.run(loc_b, "SELECT 2", [], timeout_s=5, max_rows=1)
                done.set()

            async with anyio.create_task_group() as tg:
                async with driver.connection(loc_a):
                    before = stats(driver, loc_a)["requests_num"]
                    tg.start_soon(in_b)
                    await eventually(lambda: stats(driver, loc_a)["requests_num"] == before + 1)
                    assert not done.is_set()
                with anyio.fail_after(10):
                    await done.wait()
            assert stats(driver, loc_a)["pool_size"] == 1  # B's; A's was closed
            assert stats(driver, loc_a)["connections_num"] == 2
            await eventually(lambda: not server_sessions(pg, first))
    finally:
        pg.drop_database(first)
        pg.drop_database(second)


async def test_accounting_survives_cancellations_errors_and_timeouts(pg: PgServer) -> None:
    """Many requests over two databases, cancelled at random points, failing, timing out
    or waiting past their acquire timeout: afterwards nothing is lent, every slot and
    server permit is accounted for, and the pools still work."""
    first, second = pg.create_database(), pg.create_database()
    rng = random.Random(42)
    try:
        locs = [location(pg, first), location(pg, second)]
        async with open_driver(max_size=3, max_per_server=4, acquire_timeout=0.2) as driver:

            async def request(i: int) -> None:
                loc = locs[i % 2]
                sql = rng.choice(
                    ["SELECT pg_sleep(0.05)", "SELECT 1/0", "SELECT pg_sleep(0.3)", "SELECT 1"]
                )
                with contextlib.suppress(BackendRejected, PoolSaturated, StatementTimeout):
                    with anyio.move_on_after(rng.choice([0.01, 0.05, 0.1, 10])):
                        await driver.run(loc, sql, [], timeout_s=0.2, max_rows=1)

            async with anyio.create_task_group() as tg:
                for i in range(80):
                    tg.start_soon(request, i)
                    if i % 10 == 0:
                        await anyio.sleep(0.01)
            total = stats(driver, locs[0])
            assert total["requests_waiting"] == 0
            assert total["pool_size"] == total["pool_available"]
            limiter = driver._limiters[locs[0].server_key]
            assert limiter.in_use == total["pool_size"] <= 4
            assert limiter.waiting == 0
            for loc in locs:
                result = await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
                assert result.rows == [[1]]
    finally:
        pg.drop_database(first)
        pg.drop_database(second)


async def test_idle_connections_expire_and_quiet_pools_go_away(
    pg: PgServer, pg_database: str
) -> None:
    loc = location(pg, pg_database)
    async with open_driver(max_idle=0.3, maintenance_interval=0.1) as driver:
        async with driver.connection(loc), driver.connection(loc):
            pass
        assert stats(driver, loc)["pool_available"] == 2
        await eventually(lambda: driver.pool_count() == 0)
        await eventually(lambda: not server_sessions(pg, pg_database))
        # Counters survive their pool.
        assert stats(driver, loc)["requests_num"] == 2
        assert stats(driver, loc)["connections_num"] == 2
        assert stats(driver, loc)["pool_size"] == 0
        result = await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        assert result.rows == [[1]]
        assert stats(driver, loc)["requests_num"] == 3


async def test_idle_expiry_on_checkout(pg: PgServer, pg_database: str) -> None:
    loc = location(pg, pg_database)
    async with open_driver(max_idle=0.2, maintenance_interval=3600) as driver:
        pid = await backend_pid(driver, loc)
        await anyio.sleep(0.4)
        assert await backend_pid(driver, loc) != pid
        await eventually(lambda: pid not in [p for p, _, _ in server_sessions(pg, pg_database)])


async def test_min_size_is_kept_by_maintenance(pg: PgServer, pg_database: str) -> None:
    loc = location(pg, pg_database)
    async with open_driver(min_size=2, maintenance_interval=0.1) as driver:
        await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        await eventually(lambda: stats(driver, loc)["pool_available"] == 2)
        assert len(server_sessions(pg, pg_database)) == 2


async def test_min_size_does_not_keep_quiet_pools(pg: PgServer, pg_database: str) -> None:
    loc = location(pg, pg_database)
    async with open_driver(min_size=1, max_idle=0.3, maintenance_interval=0.1) as driver:
        await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        await eventually(lambda: driver.pool_count() == 0)
        await eventually(lambda: not server_sessions(pg, pg_database))


async def test_aclose_fails_waiters_and_closes_loaned_connections(
    pg: PgServer, pg_database: str
) -> None:
    loc = location(pg, pg_database)
    driver = PostgresDriver(PoolOptions(max_size=1, acquire_timeout=30))
    failures: list[BaseException] = []

    async def waiter() -> None:
        try:
            await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        except BackendUnavailable as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg, driver.connection(loc) as session:
        tg.start_soon(waiter)
        await eventually(lambda: stats(driver, loc)["requests_waiting"] == 1)
        await driver.aclose()
        await eventually(lambda: len(failures) == 1)
        # The loaned connection still serves its holder until the block ends...
        result = await session.execute("SELECT 2", [], timeout_s=5, max_rows=1)
        assert result.rows == [[2]]
        # ...and is closed, not kept, when it comes back.
    assert "closed" in str(failures[0])
    await eventually(lambda: not server_sessions(pg, pg_database))
    with pytest.raises(RuntimeError, match="closed"):
        await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)


async def test_stats_keys(loc: TenantLocation) -> None:
    async with open_driver() as driver:
        await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        assert set(stats(driver, loc)) == ODBC_STAT_KEYS | {"server_max"}


# -- tenancy's blocking source ------------------------------------------------------


async def test_blocking_source_from_a_worker_thread(loc: TenantLocation) -> None:
    async with open_driver() as driver:
        source = driver.blocking_source(loc, timeout_s=5)

        def read() -> tuple[str, list[catalog.Column]] | None:
            with source() as conn:
                return catalog.read_table(conn, loc, "CONTACTS")

        found = await anyio.to_thread.run_sync(read)
        assert found is not None
        name, columns = found
        assert name == "contacts"
        assert [c.name for c in columns] == ["id", "name", "email", "score", "note"]
        assert columns[0].type_name == "integer" and not columns[0].nullable

        def fail() -> None:
            with source() as conn:
                sources.fetch(conn, "SELECT no_such_column FROM contacts")

        with pytest.raises(driver.db_errors) as caught:
            await anyio.to_thread.run_sync(fail)
        assert sources.sqlstate_of(caught.value) == "42703"

        def cursor_api() -> tuple[Any, ...]:
            with source() as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT id, name FROM contacts WHERE id <= ? ORDER BY id", [3])
                assert cursor.description is not None
                assert [d[0] for d in cursor.description] == ["id", "name"]
                one = cursor.fetchone()
                many = cursor.fetchmany(1)
                rest = cursor.fetchall()
                cursor.close()
                return one, many, rest

        one, many, rest = await anyio.to_thread.run_sync(cursor_api)
        assert (one, many, rest) == ((1, "n1"), [(2, "n2")], [(3, "n3")])
        assert stats(driver, loc)["pool_size"] == stats(driver, loc)["pool_available"]

        with pytest.raises(RuntimeError, match="worker thread"), source():
            pass


# -- errors ------------------------------------------------------------------------


async def test_error_translation(loc: TenantLocation) -> None:
    async with open_driver(max_size=1) as driver:

        async def fails(sql: str, params: list[Any]) -> BackendRejected:
            with pytest.raises(BackendRejected) as caught:
                await driver.run(loc, sql, params, timeout_s=5, max_rows=1)
            return caught.value

        unique = await fails("INSERT INTO contacts (id, name) VALUES (?, ?)", [1, "dup"])
        assert isinstance(unique, ConstraintViolation)
        assert unique.details["sqlstate"] == "23505"
        assert "Failing row" not in str(unique) and "(id)=(1)" not in str(unique)
        assert isinstance(unique.__cause__, psycopg.errors.UniqueViolation)

        missing = await fails("SELECT no_such FROM contacts", [])
        assert isinstance(missing, BackendObjectMissing)
        assert missing.details == {
            "sqlstate": "42703",
            "object_kind": "column",
            "object_name": "no_such",
        }

        table = await fails("SELECT 1 FROM no_such_table", [])
        assert isinstance(table, BackendObjectMissing)
        assert table.details["object_kind"] == "table"

        syntax = await fails("SELEC 1", [])
        assert type(syntax) is BackendRejected
        assert syntax.details["sqlstate"] == "42601"

        check = await fails("UPDATE contacts SET score = ? WHERE id = 1", [-5])
        assert isinstance(check, ConstraintViolation)

        overflow = await fails("SELECT ?::int", [2**40])
        assert overflow.details["sqlstate"] == "22003"
        huge = await fails("INSERT INTO contacts (id, name) VALUES (?, 'x')", [10**30])
        assert huge.details["sqlstate"] == "22003"

        cast = await fails("SELECT ?::int", ["not a number"])
        assert cast.details["sqlstate"] == "22P02"
        assert "not a number" in str(cast) or "integer" in str(cast)

        for value in ({"a": 1}, [1, "mixed"], ["mixed", 1], "nul \x00 inside", object()):
            rejected = await fails("SELECT ?", [value])
            assert type(rejected) is BackendRejected
            assert "sqlstate" not in rejected.details

        count = await fails("SELECT ?, ?", [1])
        assert type(count) is BackendRejected

        # None of that hurt the connection, but for the values psycopg fails on with a
        # TypeError (a list of an int and a str): those retire it, to be safe.
        assert stats(driver, loc)["connections_lost"] == stats(driver, loc)["connections_num"] - 1


async def test_read_only_connection_string(pg: PgServer, db: str) -> None:
    loc = location(pg, db, ReadOnly="1")
    async with open_driver() as driver:
        result = await driver.run(loc, "SELECT count(*) FROM contacts", [], timeout_s=5, max_rows=1)
        count = result.rows[0][0]
        assert isinstance(count, int) and count >= 20
        with pytest.raises(BackendRejected) as caught:
            await driver.run(loc, "DELETE FROM contacts WHERE id = 1", [], timeout_s=5, max_rows=1)
        assert caught.value.details["sqlstate"] == "25006"


async def test_connect_failures(pg: PgServer, db: str) -> None:
    async with open_driver(login_timeout=2) as driver:
        for loc in (
            location(pg, "no_such_database_here"),
            locate(parse(pg.odbc(db, Port="1")), {}),
        ):
            with pytest.raises(BackendUnavailable) as caught:
                await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
            assert caught.value.retry_after
            assert loc.pool_key in caught.value.message
            assert stats(driver, loc)["connections_errors"] >= 1
            assert stats(driver, loc)["pool_size"] == 0


@pytest.fixture
def password_role(pg: PgServer) -> Iterator[tuple[str, str]]:
    """A role that must log in with a password (scram), on the test server."""
    role = f"tg_pw_{uuid.uuid4().hex[:8]}"
    password = f"Correct-Horse-{uuid.uuid4().hex}"
    with admin(pg) as conn:
        path = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        try:
            original = path.read_text()
            path.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
        except OSError:
            pytest.skip("the server's pg_hba.conf is not writable from the tests")
    try:
        with admin(pg) as conn:
            conn.execute(
                psql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    psql.Identifier(role), psql.Literal(password)
                )
            )
            loaded = conn.execute("SELECT pg_conf_load_time()").fetchone()
            conn.execute("SELECT pg_reload_conf()")
        # pg_reload_conf() only signals the postmaster. A new session is forked from it
        # after it has read the files again, and inherits its load time.
        deadline = time.monotonic() + 10
        while True:
            with admin(pg) as conn:
                if conn.execute("SELECT pg_conf_load_time()").fetchone() != loaded:
                    break
            assert time.monotonic() < deadline, "the server did not reload pg_hba.conf"
            time.sleep(0.05)
        yield role, password
    finally:
        path.write_text(original)
        with admin(pg) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(psql.SQL("DROP ROLE IF EXISTS {}").format(psql.Identifier(role)))


async def test_bad_password(pg: PgServer, db: str, password_role: tuple[str, str]) -> None:
    role, password = password_role
    wrong = "Wrong-Battery-Staple-Secret"
    good = locate(parse(pg.odbc(db, Uid=role, Pwd="{" + password + "}")), {})
    bad = locate(parse(pg.odbc(db, Uid=role, Pwd="{" + wrong + "}")), {})
    async with open_driver(login_timeout=5) as driver:
        result = await driver.run(good, "SELECT current_user", [], timeout_s=5, max_rows=1)
        assert result.rows == [[role]]
        with pytest.raises(BackendUnavailable) as caught:
            await driver.run(bad, "SELECT 1", [], timeout_s=5, max_rows=1)
    error = caught.value
    assert "password authentication failed" in error.message
    shown = [str(error), repr(error), error.message, repr(error.details)]
    shown += [str(error.__cause__), repr(error.__cause__)]
    assert error.__context__ is None
    for text in shown:
        assert wrong not in text and password not in text
    assert wrong not in repr(conn_params(bad.connect, login_timeout=5))


# -- connection parameters (no server needed) ----------------------------------------


def test_connection_parameters() -> None:
    cs = parse(
        "Driver={PostgreSQL Unicode};Servername= db.example ;Port=6543;Database=t1;"
        "Username=app;Password={p;w}}};SSLmode=vf;KeepaliveTime=60;ReadOnly=yes;"
        "BoolsAsChar=0;UseDeclareFetch=1"
    )
    params = conn_params(cs, login_timeout=0.5)
    assert dict(params.kwargs) == {
        "host": "db.example",
        "port": "6543",
        "dbname": "t1",
        "user": "app",
        "password": "p;w}",
        "sslmode": "verify-full",
        "application_name": "tenantgate",
        "client_encoding": "UTF8",
        "connect_timeout": "2",
        "keepalives": "1",
        "keepalives_idle": "60",
        "keepalives_interval": "10",
        "keepalives_count": "3",
        "tcp_user_timeout": "30000",
        "options": "-c default_transaction_read_only=on",
    }
    assert "p;w}" not in repr(params) and "***" in repr(params)
    plain = conn_params(parse("Server=h;Database=d"), login_timeout=3.2, keepalives=False)
    assert dict(plain.kwargs) == {
        "host": "h",
        "dbname": "d",
        "application_name": "tenantgate",
        "client_encoding": "UTF8",
        "connect_timeout": "4",
    }


def test_pqopt_and_connsettings_from_the_template() -> None:
    template = parse(
        "pqopt={sslrootcert=/etc/ca.pem options='-c search_path=x' keepalives_idle=5};"
        "ConnSettings={SET TIME ZONE 'UTC'}"
    )
    params = conn_params(parse("Server=h;Database=d").merged_over(template), login_timeout=5)
    assert params.kwargs["sslrootcert"] == "/etc/ca.pem"
    assert params.kwargs["keepalives_idle"] == "5"
    assert params.kwargs["options"] == "-c search_path=x"
    assert params.connsettings == "SET TIME ZONE 'UTC'"
    for key in ("host=evil", "hostaddr=10.0.0.1", "password=x", "service=s", "port=1"):
        with pytest.raises(TenantMisconfigured):
            conn_params(parse("Server=h;Database=d;pqopt={" + key + "}"), login_timeout=5)
    with pytest.raises(TenantMisconfigured) as caught:
        conn_params(parse("Server=h;Database=d;pqopt={password='secret}"), login_timeout=5)
    assert "secret" not in str(caught.value)
    for bad in ("SSLmode=maybe", "KeepaliveTime=soon", "ReadOnly=perhaps"):
        with pytest.raises(TenantMisconfigured):
            conn_params(parse(f"Server=h;Database=d;{bad}"), login_timeout=5)


async def test_connsettings_run_on_every_new_connection(pg: PgServer, db: str) -> None:
    template = parse("ConnSettings={SET application_name = 'tg-connsettings'}")
    loc = locate(parse(pg.odbc(db)), {BackendKind.POSTGRESQL: template})
    async with open_driver() as driver:
        result = await driver.run(
            loc, "SELECT current_setting('application_name')", [], timeout_s=5, max_rows=1
        )
        assert result.rows == [["tg-connsettings"]]


async def test_a_request_names_its_statements_on_the_session(loc: TenantLocation) -> None:
    """``application_name`` is ``tenantgate <request id>`` while a request's statement
    runs, set in the same round trip, whether the statement runs unnamed, is prepared
    on the spot or runs prepared; a failure leaves the session usable; without a
    request, or with labels off, the name is left alone."""
    name = "SELECT current_setting('application_name'), ?::int"
    async with open_driver() as driver:
        seen = []
        for i in range(3):  # unnamed, prepared on the spot, prepared
            _, token = request_context.begin(f"req-{i}")
            try:
                result = await driver.run(loc, name, [i], timeout_s=5, max_rows=1)
            finally:
                request_context.end(token)
            seen.append(tuple(result.rows[0]))
        assert seen == [("tenantgate req-0", 0), ("tenantgate req-1", 1), ("tenantgate req-2", 2)]

        _, token = request_context.begin("req-fails")
        try:
            with pytest.raises(BackendRejected):
                await driver.run(loc, "SELECT 1 / (? - 1)", [1], timeout_s=5, max_rows=1)
        finally:
            request_context.end(token)
        # The failure ended the statement (and undid its label), not the session.
        _, token = request_context.begin("req-after")
        try:
            after = await driver.run(loc, name, [9], timeout_s=5, max_rows=1)
        finally:
            request_context.end(token)
        assert after.rows == [["tenantgate req-after", 9]]
        # Outside a request the session keeps the name it has.
        outside = await driver.run(loc, name, [10], timeout_s=5, max_rows=1)
        assert outside.rows == [["tenantgate req-after", 10]]

    async with open_driver(label_requests=False) as driver:
        _, token = request_context.begin("req-unlabelled")
        try:
            result = await driver.run(loc, name, [1], timeout_s=5, max_rows=1)
        finally:
            request_context.end(token)
        assert result.rows == [["tenantgate", 1]]


async def test_labelled_statements_that_fail_leave_what_was_prepared_known(
    loc: TenantLocation,
) -> None:
    """A request's first statement on a connection prepares the label with it; a
    statement seen twice is prepared with its second run. Either may fail at execution
    while its preparation stood: the next requests must neither prepare a name twice
    (42P05) nor run one that is not there."""
    sql = "SELECT 10 / (? - 1)"
    async with open_driver(max_size=1) as driver:
        outcomes: list[object] = []
        for i, value in enumerate([1, 2, 1, 3, 1, 4]):  # fail, seen, prepared+fail, ...
            _, token = request_context.begin(f"req-{i}")
            try:
                result = await driver.run(loc, sql, [value], timeout_s=5, max_rows=1)
                outcomes.append(result.rows[0][0])
            except BackendRejected as exc:
                outcomes.append(exc.code)
            finally:
                request_context.end(token)
        assert outcomes == ["backend_rejected", 10, "backend_rejected", 5, "backend_rejected", 3]
        assert stats(driver, loc)["connections_lost"] == 0
