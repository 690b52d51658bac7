"""A bounded pool of sqlite3 connections to one tenant file, for the loop and for threads.

The ODBC pool (``proxy.drivers.odbc.pool``) is borrowed from worker threads only; this
one is borrowed mostly on the event loop, where a statement then runs inline, and
sometimes from worker threads (``blocking_source``: tenancy's catalog reads). So its
state sits behind a ``threading.Lock`` held only for a few list operations, never
across I/O, and a borrower that has to wait parks on what suits it: an asyncio
future (woken with ``call_soon_threadsafe``) or a ``threading.Event``.

Rules (the ODBC pool's, adapted):

* At most ``max_size`` connections exist (open, being opened, or still running in an
  abandoned worker thread). A borrower that finds none idle and no room waits, first
  come first served, up to ``acquire_timeout`` (or its request's own timeout, if
  less), then gets ``PoolSaturated`` with ``retry_after``. At most ``max_waiting``
  borrowers wait; the next one gets ``PoolSaturated`` at once, as a longer queue would
  only end the same way, later. A returned connection, or the slot of a discarded one, is handed to
  the first waiter directly, so a waiter cannot be overtaken by a newcomer.
* Idle connections are reused last in, first out, and taken without an age check:
  SQLite has no server that drops idle sessions, so an old idle connection is as good
  as a new one. Ages are enforced where it costs the loop nothing: on return (past
  ``max_lifetime`` → closed) and by the driver's janitor thread (``maintain``: idle
  longer than ``max_idle`` or past ``max_lifetime`` → closed). ``min_size`` is not
  kept: with thousands of tenant files, connections held open for quiet files would
  only hold their page caches, and opening one costs about 0.2 ms.
* Connections are opened and closed in worker threads, never on the loop: opening runs
  the tenant's pragmas (``journal_mode`` may wait for a lock), and the last connection
  to close a WAL database checkpoints it.
* A connection returned ``broken``, inside a transaction, or to a closed pool is
  closed, not kept.
* A pool whose file has had no connection for ``max_idle`` is *retired* by the
  janitor (``retire_if_unused``) and dropped by the driver; a borrower that still
  holds the old object gets ``PoolRetired`` and asks the driver again.

``get_stats`` uses the ODBC pool's names.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from proxy.drivers.errors import clean_message
from proxy.drivers.sqlite.errors import translate
from proxy.drivers.sqlite.options import (
    CACHED_STATEMENT_CHARS,
    CACHED_STATEMENTS,
    OpenSpec,
    open_connection,
)
from proxy.errors import BackendUnavailable, PoolSaturated

__all__ = ["RETRY_AFTER_SATURATED", "FilePool", "Hop", "PoolRetired", "PooledConnection"]

RETRY_AFTER_SATURATED = 1.0

T = TypeVar("T")


class Hop(Protocol):
    """Runs a blocking callable in a worker thread (the driver's bounded hop)."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


class PoolRetired(Exception):
    """The pool was dropped by the driver between lookup and use: look it up again."""


class PooledConnection:
    """A sqlite3 connection of a pool, with the state its executor keeps on it.

    The executor's fields (``proxy.drivers.sqlite.execute``): ``busy_ms`` is the busy
    timeout currently set on the connection (set again only when it changes: a
    ``PRAGMA busy_timeout`` costs about 5 µs); ``progress_on`` whether the inline
    progress handler is installed; ``stop_at``/``stopped`` the deadline that handler
    enforces and whether it fired; ``fired`` whether the loop timer interrupted a
    threaded statement. ``orphaned`` (set under ``lock``) says the connection's
    disposal was left to a worker thread whose caller gave up on it: it must not be
    given back. ``statements`` mirrors sqlite3's statement cache (``note_statement``).
    """

    __slots__ = (
        "busy_ms",
        "created_at",
        "fired",
        "last_used",
        "lock",
        "orphaned",
        "pool",
        "progress_on",
        "raw",
        "statement_chars",
        "statements",
        "stop_at",
        "stopped",
    )

    def __init__(self, raw: sqlite3.Connection, pool: FilePool, busy_ms: int) -> None:
        self.raw = raw
        self.pool = pool
        now = time.monotonic()
        self.created_at = now
        self.last_used = now
        self.busy_ms = busy_ms
        self.progress_on = False
        self.stop_at = float("inf")
        self.stopped = False
        self.fired = False
        self.lock = threading.Lock()
        self.orphaned = False
        self.statements: dict[str, None] = {}
        self.statement_chars = 0

    def note_statement(self, sql: str) -> None:
        """Account for ``sql`` as sqlite3's LRU statement cache does (by text, at most
        ``CACHED_STATEMENTS``): past ``CACHED_STATEMENT_CHARS`` of cached text, the
        connection is not kept when it is given back, which frees its compiled
        statements; the next borrower opens a fresh one (about 0.2 ms)."""
        statements = self.statements
        if sql in statements:
            del statements[sql]  # the most recently used goes last, as in sqlite3's LRU
            statements[sql] = None
            return
        statements[sql] = None
        self.statement_chars += len(sql)
        if len(statements) > CACHED_STATEMENTS:
            oldest = next(iter(statements))
            del statements[oldest]
            self.statement_chars -= len(oldest)

    @property
    def worn(self) -> bool:
        """Its statement cache holds more text than ``CACHED_STATEMENT_CHARS``."""
        return self.statement_chars > CACHED_STATEMENT_CHARS

    def progress(self) -> int:
        """sqlite3's progress handler: a non-zero answer aborts the statement."""
        if time.monotonic() < self.stop_at:
            return 0
        self.stopped = True
        return 1

    def close(self) -> None:
        # Closing a connection SQLite already gave up on may fail too; it is gone anyway.
        with contextlib.suppress(sqlite3.Error):
            self.raw.close()


class _Waiter:
    __slots__ = ("conn", "slot", "wake")

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self.conn: PooledConnection | None = None
        self.slot = False
        """Handed the slot of a discarded connection: open a new one into it."""

    @property
    def granted(self) -> bool:
        return self.conn is not None or self.slot


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _resolve_threadsafe(future: asyncio.Future[None]) -> None:
    # From the loop's thread or another; a loop that has already closed has no
    # waiter left to wake.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(_resolve, future)


class FilePool:
    """The connections to one tenant file (see the module for the rules)."""

    def __init__(
        self,
        spec: OpenSpec,
        *,
        name: str,
        server_key: str,
        max_size: int,
        acquire_timeout: float,
        max_idle: float,
        max_lifetime: float,
        max_waiting: int | None = None,
        opener: Callable[[OpenSpec], sqlite3.Connection] = open_connection,
    ) -> None:
        self.spec = spec
        self.name = name
        """Secret-free (the location's pool key): appears in errors."""
        self.server_key = server_key
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.max_waiting = max_waiting
        self.max_idle = max_idle
        self.max_lifetime = max_lifetime
        self._opener = opener
        self._lock = threading.Lock()
        self._idle: list[PooledConnection] = []
        self._all: set[PooledConnection] = set()
        self._waiters: deque[_Waiter] = deque()
        self._size = 0  # open connections plus opens in progress
        self._closed = False
        self._retired = False
        self._last_activity = time.monotonic()
        self._stats = {
            "requests_num": 0,
            "requests_wait_ms": 0,
            "requests_timeouts": 0,
            "connections_num": 0,
            "connections_errors": 0,
            "connections_lost": 0,
        }

    # -- borrowing ---------------------------------------------------------------------

    def take_nowait(self) -> PooledConnection | None:
        """An idle connection if there is one, else ``None`` (then ``acquire``)."""
        with self._lock:
            if not self._idle or self._closed or self._retired:
                return None
            self._stats["requests_num"] += 1
            self._last_activity = time.monotonic()
            return self._idle.pop()

    async def acquire(self, hop: Hop, *, budget_s: float | None = None) -> PooledConnection:
        """A connection for the event loop; opens one through ``hop`` when there is room.
        A wait ends after ``acquire_timeout`` or ``budget_s`` (the request's timeout),
        whichever comes first."""
        waiter: _Waiter | None = None
        with self._lock:
            taken = self._take_locked()
            if taken is None:
                self._admit_locked()
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                waiter = _Waiter(functools.partial(_resolve_threadsafe, future))
                self._waiters.append(waiter)
        if isinstance(taken, PooledConnection):
            return taken
        if taken is True:
            return await self._open_async(hop)
        assert waiter is not None
        start = time.monotonic()
        try:
            limit = self.acquire_timeout
            await asyncio.wait_for(future, limit if budget_s is None else min(budget_s, limit))
        except TimeoutError:
            pass
        except BaseException:
            # Cancelled: whatever was handed over meanwhile goes back.
            self._withdraw(waiter, start)
            if waiter.conn is not None:
                to_close = self.release(waiter.conn)
                if to_close is not None:
                    to_close.close()  # the pool closed meanwhile: rare, and cheap here
            elif waiter.slot:
                self._wake(self._free_slot())
            raise
        self._after_wait(waiter, start)
        return waiter.conn if waiter.conn is not None else await self._open_async(hop)

    def acquire_blocking(self) -> PooledConnection:
        """A connection for a worker thread; opens one in this thread when there is room."""
        event = threading.Event()
        waiter: _Waiter | None = None
        with self._lock:
            taken = self._take_locked()
            if taken is None:
                self._admit_locked()
                waiter = _Waiter(event.set)
                self._waiters.append(waiter)
        if isinstance(taken, PooledConnection):
            return taken
        if taken is True:
            return self._open()
        assert waiter is not None
        start = time.monotonic()
        event.wait(self.acquire_timeout)
        self._after_wait(waiter, start)
        return waiter.conn if waiter.conn is not None else self._open()

    def release(self, conn: PooledConnection, *, broken: bool = False) -> PooledConnection | None:
        """Give ``conn`` back; returns it when it must be closed (do that off the loop)."""
        now = time.monotonic()
        try:
            in_transaction = conn.raw.in_transaction
        except sqlite3.Error:
            in_transaction = broken = True
        wake: Callable[[], None] | None = None
        with self._lock:
            self._last_activity = now
            keep = (
                not broken
                and not in_transaction
                and not self._closed
                and now - conn.created_at < self.max_lifetime
                and not conn.worn
            )
            if keep:
                conn.last_used = now
                if self._waiters:
                    waiter = self._waiters.popleft()
                    waiter.conn = conn
                    wake = waiter.wake
                else:
                    self._idle.append(conn)
                    return None
            else:
                if broken:
                    self._stats["connections_lost"] += 1
                self._all.discard(conn)
                wake = self._free_slot_locked()
        self._wake(wake)
        return None if keep else conn

    def discard(self, conn: PooledConnection) -> None:
        """Close a broken connection now (from a worker thread) and free its slot."""
        conn.close()
        with self._lock:
            self._stats["connections_lost"] += 1
            self._all.discard(conn)
            wake = self._free_slot_locked()
        self._wake(wake)

    # -- upkeep ------------------------------------------------------------------------

    def maintain(self) -> list[PooledConnection]:
        """Take out idle connections past ``max_idle`` or ``max_lifetime``; caller closes them."""
        now = time.monotonic()
        expired: list[PooledConnection] = []
        wakes: list[Callable[[], None] | None] = []
        with self._lock:
            keep: list[PooledConnection] = []
            for conn in self._idle:
                if (
                    now - conn.last_used >= self.max_idle
                    or now - conn.created_at >= self.max_lifetime
                ):
                    expired.append(conn)
                    self._all.discard(conn)
                    wakes.append(self._free_slot_locked())
                else:
                    keep.append(conn)
            self._idle = keep
        for wake in wakes:
            self._wake(wake)
        return expired

    def retire_if_unused(self) -> bool:
        """Mark the pool retired when it has held no connection for ``max_idle``."""
        with self._lock:
            if self._retired:
                return True
            if (
                self._size == 0
                and not self._waiters
                and time.monotonic() - self._last_activity >= self.max_idle
            ):
                self._retired = True
            return self._retired

    def close(self) -> list[PooledConnection]:
        """Refuse new borrowers, interrupt loaned connections, return the idle ones to close."""
        with self._lock:
            self._closed = True
            idle = self._idle
            self._idle = []
            loaned = [c for c in self._all if c not in idle]
            for conn in idle:
                self._all.discard(conn)
                self._size -= 1
            waiters = list(self._waiters)
            self._waiters.clear()
        for conn in loaned:
            with contextlib.suppress(sqlite3.Error):
                conn.raw.interrupt()
        for waiter in waiters:
            waiter.wake()
        return idle

    @property
    def closed(self) -> bool:
        return self._closed

    def get_stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "pool_max": self.max_size,
                "pool_size": self._size,
                "pool_available": len(self._idle),
                "requests_waiting": len(self._waiters),
                **self._stats,
            }

    def counters(self) -> dict[str, int]:
        """The cumulative statistics (kept by the driver when the pool is retired)."""
        with self._lock:
            return dict(self._stats)

    # -- internals ---------------------------------------------------------------------

    def _take_locked(self) -> PooledConnection | bool | None:
        """An idle connection, ``True`` for a slot reserved to open one, ``None``: wait."""
        if self._closed:
            raise BackendUnavailable(
                f"connection pool {self.name} is closed", retry_after=RETRY_AFTER_SATURATED
            )
        if self._retired:
            raise PoolRetired
        self._stats["requests_num"] += 1
        self._last_activity = time.monotonic()
        if self._idle:
            return self._idle.pop()
        if self._size < self.max_size:
            self._size += 1
            return True
        return None

    def _admit_locked(self) -> None:
        """Refuse a borrower that would wait behind ``max_waiting`` others."""
        if self.max_waiting is not None and len(self._waiters) >= self.max_waiting:
            self._stats["requests_timeouts"] += 1
            raise PoolSaturated(
                f"connection pool {self.name} is saturated: "
                f"{self.max_size} connections busy, {len(self._waiters)} requests queued",
                retry_after=RETRY_AFTER_SATURATED,
                pool_max=self.max_size,
            )

    def _free_slot_locked(self) -> Callable[[], None] | None:
        """Give up a slot: to the first waiter, else shrink. Returns whom to wake."""
        if self._waiters and not self._closed:
            waiter = self._waiters.popleft()
            waiter.slot = True
            return waiter.wake
        self._size -= 1
        return None

    def _free_slot(self) -> Callable[[], None] | None:
        with self._lock:
            return self._free_slot_locked()

    @staticmethod
    def _wake(wake: Callable[[], None] | None) -> None:
        if wake is not None:
            wake()

    def _withdraw(self, waiter: _Waiter, start: float) -> None:
        with self._lock:
            if not waiter.granted and waiter in self._waiters:
                self._waiters.remove(waiter)
        self._account_wait(start)

    def _after_wait(self, waiter: _Waiter, start: float) -> None:
        """Keep what was handed over (even in a race with the timeout), else fail."""
        with self._lock:
            granted = waiter.granted
            if not granted and waiter in self._waiters:
                self._waiters.remove(waiter)
            closed = self._closed
            if not granted and not closed:
                self._stats["requests_timeouts"] += 1
        self._account_wait(start)
        if granted:
            return
        if closed:
            raise BackendUnavailable(
                f"connection pool {self.name} is closed", retry_after=RETRY_AFTER_SATURATED
            )
        raise PoolSaturated(
            f"connection pool {self.name} is saturated: no connection "
            f"within {time.monotonic() - start:.2g}s",
            retry_after=RETRY_AFTER_SATURATED,
            pool_max=self.max_size,
        )

    def _account_wait(self, start: float) -> None:
        waited = int((time.monotonic() - start) * 1000)
        with self._lock:
            self._stats["requests_wait_ms"] += waited

    async def _open_async(self, hop: Hop) -> PooledConnection:
        opened: list[PooledConnection] = []

        def job() -> PooledConnection:
            conn = self._open()
            opened.append(conn)
            return conn

        try:
            return await hop(job)
        except BaseException:
            # Cancelled while the worker was opening: the hop waited for it to finish,
            # so `opened` is final and the new connection must not leak.
            if opened:
                to_close = self.release(opened[0])
                if to_close is not None:
                    to_close.close()
            raise

    def _open(self) -> PooledConnection:
        """Open into a slot reserved under the lock (blocking); frees it on failure."""
        try:
            raw = self._opener(self.spec)
        except BaseException as exc:
            with self._lock:
                if isinstance(exc, sqlite3.Error):
                    self._stats["connections_errors"] += 1
                wake = self._free_slot_locked()
            self._wake(wake)
            if isinstance(exc, sqlite3.Error):
                raise _connect_error(self.name, exc) from exc
            raise
        conn = PooledConnection(raw, self, self.spec.busy_timeout_ms)
        with self._lock:
            self._stats["connections_num"] += 1
            self._all.add(conn)
            closed = self._closed
        if closed:
            self.release(conn)
            conn.close()
            raise BackendUnavailable(
                f"connection pool {self.name} is closed", retry_after=RETRY_AFTER_SATURATED
            )
        return conn


def _connect_error(name: str, exc: sqlite3.Error) -> BackendUnavailable:
    """An open failure as ``BackendUnavailable``, naming the pool, never the path.

    A missing or unreadable file, a locked ``journal_mode`` change, a file that is not
    a database: whatever SQLite says, the tenant's database cannot be reached now.
    """
    error = BackendUnavailable(
        f"cannot open the SQLite database of pool {name}: "
        f"{clean_message(str(exc)) or 'the SQLite library reported an error'}",
        retry_after=translate(exc).retry_after or RETRY_AFTER_SATURATED,
    )
    error.__cause__ = exc
    return error
