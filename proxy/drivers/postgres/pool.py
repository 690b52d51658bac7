"""A small asyncio pool of psycopg connections, one per tenant database.

psycopg-pool is not used: it opens ``min_size`` connections eagerly, has no cap
across pools, and runs worker tasks per pool; with a pool per tenant database (a
PostgreSQL connection is bound to one) 10,000 databases would mean 10,000 such pools.
This one keeps the rules of ``proxy.drivers.odbc.pool`` on the event loop instead of
threads, and costs nothing while empty:

* At most ``max_size`` connections exist per pool (open or being opened), and at most
  ``max_per_server`` across the pools of one server (``ServerLimiter``). A request that
  finds none idle and no room waits up to ``acquire_timeout`` (or what is left of its
  own timeout, if less; connecting included), then gets ``PoolSaturated``. At most
  ``max_waiting`` requests queue for a pool, and as many for a server's cap: the next
  one is refused at once, so a flood on one tenant is answered 503 in microseconds
  instead of after a wait, and its pool (``max_size``, less than the server's cap) is
  all of the server it can take. Waiters are served first come, first served: a returned
  connection, or the room a closed one leaves, is handed to the oldest waiter rather
  than to whoever asks next.
* Connects happen outside any critical section (there are no locks: the pool's state
  changes only between awaits), so other requests take and return connections
  meanwhile; a connect that fails gives its slot and its server permit back.
* Idle connections are reused last-in first-out, so that under light load the same
  few stay warm and the rest age past ``max_idle`` and are closed.
* A connection idle for more than ``max_idle`` (down to ``min_size``) or older than
  ``max_lifetime`` is closed instead of reused: lazily when a request meets it, and by
  ``maintain()``, which the driver's maintenance task calls periodically. Before an
  idle connection that rested for ``validate_idle`` (1 s) or more is lent, its socket is
  polled (2-4 µs): an idle connection has nothing to read unless the server closed it
  (``pg_terminate_backend``, ``idle_session_timeout``, a restart), and such a
  connection is replaced before the request meets the error. Once one connection turns
  out lost (``ConnectionLost``), the idle ones are closed: a restart closed them all,
  and the look at a socket can come before the server's goodbye arrives.
* ``release`` closes a connection instead of keeping it when the session marked it
  broken (a backstop timeout, a lost connection), when the ``async with`` block ended
  with an error ``is_broken`` marks or with a ``BaseException`` that is not an
  ``Exception`` (a cancelled request: its statement may still be running), or when
  the connection is not idle and healthy (an open transaction, a closed socket).
* ``ServerLimiter``: when the server's cap is reached, a pool that needs a connection
  first closes an idle one of a sibling pool (the one idle longest first). A pool
  returning a connection while requests of sibling pools wait for the server's cap
  closes it and hands them the permit instead of keeping it idle: otherwise a few
  thousand quiet tenant databases, each holding an idle connection until
  ``max_idle``, would starve the busy ones.

Connection objects never hold a lock or a task; a pool with no connections is a few
hundred bytes, and the driver drops pools that stayed empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
from collections import deque
from typing import Any, NoReturn

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.pq import ConnStatus, TransactionStatus

from proxy.drivers.base import ResultColumn
from proxy.drivers.errors import is_broken
from proxy.drivers.postgres.conninfo import ConnParams
from proxy.drivers.postgres.errors import connect_error, is_broken_pg, message_of
from proxy.drivers.postgres.statements import Statements
from proxy.drivers.postgres.types import ADAPTERS
from proxy.drivers.postgres.watch import Watch
from proxy.drivers.sizing import PoolOptions
from proxy.errors import BackendUnavailable, ConnectionLost, PoolSaturated, ProxyError, chained

__all__ = ["PgPool", "PooledConnection", "ServerLimiter"]

log = logging.getLogger(__name__)

RETRY_AFTER_SATURATED = 1.0


_OK = ConnStatus.OK
_IDLE = TransactionStatus.IDLE


class _Slot:
    """Handed to a waiter instead of a connection: room to open one."""

    __slots__ = ()


_SLOT = _Slot()


class PooledConnection:
    """A psycopg connection on loan from a pool, with the state that lives as long as it."""

    __slots__ = (
        "broken",
        "created_at",
        "cursor",
        "in_transaction",
        "last_used",
        "local_timeout_ms",
        "pool",
        "raw",
        "statements",
        "timeout_ms",
    )

    def __init__(self, raw: AsyncConnection[Any], pool: PgPool) -> None:
        self.raw = raw
        self.pool = pool
        self.statements = Statements(raw)
        """Callers' statements and their prepared forms (``statements``)."""
        self.cursor: AsyncCursor[Any] = raw.cursor()
        """psycopg's cursor, for the session's own commands (``SET``, ``BEGIN``, …)."""
        now = time.monotonic()
        self.created_at = now
        self.last_used = now
        self.broken = False
        """Set by whoever learns the connection must not be reused."""
        self.timeout_ms: int | None = None
        """The session's ``statement_timeout`` as last set by us (None: unknown)."""
        self.local_timeout_ms: int | None = None
        """``SET LOCAL statement_timeout`` of the open transaction, if any."""
        self.in_transaction = False

    def __repr__(self) -> str:
        return f"<PooledConnection of {self.pool.name} broken={self.broken}>"


class _Expired(Exception):
    """A wait for a connection ran out of time (``PgPool._wait``)."""


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


class ServerLimiter:
    """A cap on connections to one server, shared by the pools that reach it."""

    def __init__(self, max_size: int, *, name: str, max_waiting: int | None = None) -> None:
        self.name = name
        self.max_size = max_size
        self.max_waiting = max_waiting
        """Requests that may queue for a permit (None: no bound); more are refused."""
        self.in_use = 0
        self.pools = 0
        """Pools registered (the driver drops the limiter when none is left)."""
        self._waiters: deque[asyncio.Future[bool]] = deque()
        # Pools holding idle connections, in the order they got their first one: the
        # front has been idle longest, the best one to shed from.
        self._idle_pools: dict[PgPool, None] = {}

    @property
    def waiting(self) -> int:
        """Requests waiting for a permit (not those already handed one)."""
        if not self._waiters:  # every release asks: keep the usual answer cheap
            return 0
        return sum(1 for fut in self._waiters if not fut.done())

    async def acquire(self, deadline: float, requester: PgPool) -> bool:
        """Take a permit before ``deadline`` (``time.monotonic``); False when none came."""
        if self.in_use < self.max_size:
            self.in_use += 1
            return True
        victim = self._shed(requester)
        if victim is not None:
            # The victim's permit passes to the requester.
            victim.pool.close_raw(victim)
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (
            self.max_waiting is not None and len(self._waiters) >= self.max_waiting
        ):
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(remaining):
                return await fut
        except TimeoutError:
            # The permit may have been handed over just as the wait expired.
            return fut.done() and not fut.cancelled()
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def release(self) -> None:
        """Give a permit back: to the oldest waiter if there is one."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(True)
                return
        self.in_use -= 1

    def has_idle(self, pool: PgPool) -> None:
        self._idle_pools.setdefault(pool, None)

    def no_idle(self, pool: PgPool) -> None:
        self._idle_pools.pop(pool, None)

    def _shed(self, requester: PgPool) -> PooledConnection | None:
        for pool in self._idle_pools:
            if pool is not requester:
                return pool.shed_idle()
        return None


class PgPool:
    """The connections to one database, made from ``params``."""

    def __init__(
        self,
        params: ConnParams,
        *,
        name: str,
        server_key: str,
        options: PoolOptions,
        limiter: ServerLimiter,
        watch: Watch,
    ) -> None:
        self.params = params
        """How to connect; replaced when the tenant's connection string changes."""
        self.name = name
        self.server_key = server_key
        self.max_size = options.max_size
        self.min_size = options.min_size
        self.acquire_timeout = options.acquire_timeout
        self.max_waiting = options.max_waiting
        self.label_requests = options.label_requests
        self.validate_idle = options.validate_idle
        self.max_idle = options.max_idle
        self.max_lifetime = options.max_lifetime
        self.limiter = limiter
        limiter.pools += 1
        self.watch = watch
        """The backstop timer of every statement on the driver's event loop."""
        self.columns: dict[int, list[ResultColumn]] = {}
        """Query text's hash → its result columns as last seen, shared by the
        connections whose results have the same (bounded, see ``session._columns``)."""
        self.columns_held = 0
        """Columns in ``columns``, all lists together."""
        self.last_used = time.monotonic()
        self._idle: deque[PooledConnection] = deque()
        self._size = 0  # open connections plus connects in progress
        self._waiters: deque[asyncio.Future[PooledConnection | _Slot]] = deque()
        self._closed = False
        self.requests_num = 0
        self.requests_wait_ms = 0
        self.requests_timeouts = 0
        self.connections_num = 0
        self.connections_errors = 0
        self.connections_lost = 0

    def __repr__(self) -> str:
        return f"<PgPool {self.name} size={self._size} idle={len(self._idle)}>"

    # -- lending -------------------------------------------------------------------

    async def acquire(self) -> PooledConnection:
        """A connection for one request; give it back with ``release``."""
        conn = self.acquire_nowait()
        if conn is not None:
            return conn
        return await self.acquire_wait()

    def acquire_nowait(self) -> PooledConnection | None:
        """An idle connection if one is fit for use, else None: then ``acquire_wait``.

        The common case without a coroutine (the request path calls it directly).
        """
        self.requests_num += 1
        now = time.monotonic()
        self.last_used = now
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not idle:
                self.limiter.no_idle(self)
            if self._usable(conn, now):
                return conn
            self._discard(conn)
        return None

    async def acquire_wait(self, budget_s: float | None = None) -> PooledConnection:
        """Open a connection, or wait for one (after ``acquire_nowait`` found none).

        Waiting and connecting together take at most ``acquire_timeout``, and at most
        ``budget_s`` (what is left of the request's own timeout) when given.
        """
        if self._closed:
            raise BackendUnavailable(
                f"connection pool {self.name} is closed", retry_after=RETRY_AFTER_SATURATED
            )
        now = time.monotonic()
        wait = self.acquire_timeout if budget_s is None else min(self.acquire_timeout, budget_s)
        deadline = now + wait
        if self._size < self.max_size:
            self._size += 1
            return await self._open_reserved(deadline)
        return await self._wait(now, deadline)

    def release(self, conn: PooledConnection, exc: BaseException | None = None) -> None:
        """Take ``conn`` back from a request that ended with ``exc`` (None: success)."""
        now = time.monotonic()
        self.last_used = now
        broken = conn.broken or (exc is not None and _breaks(exc))
        if isinstance(exc, ConnectionLost):
            self._flush()
        if broken or self._closed or not _idle_and_healthy(conn.raw):
            if broken or not self._closed:
                self.connections_lost += 1
            self._discard(conn)
            return
        if now - conn.created_at >= self.max_lifetime:
            self._discard(conn)
            return
        conn.last_used = now
        self._give(conn)

    # -- maintenance ---------------------------------------------------------------

    async def maintain(self) -> None:
        """Close expired idle connections, then open up to ``min_size``.

        ``min_size`` holds for a pool that served a request within ``max_idle``; a pool
        nobody used for that long drains to nothing (and the driver drops it), so that
        ``min_size`` is not multiplied by every tenant database ever seen.
        """
        if self._closed:
            return
        now = time.monotonic()
        floor = self.min_size if now - self.last_used < self.max_idle else 0
        keep: deque[PooledConnection] = deque()
        expired: list[PooledConnection] = []
        size = self._size
        # Least recently used first: those are the ones max_idle retires, and max_idle
        # shrinks the pool only down to the floor (as psycopg_pool does with min_size).
        for conn in self._idle:
            too_old = now - conn.created_at >= self.max_lifetime
            too_idle = now - conn.last_used >= self.max_idle and size > floor
            if too_old or too_idle:
                expired.append(conn)
                size -= 1
            else:
                keep.append(conn)
        self._idle = keep
        if not keep:
            self.limiter.no_idle(self)
        for conn in expired:
            self._discard(conn)
        # Not while requests wait for the server's cap: they would get the permit back
        # from the new connection at once (see _give), and the next round would try again.
        while not self._closed and self._size < floor and not self.limiter.waiting:
            self._size += 1
            try:
                conn = await self._open_reserved(time.monotonic() + self.acquire_timeout)
            except ProxyError as exc:
                log.warning("pool %s: could not open a connection: %s", self.name, exc.message)
                return
            self._give(conn)

    def _flush(self) -> None:
        """Close every idle connection: one was found lost, and the server (restarted,
        or terminating sessions) most likely took its idle siblings too. The look at a
        socket before lending (``_usable``) would miss a server's goodbye still on its
        way, so the next requests, a read's retry first, get fresh connections."""
        idle = list(self._idle)
        self._idle.clear()
        self.limiter.no_idle(self)
        for conn in idle:
            self._discard(conn)

    def shed_idle(self) -> PooledConnection | None:
        """Give up the least recently used idle connection (for ``ServerLimiter``).

        The caller closes it and keeps its server permit.
        """
        if not self._idle:
            return None
        conn = self._idle.popleft()
        if not self._idle:
            self.limiter.no_idle(self)
        self._size -= 1
        return conn

    def reapable(self, now: float, quiet: float) -> bool:
        """Whether the pool holds nothing and nobody used it for ``quiet`` seconds."""
        return self._size == 0 and not self._waiters and now - self.last_used >= quiet

    def close(self) -> None:
        """Close idle connections now, loaned ones when they come back; fail waiters."""
        self._closed = True
        idle = list(self._idle)
        self._idle.clear()
        self.limiter.no_idle(self)
        for conn in idle:
            self._discard(conn)
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(
                    BackendUnavailable(
                        f"connection pool {self.name} is closed",
                        retry_after=RETRY_AFTER_SATURATED,
                    )
                )

    @property
    def closed(self) -> bool:
        return self._closed

    def get_stats(self) -> dict[str, int]:
        return {
            "pool_max": self.max_size,
            "pool_size": self._size,
            "pool_available": len(self._idle),
            "requests_waiting": len(self._waiters),
            "requests_num": self.requests_num,
            "requests_wait_ms": self.requests_wait_ms,
            "requests_timeouts": self.requests_timeouts,
            "connections_num": self.connections_num,
            "connections_errors": self.connections_errors,
            "connections_lost": self.connections_lost,
        }

    def close_raw(self, conn: PooledConnection) -> None:
        """Close the socket of a connection that already left the pool's books."""
        # What AsyncConnection.close() does, minus the coroutine: it never awaits.
        # Only for a connection no task is running a statement on.
        conn.statements.stop_listening()
        with contextlib.suppress(Exception):
            conn.raw.pgconn.finish()

    # -- internals -----------------------------------------------------------------

    def _usable(self, conn: PooledConnection, now: float) -> bool:
        idle = now - conn.last_used
        if now - conn.created_at >= self.max_lifetime or idle >= self.max_idle:
            return False
        # A connection used a moment ago is trusted without a look at its socket: the
        # look costs more than the rare request that meets a connection killed within
        # that moment (a read is retried once on a fresh one, see proxy.pipeline.service).
        return idle < self.validate_idle or _still_connected(conn.raw)

    async def _wait(self, start: float, deadline: float) -> PooledConnection:
        # The hot path at any concurrency above the pool's size: a bare timer handle,
        # not ``asyncio.timeout`` (a context manager, a task lookup and a reschedule),
        # and the future is taken off the queue only when nobody else did (a failed
        # ``deque.remove`` formats the future's repr into its error).
        if len(self._waiters) >= self.max_waiting:
            # Refused now rather than after a wait that would end the same way: the
            # queue is as long as the pool can drain within the requests' timeouts.
            self.requests_timeouts += 1
            raise PoolSaturated(
                f"connection pool {self.name} is saturated: "
                f"{self.max_size} connections busy, {len(self._waiters)} requests queued",
                retry_after=RETRY_AFTER_SATURATED,
                pool_max=self.max_size,
            )
        loop = self.watch.loop
        fut: asyncio.Future[PooledConnection | _Slot] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(deadline - start, _expire, fut)
        handed = False
        try:
            got = await fut
            handed = True
        except _Expired:
            self.requests_timeouts += 1
            raise chained(
                PoolSaturated(
                    f"connection pool {self.name} is saturated: no connection "
                    f"within {self.acquire_timeout:.3g}s",
                    retry_after=RETRY_AFTER_SATURATED,
                    pool_max=self.max_size,
                ),
                None,
            )
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                handed = True  # handed over as the task was cancelled: pass it on
                self._pass_on(fut.result())
            raise
        finally:
            timer.cancel()
            if not handed:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            self.requests_wait_ms += int((time.monotonic() - start) * 1000)
        if isinstance(got, _Slot):
            return await self._open_reserved(deadline)
        return got

    def _pass_on(self, got: PooledConnection | _Slot) -> None:
        """Give what a cancelled waiter received to the next one."""
        if isinstance(got, _Slot):
            self._slot_freed()
        else:
            self._give(got)

    async def _open_reserved(self, deadline: float) -> PooledConnection:
        """Connect into a slot reserved by the caller; free the slot on failure."""
        permit = False
        try:
            permit = await self.limiter.acquire(deadline, self)
            if not permit:
                self._server_saturated()
            raw = await self._connect(deadline)
        except BaseException:
            if permit:
                self.limiter.release()
            self._slot_freed()
            raise
        self.connections_num += 1
        return PooledConnection(raw, self)

    def _server_saturated(self) -> NoReturn:
        self.requests_timeouts += 1
        raise PoolSaturated(
            f"server {self.limiter.name} is at its connection cap ({self.limiter.max_size})",
            retry_after=RETRY_AFTER_SATURATED,
            pool_max=self.limiter.max_size,
        )

    async def _connect(self, deadline: float) -> AsyncConnection[Any]:
        """A new connection, within ``deadline`` (libpq's connect_timeout, whole seconds
        of at least 2, is the login timeout; the deadline is often shorter)."""
        params = self.params
        kwargs: dict[str, Any] = dict(params.kwargs)
        error: BackendUnavailable | None = None
        try:
            async with asyncio.timeout_at(self.watch.loop.time() + deadline - time.monotonic()):
                raw = await AsyncConnection.connect(
                    **kwargs,
                    autocommit=True,
                    prepare_threshold=None,  # prepared statements are ours (statements.py)
                    context=ADAPTERS,
                )
        except TimeoutError:
            self.connections_errors += 1
            raise chained(
                BackendUnavailable(
                    f"could not connect to the database of pool {self.name} in time",
                    retry_after=RETRY_AFTER_SATURATED,
                ),
                None,
            )
        except psycopg.Error as exc:
            error = self._connect_failed(exc)
        else:
            if params.connsettings is None:
                return raw
            try:
                await raw.execute(params.connsettings, prepare=False)
            except psycopg.Error as exc:
                error = self._connect_failed(exc)
                await raw.close()
            else:
                return raw
        # Raised outside the except block, so that the libpq error (whose ``pgconn``
        # holds the connection parameters, password included) is not its __context__.
        raise error

    def _connect_failed(self, exc: psycopg.Error) -> BackendUnavailable:
        self.connections_errors += 1
        password = self.params.password
        error = connect_error(self.name, exc, password)
        error.__cause__ = type(exc)(message_of(exc, password))
        return error

    def _give(self, conn: PooledConnection) -> None:
        """A healthy connection: to the oldest waiter, else to the idle stack."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        if self.limiter.waiting:
            # Requests of a sibling pool wait for the server's cap: they need the
            # permit more than this pool needs an idle connection.
            self._discard(conn)
            return
        if not self._idle:
            self.limiter.has_idle(self)
        self._idle.append(conn)

    def _discard(self, conn: PooledConnection) -> None:
        """Close a connection that is off the idle stack; free its slot and permit."""
        self.close_raw(conn)
        self._slot_freed()
        self.limiter.release()

    def _slot_freed(self) -> None:
        """Room for one more connection: to the oldest waiter, else the size shrinks."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(_SLOT)
                return
        self._size -= 1


def _breaks(exc: BaseException) -> bool:
    if not isinstance(exc, Exception):
        # A cancelled request (client gone, deadline): its statement may still run.
        return True
    return is_broken(exc) or is_broken_pg(exc)


def _idle_and_healthy(raw: AsyncConnection[Any]) -> bool:
    pgconn = raw.pgconn
    return pgconn.status == _OK and pgconn.transaction_status == _IDLE


def _still_connected(raw: AsyncConnection[Any]) -> bool:
    """False when the server closed an idle connection (or it is otherwise unusable)."""
    pgconn = raw.pgconn
    if pgconn.status != _OK or pgconn.transaction_status != _IDLE:
        return False
    # poll, not select: descriptors past 1024 are ordinary with thousands of pools.
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN)
    # Anything to read on an idle connection is the server saying goodbye (a FATAL
    # error, then EOF); a stray notice costs a reconnect, which is rare and harmless.
    return not poller.poll(0)
