"""The ODBC driver: pyodbc in worker threads, behind the seam of ``proxy.drivers.base``.

pyodbc blocks its thread for the whole of a call, so every call runs in a worker
thread bounded by a capacity limiter (``threads``). A one-statement request
(``run``) takes the connection, executes and gives it back in one hop; a session
(``connection``) hops per statement.

Before a request takes a thread it passes its pool's ``Gate`` (``gate``), on the loop:
no more requests hold threads for one pool than it has connections, a bounded queue
waits on the loop, and the rest is refused at once. A one-statement request that gets
no answer within its timeout plus ``ABANDON_AFTER_S`` is abandoned: the caller gets
``StatementTimeout`` while the thread finishes on its own (a cancel that cannot reach a
partitioned server may hold it for minutes), and its pool's slot stays taken until it
does, so a server in trouble can hold at most its pool's size in threads.

The pools, the timeout machinery (server-side timeout, watchdog cancel, SQL Server's
guarded KILL) and the error table live in the sibling modules: ``pools``/``pool``,
``execute``, ``sqlstate``, ``watchdog``; a streamed read (``stream``) in ``stream``.

SQL Server and any other ODBC driver always come here; PostgreSQL and SQLite do when
their backend's configuration says ``driver = "odbc"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import pyodbc

from proxy.drivers.base import ResultSet, RowStream
from proxy.drivers.odbc.execute import apply_timeout, execute, forget_session_settings
from proxy.drivers.odbc.gate import Gate
from proxy.drivers.odbc.pool import ConnectionPool, PooledConnection
from proxy.drivers.odbc.pools import PoolManager
from proxy.drivers.odbc.sqlstate import is_broken, translate
from proxy.drivers.odbc.stream import stream_on
from proxy.drivers.odbc.watchdog import Watchdog
from proxy.drivers.sizing import PoolOptions, check_count
from proxy.errors import ConnectionLost, StatementTimeout

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

__all__ = ["OdbcDriver", "OdbcSession"]

T = TypeVar("T")

ABANDON_AFTER_S = 0.75
"""How long past its timeout a request waits for its thread before abandoning it: the
watchdog's cancel (at the timeout) or backstop comes first on any server that answers."""
_WAIT_SLACK_S = 0.01


_LEVELS = {
    "read_uncommitted": "READ UNCOMMITTED",
    "read_committed": "READ COMMITTED",
    "repeatable_read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}
"""``ISOLATION_LEVELS`` as SQL Server and PostgreSQL both spell them."""


class OdbcSession:
    """A pooled pyodbc connection on loan, driven from the event loop."""

    __slots__ = ("_backend", "_conn", "_driver")

    def __init__(self, driver: OdbcDriver, conn: PooledConnection, backend: str) -> None:
        self._driver = driver
        self._conn = conn
        self._backend = backend

    async def execute(
        self,
        sql: str,
        params: Sequence[object] = (),
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool = False,
    ) -> ResultSet:
        return await self._driver.hop(
            functools.partial(
                execute,
                self._conn,
                backend=self._backend,
                sql=sql,
                params=params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                watchdog=self._driver.watchdog,
                count_all_rows=count_all_rows,
                label=self._driver.options.label_requests,
            )
        )

    @contextlib.asynccontextmanager
    async def transaction(self, *, isolation: str | None = None) -> AsyncIterator[None]:
        # SQLite has one level, SERIALIZABLE, whatever is asked.
        level = None if self._backend == "sqlite" or isolation is None else _LEVELS[isolation]
        await self._driver.hop(self._begin, level)
        try:
            yield
        except BaseException:
            await self._driver.hop(self._end, False, level)
            raise
        await self._driver.hop(self._end, True, level)

    def _begin(self, level: str | None) -> None:
        raw = self._conn.raw
        if self._backend == "sqlite":
            # Explicitly, in autocommit mode: sqliteodbc's own transactions are
            # deferred, and a deferred transaction that has read fails at its first
            # write when another one wrote meanwhile (SQLITE_BUSY, which no waiting
            # helps). IMMEDIATE takes the write lock at the start, waiting up to the
            # busy timeout for it, as the native driver does.
            try:
                raw.execute("BEGIN IMMEDIATE").close()
            except pyodbc.Error as exc:
                raise translate(exc) from exc
            return
        try:
            raw.autocommit = False
            if level is not None:
                # The transaction's first statement (psqlODBC sends BEGIN before it): on
                # PostgreSQL it sets this transaction's level; on SQL Server the
                # session's, which ``_end`` restores.
                raw.execute(f"SET TRANSACTION ISOLATION LEVEL {level}").close()
        except pyodbc.Error as exc:
            if level is not None:
                with contextlib.suppress(pyodbc.Error):
                    raw.rollback()
                    raw.autocommit = True
            raise translate(exc) from exc

    def _end(self, commit: bool, level: str | None = None) -> None:
        raw = self._conn.raw
        # A timeout set inside the transaction is undone by a rollback: set it afresh.
        forget_session_settings(self._conn)
        if self._backend == "sqlite":
            self._end_sqlite(commit)
            return
        try:
            if commit:
                try:
                    raw.commit()
                except pyodbc.Error as exc:
                    with contextlib.suppress(pyodbc.Error):
                        raw.rollback()
                    raise translate(exc) from exc
            else:
                with contextlib.suppress(pyodbc.Error):
                    raw.rollback()
        finally:
            try:
                raw.autocommit = True
                if level is not None and self._backend == "sqlserver":
                    # SQL Server's level outlives the transaction: the next borrower
                    # gets the default back.
                    raw.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED").close()
            except pyodbc.Error as exc:
                # A pooled connection left in manual-commit mode (or another level)
                # would silently change the next borrower's statements: discard it.
                raise ConnectionLost("could not restore autocommit") from exc

    def _end_sqlite(self, commit: bool) -> None:
        raw = self._conn.raw
        if commit:
            try:
                raw.execute("COMMIT").close()
            except pyodbc.Error as exc:
                # A COMMIT that met a reader's lock leaves the transaction open; one
                # after an error SQLite already rolled back finds none ("no transaction
                # is active"): either way nothing of it may stay.
                with contextlib.suppress(pyodbc.Error):
                    raw.execute("ROLLBACK").close()
                raise translate(exc) from exc
            return
        # Fails harmlessly when SQLite rolled back on its own (an interrupted write).
        with contextlib.suppress(pyodbc.Error):
            raw.execute("ROLLBACK").close()


class OdbcDriver:
    name = "odbc"
    db_errors: tuple[type[BaseException], ...] = (pyodbc.Error,)

    def __init__(
        self,
        options: PoolOptions,
        *,
        threads: int = 32,
        maintenance_interval: float | None = 10.0,
    ) -> None:
        check_count("threads", threads, 1)
        self.options = options
        self.pools = PoolManager(options, maintenance_interval=maintenance_interval)
        self.watchdog = Watchdog()
        self._threads = threads
        self._limiter: anyio.CapacityLimiter | None = None

    async def hop(self, fn: Callable[..., T], *args: Any, abandon: bool = False) -> T:
        """Run blocking ``fn`` in a worker thread (at most ``threads`` at once).

        ``abandon``: a cancelled caller stops waiting at once and the thread finishes on
        its own (its limiter token is given back then, by anyio).
        """
        if self._limiter is None:
            # Created on the loop: anyio binds a limiter to the running backend.
            self._limiter = anyio.CapacityLimiter(self._threads)
        return await anyio.to_thread.run_sync(
            fn, *args, limiter=self._limiter, abandon_on_cancel=abandon
        )

    async def run(
        self,
        location: TenantLocation,
        sql: str,
        params: Sequence[object],
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool = False,
    ) -> ResultSet:
        pool = self.pools.pool_for(location)
        gate = self._gate(pool)
        started = time.monotonic()
        await gate.enter(min(self.options.acquire_timeout, timeout_s))
        waited = time.monotonic() - started
        if waited > _WAIT_SLACK_S:
            # As for PostgreSQL: a short wait leaves the statement its whole timeout.
            timeout_s -= waited
            if timeout_s < _WAIT_SLACK_S:
                gate.leave()
                raise StatementTimeout(
                    "the timeout passed while waiting for a connection",
                    timeout_ms=round((timeout_s + waited) * 1000),
                )
        work = _Abandonable(
            functools.partial(
                self._run,
                pool,
                location.kind.value,
                sql,
                params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                count_all_rows=count_all_rows,
            ),
            gate,
            asyncio.get_running_loop(),
        )
        with anyio.move_on_after(timeout_s + ABANDON_AFTER_S):
            return await self.hop(work, abandon=True)
        work.abandon()
        raise StatementTimeout(
            "no answer from the server within the statement's timeout; it was abandoned",
            timeout_ms=round(timeout_s * 1000),
        )

    def _gate(self, pool: ConnectionPool) -> Gate:
        gate = pool.gate
        if not isinstance(gate, Gate):
            gate = pool.gate = Gate(
                pool.max_size, max_waiting=self.options.max_waiting, name=pool.name
            )
        return gate

    def _run(
        self,
        pool: ConnectionPool,
        backend: str,
        sql: str,
        params: Sequence[object],
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool,
    ) -> ResultSet:
        with pool.connection(timeout=min(self.options.acquire_timeout, timeout_s)) as conn:
            return execute(
                conn,
                backend=backend,
                sql=sql,
                params=params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                watchdog=self.watchdog,
                count_all_rows=count_all_rows,
                label=self.options.label_requests,
            )

    @contextlib.asynccontextmanager
    async def connection(self, location: TenantLocation) -> AsyncIterator[OdbcSession]:
        pool = self.pools.pool_for(location)
        gate = self._gate(pool)
        await gate.enter(self.options.acquire_timeout)
        try:
            conn = await self.hop(pool.getconn)
        except BaseException:
            gate.leave()
            raise
        broken, lost = True, False
        try:
            yield OdbcSession(self, conn, location.kind.value)
            broken = False
        except Exception as exc:
            broken, lost = is_broken(exc), isinstance(exc, ConnectionLost)
            raise
        finally:
            # Closing a connection talks to the server: not on the loop. Shielded: a
            # cancelled request must still give its connection back.
            with anyio.CancelScope(shield=True):
                try:
                    await self.hop(functools.partial(pool.putconn, conn, broken=broken, lost=lost))
                finally:
                    gate.leave()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        location: TenantLocation,
        sql: str,
        params: Sequence[object],
        *,
        timeout_s: float,
        max_rows: int,
        batch_rows: int,
    ) -> AsyncIterator[RowStream]:
        """A read's rows, a batch per worker hop (``proxy.drivers.odbc.stream``)."""
        pool = self.pools.pool_for(location)
        gate = self._gate(pool)
        await gate.enter(min(self.options.acquire_timeout, timeout_s))
        async with stream_on(
            self,
            pool,
            gate,
            backend=location.kind.value,
            sql=sql,
            params=params,
            timeout_s=timeout_s,
            max_rows=max_rows,
            batch_rows=batch_rows,
        ) as rows:
            yield rows

    def blocking_source(
        self, location: TenantLocation, *, timeout_s: float
    ) -> Callable[[], AbstractContextManager[Any]]:
        pool = self.pools.pool_for(location)
        return functools.partial(_with_timeout, pool, location.kind.value, timeout_s)

    def controller_source(
        self,
        connection_string: str,
        *,
        name: str = "controller",
        backend: str | None = None,
        timeout_s: float | None = None,
        database_file: str | None = None,
    ) -> Callable[[], AbstractContextManager[Any]]:
        """A pooled source for a plain ODBC string (the controller), for worker threads.

        With ``backend`` and ``timeout_s``, each borrower's session stops statements
        after ``timeout_s`` (as ``blocking_source`` does). With ``database_file`` (a
        SQLite controller), connections opened on an earlier file at that path are
        retired: a controller replaced on disk (a new file moved over the old one) is
        read from its new file, not from the unlinked old one the connections still hold.
        """
        pool = self.pools.pool_for_dsn(name, connection_string, server_key=name)
        return functools.partial(_controller_connection, pool, backend, timeout_s, database_file)

    def get_stats(self) -> dict[str, dict[str, int]]:
        return self.pools.get_stats()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        self.pools.close()
        self.watchdog.close()


class _LostAtCheckout(ConnectionLost):
    """The session was found dead by its first command, before the borrower had it."""


@contextlib.contextmanager
def _with_timeout(pool: ConnectionPool, backend: str, timeout_s: float) -> Iterator[Any]:
    # A session the server closed while it sat idle (a restart, a terminated backend)
    # shows at the first command, the timeout's: that connection is discarded (the pool
    # closes the idle ones with it) and a fresh one lent instead, once. Nothing of the
    # borrower's ran yet, so nothing can run twice.
    for last in (False, True):
        try:
            with pool.connection() as conn:
                try:
                    # Not the timeout the previous borrower left on this session.
                    apply_timeout(conn, backend, timeout_s)
                except ConnectionLost as exc:
                    if last:
                        raise
                    raise _LostAtCheckout(exc.message) from exc
                yield conn
                return
        except _LostAtCheckout:
            continue


class _Abandonable:
    """A request's work for a worker thread, whose gate slot is given back exactly once:
    by the thread when it ran (whenever it ends), or by the request when it gave up
    before the thread started (then the work never runs)."""

    __slots__ = ("_fn", "_gate", "_lock", "_loop", "_state")

    def __init__(
        self, fn: Callable[[], ResultSet], gate: Gate, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._fn = fn
        self._gate = gate
        self._loop = loop
        self._lock = threading.Lock()
        self._state = "new"

    def __call__(self) -> ResultSet:
        with self._lock:
            if self._state == "abandoned":
                raise StatementTimeout("abandoned before it started")
            self._state = "running"
        try:
            return self._fn()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                self._loop.call_soon_threadsafe(self._gate.leave)

    def abandon(self) -> None:
        """The request stopped waiting (on the loop)."""
        with self._lock:
            started = self._state == "running"
            self._state = "abandoned" if not started else self._state
        if not started:
            self._gate.leave()


_FILE_KEY = "database_file"
"""``PooledConnection.session`` key: (st_dev, st_ino) of the file the session opened."""


@contextlib.contextmanager
def _controller_connection(
    pool: ConnectionPool, backend: str | None, timeout_s: float | None, path: str | None
) -> Iterator[Any]:
    conn = _current_connection(pool, path)
    try:
        if backend is not None and timeout_s is not None:
            apply_timeout(conn, backend, timeout_s)
        yield conn
    except Exception as exc:
        pool.putconn(conn, broken=is_broken(exc))
        raise
    except BaseException:
        pool.putconn(conn, broken=True)  # the statement may still be running
        raise
    else:
        pool.putconn(conn)


def _current_connection(pool: ConnectionPool, path: str | None) -> PooledConnection:
    """A connection of ``pool`` that reads the file now at ``path`` (any, without one)."""
    if path is None:
        return pool.getconn()
    try:
        st = os.stat(path)
        now = (st.st_dev, st.st_ino)
    except OSError:
        # Gone (or unreadable) for now: the open sessions hold the last file there
        # was, which beats failing every lookup until it is back.
        return pool.getconn()
    # Each pass retires one idle connection of an older file or returns; at most
    # max_size are idle, so a fresh connection comes by the last pass.
    for _ in range(pool.max_size + 1):
        conn = pool.getconn()
        seen = conn.session.get(_FILE_KEY)
        if seen is None and conn.uses == 1:
            # Opened by this getconn, after the stat: it reads the file stat'ed (or a
            # newer one, which the next borrower's stat then retires once more).
            conn.session[_FILE_KEY] = seen = now
        if seen == now:
            return conn
        # Another file, or opened without a borrower (the pool's min_size): unknown.
        pool.putconn(conn, broken=True)
    return pool.getconn()
