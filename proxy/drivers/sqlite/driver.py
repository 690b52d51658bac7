"""The native SQLite driver: ``SqliteDriver`` and its ``SqliteSession``.

The driver keeps one ``FilePool`` per tenant file (``location.pool_key``), created on
first use from the tenant's connection string (``options.open_spec``). A janitor
thread calls ``maintain()`` every ``maintenance_interval`` seconds: it closes idle
connections past ``max_idle``/``max_lifetime`` and drops pools that have held no
connection for ``max_idle``, so that thousands of quiet tenant files cost nothing.
The cumulative counters of dropped pools are kept per server label, so that
``get_stats()`` (summed per ``server_key``, all SQLite files are ``sqlite://local``)
never runs backwards under Prometheus.

Statements run through ``proxy.drivers.sqlite.execute`` (inline for reads, in a
worker thread for writes). Worker threads come from anyio's thread pool, at most
``threads`` at once, like the ODBC driver's hop.

Transactions (``SqliteSession.transaction``) start with ``BEGIN IMMEDIATE``: the
write lock is taken up front, waiting for it up to the busy timeout, instead of
at the first write, where a transaction that has already read would fail with
``SQLITE_BUSY`` (no waiting can help it then). Inside a transaction reads still run
inline (an interrupted read leaves the transaction alone); a write that is
interrupted (its timeout) makes SQLite roll the whole transaction back: the session
notices (``in_transaction`` went false), refuses further statements in that
transaction and fails the commit with ``BackendRejected`` rather than let later
statements run, and commit, one by one in autocommit mode. ``COMMIT`` and
``ROLLBACK`` run in a worker thread (they write the journal and may ``fsync``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from proxy.drivers.base import ResultSet, RowStream
from proxy.drivers.errors import Kind, is_broken
from proxy.drivers.janitor import Janitor
from proxy.drivers.sizing import PoolOptions, check_count, check_seconds
from proxy.drivers.sqlite.errors import is_busy, kind_of, translate
from proxy.drivers.sqlite.execute import (
    INLINE_BUDGET_S,
    PROGRESS_EVERY,
    ExecutionStats,
    execute,
    set_busy_timeout,
)
from proxy.drivers.sqlite.options import open_spec
from proxy.drivers.sqlite.pool import FilePool, PooledConnection, PoolRetired
from proxy.drivers.sqlite.stream import stream_on
from proxy.errors import BackendRejected, BackendUnavailable, ProxyError
from tenancy.backends import BackendKind

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

__all__ = ["SqliteDriver", "SqliteSession"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_COUNTERS = (
    "requests_num",
    "requests_wait_ms",
    "requests_timeouts",
    "connections_num",
    "connections_errors",
    "connections_lost",
)
_GAUGES = ("pool_max", "pool_size", "pool_available", "requests_waiting")
# A wait for a connection shorter than this leaves the statement its whole timeout.
_WAIT_NOTED_S = 0.01


class SqliteSession:
    """A pooled sqlite3 connection on loan, driven from the event loop."""

    __slots__ = ("_conn", "_driver", "_failed", "_in_tx", "broken")

    def __init__(self, driver: SqliteDriver, conn: PooledConnection) -> None:
        self._driver = driver
        self._conn: PooledConnection | None = conn
        self._in_tx = False
        self._failed = False
        self.broken = False
        """Set when a rollback failed: the driver closes the connection."""

    async def execute(
        self,
        sql: str,
        params: Sequence[object] = (),
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool = False,
    ) -> ResultSet:
        conn = self._checked()
        if self._failed:
            raise _rolled_back()
        driver = self._driver
        try:
            return await execute(
                conn,
                driver.hop,
                sql,
                params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                count_all_rows=count_all_rows,
                inline_budget_s=driver.inline_budget_s,
                stats=driver.stats,
            )
        finally:
            if self._in_tx and (conn.orphaned or not _in_transaction(conn)):
                # SQLite rolled the transaction back (an interrupted write, a full
                # disk...): what follows must not run, and commit, on its own.
                self._failed = True

    @contextlib.asynccontextmanager
    async def transaction(self, *, isolation: str | None = None) -> AsyncIterator[None]:
        # Every isolation level runs SERIALIZABLE: SQLite has no other (between
        # connections, which is what a transaction here is isolated from).
        conn = self._checked()
        if self._in_tx:
            raise RuntimeError("a transaction is already open on this session")
        await self._begin(conn)
        self._in_tx = True
        self._failed = False
        try:
            yield
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._rollback(conn)
            raise
        else:
            await self._commit(conn)
        finally:
            self._in_tx = False
            self._failed = False

    # -- internals ---------------------------------------------------------------------

    def _checked(self) -> PooledConnection:
        if self._conn is None:
            raise RuntimeError("the session was used after its connection went back")
        return self._conn

    def _detach(self) -> None:
        self._conn = None

    async def _begin(self, conn: PooledConnection) -> None:
        try:
            # Inline first: taking a free lock is a few system calls.
            set_busy_timeout(conn, 0)
            conn.raw.execute("BEGIN IMMEDIATE").close()
        except sqlite3.Error as exc:
            if not is_busy(exc):
                raise translate(exc) from exc
        else:
            return
        await self._control(conn, "BEGIN IMMEDIATE")

    async def _commit(self, conn: PooledConnection) -> None:
        if self._failed or not _in_transaction(conn):
            # Whatever SQLite kept of a failed transaction must not linger either.
            with anyio.CancelScope(shield=True):
                await self._rollback(conn)
            raise _rolled_back()
        try:
            await self._control(conn, "COMMIT")
        except BaseException:
            # A COMMIT that met a reader's lock leaves the transaction open.
            with anyio.CancelScope(shield=True):
                await self._rollback(conn)
            raise

    async def _rollback(self, conn: PooledConnection) -> None:
        if conn.orphaned or not _in_transaction(conn):
            return
        try:
            await self._control(conn, "ROLLBACK")
        except ProxyError:
            self.broken = True

    async def _control(self, conn: PooledConnection, sql: str) -> None:
        """Run BEGIN/COMMIT/ROLLBACK in a worker, waiting for locks up to the busy timeout."""

        def job() -> None:
            try:
                set_busy_timeout(conn, conn.pool.spec.busy_timeout_ms)
                conn.raw.execute(sql).close()
            except sqlite3.Error as exc:
                raise translate(exc) from exc

        await self._driver.hop(job)


class SqliteDriver:
    """Tenants in SQLite files through the standard library's sqlite3 (see the package)."""

    name = "sqlite3"
    db_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(
        self,
        options: PoolOptions,
        *,
        threads: int = 32,
        inline_budget_s: float = INLINE_BUDGET_S,
        maintenance_interval: float | None = 10.0,
    ) -> None:
        check_count("threads", threads, 1)
        check_seconds("inline_budget_s", inline_budget_s, allow_zero=True)
        self.options = options
        self.inline_budget_s = float(inline_budget_s)
        """0 runs every statement in a worker thread."""
        self.stats = ExecutionStats()
        self._threads = threads
        self._limiter: anyio.CapacityLimiter | None = None
        self._lock = threading.Lock()
        self._pools: dict[str, FilePool] = {}
        self._retired: dict[str, dict[str, int]] = {}
        self._closed = False
        self._janitor: Janitor | None = None
        if maintenance_interval is not None:
            self._janitor = Janitor(
                self.maintain, interval=maintenance_interval, name="tenantgate-sqlite-janitor"
            )

    async def hop(self, fn: Callable[[], T], /, *, abandon: bool = False) -> T:
        """Run blocking ``fn`` in a worker thread (at most ``threads`` at once)."""
        limiter = self._limiter
        if limiter is None:
            # Created on the loop: anyio binds a limiter to the running backend.
            limiter = self._limiter = anyio.CapacityLimiter(self._threads)
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=abandon, limiter=limiter)

    # -- the Driver protocol ------------------------------------------------------------

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
        pool = self._pools.get(location.pool_key)
        conn = pool.take_nowait() if pool is not None else None
        if conn is None:
            # A wait for a connection counts against the statement's timeout (opening
            # one takes a fraction of a millisecond: that is not worth a changed figure).
            started = time.monotonic()
            conn = await self._acquire(location, budget_s=timeout_s)
            waited = time.monotonic() - started
            if waited > _WAIT_NOTED_S:
                timeout_s = max(timeout_s - waited, 0.001)
        try:
            result = await execute(
                conn,
                self.hop,
                sql,
                params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                count_all_rows=count_all_rows,
                inline_budget_s=self.inline_budget_s,
                stats=self.stats,
            )
        except Exception as exc:
            await self._release(conn, broken=is_broken(exc))
            raise
        except BaseException:
            # Cancelled: an inline statement had finished, a threaded one was either
            # finished or orphaned (then _release leaves it to its worker).
            await self._release(conn, broken=False)
            raise
        await self._release(conn, broken=False)
        return result

    @contextlib.asynccontextmanager
    async def connection(self, location: TenantLocation) -> AsyncIterator[SqliteSession]:
        conn = await self._acquire(location)
        session = SqliteSession(self, conn)
        broken = False
        try:
            yield session
        except Exception as exc:
            broken = is_broken(exc)
            raise
        finally:
            session._detach()
            await self._release(conn, broken=broken or session.broken)

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
        """A read's rows from a cursor, a batch per worker hop (``stream``)."""
        conn = await self._acquire(location, budget_s=timeout_s)
        broken = False
        try:
            async with stream_on(
                conn,
                self.hop,
                self.stats,
                sql,
                params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                batch_rows=batch_rows,
            ) as rows:
                yield rows
        except Exception as exc:
            broken = is_broken(exc)
            raise
        finally:
            # Shielded inside: an orphaned connection is left to its worker.
            await self._release(conn, broken=broken)

    def blocking_source(
        self, location: TenantLocation, *, timeout_s: float
    ) -> Callable[[], AbstractContextManager[Any]]:
        """A source of ``sqlite3.Connection`` for worker threads (tenancy's catalog reads).

        The connection comes from the file's pool; its statements may wait for locks up
        to ``min(busy timeout, timeout_s)`` and are interrupted by the progress handler
        once ``timeout_s`` has passed since the ``with`` began. Errors are sqlite3's own
        (``db_errors``), for tenancy to translate.
        """
        check_seconds("timeout_s", timeout_s)
        self._pool_for(location)  # a misconfigured tenant fails here, not in the worker
        return functools.partial(self._blocking, location, timeout_s)

    def get_stats(self) -> dict[str, dict[str, int]]:
        """Pool statistics summed per ``server_key``, plus ``server_max`` (0: no cap)."""
        with self._lock:
            pools = list(self._pools.values())
            retired = {key: dict(counters) for key, counters in self._retired.items()}
        totals: dict[str, dict[str, int]] = {}
        for server_key, counters in retired.items():
            total = totals.setdefault(server_key, dict.fromkeys(_GAUGES + _COUNTERS, 0))
            for key, value in counters.items():
                total[key] += value
        for pool in pools:
            total = totals.setdefault(pool.server_key, dict.fromkeys(_GAUGES + _COUNTERS, 0))
            for key, value in pool.get_stats().items():
                total[key] = total.get(key, 0) + value
        for total in totals.values():
            total["server_max"] = 0
        return totals

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    # -- beyond the protocol -----------------------------------------------------------

    def execution_stats(self) -> dict[str, int]:
        """Where statements ran: inline, threaded, retried_budget, retried_busy, ..."""
        return self.stats.as_dict()

    @property
    def pool_count(self) -> int:
        return len(self._pools)

    def maintain(self) -> None:
        """Close expired idle connections and drop unused pools (the janitor's round)."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            for conn in pool.maintain():
                conn.close()
            if pool.retire_if_unused():
                self._forget(pool)

    def close(self) -> None:
        """Close every pool (blocking): idle connections now, loaned ones when returned."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            for conn in pool.close():
                conn.close()
        if self._janitor is not None:
            self._janitor.stop()

    # -- internals ---------------------------------------------------------------------

    def _pool_for(self, location: TenantLocation) -> FilePool:
        pool = self._pools.get(location.pool_key)  # a dict read is atomic: no lock
        if pool is not None:
            return pool
        if location.kind != BackendKind.SQLITE:
            raise ValueError(f"the sqlite3 driver cannot reach a {location.kind} tenant")
        spec = open_spec(location.connect)
        with self._lock:
            if self._closed:
                raise BackendUnavailable("the sqlite3 driver is closed", retry_after=1.0)
            pool = self._pools.get(location.pool_key)
            if pool is None:
                options = self.options
                pool = FilePool(
                    spec,
                    name=location.pool_key,
                    server_key=location.server_key,
                    max_size=options.max_size,
                    acquire_timeout=options.acquire_timeout,
                    max_idle=options.max_idle,
                    max_lifetime=options.max_lifetime,
                    max_waiting=options.max_waiting,
                )
                self._pools[location.pool_key] = pool
            return pool

    def _forget(self, pool: FilePool) -> None:
        with self._lock:
            if self._pools.get(pool.name) is not pool:
                return
            del self._pools[pool.name]
            kept = self._retired.setdefault(pool.server_key, dict.fromkeys(_COUNTERS, 0))
            for key, value in pool.counters().items():
                kept[key] += value

    async def _acquire(
        self, location: TenantLocation, *, budget_s: float | None = None
    ) -> PooledConnection:
        while True:
            pool = self._pool_for(location)
            try:
                return await pool.acquire(self.hop, budget_s=budget_s)
            except PoolRetired:
                self._forget(pool)

    async def _release(self, conn: PooledConnection, *, broken: bool) -> None:
        if conn.orphaned:
            return  # its worker closes it when the statement returns
        to_close = conn.pool.release(conn, broken=broken)
        if to_close is not None:
            # Shielded: a cancelled request must still close what it took.
            with anyio.CancelScope(shield=True):
                await self.hop(to_close.close)

    @contextlib.contextmanager
    def _blocking(self, location: TenantLocation, timeout_s: float) -> Iterator[sqlite3.Connection]:
        while True:
            pool = self._pool_for(location)
            try:
                conn = pool.acquire_blocking()
                break
            except PoolRetired:
                self._forget(pool)
        broken = False
        raw = conn.raw
        try:
            limit_ms = min(pool.spec.busy_timeout_ms, math.ceil(timeout_s * 1000))
            set_busy_timeout(conn, limit_ms)
            raw.set_progress_handler(conn.progress, PROGRESS_EVERY)
            conn.progress_on = True
            conn.stopped = False
            conn.stop_at = time.monotonic() + timeout_s
            yield raw
        except BaseException as exc:
            broken = (
                not isinstance(exc, Exception)
                or is_broken(exc)
                or (
                    isinstance(exc, sqlite3.Error)
                    and kind_of(exc) in (Kind.BROKEN, Kind.UNAVAILABLE)
                )
            )
            raise
        finally:
            conn.stop_at = math.inf
            to_close = pool.release(conn, broken=broken)
            if to_close is not None:
                to_close.close()


def _in_transaction(conn: PooledConnection) -> bool:
    try:
        return conn.raw.in_transaction
    except sqlite3.Error:
        return False


def _rolled_back() -> BackendRejected:
    return BackendRejected(
        "the transaction was rolled back by an earlier error; nothing in it was committed"
    )


if TYPE_CHECKING:
    from proxy.drivers.base import Driver, Session

    def _conforms(driver: SqliteDriver, session: SqliteSession) -> tuple[Driver, Session]:
        # mypy checks here that both satisfy the seam's protocols.
        return driver, session
