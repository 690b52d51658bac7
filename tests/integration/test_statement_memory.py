"""What the drivers keep per statement text is bounded by the text, not by a count
(issue #9, item 5): the native PostgreSQL driver's prepared statements and its window
of statements seen once, and the statements sqlite3 keeps compiled per connection.
Real databases; every statement's answer is checked too."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.drivers.postgres import PostgresDriver
from proxy.drivers.postgres.statements import PREPARED_CHARS
from proxy.drivers.sizing import PoolOptions
from proxy.drivers.sqlite import SqliteDriver
from proxy.drivers.sqlite.options import CACHED_STATEMENT_CHARS
from tenancy.connstr import parse
from tenancy.location import TenantLocation, locate
from tests.support.pg import PgServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.driver_independent]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _padded(n: int, chars: int) -> str:
    """A distinct statement of about ``chars`` characters, answering ``n``."""
    head = f"SELECT {n} AS n WHERE 'x' <> '"
    return head + "p" * max(0, chars - len(head) - 1) + "'"


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture
def pg_loc(pg: PgServer) -> Iterator[TenantLocation]:
    with pg.fresh_database() as name:
        yield locate(parse(pg.odbc(name)), {})


async def test_postgres_keeps_statement_text_within_its_budget(pg_loc: TenantLocation) -> None:
    driver = PostgresDriver(PoolOptions(max_size=1, acquire_timeout=10.0))
    try:
        size = PREPARED_CHARS // 8
        for n in range(24):  # three times what fits, each twice: seen, then prepared
            sql = _padded(n, size)
            for _ in range(2):
                result = await driver.run(pg_loc, sql, [], timeout_s=10, max_rows=1)
                assert result.rows == [[n]]
        huge = _padded(99, PREPARED_CHARS + 10)
        for _ in range(3):
            assert (await driver.run(pg_loc, huge, [], timeout_s=10, max_rows=1)).rows == [[99]]
        (entry,) = driver._pools.values()
        conn = await entry.pool.acquire()
        try:
            held = conn.statements.kept
            stats = held.get_stats()
            assert 0 < stats["prepared_chars"] <= PREPARED_CHARS
            assert stats["seen_chars"] <= PREPARED_CHARS
            kept = len(held)
            assert 0 < kept < 24
            # The text longer than the budget is neither prepared nor remembered.
            assert all(len(query) < PREPARED_CHARS for (query, _), _ in held.items())
            assert all(len(query) < PREPARED_CHARS for query, _ in held.seen())
        finally:
            entry.pool.release(conn)
        # The server holds what the driver believes it holds (the same one connection).
        count = "SELECT count(*) FROM pg_prepared_statements"
        assert (await driver.run(pg_loc, count, [], timeout_s=10, max_rows=1)).rows == [[kept]]
    finally:
        await driver.aclose()


# -- SQLite ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_loc(tmp_path: Path) -> TenantLocation:
    path = tmp_path / "tenant.db"
    sqlite3.connect(path).close()
    return locate(parse(f"Driver=SQLite3;Database={path}"), {})


async def test_sqlite_closes_a_connection_whose_statement_cache_holds_too_much_text(
    sqlite_loc: TenantLocation,
) -> None:
    driver = SqliteDriver(PoolOptions(max_size=1, acquire_timeout=10.0), maintenance_interval=None)
    try:
        size = CACHED_STATEMENT_CHARS // 4

        def opened() -> int:
            (stats,) = driver.get_stats().values()
            return stats["connections_num"]

        for n in range(4):  # up to the budget: one connection, kept
            sql = _padded(n, size - 100)
            result = await driver.run(sqlite_loc, sql, [], timeout_s=10, max_rows=1)
            assert result.rows == [[n]]
        assert opened() == 1
        # Repeating a cached statement adds nothing.
        await driver.run(sqlite_loc, _padded(0, size - 100), [], timeout_s=10, max_rows=1)
        assert opened() == 1
        # Past the budget, the connection is closed on its way back and a new one opened.
        await driver.run(sqlite_loc, _padded(4, size), [], timeout_s=10, max_rows=1)
        result = await driver.run(sqlite_loc, "SELECT 5", [], timeout_s=10, max_rows=1)
        assert result.rows == [[5]]
        assert opened() == 2
    finally:
        await driver.aclose()
