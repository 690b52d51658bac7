"""One statement on a pooled psycopg connection, with a timeout that really stops it.

Timeouts come in two layers, as in ``proxy.drivers.odbc.execute``:

* The server's: ``SET statement_timeout`` on the session, sent only when it differs
  from what this connection last had (a round trip saved per request). The server
  stops the statement itself (57014, ``StatementTimeout``) and the session stays
  usable. Inside a transaction a different timeout is ``SET LOCAL``: a rollback would
  undo a plain ``SET`` and leave our record of the session's value wrong, while
  ``SET LOCAL`` ends with the transaction and the session's value is what we recorded.
  ``transaction(timeout_s=...)`` sets the session's value before ``BEGIN``, so
  statements inside with that same timeout need no ``SET`` at all.
* The client's backstop, ``backstop_delay(timeout_s)`` later (``min(0.5, 0.1 +
  timeout_s * 0.05)``), for a server that cannot answer (a partition, a stalled host)
  or a session whose ``statement_timeout`` is not what we think. It sends a cancel
  request without waiting for it (``_cancel_soon``: libpq 17's non-blocking cancel,
  bounded by ``CANCEL_TIMEOUT_S`` in a task of its own) and ends the request's wait at
  once: a caller's statement (``statements``) stops waiting; a session command on
  psycopg's cursor is cancelled by psycopg, which waits up to 5 s for the server
  unless cancelled again, when it closes the connection (psycopg #1435). The backstop
  repeats the cancellation until the statement has left its wait, then turns it back
  into ``StatementTimeout`` (``Task.uncancel``, so a cancellation from elsewhere still
  propagates). The connection is retired: after a backstop nobody knows what the
  session still holds. So a request whose server went silent answers within its
  timeout plus half a second, and nothing shared waits for that server: not the
  request, not a thread (a blocking cancel in a thread pool would let one partitioned
  server's cancels hold up every other's). The backstops of all statements share one
  timer (``watch.Watch``).

A request cancelled from elsewhere (the client went away, the service's deadline)
leaves with its ``CancelledError`` and its connection is retired by the pool. Unless
the session is seen idle afterwards, a cancel request goes out the same way
(``_cancel_soon``), and the statement stops on the server at once rather than at its
``statement_timeout``.

Results: a statement's whole result sits in libpq's memory (reads carry a ``LIMIT``
bound to ``max_rows + 1`` in their SQL, see ``rewriter.row_cap``); at most
``max_rows + 1`` rows are turned into Python objects. ``count_all_rows`` reads the row
count from the result (``PQntuples``), so a write's RETURNING rows are all counted
without being loaded.

Statements go through ``statements.Statements`` (libpq's extended protocol, below
psycopg's cursor); the session's own commands (``SET``, ``BEGIN``, ``COMMIT``,
``ROLLBACK``, ``DEALLOCATE ALL``) through psycopg's cursor. A statement run twice on a
connection is prepared, and its result columns are read from libpq once
(``_columns``). Another session's DDL can change a prepared statement's result type
(``0A000 cached plan must not change result type``); the server keeps the stale
statement, so on that error outside a transaction the session drops its prepared
statements (``DEALLOCATE ALL``) and runs the statement again once; in a transaction the
connection is retired instead and the caller gets a retryable ``BackendUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import psycopg
from psycopg import generators, waiting
from psycopg.pq import ConnStatus, ExecStatus, TransactionStatus
from psycopg.pq.abc import PGcancelConn, PGresult

from proxy import context
from proxy.drivers.base import ResultColumn, ResultSet, empty_result
from proxy.drivers.errors import Kind
from proxy.drivers.postgres.errors import kind_of, translate
from proxy.drivers.postgres.pool import PgPool, PooledConnection
from proxy.drivers.postgres.statements import Prepared
from proxy.drivers.postgres.types import load_rows, type_name
from proxy.errors import BackendRejected, ProxyError, StatementTimeout, chained

__all__ = [
    "CANCEL_TIMEOUT_S",
    "PgSession",
    "backstop_delay",
    "execute_on",
    "fetch_all",
]

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 2.0
"""How long a cancel request may take (a partition blocks it too); nobody waits for it."""
CONTROL_TIMEOUT_S = 5.0
"""Timeout of BEGIN, COMMIT and ROLLBACK when the caller gave none."""

_TUPLES_OK = ExecStatus.TUPLES_OK

_FORCE_INTERVAL_S = 0.01
_FORCE_ATTEMPTS = 500
_BACKSTOPS: set[asyncio.Task[None]] = set()  # strong references to running helpers
_POOL_COLUMNS_MAX = 512
_POOL_COLUMNS_HELD = 32768
"""Columns a pool's shared lists may hold together: aliases make every wide result's
columns new objects (~0.25 KB each), so 512 lists of 1,000 would hold ~130 MB."""
_COLUMNS_MAX = 16384
_COLUMNS: dict[tuple[bytes | None, int], ResultColumn] = {}
"""Interned result columns: a table's columns are the same objects in every result.
PostgreSQL cuts names at 63 bytes, so an entry holds at most about 0.4 KB."""


def backstop_delay(timeout_s: float) -> float:
    """How long after the server's timeout the client gives up.

    Short, so that a request whose server went silent still answers within its timeout
    plus a second; long enough for the server's own 57014 to arrive first from any
    server that is merely busy.
    """
    return min(0.5, 0.1 + timeout_s * 0.05)


def _check(timeout_s: float, max_rows: int | None = None) -> None:
    if not (timeout_s > 0) or math.isinf(timeout_s):
        raise ValueError(f"timeout_s must be finite and > 0, got {timeout_s!r}")
    if max_rows is not None and max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")


class PgSession:
    """A connection on loan (``proxy.drivers.base.Session``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: PooledConnection) -> None:
        self._conn: PooledConnection | None = conn

    def detach(self) -> None:
        """The connection went back to its pool: later use is a bug, and fails."""
        self._conn = None

    def _live(self) -> PooledConnection:
        conn = self._conn
        if conn is None:
            raise RuntimeError("this session's connection went back to its pool")
        return conn

    async def execute(
        self,
        sql: str,
        params: Sequence[object] = (),
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool = False,
    ) -> ResultSet:
        return await execute_on(
            self._live(),
            sql,
            params,
            timeout_s=timeout_s,
            max_rows=max_rows,
            count_all_rows=count_all_rows,
        )

    def transaction(
        self, *, isolation: str | None = None, timeout_s: float | None = None
    ) -> PgTransaction:
        """``BEGIN`` … ``COMMIT``, or ``ROLLBACK`` when the block raises.

        ``isolation`` (``ISOLATION_LEVELS``) goes into the ``BEGIN``, so the session's
        default is never changed. ``timeout_s`` becomes the session's statement timeout
        before ``BEGIN``; without it, BEGIN, COMMIT and ROLLBACK get ``CONTROL_TIMEOUT_S``.
        """
        return PgTransaction(self._live(), isolation, timeout_s)


class PgTransaction:
    """``PgSession.transaction``'s context manager. A class, not an ``async`` generator,
    which mypyc does not compile (``proxy.compiled``)."""

    __slots__ = ("_budget", "_conn", "_isolation", "_timeout_s")

    def __init__(
        self, conn: PooledConnection, isolation: str | None, timeout_s: float | None
    ) -> None:
        self._conn = conn
        self._isolation = isolation
        self._timeout_s = timeout_s
        self._budget = timeout_s if timeout_s is not None else CONTROL_TIMEOUT_S

    async def __aenter__(self) -> None:
        conn = self._conn
        if conn.in_transaction:
            raise RuntimeError("a transaction is already open on this session")
        begin = _BEGIN[self._isolation]
        if self._timeout_s is not None:
            _check(self._timeout_s)
            await _set_timeout(conn, self._timeout_s)
        await _run(conn, begin, self._budget)
        conn.in_transaction = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn = self._conn
        _end_transaction(conn)
        if exc is None:
            await _run(conn, "COMMIT", self._budget)
        elif isinstance(exc, Exception) and not conn.broken:
            try:
                await _run(conn, "ROLLBACK", self._budget)
            except ProxyError:
                conn.broken = True
        else:
            conn.broken = True


_BEGIN = {
    None: "BEGIN",
    "read_uncommitted": "BEGIN ISOLATION LEVEL READ UNCOMMITTED",
    "read_committed": "BEGIN ISOLATION LEVEL READ COMMITTED",
    "repeatable_read": "BEGIN ISOLATION LEVEL REPEATABLE READ",
    "serializable": "BEGIN ISOLATION LEVEL SERIALIZABLE",
}


def _end_transaction(conn: PooledConnection) -> None:
    conn.in_transaction = False
    conn.local_timeout_ms = None


async def execute_on(
    conn: PooledConnection,
    sql: str,
    params: Sequence[object],
    *,
    timeout_s: float,
    max_rows: int,
    count_all_rows: bool = False,
) -> ResultSet:
    """Run ``sql`` (``?`` markers) on ``conn``; errors come as ``ProxyError``.

    The hot path of every request, hence written out flat: each coroutine layer costs
    more than most of what it would hold.
    """
    if not (timeout_s > 0) or math.isinf(timeout_s) or max_rows < 0:
        _check(timeout_s, max_rows)
    pgresult, prepared = await _statement(conn, sql, params, timeout_s)
    if pgresult.status != _TUPLES_OK:
        # No result set: an INSERT/UPDATE/DELETE without RETURNING, or DDL.
        return empty_result(_rowcount(pgresult))
    columns = _columns(conn, sql, pgresult, prepared)
    total = pgresult.ntuples
    wanted = min(total, max_rows + 1)
    loaded = _load(conn, pgresult, wanted) if wanted else []
    truncated = len(loaded) > max_rows
    rows = loaded[:max_rows] if truncated else loaded
    return ResultSet(
        columns=columns,
        rows=rows,
        row_count=total if count_all_rows else len(rows),
        truncated=truncated,
    )


async def fetch_all(
    conn: PooledConnection, sql: str, params: Sequence[object], *, timeout_s: float
) -> tuple[list[tuple[str, int]], list[tuple[Any, ...]], int]:
    """Run ``sql`` on ``conn`` and return (name, type OID) per column, every row, rowcount.

    For ``blocking``'s DB-API cursor: catalog reads want all their rows.
    """
    _check(timeout_s)
    pgresult, _ = await _statement(conn, sql, params, timeout_s)
    if pgresult.status != _TUPLES_OK:
        return [], [], _rowcount(pgresult)
    described = [
        (_column_name(pgresult.fname(i)), pgresult.ftype(i)) for i in range(pgresult.nfields)
    ]
    rows = [tuple(row) for row in _load(conn, pgresult, pgresult.ntuples)]
    return described, rows, len(rows)


async def _statement(
    conn: PooledConnection,
    sql: str,
    params: Sequence[object],
    timeout_s: float,
    *,
    retry_stale: bool = True,
) -> tuple[PGresult, Prepared | None]:
    """Run a caller's statement: its timeout set, its backstop armed, errors translated."""
    if conn.in_transaction or conn.timeout_ms != _milliseconds(timeout_s):
        await _set_timeout(conn, timeout_s)
    label = None
    if conn.pool.label_requests:
        ctx = context.current()
        if ctx is not None:
            label = ctx.label()
    guard = _Backstop(conn, timeout_s)
    try:
        return await conn.statements.execute(sql, params, label)
    except _HANDLED as exc:
        guard.disarm()  # before _failed, which may run statements of its own
        await _failed(conn, exc, guard, timeout_s=timeout_s, params=params, retry_stale=retry_stale)
    finally:
        guard.disarm()
    # _failed returned: the statement met a stale prepared statement, now dropped.
    return await _statement(conn, sql, params, timeout_s, retry_stale=False)


def _rowcount(pgresult: PGresult) -> int:
    count = pgresult.command_tuples
    return count if count is not None else -1


def _milliseconds(timeout_s: float) -> int:
    return max(1, math.ceil(timeout_s * 1000))


async def _set_timeout(conn: PooledConnection, timeout_s: float) -> None:
    milliseconds = _milliseconds(timeout_s)
    if conn.in_transaction:
        current = conn.local_timeout_ms or conn.timeout_ms
        if current == milliseconds:
            return
        # An integer we formatted ourselves: no injection, and SET takes no binds.
        await _run(conn, f"SET LOCAL statement_timeout = {milliseconds}", timeout_s)
        conn.local_timeout_ms = milliseconds
        return
    if conn.timeout_ms == milliseconds:
        return
    conn.timeout_ms = None  # unknown until the SET succeeds
    await _run(conn, f"SET statement_timeout = {milliseconds}", timeout_s)
    conn.timeout_ms = milliseconds


async def _run(conn: PooledConnection, command: str, timeout_s: float) -> None:
    """A session command (no parameters) on psycopg's cursor, under the backstop."""
    conn.statements.stop_listening()  # psycopg waits on the socket itself
    guard = _Backstop(conn, timeout_s)
    try:
        await conn.cursor.execute(command, prepare=False)
    except _HANDLED as exc:
        guard.disarm()
        await _failed(conn, exc, guard, timeout_s=timeout_s, params=None, retry_stale=False)
    finally:
        guard.disarm()


_HANDLED = (asyncio.CancelledError, psycopg.Error, TypeError, ValueError, OverflowError)


async def _failed(
    conn: PooledConnection,
    exc: BaseException,
    guard: _Backstop,
    *,
    timeout_s: float,
    params: Sequence[object] | None,
    retry_stale: bool,
) -> None:
    """Raise what ``exc``, raised by the statement's execute, means for the caller.

    Returns only when a statement failed on a stale prepared statement (``retry_stale``)
    and the session's prepared statements are dropped: the caller runs it once more.
    """
    if isinstance(exc, asyncio.CancelledError):
        if guard.swallow_cancellation():
            raise chained(_timeout_error(timeout_s), None)
        conn.broken = True
        _cancel_in_background(conn)
        raise exc
    if isinstance(exc, psycopg.Error):
        if exc.sqlstate == "0A000" and retry_stale and not guard.fired:
            if not conn.in_transaction:
                # Possibly a prepared statement made stale by another session's DDL
                # (whatever the server's language): drop them all and try once more. A
                # feature that is really unsupported fails again: the caller's error.
                await _run(conn, "DEALLOCATE ALL", timeout_s)
                conn.statements.forget()
                return
            if kind_of(exc) is Kind.TRANSIENT:
                conn.broken = True  # its stale prepared statement would fail again
        error = translate(exc, timed_out=guard.fired, password=conn.pool.params.password)
        if guard.fired or kind_of(exc) is Kind.BROKEN:
            conn.broken = True
        if isinstance(error, StatementTimeout):
            error.details["timeout_ms"] = round(timeout_s * 1000)
        raise chained(error, exc)
    if params:
        # psycopg's dumpers raise these on some values they cannot send (a list mixing
        # numbers and text): the caller's value, so a 400, not a 500. Raised before
        # anything reached the server, but the connection is retired all the same.
        conn.broken = True
        raise chained(
            BackendRejected(f"a parameter cannot be sent to the backend ({type(exc).__name__})"),
            exc,
        )
    raise exc


def _cancel_in_background(conn: PooledConnection) -> None:
    """Make sure the statement of a request cancelled from outside stops on the server.

    A caller's statement is simply no longer waited for, and psycopg's own cancel of a
    session command is interrupted by an anyio cancel scope (Starlette's) too: a
    backend busy in ``pg_sleep`` or a long scan does not notice a closed socket, and
    runs on until its ``statement_timeout``.
    """
    pgconn = conn.raw.pgconn
    if pgconn.status == ConnStatus.OK and pgconn.transaction_status == TransactionStatus.IDLE:
        return  # the statement is over
    _cancel_soon(conn)


def _cancel_soon(conn: PooledConnection) -> None:
    """Send a cancel request for ``conn``'s statement; do not wait for it.

    The cancel connection is made here, synchronously, while ``conn`` is still open (the
    pool closes it right after); the rest runs in a task bounded by
    ``CANCEL_TIMEOUT_S``. libpq 17's non-blocking cancel, as psycopg's ``cancel_safe``
    drives it: the classic ``PQcancel`` blocks a thread on connect, for minutes in a
    partition.
    """
    pool_name = conn.pool.name
    try:
        cancel_conn = conn.raw.pgconn.cancel_conn()
        cancel_conn.start()
    except psycopg.Error as exc:
        log.warning("pool %s: could not send a cancel request: %s", pool_name, type(exc).__name__)
        return
    try:
        task = asyncio.get_running_loop().create_task(_finish_cancel(cancel_conn, pool_name))
    except RuntimeError:  # no loop (shutting down): the statement_timeout remains
        cancel_conn.finish()
        return
    _BACKSTOPS.add(task)
    task.add_done_callback(_BACKSTOPS.discard)


async def _finish_cancel(cancel_conn: PGcancelConn, pool_name: str) -> None:
    try:
        await waiting.wait_conn_async(
            generators.cancel(cancel_conn), interval=0.1, timeout=CANCEL_TIMEOUT_S
        )
    except (psycopg.Error, OSError) as exc:
        # Expected when the server is unreachable; its statement_timeout remains.
        log.warning("pool %s: cancel request failed: %s", pool_name, type(exc).__name__)
    finally:
        cancel_conn.finish()


def _timeout_error(timeout_s: float) -> StatementTimeout:
    error = StatementTimeout("the statement was cancelled: it ran past its timeout")
    error.details["timeout_ms"] = round(timeout_s * 1000)
    return error


class _Backstop:
    """The client-side end of one statement's wait (see the module docstring)."""

    __slots__ = (
        "_conn",
        "_task",
        "cancels",
        "deadline",
        "fired",
        "in_flight",
    )

    def __init__(self, conn: PooledConnection, timeout_s: float) -> None:
        self._conn = conn
        self._task = asyncio.current_task(conn.pool.watch.loop)
        self.in_flight = True
        self.fired = False
        self.cancels = 0
        watch = conn.pool.watch
        # backstop_delay(timeout_s), inlined: this runs for every statement.
        self.deadline = watch.now() + timeout_s + min(0.5, 0.1 + timeout_s * 0.05)
        watch.arm(self)

    def disarm(self) -> None:
        """The statement left psycopg (called before anything else can run)."""
        self.in_flight = False
        # A cancel request still on its way cannot hit a later statement: the
        # connection is marked broken when the backstop fires, and retired.
        self._conn.pool.watch.disarm(self)

    def check(self) -> None:
        """The timer's look at the socket while the statement waits (``Watch``)."""
        self._conn.statements.nudge()

    def swallow_cancellation(self) -> bool:
        """Undo our own cancellations; True when nobody else cancelled the task."""
        if not self.cancels or self._task is None:
            return False
        for _ in range(self.cancels):
            self._task.uncancel()
        return self._task.cancelling() == 0

    def fire(self) -> None:
        """The deadline passed (called by the ``Watch``)."""
        if not self.in_flight:
            return
        self.fired = True
        self._conn.broken = True
        helper = asyncio.get_running_loop().create_task(self._stop())
        _BACKSTOPS.add(helper)
        helper.add_done_callback(_BACKSTOPS.discard)

    async def _stop(self) -> None:
        _cancel_soon(self._conn)
        attempts = 0
        while self.in_flight and self._task is not None and attempts < _FORCE_ATTEMPTS:
            if self._task.cancel():
                self.cancels += 1
            attempts += 1
            await asyncio.sleep(_FORCE_INTERVAL_S)
        if self.in_flight:
            log.error("pool %s: a statement ignored its backstop", self._conn.pool.name)
        else:
            log.warning(
                "pool %s: no answer from the server within a statement's timeout;"
                " its connection is closed",
                self._conn.pool.name,
            )


def _columns(
    conn: PooledConnection, sql: str, pgresult: PGresult, prepared: Prepared | None
) -> list[ResultColumn]:
    """The result's columns, read from libpq only when they may have changed.

    Reading 818 names and types and making their ``ResultColumn`` costs ~2 ms on the
    test box, four times the statement itself. A prepared statement's result columns
    cannot change while it stays prepared (the server fails it with 0A000 instead), so
    they are read once per prepared statement and kept with it. An unprepared
    statement's columns may change with any DDL: read afresh every time. The lists are
    shared through the pool, and a copy is returned. The pool keys them by the text's
    hash, not the text, which may be 100,000 characters long: a list is only ever
    reused when it equals what the result says, so a collision costs nothing but the
    sharing.
    """
    if prepared is not None and prepared.columns is not None:
        return list(prepared.columns)
    columns = [
        _result_column(pgresult.fname(i), pgresult.ftype(i)) for i in range(pgresult.nfields)
    ]
    pool = conn.pool
    key = hash(sql)
    previous = pool.columns.get(key)
    if previous == columns:
        columns = previous
    else:
        _share(pool, key, columns)
    if prepared is not None:
        prepared.columns = columns
    return list(columns)


def _share(pool: PgPool, key: int, columns: list[ResultColumn]) -> None:
    """Keep ``columns`` in the pool's shared lists, the oldest going first past
    ``_POOL_COLUMNS_MAX`` lists or ``_POOL_COLUMNS_HELD`` columns."""
    shared = pool.columns
    old = shared.pop(key, None)
    if old is not None:
        pool.columns_held -= len(old)
    shared[key] = columns
    pool.columns_held += len(columns)
    while len(shared) > _POOL_COLUMNS_MAX or pool.columns_held > _POOL_COLUMNS_HELD:
        pool.columns_held -= len(shared.pop(next(iter(shared))))


def _result_column(raw_name: bytes | None, oid: int) -> ResultColumn:
    key = (raw_name, oid)
    column = _COLUMNS.get(key)
    if column is None:
        if len(_COLUMNS) >= _COLUMNS_MAX:
            _COLUMNS.clear()
        column = _COLUMNS[key] = ResultColumn(_column_name(raw_name), type_name(oid))
    return column


def _load(conn: PooledConnection, pgresult: PGresult, count: int) -> list[list[Any]]:
    try:
        return conn.statements.load(pgresult, count)
    except psycopg.DataError:
        # A date Python cannot hold (infinity, year 0 or 10000+): load it as text.
        return [list(row) for row in load_rows(pgresult, 0, count)]


def _column_name(raw: bytes | None) -> str:
    # The connection's client_encoding is UTF8 (conninfo), whatever the database's.
    return raw.decode("utf-8", "replace") if raw is not None else ""
