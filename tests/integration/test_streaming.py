"""``Driver.stream`` on every backend against real servers: rows as ``run`` gives them,
batches and the row cap, errors and timeouts between batches, and a cancelled consumer
stopping the statement on the server.

PostgreSQL and SQLite go through the drivers ``TENANTGATE_TEST_DRIVERS`` names (native,
or ODBC in ``make test``'s second pass); SQL Server through ODBC once per driver. Slow
statements are slow by construction (``pg_sleep`` in a later row, an endless recursive
CTE); time is asserted only with generous upper bounds.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from proxy.drivers.base import Driver
from proxy.drivers.odbc.driver import OdbcDriver
from proxy.drivers.postgres import PostgresDriver
from proxy.drivers.sizing import PoolOptions
from proxy.drivers.sqlite import SqliteDriver
from proxy.errors import BackendRejected, StatementTimeout
from tenancy.connstr import parse
from tenancy.location import TenantLocation, locate
from tests.support.pg import PgServer
from tests.support.tds import TdsServer
from tests.support.tenants import suite_drivers

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ROWS = 2500
PG_TYPES = (
    "SELECT n, n::text AS label, n * 1.25::numeric AS amount, n / 3.0::float8 AS ratio,"
    " n % 2 = 0 AS even, DATE '2024-01-01' + n AS day,"
    " TIMESTAMP '2024-01-01 00:00:00' + n * INTERVAL '1 minute' AS at,"
    " CASE WHEN n % 7 = 0 THEN NULL ELSE 'x' END AS maybe"
    " FROM numbers WHERE n <= ? ORDER BY n LIMIT ?"
)
SQLITE_TYPES = (
    "SELECT n, label, n * 0.5 AS half, CASE WHEN n % 7 = 0 THEN NULL ELSE 'x' END AS maybe"
    " FROM numbers WHERE n <= ? ORDER BY n LIMIT ?"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _admin(pg: PgServer, database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=pg.user,
        password=pg.password,
        dbname=database,
        autocommit=True,
    )


@pytest.fixture(scope="module")
def pg_numbers(pg: PgServer, module_pg_database: str) -> str:
    with contextlib.closing(_admin(pg, module_pg_database)) as conn:
        conn.execute("CREATE TABLE numbers (n integer PRIMARY KEY)")
        conn.execute("INSERT INTO numbers SELECT generate_series(1, %s)", (ROWS,))
    return module_pg_database


@pytest.fixture(scope="module")
def sqlite_numbers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("streaming") / "numbers.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute("CREATE TABLE numbers (n INTEGER PRIMARY KEY, label TEXT)")
        conn.executemany(
            "INSERT INTO numbers VALUES (?, ?)", [(n, f"n{n}") for n in range(1, ROWS + 1)]
        )
        conn.commit()
    return path


def _driver(backend: str) -> Driver:
    options = PoolOptions(max_size=4)
    if suite_drivers()[backend] == "odbc":
        return OdbcDriver(options, maintenance_interval=None)
    if backend == "postgresql":
        return PostgresDriver(options)
    return SqliteDriver(options, maintenance_interval=None)


@contextlib.asynccontextmanager
async def _opened(driver: Driver) -> AsyncIterator[Driver]:
    try:
        yield driver
    finally:
        await driver.aclose()


async def _collect(
    driver: Driver, location: TenantLocation, sql: str, params: list[Any], **limits: Any
) -> tuple[list[Any], list[list[Any]], list[int], int, bool]:
    """columns, rows, batch sizes, row_count, truncated."""
    rows: list[list[Any]] = []
    sizes: list[int] = []
    limits.setdefault("timeout_s", 10.0)
    async with driver.stream(location, sql, params, **limits) as stream:
        columns = list(stream.columns)
        async for batch in stream:
            sizes.append(len(batch))
            rows.extend(batch)
        return columns, rows, sizes, stream.row_count, stream.truncated


def _pg_location(pg: PgServer, database: str) -> TenantLocation:
    return locate(parse(pg.odbc(database)), {})


def _sqlite_location(path: Path) -> TenantLocation:
    return locate(parse(f"Driver=SQLite3;Database={path}"), {})


# -- rows as run() gives them ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_rows_and_columns_are_those_of_run(
    backend: str, pg: PgServer, pg_numbers: str, sqlite_numbers: Path
) -> None:
    if backend == "postgresql":
        location, sql = _pg_location(pg, pg_numbers), PG_TYPES
    else:
        location, sql = _sqlite_location(sqlite_numbers), SQLITE_TYPES
    async with _opened(_driver(backend)) as driver:
        whole = await driver.run(location, sql, [ROWS, ROWS + 1], timeout_s=10, max_rows=ROWS)
        columns, rows, sizes, count, truncated = await _collect(
            driver, location, sql, [ROWS, ROWS + 1], max_rows=ROWS, batch_rows=1000
        )
    assert columns == whole.columns
    assert rows == whole.rows
    assert sizes == [1000, 1000, 500]
    assert (count, truncated) == (ROWS, False)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
@pytest.mark.parametrize(
    ("max_rows", "batch_rows", "sizes", "truncated"),
    [
        (10, 4, [4, 4, 2], True),  # the row past the cap is fetched, never handed out
        (12, 4, [4, 4, 4], True),
        (0, 4, [], True),
        (ROWS, 4096, [ROWS], False),
    ],
)
async def test_batches_and_the_row_cap(
    backend: str,
    max_rows: int,
    batch_rows: int,
    sizes: list[int],
    truncated: bool,
    pg: PgServer,
    pg_numbers: str,
    sqlite_numbers: Path,
) -> None:
    if backend == "postgresql":
        location = _pg_location(pg, pg_numbers)
    else:
        location = _sqlite_location(sqlite_numbers)
    sql = "SELECT n FROM numbers ORDER BY n LIMIT ?"
    async with _opened(_driver(backend)) as driver:
        _, rows, got, count, cut = await _collect(
            driver, location, sql, [max_rows + 1], max_rows=max_rows, batch_rows=batch_rows
        )
        # The connection went back clean: the same pool serves a plain statement.
        after = await driver.run(location, "SELECT 1 AS one", [], timeout_s=5, max_rows=1)
    assert got == sizes
    assert [r[0] for r in rows] == list(range(1, sum(sizes) + 1))
    assert (count, cut) == (sum(sizes), truncated)
    assert after.rows == [[1]]


# -- errors ------------------------------------------------------------------------------


async def test_postgresql_error_after_the_first_batch(pg: PgServer, pg_numbers: str) -> None:
    location = _pg_location(pg, pg_numbers)
    # No ORDER BY: a sort could compute every row's value first. Scanned as written.
    sql = "SELECT 1 / (n - 1500) AS x FROM numbers"
    got: list[list[Any]] = []
    async with _opened(_driver("postgresql")) as driver:
        with pytest.raises(BackendRejected, match="division by zero"):
            async with driver.stream(
                location, sql, [], timeout_s=10, max_rows=ROWS, batch_rows=1000
            ) as stream:
                async for batch in stream:
                    got.extend(batch)
        after = await driver.run(location, "SELECT 2 AS two", [], timeout_s=5, max_rows=1)
    assert len(got) == 1000
    assert after.rows == [[2]]


async def test_postgresql_timeout_bounds_each_fetch_not_the_stream(
    pg: PgServer, pg_numbers: str
) -> None:
    # Rows 1-1000 come at once; the FETCH of row 1001 sleeps far past the timeout.
    location = _pg_location(pg, pg_numbers)
    sql = "SELECT n, pg_sleep(CASE WHEN n > 1000 THEN 30 ELSE 0 END) AS s FROM numbers"
    got = 0
    started = time.monotonic()
    async with _opened(_driver("postgresql")) as driver:
        with pytest.raises(StatementTimeout) as caught:
            async with driver.stream(
                location, sql, [], timeout_s=1.0, max_rows=ROWS, batch_rows=1000
            ) as stream:
                async for batch in stream:
                    got += len(batch)
                    await anyio.sleep(1.2)  # longer than the timeout: not counted
        elapsed = time.monotonic() - started
        after = await driver.run(location, "SELECT 3 AS three", [], timeout_s=5, max_rows=1)
    assert got == 1000
    assert caught.value.details["timeout_ms"] == 1000
    assert elapsed < 8
    assert after.rows == [[3]]


async def test_sqlite_timeout_of_a_batch(sqlite_numbers: Path) -> None:
    location = _sqlite_location(sqlite_numbers)
    endless = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n FROM c"
    started = time.monotonic()
    async with _opened(_driver("sqlite")) as driver:
        got = 0
        with pytest.raises(StatementTimeout):
            async with driver.stream(
                location,
                endless + " WHERE n < 1000 OR n > (SELECT count(*) FROM c)",
                [],
                timeout_s=0.5,
                max_rows=10_000,
                batch_rows=100,
            ) as stream:
                async for batch in stream:
                    got += len(batch)
        after = await driver.run(location, "SELECT 4 AS four", [], timeout_s=5, max_rows=1)
    assert time.monotonic() - started < 8
    assert after.rows == [[4]]


# -- a consumer that goes away -------------------------------------------------------------


def _active(pg: PgServer, database: str) -> list[str]:
    with contextlib.closing(_admin(pg, database)) as conn:
        rows = conn.execute(
            "SELECT state FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND query LIKE %s",
            (database, "%pg_sleep(CASE WHEN n > 1000 THEN 31%"),
        ).fetchall()
    return [str(r[0]) for r in rows]


def _fetching(pg: PgServer, database: str) -> bool:
    """A FETCH of the stream runs on the server (its second batch, slow by construction)."""
    with contextlib.closing(_admin(pg, database)) as conn:
        row = conn.execute(
            # Any statement running there but ours: psqlODBC words its FETCH its own way.
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            (database,),
        ).fetchone()
    return bool(row and row[0])


async def test_a_cancelled_consumer_stops_the_statement(pg: PgServer, pg_numbers: str) -> None:
    location = _pg_location(pg, pg_numbers)
    sql = "SELECT n, pg_sleep(CASE WHEN n > 1000 THEN 31 ELSE 0 END) AS s FROM numbers"
    got = 0
    async with _opened(_driver("postgresql")) as driver:
        # The client goes away (as the HTTP layer sees it) once the first batch is in and
        # the second FETCH, slow by construction, runs on the server: not at a set time.
        with anyio.CancelScope() as gone:

            async def consume() -> None:
                nonlocal got
                async with driver.stream(
                    location, sql, [], timeout_s=20, max_rows=ROWS, batch_rows=1000
                ) as stream:
                    async for batch in stream:
                        got += len(batch)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(consume)
                deadline = time.monotonic() + 60
                while not (got and _fetching(pg, pg_numbers)) and time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                gone.cancel()
        deadline = time.monotonic() + 5
        while _active(pg, pg_numbers) and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        assert _active(pg, pg_numbers) == []
        after = await driver.run(location, "SELECT 5 AS five", [], timeout_s=5, max_rows=1)
    assert got == 1000
    assert after.rows == [[5]]


# -- SQL Server ------------------------------------------------------------------------------


@pytest.fixture
def mssql_location(tds_server: TdsServer, tds_driver: str) -> Iterator[TenantLocation]:
    yield locate(parse(tds_server.odbc(tds_driver, "master")), {})


MSSQL_SQL = (
    "WITH c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?)"
    " SELECT TOP (?) n, CAST(n AS varchar(10)) AS label, CAST(n AS decimal(10, 2)) / 4 AS q,"
    " CASE WHEN n % 7 = 0 THEN NULL ELSE 'x' END AS maybe FROM c OPTION (MAXRECURSION 0)"
)


async def test_sqlserver_rows_batches_and_cap(mssql_location: TenantLocation) -> None:
    async with _opened(OdbcDriver(PoolOptions(max_size=2), maintenance_interval=None)) as driver:
        whole = await driver.run(mssql_location, MSSQL_SQL, [300, 301], timeout_s=10, max_rows=300)
        columns, rows, sizes, count, truncated = await _collect(
            driver, mssql_location, MSSQL_SQL, [300, 301], max_rows=300, batch_rows=128
        )
        _, _, capped, capped_count, cut = await _collect(
            driver, mssql_location, MSSQL_SQL, [300, 101], max_rows=100, batch_rows=64
        )
    assert columns == whole.columns
    assert rows == whole.rows
    assert sizes == [128, 128, 44]
    assert (count, truncated) == (300, False)
    assert (capped, capped_count, cut) == ([64, 36], 100, True)


async def test_sqlserver_a_consumer_that_stops_early(mssql_location: TenantLocation) -> None:
    # 200,000 rows on the wire; the consumer takes one batch, then its client goes away.
    started = time.monotonic()
    async with _opened(OdbcDriver(PoolOptions(max_size=1), maintenance_interval=None)) as driver:
        got = 0
        with anyio.CancelScope() as gone:
            async with driver.stream(
                mssql_location, MSSQL_SQL, [200_000, 200_001], timeout_s=10,
                max_rows=200_000, batch_rows=500,
            ) as stream:  # fmt: skip
                async for batch in stream:
                    got += len(batch)
                    gone.cancel()  # after the first batch, whenever it came
                    await anyio.sleep(5)
        # The pool's only connection, or its replacement, serves the next statement.
        after = await driver.run(mssql_location, "SELECT 6 AS six", [], timeout_s=10, max_rows=1)
    assert got == 500
    assert after.rows == [[6]]
    assert time.monotonic() - started < 15
