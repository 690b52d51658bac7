"""A bounded, thread-safe pool of pyodbc connections.

Modelled on psycopg_pool's ``ConnectionPool`` (settings, ``with pool.connection()``,
the ``get_stats()`` names), which cannot be used directly because it pools psycopg
connections only; pyodbc's own pooling is the driver manager's, unbounded and blind
to broken connections, and is switched off.

Rules:

* At most ``max_size`` connections exist (open or being opened). A request that finds
  none idle and no room waits up to its timeout, then gets ``PoolSaturated``.
* Connects and closes happen outside the pool's lock: a connect can take up to the
  login timeout, and other threads must be able to return and take connections
  meanwhile.
* Idle connections are reused last-in first-out, so that under light load the same
  few stay warm and the rest age past ``max_idle`` and are closed.
* A connection idle for more than ``max_idle`` (down to ``min_size``) or older than
  ``max_lifetime`` is closed instead of reused: servers and firewalls drop idle
  sessions silently, and long-lived sessions accumulate server-side memory.
* If the ``with`` block raises an error that ``proxy.drivers.odbc.sqlstate.is_broken`` marks, or a
  ``BaseException`` that is not an ``Exception`` (the statement may still be running),
  the connection is closed, not returned.
* ``validate_idle``: an idle connection unused for that long is checked with a
  ``SELECT 1`` round trip before it is lent (pyodbc offers no cheaper look), and
  replaced when the check fails. A connection returned ``lost`` (``ConnectionLost``:
  the server closed it) closes the idle ones too: a server restart closed them all at
  once, and the next requests, a read's retry first, should get fresh connections.
* ``max_waiting``: at most that many requests wait for a connection; the next one is
  refused at once with ``PoolSaturated`` rather than after a wait that would end the
  same way.
* ``ServerLimiter`` caps connections across several pools of one server (PostgreSQL
  has a pool per database). When the cap is reached, a pool that needs a connection
  first asks its sibling pools to close an idle one: otherwise a few thousand quiet
  tenant databases, each holding an idle connection until ``max_idle``, would starve
  the busy ones.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyodbc

from proxy.drivers.odbc.sqlstate import is_broken, message_of, translate
from proxy.drivers.sizing import check_count, check_seconds
from proxy.errors import BackendUnavailable, ConnectionLost, PoolSaturated, ProxyError

__all__ = ["ConnectionPool", "PooledConnection", "ServerLimiter"]

log = logging.getLogger(__name__)

RETRY_AFTER_SATURATED = 1.0


class PooledConnection:
    """A pyodbc connection on loan from a pool, with state that lives as long as it.

    ``session`` is for whoever runs statements on it: the executor records there the
    session settings it applied (PostgreSQL ``statement_timeout``, SQL Server query
    timeout) so that it sets them again only when they change.
    """

    __slots__ = ("created_at", "last_used", "pool", "raw", "session", "uses")

    def __init__(self, raw: pyodbc.Connection, pool: ConnectionPool | None = None) -> None:
        self.raw = raw
        self.pool = pool
        """The pool it came from: reaches the same server for a side connection."""
        now = time.monotonic()
        self.created_at = now
        self.last_used = now
        self.uses = 0
        self.session: dict[str, object] = {}

    def cursor(self) -> pyodbc.Cursor:
        """A cursor on the raw connection: lets tenancy use the pool as a DB-API source."""
        return self.raw.cursor()


class ServerLimiter:
    """A cap on connections to one server, shared by the pools that reach it."""

    def __init__(self, max_size: int, *, name: str) -> None:
        check_count("max_size", max_size, 1)
        self.name = name
        self.max_size = max_size
        self._cond = threading.Condition()
        self._in_use = 0
        self._pools: list[ConnectionPool] = []

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    def register(self, pool: ConnectionPool) -> None:
        with self._cond:
            self._pools.append(pool)

    def unregister(self, pool: ConnectionPool) -> None:
        with self._cond:
            if pool in self._pools:
                self._pools.remove(pool)

    def acquire(self, deadline: float, requester: ConnectionPool | None = None) -> bool:
        """Take one permit before ``deadline`` (monotonic); False when none came.

        Never called with a pool lock held, and never takes a pool lock while holding
        its own: pools are asked to shed idle connections between the two.
        """
        while True:
            with self._cond:
                if self._in_use < self.max_size:
                    self._in_use += 1
                    return True
                siblings = [p for p in self._pools if p is not requester]
            if any(p.shed_idle() for p in siblings):
                continue
            with self._cond:
                if self._in_use < self.max_size:
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # A sibling's connection may become idle without a release here:
                # wake up now and then to ask again.
                self._cond.wait(min(remaining, 0.05))

    def release(self) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify()


class ConnectionPool:
    """A bounded pool of pyodbc connections made by ``connect``."""

    def __init__(
        self,
        connect: Callable[[], pyodbc.Connection],
        *,
        name: str,
        max_size: int,
        min_size: int = 0,
        acquire_timeout: float,
        max_idle: float = 300.0,
        max_lifetime: float = 3600.0,
        limiter: ServerLimiter | None = None,
        validate_idle: float | None = None,
        max_waiting: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        check_count("max_size", max_size, 1)
        check_count("min_size", min_size, 0)
        if min_size > max_size:
            raise ValueError(f"min_size ({min_size}) must not exceed max_size ({max_size})")
        check_seconds("acquire_timeout", acquire_timeout, allow_zero=True)
        check_seconds("max_idle", max_idle)
        check_seconds("max_lifetime", max_lifetime)
        if validate_idle is not None:
            check_seconds("validate_idle", validate_idle, allow_zero=True)
        if max_waiting is not None:
            check_count("max_waiting", max_waiting, 0)
        if not callable(connect):
            raise ValueError("connect must be callable")  # noqa: TRY004 (see check_seconds)
        self.name = name
        self.max_size = max_size
        self.min_size = min_size
        self.acquire_timeout = float(acquire_timeout)
        self.max_idle = float(max_idle)
        self.max_lifetime = float(max_lifetime)
        self.limiter = limiter
        self.gate: object | None = None
        """The driver's admission gate for this pool (``odbc.gate``), made on the loop."""
        self.validate_idle = validate_idle
        self.max_waiting = max_waiting
        self._connect = connect
        self._cond = threading.Condition()
        self._idle: deque[PooledConnection] = deque()
        self._size = 0  # open connections plus connects in progress
        self._closed = False
        self._waiting = 0
        self._stats = {
            "requests_num": 0,
            "requests_wait_ms": 0,
            "requests_timeouts": 0,
            "connections_num": 0,
            "connections_errors": 0,
            "connections_lost": 0,
        }
        if limiter is not None:
            limiter.register(self)

    # -- public API ----------------------------------------------------------------

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[PooledConnection]:
        """Lend a connection for the ``with`` block; see the module for what happens after."""
        conn = self.getconn(timeout)
        try:
            yield conn
        except Exception as exc:
            self.putconn(conn, broken=is_broken(exc), lost=isinstance(exc, ConnectionLost))
            raise
        except BaseException:
            # KeyboardInterrupt, GeneratorExit...: the statement may still be running.
            self.putconn(conn, broken=True)
            raise
        else:
            self.putconn(conn)

    def getconn(self, timeout: float | None = None) -> PooledConnection:
        """Take a connection; pair with ``putconn``. Prefer ``connection()``."""
        if timeout is None:
            timeout = self.acquire_timeout
        else:
            check_seconds("timeout", timeout, allow_zero=True)
        start = time.monotonic()
        deadline = start + timeout
        with self._cond:
            self._stats["requests_num"] += 1
        while True:
            expired: list[PooledConnection] = []
            try:
                with self._cond:
                    conn, must_connect = self._take_or_reserve(deadline, expired, start)
            finally:
                self._close_all(expired)
            if conn is None:
                assert must_connect
                return self._open_reserved(deadline)
            if self._fit(conn):
                return conn
            with self._cond:
                self._stats["connections_lost"] += 1
            self._discard(conn)

    def _fit(self, conn: PooledConnection) -> bool:
        """Whether an idle connection may be lent without a check, or passes one."""
        if self.validate_idle is None:
            return True
        now = time.monotonic()
        if now - conn.last_used < self.validate_idle:
            return True
        try:
            conn.raw.execute("SELECT 1").close()
        except pyodbc.Error:
            return False
        return True

    def putconn(self, conn: PooledConnection, *, broken: bool = False, lost: bool = False) -> None:
        """Give ``conn`` back; ``broken`` closes it instead; ``lost`` (the server closed
        it) closes the idle connections as well."""
        now = time.monotonic()
        flushed: list[PooledConnection] = []
        if not broken and not self._reset(conn):
            broken = True
        with self._cond:
            keep = not broken and not self._closed and now - conn.created_at < self.max_lifetime
            if keep:
                conn.last_used = now
                self._idle.append(conn)
                self._cond.notify()
                return
            if broken:
                self._stats["connections_lost"] += 1
            if lost:
                flushed = list(self._idle)
                self._idle.clear()
                self._size -= len(flushed)
        self._close_all(flushed)
        self._discard(conn)

    def maintain(self) -> None:
        """Close expired idle connections and open up to ``min_size``.

        Called periodically by ``PoolManager``; expiry also happens on every acquire.
        """
        expired: list[PooledConnection] = []
        with self._cond:
            if self._closed:
                return
            now = time.monotonic()
            keep: deque[PooledConnection] = deque()
            # Least recently used first: those are the ones max_idle retires, and
            # max_idle shrinks the pool only down to min_size (as psycopg_pool does).
            for conn in self._idle:
                too_old = now - conn.created_at >= self.max_lifetime
                too_idle = now - conn.last_used >= self.max_idle and self._size > self.min_size
                if too_old or too_idle:
                    expired.append(conn)
                    self._size -= 1
                else:
                    keep.append(conn)
            self._idle = keep
        self._close_all(expired)
        while True:
            with self._cond:
                if self._closed or self._size >= self.min_size:
                    return
                self._size += 1
            try:
                conn = self._open_reserved(time.monotonic() + self.acquire_timeout)
            except ProxyError as exc:
                log.warning("pool %s: could not open a connection: %s", self.name, exc.message)
                return
            self.putconn(conn)

    def shed_idle(self) -> bool:
        """Close the least recently used idle connection (for ``ServerLimiter``)."""
        with self._cond:
            if not self._idle:
                return False
            conn = self._idle.popleft()
        self._discard(conn)
        return True

    def get_stats(self) -> dict[str, int]:
        with self._cond:
            return {
                "pool_max": self.max_size,
                "pool_size": self._size,
                "pool_available": len(self._idle),
                "requests_waiting": self._waiting,
                **self._stats,
            }

    def close(self) -> None:
        """Close idle connections now and loaned ones when they come back."""
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        for conn in idle:
            self._discard(conn)
        if self.limiter is not None:
            self.limiter.unregister(self)

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def side_connection(self) -> Iterator[pyodbc.Connection]:
        """A connection to the same server outside the pool's count, closed afterwards.

        For the rare statement that must not wait for a pooled connection, such as a
        SQL Server ``KILL`` of a session whose statement ignores its cancel: the pool
        may be full of exactly such sessions. Bounded by the login timeout.
        """
        with self._cond:
            connect = self._connect
        try:
            raw = connect()
        except pyodbc.Error as exc:
            raise _connect_error(self.name, exc) from exc
        try:
            yield raw
        finally:
            with contextlib.suppress(pyodbc.Error):
                raw.close()

    def set_connect(self, connect: Callable[[], pyodbc.Connection]) -> None:
        """Use ``connect`` for new connections (a tenant's password was rotated)."""
        with self._cond:
            self._connect = connect

    # -- internals -----------------------------------------------------------------

    def _take_or_reserve(
        self, deadline: float, expired: list[PooledConnection], start: float
    ) -> tuple[PooledConnection | None, bool]:
        """Under the lock: an idle connection, or a reserved slot to connect into."""
        waited = False
        try:
            while True:
                if self._closed:
                    raise BackendUnavailable(
                        f"connection pool {self.name} is closed",
                        retry_after=RETRY_AFTER_SATURATED,
                    )
                now = time.monotonic()
                while self._idle:
                    conn = self._idle.pop()
                    if now - conn.created_at >= self.max_lifetime or (
                        now - conn.last_used >= self.max_idle
                    ):
                        self._size -= 1
                        expired.append(conn)
                        continue
                    conn.uses += 1
                    return conn, False
                if self._size < self.max_size:
                    self._size += 1
                    return None, True
                remaining = deadline - now
                if remaining <= 0:
                    self._stats["requests_timeouts"] += 1
                    raise PoolSaturated(
                        f"connection pool {self.name} is saturated: no connection "
                        f"within {deadline - start:.3g}s",
                        retry_after=RETRY_AFTER_SATURATED,
                        pool_max=self.max_size,
                    )
                if not waited:
                    if self.max_waiting is not None and self._waiting >= self.max_waiting:
                        self._stats["requests_timeouts"] += 1
                        raise PoolSaturated(
                            f"connection pool {self.name} is saturated: {self.max_size} "
                            f"connections busy, {self._waiting} requests queued",
                            retry_after=RETRY_AFTER_SATURATED,
                            pool_max=self.max_size,
                        )
                    waited = True
                    self._waiting += 1
                self._cond.wait(remaining)
        finally:
            if waited:
                self._waiting -= 1
                self._stats["requests_wait_ms"] += int((time.monotonic() - start) * 1000)

    def _open_reserved(self, deadline: float) -> PooledConnection:
        """Connect into a slot reserved under the lock; release the slot on failure."""
        permit = False
        try:
            if self.limiter is not None:
                permit = self.limiter.acquire(deadline, self)
                if not permit:
                    self._limiter_saturated(self.limiter)
            with self._cond:
                connect = self._connect
            try:
                raw = connect()
            except pyodbc.Error as exc:
                with self._cond:
                    self._stats["connections_errors"] += 1
                raise _connect_error(self.name, exc) from exc
        except BaseException:
            if permit and self.limiter is not None:
                self.limiter.release()
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._stats["connections_num"] += 1
        conn = PooledConnection(raw, self)
        conn.uses = 1
        return conn

    def _limiter_saturated(self, limiter: ServerLimiter) -> None:
        with self._cond:
            self._stats["requests_timeouts"] += 1
        raise PoolSaturated(
            f"server {limiter.name} is at its connection cap ({limiter.max_size})",
            retry_after=RETRY_AFTER_SATURATED,
            pool_max=limiter.max_size,
        )

    def _reset(self, conn: PooledConnection) -> bool:
        """Make ``conn`` fit for the next borrower; False when it is not."""
        try:
            if not conn.raw.autocommit:
                # An open transaction must not leak into the next request.
                conn.raw.rollback()
        except pyodbc.Error:
            return False
        return True

    def _discard(self, conn: PooledConnection) -> None:
        """Close a connection that already left ``_idle``; frees its slot and permit."""
        self._close_raw(conn)
        with self._cond:
            self._size -= 1
            self._cond.notify()
        if self.limiter is not None:
            self.limiter.release()

    def _close_all(self, conns: list[PooledConnection]) -> None:
        """Close connections whose slots were already given up under the lock."""
        for conn in conns:
            self._close_raw(conn)
            if self.limiter is not None:
                self.limiter.release()
        if conns:
            with self._cond:
                self._cond.notify_all()

    @staticmethod
    def _close_raw(conn: PooledConnection) -> None:
        # A dead connection may refuse to close politely; it is gone anyway.
        with contextlib.suppress(pyodbc.Error):
            conn.raw.close()


def _connect_error(name: str, exc: pyodbc.Error) -> BackendUnavailable:
    """A connect failure as ``BackendUnavailable``, naming the pool, never the DSN.

    Whatever the driver says (08001, SQLite's CANTOPEN, 28P01...), a failed connect
    is the backend being unreachable for this request, not the statement's fault.
    """
    translated = translate(exc)
    sqlstate = translated.details.get("sqlstate")
    error = BackendUnavailable(
        f"cannot connect to {name}: {message_of(exc)}",
        retry_after=translated.retry_after or RETRY_AFTER_SATURATED,
        sqlstate=sqlstate if isinstance(sqlstate, str) else None,
    )
    error.__cause__ = exc
    return error
