"""A synchronous DB-API face on a pooled async connection, for ``tenancy``'s catalog reads.

``tenancy`` (``catalog``, ``metadata``) is synchronous and runs in a worker thread
(``anyio.to_thread.run_sync``) while the event loop serves requests. Each operation of
this connection is one trip to the loop (``anyio.from_thread.run``) that runs on a
connection borrowed from the driver's pool; results are small (a table's columns) and
are fetched whole, so ``fetch*`` never leave the thread.

Errors: a statement that fails raises the ``psycopg.Error`` behind it (in
``PostgresDriver.db_errors``), so that ``tenancy.metadata`` reports an unreadable
catalog as it does for ODBC (``MetadataUnavailable``, with the SQLSTATE); what has no
database error behind it (the pool is saturated, the connect failed, the backstop
ended a statement) stays a ``ProxyError``, as with the ODBC pool.

Never call these methods on the event loop's thread: the trip to the loop would wait
for itself. They refuse to.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import anyio.from_thread
import psycopg
from anyio.lowlevel import EventLoopToken

from proxy.drivers.postgres.pool import PooledConnection
from proxy.drivers.postgres.session import fetch_all
from proxy.errors import ProxyError

__all__ = ["BlockingConnection", "BlockingCursor", "call_from_thread"]

T = TypeVar("T")

Description = tuple[str, int, None, None, None, None, None]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def call_from_thread(
    token: EventLoopToken | None, func: Callable[..., Coroutine[Any, Any, T]], *args: Any
) -> T:
    """Run ``func(*args)`` on the event loop from a worker thread and wait for it."""
    if _in_event_loop():
        raise RuntimeError("blocking_source connections must be used from a worker thread")
    return anyio.from_thread.run(func, *args, token=token)


def call_sync_from_thread(token: EventLoopToken | None, func: Callable[..., T], *args: Any) -> T:
    if _in_event_loop():
        raise RuntimeError("blocking_source connections must be used from a worker thread")
    return anyio.from_thread.run_sync(func, *args, token=token)


class BlockingCursor:
    """The part of a DB-API cursor ``tenancy`` uses; ``?`` markers, like pyodbc."""

    arraysize = 1

    def __init__(self, owner: BlockingConnection) -> None:
        self._owner = owner
        self._rows: list[tuple[Any, ...]] = []
        self._position = 0
        self.description: list[Description] | None = None
        self.rowcount = -1

    def execute(self, sql: str, params: Sequence[object] = ()) -> BlockingCursor:
        conn = self._owner.checked()
        try:
            described, rows, rowcount = call_from_thread(
                self._owner.token,
                functools.partial(fetch_all, timeout_s=self._owner.timeout_s),
                conn,
                sql,
                list(params),
            )
        except ProxyError as error:
            cause = error.__cause__
            if isinstance(cause, psycopg.Error):
                raise cause from None
            raise
        self.description = (
            [(name, oid, None, None, None, None, None) for name, oid in described]
            if described
            else None
        )
        self._rows = rows
        self._position = 0
        self.rowcount = rowcount
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        count = self.arraysize if size is None else size
        rows = self._rows[self._position : self._position + count]
        self._position += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows[self._position :]
        self._position = len(self._rows)
        return rows

    def close(self) -> None:
        self._rows = []
        self._position = 0

    def __iter__(self) -> BlockingCursor:
        return self

    def __next__(self) -> tuple[Any, ...]:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row


class BlockingConnection:
    """A pooled connection seen from a worker thread (autocommit, like the pool's)."""

    def __init__(
        self, conn: PooledConnection, *, timeout_s: float, token: EventLoopToken | None
    ) -> None:
        self._conn: PooledConnection | None = conn
        self.timeout_s = timeout_s
        self.token = token

    def checked(self) -> PooledConnection:
        if self._conn is None:
            raise RuntimeError("this connection went back to its pool")
        return self._conn

    def cursor(self) -> BlockingCursor:
        self.checked()
        return BlockingCursor(self)

    def execute(self, sql: str, params: Sequence[object] = ()) -> BlockingCursor:
        """pyodbc's shortcut: a new cursor with ``sql`` executed."""
        return self.cursor().execute(sql, params)

    def commit(self) -> None:
        """Nothing to do: every statement commits on its own."""

    def rollback(self) -> None:
        """Nothing to do: every statement commits on its own."""

    def close(self) -> None:
        """Ends its use; the connection itself goes back when the source's block ends."""
        self._conn = None

    def detach(self) -> PooledConnection | None:
        conn, self._conn = self._conn, None
        return conn
