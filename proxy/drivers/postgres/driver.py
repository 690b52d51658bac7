"""``PostgresDriver``: the pools of every tenant database, and the ``Driver`` seam.

Pools are keyed by ``location.pool_key`` (a PostgreSQL connection is bound to one
database) and created on first use; the pools of one ``location.server_key`` share a
``ServerLimiter`` of ``options.max_per_server`` connections. A maintenance task,
started with the first request on the running event loop (no thread), calls every
pool's ``maintain()`` periodically and drops pools that hold no connection and saw no
request for a whole interval: at 10,000 tenant databases the quiet ones cost nothing.
The interval is half of ``min(max_idle, max_lifetime)``, between 50 ms and 10 s, unless
given. ``min_size`` is kept only for pools that served a request within ``max_idle``.

Statistics are summed per ``server_key``, never per tenant (metric labels must have a
bounded number of values); the counters of dropped pools are kept in their server's
total so that counters never go backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import psycopg
from anyio.lowlevel import EventLoopToken, current_token

from proxy.drivers.base import ResultSet, RowStream
from proxy.drivers.postgres.blocking import (
    BlockingConnection,
    call_from_thread,
    call_sync_from_thread,
)
from proxy.drivers.postgres.conninfo import ConnParams, conn_params
from proxy.drivers.postgres.pool import PgPool, PooledConnection, ServerLimiter
from proxy.drivers.postgres.session import PgSession, execute_on
from proxy.drivers.postgres.stream import stream_from_pool
from proxy.drivers.postgres.watch import Watch
from proxy.drivers.sizing import PoolOptions, check_seconds
from proxy.errors import StatementTimeout

# For real, not for type checking only: compiled (``proxy.compiled``), a dataclass's
# field types are looked up when the module loads.
from tenancy.connstr import ConnectionString

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

__all__ = ["PostgresDriver"]

log = logging.getLogger(__name__)

_COUNTERS = (
    "requests_num",
    "requests_wait_ms",
    "requests_timeouts",
    "connections_num",
    "connections_errors",
    "connections_lost",
)
_WAIT_SLACK_S = 0.01
"""A wait for a connection up to this long leaves the statement its whole timeout."""
_GAUGES = ("pool_max", "pool_size", "pool_available", "requests_waiting")


@dataclass(slots=True)
class _Entry:
    pool: PgPool
    params: ConnParams
    source: ConnectionString
    """The connection string last seen for this pool (identity fast path)."""


class PostgresDriver:
    """PostgreSQL through psycopg 3, on the event loop (``proxy.drivers.base.Driver``)."""

    name = "psycopg"
    db_errors: tuple[type[BaseException], ...] = (psycopg.Error,)

    def __init__(
        self,
        options: PoolOptions,
        *,
        keepalives: bool = True,
        maintenance_interval: float | None = None,
    ) -> None:
        if maintenance_interval is None:
            # Often enough that max_idle is honoured within half of itself.
            shortest = min(options.max_idle, options.max_lifetime)
            maintenance_interval = min(10.0, max(0.05, shortest / 2))
        check_seconds("maintenance_interval", maintenance_interval)
        self.options = options
        self.keepalives = keepalives
        self.maintenance_interval = float(maintenance_interval)
        self._pools: dict[str, _Entry] = {}
        self._limiters: dict[str, ServerLimiter] = {}
        self._retired: dict[str, dict[str, int]] = {}
        self._maintenance: asyncio.Task[None] | None = None
        self._token: EventLoopToken | None = None
        self._watch = Watch()
        self._closed = False

    # -- the Driver protocol -------------------------------------------------------

    def connection(self, location: TenantLocation) -> _Loan:
        return _Loan(self, location)

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
        pool = self._pool_for(location)
        conn = pool.acquire_nowait()
        if conn is None:
            # Waiting (for a connection, for a connect) counts against the timeout. A
            # short wait does not shorten it: a timeout that changed with every request
            # would cost a SET statement_timeout round trip each time.
            started = time.monotonic()
            conn = await pool.acquire_wait(timeout_s)
            waited = time.monotonic() - started
            if waited > _WAIT_SLACK_S:
                timeout_s -= waited
                if timeout_s < _WAIT_SLACK_S:
                    pool.release(conn)
                    raise StatementTimeout(
                        "the timeout passed while waiting for a connection",
                        timeout_ms=round((timeout_s + waited) * 1000),
                    )
        try:
            result = await execute_on(
                conn,
                sql,
                params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                count_all_rows=count_all_rows,
            )
        except BaseException as exc:
            pool.release(conn, exc)
            raise
        pool.release(conn)
        return result

    def stream(
        self,
        location: TenantLocation,
        sql: str,
        params: Sequence[object],
        *,
        timeout_s: float,
        max_rows: int,
        batch_rows: int,
    ) -> AbstractAsyncContextManager[RowStream]:
        """A read's rows from a server-side cursor (``proxy.drivers.postgres.stream``)."""
        return stream_from_pool(
            self._pool_for(location),
            sql,
            params,
            timeout_s=timeout_s,
            max_rows=max_rows,
            batch_rows=batch_rows,
        )

    def blocking_source(
        self, location: TenantLocation, *, timeout_s: float
    ) -> Callable[[], AbstractContextManager[BlockingConnection]]:
        """A DB-API connection source for ``tenancy``, used from worker threads only."""
        check_seconds("timeout_s", timeout_s)
        if self._token is None:
            with contextlib.suppress(RuntimeError):
                self._token = current_token()

        @contextlib.contextmanager
        def source() -> Iterator[BlockingConnection]:
            token = self._token
            conn = call_from_thread(token, self._checkout, location)
            connection = BlockingConnection(conn, timeout_s=timeout_s, token=token)
            try:
                yield connection
            except BaseException as exc:
                connection.detach()
                call_sync_from_thread(token, conn.pool.release, conn, exc)
                raise
            connection.detach()
            call_sync_from_thread(token, conn.pool.release, conn, None)

        return source

    def get_stats(self) -> dict[str, dict[str, int]]:
        """Pool statistics summed per ``server_key``, plus ``server_max``."""
        totals: dict[str, dict[str, int]] = {}
        for server_key, counters in self._retired.items():
            total = totals.setdefault(server_key, dict.fromkeys(_GAUGES, 0))
            for key, value in counters.items():
                total[key] = total.get(key, 0) + value
        for entry in self._pools.values():
            pool = entry.pool
            total = totals.setdefault(pool.server_key, {})
            for key, value in pool.get_stats().items():
                total[key] = total.get(key, 0) + value
        for total in totals.values():
            for key in (*_GAUGES, *_COUNTERS):
                total.setdefault(key, 0)
            total["server_max"] = self.options.max_per_server
        return totals

    async def aclose(self) -> None:
        self._closed = True
        task, self._maintenance = self._maintenance, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        entries = list(self._pools.values())
        self._pools.clear()
        for entry in entries:
            entry.pool.close()
            self._retire(entry.pool)
        self._watch.close()

    # -- maintenance ---------------------------------------------------------------

    async def maintain(self) -> None:
        """One round of what the maintenance task does periodically."""
        for entry in list(self._pools.values()):
            try:
                await entry.pool.maintain()
            except Exception:
                log.exception("pool %s: maintenance failed", entry.pool.name)
        now = time.monotonic()
        for key, entry in list(self._pools.items()):
            if entry.pool.reapable(now, self.maintenance_interval):
                del self._pools[key]
                entry.pool.close()
                self._retire(entry.pool)

    def pool_count(self) -> int:
        return len(self._pools)

    # -- internals -----------------------------------------------------------------

    def _pool_for(self, location: TenantLocation) -> PgPool:
        """The pool of ``location``'s database (made on first use). On the loop only."""
        entry = self._pools.get(location.pool_key)
        if entry is not None and entry.source is location.connect:
            return entry.pool
        return self._slow_pool_for(location, entry)

    def _slow_pool_for(self, location: TenantLocation, entry: _Entry | None) -> PgPool:
        if self._closed:
            raise RuntimeError("the PostgreSQL driver is closed")
        params = conn_params(
            location.connect,
            login_timeout=self.options.login_timeout,
            keepalives=self.keepalives,
        )
        if entry is not None:
            if entry.params != params:
                # Same pool key, different text (spelling, order, pqopt from a changed
                # template): new connections use the new parameters.
                entry.pool.params = params
                entry.params = params
            entry.source = location.connect
            return entry.pool
        if self._maintenance is None:
            self._start()
        limiter = self._limiters.get(location.server_key)
        if limiter is None:
            limiter = ServerLimiter(
                self.options.max_per_server,
                name=location.server_key,
                max_waiting=self.options.max_waiting,
            )
            self._limiters[location.server_key] = limiter
        pool = PgPool(
            params,
            name=location.pool_key,
            server_key=location.server_key,
            options=self.options,
            limiter=limiter,
            watch=self._watch,
        )
        self._pools[location.pool_key] = _Entry(pool, params, location.connect)
        return pool

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._token is None:
            self._token = current_token()
        self._maintenance = loop.create_task(
            self._maintain_forever(), name="tenantgate-postgres-maintenance"
        )

    async def _maintain_forever(self) -> None:
        while True:
            await asyncio.sleep(self.maintenance_interval)
            try:
                await self.maintain()
            except Exception:
                log.exception("PostgreSQL pool maintenance failed")

    def _retire(self, pool: PgPool) -> None:
        """Keep a dropped pool's counters in its server's totals; drop empty limiters."""
        counters = self._retired.setdefault(pool.server_key, dict.fromkeys(_COUNTERS, 0))
        stats = pool.get_stats()
        for key in _COUNTERS:
            counters[key] += stats[key]
        limiter = pool.limiter
        limiter.pools -= 1
        if limiter.pools == 0 and limiter.in_use == 0 and not limiter.waiting:
            self._limiters.pop(pool.server_key, None)

    async def _checkout(self, location: TenantLocation) -> PooledConnection:
        return await self._pool_for(location).acquire()


class _Loan:
    """``async with driver.connection(location) as session``: one pooled connection."""

    __slots__ = ("_conn", "_driver", "_location", "_session")

    def __init__(self, driver: PostgresDriver, location: TenantLocation) -> None:
        self._driver = driver
        self._location = location
        self._conn: PooledConnection | None = None
        self._session: PgSession | None = None

    async def __aenter__(self) -> PgSession:
        if self._conn is not None:
            raise RuntimeError("this connection() is already in use")
        conn = await self._driver._pool_for(self._location).acquire()
        self._conn = conn
        self._session = PgSession(conn)
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        session, self._session = self._session, None
        if session is not None:
            session.detach()
        if conn is not None:
            conn.pool.release(conn, exc)
