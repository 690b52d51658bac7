"""A read streamed from a sqlite3 cursor, ``fetchmany(batch_rows)`` at a time.

Every step (the statement's start with its first batch, each later batch) runs in a
worker thread, not inline as ``execute`` runs short reads: a cursor cannot move from
the loop to a thread halfway (aborting the inline attempt ends the statement), and a
batch of a thousand rows is worth a thread hop (150-230 µs) anyway. Each step gets
the whole ``timeout_s``, enforced by the progress handler's deadline
(``PooledConnection.progress``, every ``PROGRESS_EVERY`` instructions) rather than
``execute``'s loop timer: one mechanism for steps that follow one another on the same
connection. A step stuck where the handler is not called (a slow page read) is not cut
short; the request's own write timeout and the thread limit bound what that costs.

Column types come from the first batch's values (``execute._columns``), as the
non-streaming path takes them from every returned row: a column NULL throughout the
first batch is ``unknown`` here even when a later row has a value.

A cancelled consumer (its client went away) stops waiting at once: a step not yet
started never starts, one running is interrupted (``sqlite3_interrupt``) and its
worker closes the connection when it returns (``orphaned``), as ``execute`` does.

While the cursor is open its statement holds a read transaction: in WAL mode writers
go on, in rollback-journal mode they wait (up to their busy timeout) until the stream
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from proxy.drivers.base import RowStream
from proxy.drivers.batches import Batches, check_stream_limits
from proxy.drivers.sqlite.errors import translate
from proxy.drivers.sqlite.execute import (
    _DONE,
    _ERRORS,
    _ORPHANED,
    _PENDING,
    _RUNNING,
    PROGRESS_EVERY,
    ExecutionStats,
    StatementHop,
    _abandon,
    _columns,
    _Ticket,
    _timeout,
    set_busy_timeout,
)
from proxy.drivers.sqlite.pool import PooledConnection

__all__ = ["stream_on"]

T = TypeVar("T")


class _CursorRows(Batches):
    def __init__(
        self,
        conn: PooledConnection,
        hop: StatementHop,
        stats: ExecutionStats,
        *,
        timeout_s: float,
        max_rows: int,
        batch_rows: int,
    ) -> None:
        super().__init__(max_rows=max_rows, batch_rows=batch_rows)
        self._conn = conn
        self._hop = hop
        self._stats = stats
        self._timeout_s = timeout_s
        self._cursor: sqlite3.Cursor | None = None

    async def open(self, sql: str, params: Sequence[object]) -> None:
        conn = self._conn
        conn.note_statement(sql)
        limit_ms = max(0, min(conn.pool.spec.busy_timeout_ms, math.ceil(self._timeout_s * 1000)))

        def start() -> sqlite3.Cursor:
            if not conn.progress_on:
                conn.raw.set_progress_handler(conn.progress, PROGRESS_EVERY)
                conn.progress_on = True
            set_busy_timeout(conn, limit_ms)
            cursor = conn.raw.cursor()
            try:
                cursor.execute(sql, list(params))
            except BaseException:
                cursor.close()
                raise
            return cursor

        self._cursor = await self._step(start)
        description = self._cursor.description
        await self.start()
        first = self._first or []
        self.columns = _columns(description, first) if description is not None else []

    async def _fetch(self, count: int) -> list[list[object]]:
        cursor = self._cursor
        if cursor is None or cursor.description is None:
            return []

        def fetch() -> list[list[object]]:
            return [list(row) for row in cursor.fetchmany(count)]

        return await self._step(fetch)

    def close(self) -> None:
        """Reset the statement (ends its read transaction); on the loop: it is quick."""
        cursor, self._cursor = self._cursor, None
        if cursor is not None and not self._conn.orphaned:
            with contextlib.suppress(sqlite3.Error):
                cursor.close()

    async def _step(self, fn: Callable[[], T]) -> T:
        """``fn`` in a worker under the progress handler's deadline (see the module)."""
        conn = self._conn
        ticket = _Ticket()

        def job() -> T:
            with conn.lock:
                if ticket.state is not _PENDING:
                    raise asyncio.CancelledError  # abandoned before it started
                ticket.state = _RUNNING
            try:
                conn.stopped = False
                conn.stop_at = time.monotonic() + self._timeout_s
                return fn()
            finally:
                conn.stop_at = math.inf
                with conn.lock:
                    orphaned = ticket.state is _ORPHANED
                    ticket.state = _DONE
                if orphaned:
                    conn.pool.discard(conn)

        try:
            return await self._hop(job, abandon=True)
        except _ERRORS as exc:
            if conn.stopped:
                self._stats.timeouts += 1
                raise _timeout(exc, self._timeout_s) from exc
            raise translate(exc) from exc
        except BaseException:
            _abandon(conn, ticket, self._stats)
            raise


@contextlib.asynccontextmanager
async def stream_on(
    conn: PooledConnection,
    hop: StatementHop,
    stats: ExecutionStats,
    sql: str,
    params: Sequence[object],
    *,
    timeout_s: float,
    max_rows: int,
    batch_rows: int,
) -> AsyncIterator[RowStream]:
    """Stream the read ``sql`` on ``conn``; the first batch is fetched on entering."""
    check_stream_limits(timeout_s, max_rows, batch_rows)
    rows = _CursorRows(
        conn, hop, stats, timeout_s=timeout_s, max_rows=max_rows, batch_rows=batch_rows
    )
    try:
        await rows.open(sql, params)
        yield rows
    finally:
        rows.close()
