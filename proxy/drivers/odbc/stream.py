"""A read streamed through pyodbc, a batch per worker-thread hop.

Per backend, where the rows wait until they are fetched:

* SQL Server: on the wire. A default result set is sent as the client reads it; while
  the client does not read, TCP's window stops the server. ``fetchmany(batch_rows)``
  takes what the batch needs and no more.
* PostgreSQL (psqlODBC): in the server's cursor. psqlODBC reads a whole result into
  the driver's memory at ``execute`` unless the connection string says
  ``UseDeclareFetch=1``, which the tenant's connection string, not tenantgate, decides.
  So the stream declares its own cursor (``DECLARE … NO SCROLL CURSOR FOR``, in a
  transaction: autocommit off) and runs ``FETCH FORWARD n`` per batch, as the native
  driver does (``proxy.drivers.postgres.stream``), whatever ``UseDeclareFetch`` says.
* SQLite (sqliteodbc): in the driver's memory. sqliteodbc reads the whole result at
  ``execute``, bounded only by the row cap in the SQL (``max_rows + 1``): the native
  driver (the default) streams SQLite; this one holds the whole capped result.

Timeouts: every step (the statement's start with its first batch, each later batch)
gets ``timeout_s``: the session's timeout (``apply_timeout``) and the watchdog's
cancel at it, as for ``execute``; a timeout retires the connection on SQL Server
(``execute`` says why an unacknowledged attention leaves it unusable), where the
KILL backstop of ``execute`` is not armed for streams: a step that ignores its cancel
holds its thread until ODBC's own query timeout.

A consumer cancelled mid-step (its client went away) stops waiting at once: the
step's cursor is cancelled from a thread of its own, and the connection is disposed of
(cursor closed, given back broken, gate slot freed) by a thread that first waits for
the step to return. Steps and disposal take ``_Steps.lock`` in turn, so a connection
is never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import pyodbc

from proxy.drivers.base import ResultColumn, RowStream, column_type
from proxy.drivers.batches import Batches, check_stream_limits
from proxy.drivers.odbc.execute import _cancel, _labelled, apply_timeout, forget_session_settings
from proxy.drivers.odbc.pool import ConnectionPool, PooledConnection
from proxy.drivers.odbc.sqlstate import translate
from proxy.errors import BackendRejected, StatementTimeout

if TYPE_CHECKING:
    from proxy.drivers.odbc.driver import OdbcDriver
    from proxy.drivers.odbc.gate import Gate

__all__ = ["CURSOR_NAME", "stream_on"]

T = TypeVar("T")

CURSOR_NAME = "tenantgate_stream"


class _Steps(Batches):
    def __init__(
        self,
        driver: OdbcDriver,
        pool: ConnectionPool,
        conn: PooledConnection,
        backend: str,
        *,
        timeout_s: float,
        max_rows: int,
        batch_rows: int,
    ) -> None:
        super().__init__(max_rows=max_rows, batch_rows=batch_rows)
        self._driver = driver
        self._pool = pool
        self._conn = conn
        self._backend = backend
        self._timeout_s = timeout_s
        self._cursor: pyodbc.Cursor | None = None
        self._declared = False
        """PostgreSQL: our cursor, in a transaction of ours, is open."""
        self.lock = threading.Lock()
        self.broken = False
        self._disposed = False

    # -- steps, each in a worker thread -------------------------------------------------

    def _start(self, sql: str, params: Sequence[object]) -> None:
        conn, backend = self._conn, self._backend
        cursor = self._cursor
        assert cursor is not None  # made by _step, so that the watchdog can cancel it
        if backend == "postgresql":
            conn.raw.autocommit = False
            self._declared = True
            sql = f"DECLARE {CURSOR_NAME} NO SCROLL CURSOR FOR {sql}"
        elif backend == "sqlserver" and self._driver.options.label_requests:
            sql, params = _labelled(sql, params)
        if params:
            cursor.execute(sql, list(params))
        else:
            cursor.execute(sql)

    def _rows(self, count: int) -> list[list[object]]:
        cursor = self._cursor
        assert cursor is not None
        if self._declared:
            cursor.execute(f"FETCH FORWARD {int(count)} FROM {CURSOR_NAME}")
        description = cursor.description
        if description is None:
            return []
        if not self.columns:
            self.columns = [ResultColumn(str(d[0]), column_type(d[1])) for d in description]
        return [list(row) for row in cursor.fetchmany(count)]

    def dispose(self, loop: asyncio.AbstractEventLoop, gate: Gate) -> None:
        """Close the cursor, end our transaction, give the connection back; then free
        the gate's slot. Waits for a step still running (see the module)."""
        try:
            with self.lock:
                self._disposed = True
                conn = self._conn
                broken = self.broken
                if self._cursor is not None:
                    with contextlib.suppress(pyodbc.Error):
                        if broken:
                            # Rows may be left on the wire (SQL Server): closing the
                            # cursor would read them all first.
                            self._cursor.cancel()
                        self._cursor.close()
                    self._cursor = None
                if self._declared and not broken:
                    try:
                        conn.raw.commit()  # closes the cursor; nothing was written
                        conn.raw.autocommit = True
                    except pyodbc.Error:
                        broken = True
                    # SET statement_timeout inside the transaction: set it afresh.
                    forget_session_settings(conn)
                self._pool.putconn(conn, broken=broken)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                loop.call_soon_threadsafe(gate.leave)

    # -- from the loop --------------------------------------------------------------

    async def open(self, sql: str, params: Sequence[object]) -> None:
        await self._step(functools.partial(self._start, sql, params))
        await self.start()

    async def _fetch(self, count: int) -> list[list[object]]:
        return await self._step(functools.partial(self._rows, count))

    async def _step(self, fn: Callable[[], T]) -> T:
        watchdog = self._driver.watchdog
        own_thread = self._backend != "sqlite"
        fired: list[bool] = [False]

        def job() -> T:
            with self.lock:
                if self._disposed:  # abandoned before it started: not ours any more
                    raise asyncio.CancelledError
                cursor = self._cursor
                if cursor is None:  # the first step: the session's timeout, a cursor
                    apply_timeout(self._conn, self._backend, self._timeout_s)
                    cursor = self._cursor = self._conn.raw.cursor()
                handle = watchdog.watch(
                    self._timeout_s, functools.partial(_cancel, cursor), own_thread=own_thread
                )
                try:
                    return fn()
                finally:
                    handle.done()
                    fired[0] = handle.fired

        try:
            return await self._driver.hop(job, abandon=True)
        except pyodbc.Error as exc:
            self.broken = True
            error = translate(exc, timed_out=fired[0])
            if isinstance(error, StatementTimeout):
                error.details["timeout_ms"] = round(self._timeout_s * 1000)
            raise error from exc
        except OverflowError as exc:
            self.broken = True
            raise BackendRejected(f"a parameter does not fit the backend's types: {exc}") from exc
        except BaseException:
            self.broken = True
            cursor = self._cursor
            if cursor is not None:
                # The step may still be running: stop it from a thread of its own.
                threading.Thread(target=_cancel, args=(cursor,), daemon=True).start()
            raise


@contextlib.asynccontextmanager
async def stream_on(
    driver: OdbcDriver,
    pool: ConnectionPool,
    gate: Gate,
    *,
    backend: str,
    sql: str,
    params: Sequence[object],
    timeout_s: float,
    max_rows: int,
    batch_rows: int,
) -> AsyncIterator[RowStream]:
    """Stream the read ``sql`` through ``pool`` (``gate`` entered by the caller, and
    left here, whatever happens)."""
    check_stream_limits(timeout_s, max_rows, batch_rows)
    loop = asyncio.get_running_loop()
    try:
        conn = await driver.hop(pool.getconn, min(driver.options.acquire_timeout, timeout_s))
    except BaseException:
        gate.leave()
        raise
    steps = _Steps(
        driver, pool, conn, backend, timeout_s=timeout_s, max_rows=max_rows, batch_rows=batch_rows
    )
    dispose = functools.partial(steps.dispose, loop, gate)
    try:
        await steps.open(sql, params)
        yield steps
    except Exception:
        steps.broken = True
        await _shielded(driver, dispose)
        raise
    except BaseException:
        # Cancelled: nobody waits for the step still running, nor for its disposal.
        steps.broken = True
        threading.Thread(target=dispose, daemon=True).start()
        raise
    await _shielded(driver, dispose)


async def _shielded(driver: OdbcDriver, fn: Callable[[], Any]) -> None:
    with anyio.CancelScope(shield=True):
        await driver.hop(fn)
