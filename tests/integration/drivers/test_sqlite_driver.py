"""The native SQLite driver (stdlib sqlite3) against real SQLite files.

No mocks and no timing that depends on the machine's speed: slow statements are
recursive CTEs that never end (or end only when counted to the last row), the inline
budget is forced to a nanosecond where a test needs "over budget", and waits are
asserted with generous bounds only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from proxy.drivers.base import Driver, ResultColumn
from proxy.drivers.sizing import PoolOptions
from proxy.drivers.sqlite import SqliteDriver
from proxy.drivers.sqlite.classify import is_read_only
from proxy.drivers.sqlite.options import open_spec
from proxy.errors import (
    BackendObjectMissing,
    BackendRejected,
    BackendUnavailable,
    ConstraintViolation,
    PoolSaturated,
    StatementTimeout,
)
from tenancy import catalog
from tenancy.connstr import parse
from tenancy.errors import TenantMisconfigured
from tenancy.location import TenantLocation, locate

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
FOREVER_WRITE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
    "INSERT INTO items(name) SELECT 'slow' || x FROM c"
)
MILLION = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000) "
    "SELECT x FROM c"
)
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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_db(path: Path, *, journal: str | None = None) -> Path:
    conn = sqlite3.connect(path)
    try:
        if journal:
            conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.executescript(
            """
            CREATE TABLE items (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                price DECIMAL(10, 2),
                weight REAL,
                photo BLOB,
                note TEXT
            );
            CREATE UNIQUE INDEX items_name ON items(name);
            INSERT INTO items (id, name, price, weight, photo, note) VALUES
                (1, 'apple', 1.5, 0.2, x'00ff', NULL),
                (2, 'pear', 2, NULL, NULL, NULL),
                (3, 'plum', NULL, 0.05, NULL, 'ripe');
            """
        )
        conn.commit()
    finally:
        conn.close()
    return path


def location(path: Path | str, **keys: str) -> TenantLocation:
    text = f"Driver=SQLite3;Database={path}" + "".join(f";{k}={v}" for k, v in keys.items())
    return locate(parse(text), {})


def count_rows(path: Path, where: str = "1=1") -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM items WHERE {where}").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "tenant.db")


@pytest.fixture
async def driver() -> AsyncIterator[SqliteDriver]:
    d = SqliteDriver(PoolOptions(max_size=2, acquire_timeout=0.2), maintenance_interval=None)
    try:
        yield d
    finally:
        await d.aclose()


@pytest.fixture
async def single() -> AsyncIterator[SqliteDriver]:
    """One connection per file: consecutive statements share it."""
    d = SqliteDriver(PoolOptions(max_size=1, acquire_timeout=5), maintenance_interval=None)
    try:
        yield d
    finally:
        await d.aclose()


class Ticker:
    """Counts how often the loop got to run a coroutine while something else waited."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self, stop: anyio.Event) -> None:
        while not stop.is_set():
            self.ticks += 1
            await anyio.sleep(0.01)


# -- protocol and reads -----------------------------------------------------------------


async def test_satisfies_the_driver_protocol(driver: SqliteDriver) -> None:
    seam: Driver = driver
    assert seam.name == "sqlite3"
    assert seam.db_errors == (sqlite3.Error,)


async def test_point_select_types_and_nulls(driver: SqliteDriver, db: Path) -> None:
    rs = await driver.run(
        location(db),
        "SELECT id, name, price, weight, photo, note FROM items ORDER BY id",
        [],
        timeout_s=5,
        max_rows=10,
    )
    assert rs.rows == [
        [1, "apple", Decimal("1.5"), 0.2, b"\x00\xff", None],
        [2, "pear", Decimal("2"), None, None, None],
        [3, "plum", None, 0.05, None, "ripe"],
    ]
    # Values by declared type (DECIMAL, as sqliteodbc); names from the first non-NULL one.
    assert rs.columns == [
        ResultColumn("id", "integer"),
        ResultColumn("name", "string"),
        ResultColumn("price", "decimal"),
        ResultColumn("weight", "number"),
        ResultColumn("photo", "binary"),
        ResultColumn("note", "string"),
    ]
    assert (rs.row_count, rs.truncated) == (3, False)


async def test_all_null_and_empty_results_are_unknown(driver: SqliteDriver, db: Path) -> None:
    loc = location(db)
    rs = await driver.run(loc, "SELECT NULL AS a, 1 AS b", [], timeout_s=5, max_rows=10)
    assert rs.columns == [ResultColumn("a", "unknown"), ResultColumn("b", "integer")]
    rs = await driver.run(loc, "SELECT id FROM items WHERE id < 0", [], timeout_s=5, max_rows=10)
    assert rs.columns == [ResultColumn("id", "unknown")]
    assert (rs.rows, rs.row_count, rs.truncated) == ([], 0, False)


async def test_params_are_bound(driver: SqliteDriver, db: Path) -> None:
    rs = await driver.run(
        location(db),
        "SELECT id FROM items WHERE name = ? OR weight < ? ORDER BY id",
        ("pear", 0.1),
        timeout_s=5,
        max_rows=10,
    )
    assert rs.rows == [[2], [3]]


async def test_non_bmp_characters_in_sql_and_params(driver: SqliteDriver, db: Path) -> None:
    loc = location(db)
    rs = await driver.run(
        loc,
        "INSERT INTO items (name, note) VALUES (?, '🦄 literal') RETURNING name, note",
        ["🍐 emoji ✓"],
        timeout_s=5,
        max_rows=10,
    )
    assert rs.rows == [["🍐 emoji ✓", "🦄 literal"]]
    rs = await driver.run(
        loc,
        'SELECT note AS "🦄" FROM items WHERE name = ?',
        ["🍐 emoji ✓"],
        timeout_s=5,
        max_rows=10,
    )
    assert rs.columns == [ResultColumn("🦄", "string")]
    assert rs.rows == [["🦄 literal"]]


async def test_truncation_fetches_only_what_it_returns(driver: SqliteDriver, db: Path) -> None:
    rs = await driver.run(location(db), MILLION, [], timeout_s=30, max_rows=10)
    assert rs.rows == [[i] for i in range(1, 11)]
    assert (rs.row_count, rs.truncated) == (10, True)


async def test_count_all_rows_counts_past_the_cap(driver: SqliteDriver, db: Path) -> None:
    rs = await driver.run(
        location(db),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2500) "
        "SELECT x FROM c",
        [],
        timeout_s=30,
        max_rows=3,
        count_all_rows=True,
    )
    assert rs.rows == [[1], [2], [3]]
    assert (rs.row_count, rs.truncated) == (2500, True)


# -- writes -----------------------------------------------------------------------------


async def test_insert_update_delete_with_returning(driver: SqliteDriver, db: Path) -> None:
    loc = location(db)
    rs = await driver.run(
        loc,
        "INSERT INTO items (id, name) VALUES (10, ?), (11, ?) RETURNING id, name",
        ["fig", "kiwi"],
        timeout_s=5,
        max_rows=10,
    )
    assert rs.rows == [[10, "fig"], [11, "kiwi"]]
    assert rs.columns == [ResultColumn("id", "integer"), ResultColumn("name", "string")]
    assert rs.row_count == 2
    rs = await driver.run(
        loc,
        "UPDATE items SET note = ? WHERE id >= ? RETURNING id, note",
        ["new", 10],
        timeout_s=5,
        max_rows=10,
    )
    assert sorted(rs.rows) == [[10, "new"], [11, "new"]]
    rs = await driver.run(
        loc, "DELETE FROM items WHERE id = ? RETURNING name", [11], timeout_s=5, max_rows=10
    )
    assert rs.rows == [["kiwi"]]
    assert count_rows(db) == 4
    # Writes run in a worker thread: a commit may fsync.
    assert driver.execution_stats()["threaded"] == 3


async def test_row_count_of_writes_without_returning(driver: SqliteDriver, db: Path) -> None:
    loc = location(db)
    rs = await driver.run(
        loc, "UPDATE items SET note = 'x' WHERE id < 3", [], timeout_s=5, max_rows=0
    )
    assert (rs.columns, rs.rows, rs.row_count) == ([], [], 2)
    rs = await driver.run(loc, "DELETE FROM items WHERE id = 99", [], timeout_s=5, max_rows=0)
    assert rs.row_count == 0


async def test_returning_cut_by_max_rows_commits_every_row(driver: SqliteDriver, db: Path) -> None:
    rs = await driver.run(
        location(db),
        "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < 500) "
        "INSERT INTO items (name) SELECT 'r' || x FROM s RETURNING id",
        [],
        timeout_s=30,
        max_rows=5,
        count_all_rows=True,
    )
    assert (len(rs.rows), rs.row_count, rs.truncated) == (5, 500, True)
    assert count_rows(db, "name LIKE 'r%'") == 500


async def test_big_write_with_returning_runs_once(db: Path) -> None:
    # A write far past any inline budget: it goes to the thread from the start and is
    # applied exactly once (no inline attempt to roll back and repeat).
    tiny = SqliteDriver(PoolOptions(max_size=1), inline_budget_s=1e-9, maintenance_interval=None)
    try:
        rs = await tiny.run(
            location(db),
            "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < 20000) "
            "INSERT INTO items (name) SELECT 'w' || x FROM s RETURNING id",
            [],
            timeout_s=60,
            max_rows=10,
            count_all_rows=True,
        )
        stats = tiny.execution_stats()
    finally:
        await tiny.aclose()
    assert rs.row_count == 20000
    assert count_rows(db, "name LIKE 'w%'") == 20000
    assert stats["threaded"] == 1
    assert stats["inline"] == stats["retried_budget"] == 0


def test_sqlite_rolls_back_an_interrupted_autocommit_write(db: Path) -> None:
    # What makes repeating an aborted attempt safe (proxy.drivers.sqlite.execute): an
    # autocommit write interrupted even after its first step, while its RETURNING rows
    # are being handed out, leaves nothing behind.
    conn = sqlite3.connect(db, isolation_level=None)
    calls = 0

    def abort_soon() -> int:
        nonlocal calls
        calls += 1
        return int(calls > 3)

    try:
        cursor = conn.execute(
            "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < 1000) "
            "INSERT INTO items (name) SELECT 'q' || x FROM s RETURNING id"
        )
        assert cursor.fetchone() is not None  # the first step made every change
        conn.set_progress_handler(abort_soon, 10)
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            cursor.fetchall()
        conn.set_progress_handler(None, 0)
        cursor.close()
        assert not conn.in_transaction
    finally:
        conn.close()
    assert count_rows(db, "name LIKE 'q%'") == 0


# -- inline budget and timeouts ---------------------------------------------------------


async def test_read_over_budget_is_rerun_in_a_thread(db: Path) -> None:
    # A nanosecond budget: the first progress-handler call (1000 instructions) aborts.
    d = SqliteDriver(PoolOptions(max_size=1), inline_budget_s=1e-9, maintenance_interval=None)
    try:
        rs = await d.run(
            location(db),
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000) "
            "SELECT count(*), sum(x) FROM c",
            [],
            timeout_s=60,
            max_rows=10,
        )
        stats = d.execution_stats()
        # A point select runs far fewer instructions: it stays inline.
        quick = await d.run(
            location(db), "SELECT name FROM items WHERE id = 1", [], timeout_s=5, max_rows=1
        )
        after = d.execution_stats()
    finally:
        await d.aclose()
    assert rs.rows == [[100000, 100000 * 100001 // 2]]
    assert (stats["retried_budget"], stats["threaded"], stats["inline"]) == (1, 1, 0)
    assert quick.rows == [["apple"]]
    assert after["inline"] == 1


async def test_timeout_inline(db: Path) -> None:
    # A budget longer than the timeout: the progress handler's deadline is the timeout.
    d = SqliteDriver(PoolOptions(max_size=1), inline_budget_s=3600, maintenance_interval=None)
    loc = location(db)
    try:
        with pytest.raises(StatementTimeout) as info:
            await d.run(loc, FOREVER, [], timeout_s=0.2, max_rows=1)
        stats = d.execution_stats()
        rs = await d.run(loc, "SELECT count(*) FROM items", [], timeout_s=5, max_rows=1)
        pool = d.get_stats()["sqlite://local"]
    finally:
        await d.aclose()
    assert info.value.details["timeout_ms"] == 200
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert (stats["timeouts"], stats["threaded"], stats["retried_budget"]) == (1, 0, 0)
    # Same connection (max_size=1), still usable, not retired.
    assert rs.rows == [[3]]
    assert (pool["connections_num"], pool["connections_lost"]) == (1, 0)


async def test_timeout_in_thread(single: SqliteDriver, db: Path) -> None:
    loc = location(db)
    with pytest.raises(StatementTimeout) as info:
        await single.run(loc, FOREVER, [], timeout_s=0.3, max_rows=1)
    assert info.value.details["timeout_ms"] == 300
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    stats = single.execution_stats()
    assert (stats["retried_budget"], stats["threaded"], stats["timeouts"]) == (1, 1, 1)
    rs = await single.run(loc, "SELECT name FROM items WHERE id = 2", [], timeout_s=5, max_rows=1)
    assert rs.rows == [["pear"]]
    pool = single.get_stats()["sqlite://local"]
    assert (pool["connections_num"], pool["connections_lost"]) == (1, 0)


async def test_write_timeout_rolls_back_and_keeps_connection(
    single: SqliteDriver, db: Path
) -> None:
    loc = location(db)
    with pytest.raises(StatementTimeout):
        await single.run(loc, FOREVER_WRITE, [], timeout_s=0.3, max_rows=0)
    assert count_rows(db, "name LIKE 'slow%'") == 0
    rs = await single.run(
        loc, "INSERT INTO items (name) VALUES ('after') RETURNING id", [], timeout_s=5, max_rows=1
    )
    assert rs.row_count == 1
    assert count_rows(db, "name = 'after'") == 1


async def test_session_survives_a_timeout(single: SqliteDriver, db: Path) -> None:
    async with single.connection(location(db)) as session:
        with pytest.raises(StatementTimeout):
            await session.execute(FOREVER, timeout_s=0.2, max_rows=1)
        rs = await session.execute("SELECT count(*) FROM items", timeout_s=5, max_rows=1)
    assert rs.rows == [[3]]


async def test_cancelled_threaded_statement_frees_its_slot(single: SqliteDriver, db: Path) -> None:
    loc = location(db)
    running = threading.Event()
    loop_thread = threading.get_ident()

    def started() -> int:
        # A read is tried inline on the loop first (its 2 ms budget), then in a worker.
        if threading.get_ident() != loop_thread:
            running.set()
        return 1

    def install() -> None:  # on the pool's one connection, which the statement will use
        with single.blocking_source(loc, timeout_s=5)() as raw:
            raw.create_function("started", 0, started)

    await anyio.to_thread.run_sync(install)
    counting = FOREVER.replace("SELECT 1 UNION", "SELECT started() UNION")

    async def forever() -> None:
        await single.run(loc, counting, [], timeout_s=60, max_rows=1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(forever)
        # Wait until the statement runs in its worker thread (counted as threaded is
        # not enough: that is before the job is handed over), then cancel the caller.
        with anyio.fail_after(30):
            while not running.is_set():
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    # The worker was interrupted and closes the orphaned connection; the slot comes back.
    with anyio.fail_after(30):
        rs = await single.run(loc, "SELECT count(*) FROM items", [], timeout_s=5, max_rows=1)
    assert rs.rows == [[3]]
    stats = single.get_stats()["sqlite://local"]
    assert single.execution_stats()["orphaned"] == 1
    assert stats["connections_lost"] == 1
    assert stats["pool_size"] == 1


async def test_backstop_gives_up_on_a_worker_that_ignores_interrupts(db: Path) -> None:
    # A Python function inside SQLite runs no VM instructions: sqlite3_interrupt cannot
    # stop it, as it cannot stop a read stuck on a dead disk.
    d = SqliteDriver(
        PoolOptions(max_size=1, acquire_timeout=30), inline_budget_s=0, maintenance_interval=None
    )
    loc = location(db)
    gate = threading.Event()

    def stuck() -> int:
        gate.wait(60)
        return 1

    def install() -> None:
        with d.blocking_source(loc, timeout_s=5)() as raw:
            raw.create_function("stuck", 0, stuck)

    try:
        await anyio.to_thread.run_sync(install)
        with pytest.raises(StatementTimeout) as info:
            await d.run(loc, "SELECT stuck()", [], timeout_s=0.2, max_rows=1)
        assert info.value.details["timeout_ms"] == 200
        assert d.execution_stats()["orphaned"] == 1
        gate.set()
        # The worker returns, closes the orphaned connection, and frees its slot.
        with anyio.fail_after(30):
            rs = await d.run(loc, "SELECT count(*) FROM items", [], timeout_s=5, max_rows=1)
        assert rs.rows == [[3]]
        stats = d.get_stats()["sqlite://local"]
        assert (stats["connections_lost"], stats["connections_num"]) == (1, 2)
    finally:
        gate.set()
        await d.aclose()


# -- locks --------------------------------------------------------------------------------


@pytest.fixture
def locker(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


async def test_busy_write_waits_without_blocking_the_loop(
    driver: SqliteDriver, db: Path, locker: sqlite3.Connection
) -> None:
    locker.execute("BEGIN IMMEDIATE")
    ticker, stop = Ticker(), anyio.Event()
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run, stop)
        with pytest.raises(BackendUnavailable) as info:
            await driver.run(
                location(db, Timeout="400"),
                "INSERT INTO items (name) VALUES ('blocked')",
                [],
                timeout_s=10,
                max_rows=0,
            )
        stop.set()
    elapsed = time.monotonic() - started
    assert "locked" in info.value.message
    assert info.value.retry_after == 0.5
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert elapsed >= 0.35  # the busy timeout was honoured
    assert ticker.ticks >= 5  # ~40 if the loop were idle; 0-1 if it had been blocked


async def test_busy_read_moves_to_the_thread(
    driver: SqliteDriver, db: Path, locker: sqlite3.Connection
) -> None:
    # Rollback-journal mode: an exclusive lock keeps readers out.
    locker.execute("BEGIN EXCLUSIVE")
    ticker, stop = Ticker(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run, stop)
        with pytest.raises(BackendUnavailable) as info:
            await driver.run(
                location(db, Timeout="400"), "SELECT * FROM items", [], timeout_s=10, max_rows=5
            )
        stop.set()
    assert info.value.retry_after == 0.5
    assert driver.execution_stats()["retried_busy"] == 1
    assert ticker.ticks >= 5
    locker.execute("ROLLBACK")
    rs = await driver.run(
        location(db, Timeout="400"), "SELECT count(*) FROM items", [], timeout_s=5, max_rows=1
    )
    assert rs.rows == [[3]]


async def test_busy_wait_never_outlasts_the_statement_timeout(
    driver: SqliteDriver, db: Path, locker: sqlite3.Connection
) -> None:
    locker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises((BackendUnavailable, StatementTimeout)):
        await driver.run(
            location(db, Timeout="600000"),
            "DELETE FROM items",
            [],
            timeout_s=0.3,
            max_rows=0,
        )
    assert time.monotonic() - started < 60  # not the tenant's ten-minute busy timeout


# -- pool ---------------------------------------------------------------------------------


async def test_pool_cap_and_saturation(db: Path) -> None:
    d = SqliteDriver(PoolOptions(max_size=1, acquire_timeout=0.1), maintenance_interval=None)
    loc = location(db)
    try:
        async with d.connection(loc) as session:
            with pytest.raises(PoolSaturated) as info:
                await d.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
            assert (await session.execute("SELECT 2", timeout_s=5, max_rows=1)).rows == [[2]]
        stats = d.get_stats()
    finally:
        await d.aclose()
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert info.value.details["pool_max"] == 1
    only = stats["sqlite://local"]
    assert set(only) == ODBC_STAT_KEYS | {"server_max"}
    assert (only["pool_max"], only["pool_size"], only["server_max"]) == (1, 1, 0)
    assert (only["requests_num"], only["requests_timeouts"], only["connections_num"]) == (2, 1, 1)


async def test_waiting_past_max_waiting_is_refused_at_once(db: Path) -> None:
    options = PoolOptions(max_size=1, acquire_timeout=30, max_waiting=2)
    d = SqliteDriver(options, maintenance_interval=None)
    loc = location(db)
    served: list[Any] = []

    async def queued() -> None:
        served.append((await d.run(loc, "SELECT 1", [], timeout_s=30, max_rows=1)).rows)

    try:
        async with anyio.create_task_group() as tg, d.connection(loc):
            for _ in range(2):
                tg.start_soon(queued)
            with anyio.fail_after(30):
                while d.get_stats()["sqlite://local"]["requests_waiting"] < 2:
                    await anyio.sleep(0.01)
            with anyio.fail_after(5):  # far below the waiters' 30 s: refused, not queued
                with pytest.raises(PoolSaturated) as info:
                    await d.run(loc, "SELECT 1", [], timeout_s=30, max_rows=1)
        assert "2 requests queued" in info.value.message
        assert served == [[[1]], [[1]]]  # the queued two, once the connection came back
    finally:
        await d.aclose()


async def test_the_wait_for_a_connection_ends_with_the_request_timeout(db: Path) -> None:
    d = SqliteDriver(PoolOptions(max_size=1, acquire_timeout=60), maintenance_interval=None)
    loc = location(db)
    try:
        async with d.connection(loc):
            started = time.monotonic()
            with anyio.fail_after(30), pytest.raises(PoolSaturated):
                await d.run(loc, "SELECT 1", [], timeout_s=0.3, max_rows=1)
            waited = time.monotonic() - started
    finally:
        await d.aclose()
    assert 0.3 <= waited < 30  # the request's 0.3 s, not the pool's 60 s


async def test_a_waiter_gets_the_returned_connection(single: SqliteDriver, db: Path) -> None:
    loc = location(db)
    results: list[Any] = []

    async def second() -> None:
        results.append(await single.run(loc, "SELECT 42", [], timeout_s=5, max_rows=1))

    async with anyio.create_task_group() as tg, single.connection(loc) as session:
        tg.start_soon(second)
        with anyio.fail_after(30):
            while single.get_stats()["sqlite://local"]["requests_waiting"] == 0:
                await anyio.sleep(0.01)
        await session.execute("SELECT 1", timeout_s=5, max_rows=1)
    assert results[0].rows == [[42]]
    stats = single.get_stats()["sqlite://local"]
    assert (stats["connections_num"], stats["pool_size"], stats["requests_waiting"]) == (1, 1, 0)


async def test_many_tasks_share_a_small_pool(db: Path) -> None:
    options = PoolOptions(max_size=3, acquire_timeout=60, max_waiting=30)
    d = SqliteDriver(options, maintenance_interval=None)
    loc = location(db)
    seen: list[int] = []

    async def worker(n: int) -> None:
        for i in range(10):
            if i % 3 == 0:
                await d.run(
                    loc,
                    "INSERT INTO items (name) VALUES (?)",
                    [f"c{n}-{i}"],
                    timeout_s=30,
                    max_rows=0,
                )
            else:
                rs = await d.run(loc, "SELECT count(*) FROM items", [], timeout_s=30, max_rows=1)
                seen.append(int(str(rs.rows[0][0])))
            seen.append(d.get_stats()["sqlite://local"]["pool_size"])

    try:
        async with anyio.create_task_group() as tg:
            for n in range(30):
                tg.start_soon(worker, n)
        stats = d.get_stats()["sqlite://local"]
    finally:
        await d.aclose()
    assert count_rows(db, "name LIKE 'c%'") == 30 * 4
    assert stats["connections_num"] <= 3
    assert (stats["requests_num"], stats["requests_timeouts"], stats["requests_waiting"]) == (
        300,
        0,
        0,
    )


async def test_a_thread_waits_for_the_loops_connection(single: SqliteDriver, db: Path) -> None:
    loc = location(db)
    source = single.blocking_source(loc, timeout_s=10)

    def read() -> list[Any]:
        with source() as conn:
            return list(conn.execute("SELECT count(*) FROM items").fetchall())

    async with anyio.create_task_group() as tg:
        results: list[Any] = []

        async def in_thread() -> None:
            results.extend(await anyio.to_thread.run_sync(read))

        async with single.connection(loc):
            tg.start_soon(in_thread)
            with anyio.fail_after(30):
                while single.get_stats()["sqlite://local"]["requests_waiting"] == 0:
                    await anyio.sleep(0.01)
    assert results == [(3,)]


async def test_a_cancelled_waiter_takes_nothing(single: SqliteDriver, db: Path) -> None:
    loc = location(db)
    async with single.connection(loc) as session:
        with anyio.move_on_after(0.1):
            await single.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        stats = single.get_stats()["sqlite://local"]
        assert stats["requests_waiting"] == 0
        await session.execute("SELECT 1", timeout_s=5, max_rows=1)
    rs = await single.run(loc, "SELECT 2", [], timeout_s=5, max_rows=1)
    assert rs.rows == [[2]]
    stats = single.get_stats()["sqlite://local"]
    assert (stats["pool_size"], stats["pool_available"], stats["connections_num"]) == (1, 1, 1)


async def test_closing_the_driver_wakes_waiters(db: Path) -> None:
    d = SqliteDriver(PoolOptions(max_size=1, acquire_timeout=60), maintenance_interval=None)
    loc = location(db)
    errors: list[BaseException] = []

    async def wait() -> None:
        try:
            await d.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        except BackendUnavailable as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg, d.connection(loc):
        tg.start_soon(wait)
        with anyio.fail_after(30):
            while d.get_stats()["sqlite://local"]["requests_waiting"] == 0:
                await anyio.sleep(0.01)
        await d.aclose()
    assert len(errors) == 1
    assert "closed" in str(errors[0])
    with pytest.raises(BackendUnavailable):
        await d.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)


async def test_one_pool_per_file(driver: SqliteDriver, tmp_path: Path) -> None:
    a, b = make_db(tmp_path / "a.db"), make_db(tmp_path / "b.db")
    await driver.run(location(a), "DELETE FROM items WHERE id = 1", [], timeout_s=5, max_rows=0)
    rs_a = await driver.run(location(a), "SELECT count(*) FROM items", [], timeout_s=5, max_rows=1)
    rs_b = await driver.run(location(b), "SELECT count(*) FROM items", [], timeout_s=5, max_rows=1)
    assert (rs_a.rows, rs_b.rows) == ([[2]], [[3]])
    assert driver.pool_count == 2


async def test_idle_pools_go_away_and_counters_stay(db: Path) -> None:
    d = SqliteDriver(PoolOptions(max_size=2, max_idle=0.05), maintenance_interval=None)
    loc = location(db)
    try:
        await d.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        await anyio.sleep(0.1)
        d.maintain()  # closes the idle connection
        await anyio.sleep(0.1)
        d.maintain()  # drops the empty pool
        assert d.pool_count == 0
        stats = d.get_stats()["sqlite://local"]
        assert (stats["requests_num"], stats["connections_num"], stats["pool_size"]) == (1, 1, 0)
        await d.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
        stats = d.get_stats()["sqlite://local"]
        assert (stats["requests_num"], stats["connections_num"], stats["pool_size"]) == (2, 2, 1)
    finally:
        await d.aclose()


async def test_janitor_thread_runs_maintenance(db: Path) -> None:
    d = SqliteDriver(PoolOptions(max_idle=0.05), maintenance_interval=0.02)
    try:
        await d.run(location(db), "SELECT 1", [], timeout_s=5, max_rows=1)
        with anyio.fail_after(30):
            while d.pool_count:
                await anyio.sleep(0.02)
    finally:
        await d.aclose()


# -- transactions -------------------------------------------------------------------------


async def test_transaction_commits(single: SqliteDriver, db: Path) -> None:
    async with single.connection(location(db)) as session, session.transaction():
        await session.execute("INSERT INTO items (name) VALUES ('t1')", timeout_s=5, max_rows=0)
        # Inside the transaction a read sees the uncommitted row (and runs inline).
        rs = await session.execute(
            "SELECT count(*) FROM items WHERE name = 't1'", timeout_s=5, max_rows=1
        )
        assert rs.rows == [[1]]
        assert count_rows(db, "name = 't1'") == 0
    assert count_rows(db, "name = 't1'") == 1


async def test_transaction_rolls_back_on_error(single: SqliteDriver, db: Path) -> None:
    async with single.connection(location(db)) as session:
        with pytest.raises(ConstraintViolation):
            async with session.transaction():
                await session.execute(
                    "INSERT INTO items (name) VALUES ('t2')", timeout_s=5, max_rows=0
                )
                await session.execute(
                    "INSERT INTO items (name) VALUES ('apple')", timeout_s=5, max_rows=0
                )
        # The session is usable and back in autocommit mode.
        await session.execute("INSERT INTO items (name) VALUES ('t3')", timeout_s=5, max_rows=0)
    assert count_rows(db, "name = 't2'") == 0
    assert count_rows(db, "name = 't3'") == 1


async def test_a_write_timeout_aborts_the_transaction(single: SqliteDriver, db: Path) -> None:
    async with single.connection(location(db)) as session:
        with pytest.raises(BackendRejected, match="rolled back"):
            async with session.transaction():
                await session.execute(
                    "INSERT INTO items (name) VALUES ('t4')", timeout_s=5, max_rows=0
                )
                with pytest.raises(StatementTimeout):
                    await session.execute(FOREVER_WRITE, timeout_s=0.2, max_rows=0)
                # SQLite rolled the transaction back: nothing more runs in it...
                with pytest.raises(BackendRejected, match="rolled back"):
                    await session.execute(
                        "INSERT INTO items (name) VALUES ('t5')", timeout_s=5, max_rows=0
                    )
            # ...and the commit says so instead of pretending.
    assert count_rows(db, "name IN ('t4', 't5')") == 0


async def test_nested_transaction_is_refused(single: SqliteDriver, db: Path) -> None:
    async with single.connection(location(db)) as session, session.transaction():
        with pytest.raises(RuntimeError):
            async with session.transaction():
                pass


# -- errors -------------------------------------------------------------------------------


async def test_missing_file_is_unavailable_and_not_created(
    driver: SqliteDriver, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(BackendUnavailable) as info:
        await driver.run(location(missing), "SELECT 1", [], timeout_s=5, max_rows=1)
    assert info.value.retry_after is not None
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert str(tmp_path) not in info.value.message
    assert not missing.exists()
    assert driver.get_stats()["sqlite://local"]["connections_errors"] == 1


async def test_memory_and_uri_tricks_stay_files(
    driver: SqliteDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (":memory:", "x.db?mode=rwc", "y.db#frag"):
        with pytest.raises(BackendUnavailable):
            await driver.run(location(name), "SELECT 1", [], timeout_s=5, max_rows=1)
    assert list(tmp_path.iterdir()) == []


async def test_missing_column_and_table(driver: SqliteDriver, db: Path) -> None:
    loc = location(db)
    with pytest.raises(BackendObjectMissing) as info:
        await driver.run(loc, "SELECT colour FROM items", [], timeout_s=5, max_rows=1)
    assert info.value.details["object_kind"] == "column"
    assert info.value.details["object_name"] == "colour"
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    with pytest.raises(BackendObjectMissing) as info:
        await driver.run(loc, "UPDATE fruit SET x = 1 WHERE id = 1", [], timeout_s=5, max_rows=0)
    assert info.value.details["object_kind"] == "table"


async def test_constraint_violation(driver: SqliteDriver, db: Path) -> None:
    with pytest.raises(ConstraintViolation) as info:
        await driver.run(
            location(db),
            "INSERT INTO items (id, name) VALUES (1, 'dup')",
            [],
            timeout_s=5,
            max_rows=0,
        )
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert "UNIQUE constraint failed" in info.value.message


@pytest.mark.parametrize(
    ("sql", "params", "cause"),
    [
        ("SELECT ?", [1, 2], sqlite3.ProgrammingError),
        ("SELECT ?", [{"a": 1}], sqlite3.ProgrammingError),
        ("SELECT ?", [2**70], OverflowError),
        ("SELECT 1; SELECT 2", [], sqlite3.ProgrammingError),
        ("SELEC 1", [], sqlite3.OperationalError),
        ("INSERT INTO items (name) VALUES (?)", [[1, 2]], sqlite3.ProgrammingError),
    ],
)
async def test_rejected_statements_and_values(
    driver: SqliteDriver, db: Path, sql: str, params: list[Any], cause: type[BaseException]
) -> None:
    with pytest.raises(BackendRejected) as info:
        await driver.run(location(db), sql, params, timeout_s=5, max_rows=1)
    assert type(info.value) is BackendRejected
    assert isinstance(info.value.__cause__, cause)


async def test_attach_is_refused(driver: SqliteDriver, db: Path, tmp_path: Path) -> None:
    other = make_db(tmp_path / "other.db")
    with pytest.raises(BackendRejected):
        await driver.run(location(db), f"ATTACH '{other}' AS o", [], timeout_s=5, max_rows=0)


async def test_invalid_utf8_is_rejected_without_its_bytes(driver: SqliteDriver, db: Path) -> None:
    loc = location(db)
    await driver.run(
        loc,
        "INSERT INTO items (name) VALUES (CAST(x'ff73656372' AS TEXT))",
        [],
        timeout_s=5,
        max_rows=0,
    )
    with pytest.raises(BackendRejected) as info:
        await driver.run(loc, "SELECT name FROM items", [], timeout_s=5, max_rows=10)
    assert "secr" not in info.value.message
    assert "UTF-8" in info.value.message


# -- connection-string options ------------------------------------------------------------


async def test_fksupport_turns_foreign_keys_on(driver: SqliteDriver, tmp_path: Path) -> None:
    path = tmp_path / "fk.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE items (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id));"
    )
    conn.close()
    sql = "INSERT INTO items (p) VALUES (7)"
    await driver.run(location(path), sql, [], timeout_s=5, max_rows=0)  # SQLite's default: off
    with pytest.raises(ConstraintViolation):
        await driver.run(location(path, FKSupport="yes"), sql, [], timeout_s=5, max_rows=0)


async def test_journal_mode_and_sync_pragma(driver: SqliteDriver, db: Path) -> None:
    loc = location(db, JournalMode="wal", SyncPragma="normal")
    rs = await driver.run(loc, "PRAGMA journal_mode", [], timeout_s=5, max_rows=1)
    assert rs.rows == [["wal"]]
    rs = await driver.run(loc, "PRAGMA synchronous", [], timeout_s=5, max_rows=1)
    assert rs.rows == [[1]]


@pytest.mark.parametrize(
    "keys",
    [
        {"Timeout": "soon"},
        {"SyncPragma": "OFF; DROP TABLE items"},
        {"JournalMode": "wal2"},
    ],
)
def test_bad_options_are_misconfigurations(db: Path, keys: dict[str, str]) -> None:
    with pytest.raises(TenantMisconfigured):
        open_spec(location(db, **keys).connect)


def test_options_read_like_sqliteodbc(db: Path) -> None:
    spec = open_spec(location(db, Timeout="250", FKSupport="0", LoadExt="/tmp/evil.so").connect)
    assert spec.busy_timeout_ms == 250
    assert spec.pragmas == ()
    assert spec.uri == f"file://{db}?mode=rw"
    assert open_spec(location(db).connect).busy_timeout_ms == 5000
    assert open_spec(location(db, FKSupport="True").connect).pragmas == (
        "PRAGMA foreign_keys = ON",
    )


# -- tenancy's blocking source ------------------------------------------------------------


async def test_blocking_source_reads_the_catalog(driver: SqliteDriver, db: Path) -> None:
    loc = location(db)
    source = driver.blocking_source(loc, timeout_s=10)

    def read() -> tuple[str, list[catalog.Column]] | None:
        with source() as conn:
            assert isinstance(conn, sqlite3.Connection)
            return catalog.read_table(conn, loc, "ITEMS")

    found = await anyio.to_thread.run_sync(read)
    assert found is not None
    name, columns = found
    assert name == "items"
    assert [(c.name, c.type_name) for c in columns][:3] == [
        ("id", "INTEGER"),
        ("name", "TEXT"),
        ("price", "DECIMAL(10, 2)"),
    ]
    # The connection went back to the pool, and serves the loop next.
    await driver.run(loc, "SELECT 1", [], timeout_s=5, max_rows=1)
    stats = driver.get_stats()["sqlite://local"]
    assert (stats["connections_num"], stats["pool_available"]) == (1, 1)


async def test_blocking_source_stops_at_its_timeout(driver: SqliteDriver, db: Path) -> None:
    source = driver.blocking_source(location(db), timeout_s=0.2)

    def slow() -> None:
        with source() as conn:
            conn.execute(FOREVER).fetchall()

    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        await anyio.to_thread.run_sync(slow)
    rs = await driver.run(location(db), "SELECT count(*) FROM items", [], timeout_s=5, max_rows=1)
    assert rs.rows == [[3]]


# -- which statements run inline ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        ("SELECT 1", True),
        ("  select * from t", True),
        ("VALUES (1), (2)", True),
        ("-- a comment\n/* another */ SELECT 1", True),
        ("WITH c AS (SELECT 1) SELECT * FROM c", True),
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c", True),
        ("WITH c AS MATERIALIZED (SELECT 1) VALUES (2)", True),
        ("WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c", False),
        ("WITH c AS (SELECT 1) DELETE FROM t WHERE id IN c", False),
        ("WITH c AS (SELECT 'select') UPDATE t SET a = 1", False),
        ('WITH "select" AS (SELECT 1) REPLACE INTO t SELECT * FROM "select"', False),
        ("WITH [values] AS (SELECT 1) INSERT INTO t VALUES (1)", False),
        ("INSERT INTO t VALUES (1) RETURNING *", False),
        ("UPDATE t SET a = (SELECT 1)", False),
        ("DELETE FROM t", False),
        ("REPLACE INTO t VALUES (1)", False),
        ("PRAGMA journal_mode = wal", False),
        ("BEGIN", False),
        ("EXPLAIN SELECT 1", False),
        ("(SELECT 1)", False),
        ("/* SELECT */ DELETE FROM t", False),
        ("", False),
        ("WITH c AS (SELECT 1", False),
    ],
)
def test_read_only_classification(sql: str, read: bool) -> None:
    assert is_read_only(sql) is read
