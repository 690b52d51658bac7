"""A read streamed from a server-side cursor: ``DECLARE`` once, then ``FETCH n`` per batch.

Why a cursor and not libpq's single-row or chunked mode (``docs/decisions.md``,
"Streaming from PostgreSQL"): in chunked mode the statement keeps running on the
server while the client is slow, and ``statement_timeout`` counts that time too, so a
stream longer than the request's timeout would be cut short by its own timeout; and
the server's work goes on as fast as the socket takes it. With a cursor every
``FETCH`` is a statement of its own, which the request's timeout bounds, and between
two fetches the server does nothing for us: a slow client slows the fetching, and one
that went away leaves an idle transaction that closing the connection ends at once.
The price is one round trip per batch (``batch_rows`` rows) and a transaction around
the stream (``BEGIN`` … ``COMMIT``).

The rows are loaded by the connection's ``Transformer`` as ``execute_on`` loads them,
and the columns made by the same function: same values, same type names. Both
``DECLARE`` and ``FETCH`` run unnamed (``Statements.unnamed``): the ``FETCH`` text is
the same for results of every shape, and a prepared one would trip over a changed
result type (0A000).

Errors and cancellation are ``session``'s: the same backstop per round trip, the same
translation. A stream that ends early for any reason but an ``Exception`` (the request
cancelled: its client went away) retires its connection; a statement still running
gets a cancel request (``session``), and the server ends the idle transaction and its
cursor when the socket closes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from psycopg.pq.abc import PGresult

from proxy import context
from proxy.drivers.base import RowStream
from proxy.drivers.batches import Batches, check_stream_limits
from proxy.drivers.postgres.pool import PgPool, PooledConnection
from proxy.drivers.postgres.session import (
    _HANDLED,
    PgSession,
    _Backstop,
    _failed,
    _load,
    _result_column,
)

__all__ = ["CURSOR_NAME", "stream_on"]

CURSOR_NAME = "tenantgate_stream"
"""One stream at a time per connection: a fixed name is enough."""


class _CursorRows(Batches):
    def __init__(
        self, conn: PooledConnection, *, timeout_s: float, max_rows: int, batch_rows: int
    ) -> None:
        super().__init__(max_rows=max_rows, batch_rows=batch_rows)
        self._conn = conn
        self._timeout_s = timeout_s
        self._described = False

    async def _fetch(self, count: int) -> list[list[object]]:
        conn = self._conn
        fetch = f"FETCH FORWARD {int(count)} FROM {CURSOR_NAME}"
        result = await _guarded(conn, fetch, (), self._timeout_s)
        if not self._described:
            self._described = True
            self.columns = [
                _result_column(result.fname(i), result.ftype(i)) for i in range(result.nfields)
            ]
        total = result.ntuples
        return _load(conn, result, total) if total else []


async def _guarded(
    conn: PooledConnection,
    sql: str,
    params: Sequence[object],
    timeout_s: float,
    *,
    label: bytes | None = None,
) -> PGresult:
    """One unnamed statement under the backstop; errors translated as ``session`` does."""
    guard = _Backstop(conn, timeout_s)
    try:
        return await conn.statements.unnamed(sql, params, label)
    except _HANDLED as exc:
        guard.disarm()
        await _failed(conn, exc, guard, timeout_s=timeout_s, params=params, retry_stale=False)
        raise AssertionError("_failed raises unless it retries") from exc
    finally:
        guard.disarm()


@contextlib.asynccontextmanager
async def stream_from_pool(
    pool: PgPool,
    sql: str,
    params: Sequence[object],
    *,
    timeout_s: float,
    max_rows: int,
    batch_rows: int,
) -> AsyncIterator[RowStream]:
    """``stream_on`` a connection of ``pool``, given back with the block's error
    (``PostgresDriver.stream``; an ``async`` generator, which mypyc does not compile,
    so here and not in the driver's module)."""
    conn = pool.acquire_nowait()
    if conn is None:
        conn = await pool.acquire_wait(timeout_s)
    try:
        async with stream_on(
            conn, sql, params, timeout_s=timeout_s, max_rows=max_rows, batch_rows=batch_rows
        ) as rows:
            yield rows
    except BaseException as exc:
        pool.release(conn, exc)
        raise
    pool.release(conn)


@contextlib.asynccontextmanager
async def stream_on(
    conn: PooledConnection,
    sql: str,
    params: Sequence[object],
    *,
    timeout_s: float,
    max_rows: int,
    batch_rows: int,
) -> AsyncIterator[RowStream]:
    """Stream the read ``sql`` (``?`` markers) on ``conn``; the first batch is fetched
    on entering. The caller gives ``conn`` back to its pool with the block's error."""
    check_stream_limits(timeout_s, max_rows, batch_rows)
    # The session's timeout is set before BEGIN: each FETCH is then bounded without a
    # SET LOCAL. Leaving the transaction ends the cursor, whether or not every row was
    # fetched.
    async with PgSession(conn).transaction(timeout_s=timeout_s):
        label = None
        if conn.pool.label_requests:
            ctx = context.current()
            if ctx is not None:
                label = ctx.label()
        await _guarded(
            conn,
            f"DECLARE {CURSOR_NAME} NO SCROLL CURSOR FOR {sql}",
            params,
            timeout_s,
            label=label,
        )
        rows = _CursorRows(conn, timeout_s=timeout_s, max_rows=max_rows, batch_rows=batch_rows)
        await rows.start()
        yield rows
