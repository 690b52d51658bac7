"""Run one statement on a pooled sqlite3 connection: inline on the loop, or in a thread.

Inline first, for reads
-----------------------

A point select by primary key costs about 11-18 µs of CPU when run right on the event
loop, and about 150-230 µs of CPU (150-540 µs wall) when handed to a worker thread
with ``anyio.to_thread`` (the package docstring, ``proxy.drivers.sqlite``, has the
figures and the command). So a *read* (``classify.is_read_only``) runs inline, under
an *inline budget* (default 2 ms) that sqlite3's progress handler enforces: every
``PROGRESS_EVERY`` (1000) virtual-machine instructions, 30-60 µs of work here, SQLite
calls ``PooledConnection.progress``, which aborts the statement (``SQLITE_INTERRUPT``)
once the budget is spent. The statement is then run again in a worker thread with
the rest of its timeout. Repeating it is safe: the connection is in autocommit mode,
so the aborted statement is rolled back whole, and the rows the first attempt fetched
are discarded. A read that would wait for a lock does not wait on the loop either:
inline attempts run with ``busy_timeout = 0`` and a ``SQLITE_BUSY`` sends the
statement to the thread, where it waits up to the tenant's busy timeout. A statement
short enough for the budget never meets the handler (a point select runs a few dozen
instructions), so the guard costs the fast path a few attribute reads and writes.

The budget bounds the work SQLite does between two handler calls, plus the row
conversion that happens inside ``fetchmany`` (``max_rows`` rows are turned into Python
objects on the loop; in a thread they would hold the GIL all the same). Sorts and
groupings are checked while they are fed: on a 100,000-row table, ``ORDER BY`` and
``GROUP BY`` on an unindexed column (17-94 ms to completion) were aborted after
2.06-2.11 ms. What the handler cannot cut short is a single long instruction or a
slow page read from disk; the OS page cache makes the latter rare.

Writes in a thread
------------------

Anything not a plain read (INSERT/UPDATE/DELETE, with or without RETURNING, DDL,
PRAGMA) runs in a worker thread from the start. Not because repeating it would be
unsafe: an autocommit write interrupted at any instruction is rolled back entirely,
also one with RETURNING after its first step (measured: 1,000 rows inserted with
RETURNING, interrupted while the rows were being returned → 0 rows in the table), and
one that meets a lock with ``busy_timeout = 0`` made no change. But a commit writes the
journal and, with ``synchronous`` FULL or NORMAL in rollback-journal mode, ``fsync``\\ s;
in WAL mode every ~1000 pages a commit also checkpoints. That is I/O of unbounded
latency that the progress handler cannot interrupt, and it must not stall the loop.
RETURNING rows come back like a read's (sqliteodbc drops them; this driver does not).
A write with RETURNING that is cut short by ``max_rows`` still commits all its rows:
resetting the statement early completes it.

Timeouts
--------

Inline, the progress handler's deadline is ``min(start + budget, start + timeout)``;
when it is the statement's own deadline that passed, the caller gets
``StatementTimeout`` without a second attempt. In the thread, a loop timer
(``loop.call_later``) calls ``conn.interrupt()`` at the deadline, and again every
``REFIRE_S`` while the worker still runs (``sqlite3_interrupt`` is a no-op when no
statement is running yet, e.g. when the timer beats the worker to the statement). The
busy wait of a threaded statement is ``min(tenant Timeout, timeout_s)``, because an
interrupt does not end a busy wait. ``backstop_delay`` after the deadline the caller
stops waiting regardless (a worker stuck in file I/O): the connection is *orphaned*,
the worker closes it when it returns, and its pool slot stays taken until then.
Either way the caller gets ``StatementTimeout`` with ``details["timeout_ms"]``; an
interrupted statement leaves the connection usable (the next statement on it runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from typing import Protocol, TypeVar, cast

from proxy.drivers.base import TYPE_NAMES, ResultColumn, ResultSet, empty_result
from proxy.drivers.sqlite.classify import is_read_only
from proxy.drivers.sqlite.errors import SQLITE_INTERRUPT, code_of, is_busy, translate
from proxy.drivers.sqlite.pool import PooledConnection
from proxy.errors import ProxyError, StatementTimeout

__all__ = [
    "INLINE_BUDGET_S",
    "PROGRESS_EVERY",
    "ExecutionStats",
    "StatementHop",
    "backstop_delay",
    "check_limits",
    "execute",
    "run_statement",
    "set_busy_timeout",
]

T = TypeVar("T")

INLINE_BUDGET_S = 0.002
"""How long a read may run on the loop before it is moved to a worker thread."""
PROGRESS_EVERY = 1000
"""VM instructions between progress-handler calls: 30-60 µs of SQLite work on the test
box (17-34 instructions/µs counting rows of a recursive CTE), so the budget is
overshot by about that much, and the handler's own cost (~0.1 µs a call) is under 0.5%
of a long statement."""
REFIRE_S = 0.05
"""Interval of repeated interrupts while a timed-out worker has not returned."""

_ERRORS = (sqlite3.Error, sqlite3.Warning, OverflowError)
_SEQUENCES = (list, tuple)
_FETCH_CHUNK = 1000
_INF = math.inf
_TYPE_OF: dict[type, str | None] = {**TYPE_NAMES, type(None): None}
"""``None`` marks a NULL: the column's type comes from a later row."""
_COLUMNS: dict[str, dict[str, ResultColumn]] = {}
"""Shared ``ResultColumn`` instances by name and type: building the frozen dataclass
costs about 1 µs, two lookups a tenth of that, and an 800-column result needs 800 per
request. Bounded by clearing (``_COLUMNS_MAX`` names, about 0.5 KB each); names are
the caller's aliases too, so long ones are not kept."""
_COLUMNS_MAX = 8192
_COLUMN_NAME_MAX = 128


class StatementHop(Protocol):
    """The driver's thread hop; ``abandon=True`` lets a cancelled caller stop waiting."""

    def __call__(self, fn: Callable[[], T], /, *, abandon: bool = False) -> Awaitable[T]: ...


@dataclass(slots=True)
class ExecutionStats:
    """Where statements ran; the driver's ``execution_stats()`` reports these counts."""

    inline: int = 0
    """Statements that completed inline on the loop."""
    threaded: int = 0
    """Statements that ran in a worker thread (writes, and retried reads)."""
    retried_budget: int = 0
    """Reads aborted inline when the budget was spent, then run in a thread."""
    retried_busy: int = 0
    """Reads that met a lock inline, then waited for it in a thread."""
    timeouts: int = 0
    orphaned: int = 0
    """Threaded statements whose caller stopped waiting (cancelled, or the backstop)."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _InlineAbort(Exception):
    """The inline attempt stopped without a verdict: budget spent or a lock met."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__("inline attempt aborted")
        self.cause = cause


def check_limits(timeout_s: float, max_rows: int) -> None:
    if not (timeout_s > 0) or math.isinf(timeout_s):
        raise ValueError(f"timeout_s must be finite and > 0, got {timeout_s!r}")
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")


def backstop_delay(timeout_s: float) -> float:
    """How long after the deadline the caller stops waiting for a worker (see module)."""
    return min(2.0, 0.25 + timeout_s * 0.1)


async def execute(
    conn: PooledConnection,
    hop: StatementHop,
    sql: str,
    params: Sequence[object],
    *,
    timeout_s: float,
    max_rows: int,
    count_all_rows: bool,
    inline_budget_s: float,
    stats: ExecutionStats,
) -> ResultSet:
    """Run ``sql`` on ``conn``; every failure leaves as a ``ProxyError``."""
    check_limits(timeout_s, max_rows)
    conn.note_statement(sql)
    start = time.monotonic()
    deadline = start + timeout_s
    if inline_budget_s > 0 and is_read_only(sql):
        stop_at = min(start + inline_budget_s, deadline)
        try:
            result = _run_inline(
                conn,
                sql,
                params,
                max_rows=max_rows,
                count_all_rows=count_all_rows,
                stop_at=stop_at,
            )
        except _InlineAbort as abort:
            if conn.stopped and stop_at >= deadline:
                stats.timeouts += 1
                raise _timeout(abort.cause, timeout_s) from abort.cause
            if conn.stopped:
                stats.retried_budget += 1
            else:
                stats.retried_busy += 1
        else:
            stats.inline += 1
            return result
    stats.threaded += 1
    return await _run_threaded(
        conn,
        hop,
        sql,
        params,
        max_rows=max_rows,
        count_all_rows=count_all_rows,
        deadline=deadline,
        timeout_s=timeout_s,
        stats=stats,
    )


def set_busy_timeout(conn: PooledConnection, milliseconds: int) -> None:
    """Set the connection's busy timeout unless it already has this value."""
    if conn.busy_ms == milliseconds:
        return
    conn.busy_ms = -1  # unknown until the pragma has run
    # An integer formatted by us: no injection, and PRAGMA takes no binds.
    conn.raw.execute(f"PRAGMA busy_timeout = {int(milliseconds)}").close()
    conn.busy_ms = milliseconds


def run_statement(
    raw: sqlite3.Connection,
    sql: str,
    params: Sequence[object],
    max_rows: int,
    count_all_rows: bool,
) -> ResultSet:
    """Execute and collect at most ``max_rows + 1`` rows; sqlite3's errors propagate."""
    cursor = raw.cursor()
    try:
        cursor.execute(sql, params if type(params) in _SEQUENCES else list(params))
        return _collect(cursor, max_rows, count_all_rows)
    finally:
        # Resets the statement: a result cut short stops here, and no statement stays
        # active for a late interrupt to hit (SQLite clears the flag once none is).
        try:  # noqa: SIM105 - contextlib.suppress costs about 1 µs per call
            cursor.close()
        except sqlite3.Error:
            pass


def _run_inline(
    conn: PooledConnection,
    sql: str,
    params: Sequence[object],
    *,
    max_rows: int,
    count_all_rows: bool,
    stop_at: float,
) -> ResultSet:
    raw = conn.raw
    conn.stopped = False
    conn.stop_at = stop_at
    try:
        if conn.busy_ms != 0:
            set_busy_timeout(conn, 0)
        if not conn.progress_on:
            raw.set_progress_handler(conn.progress, PROGRESS_EVERY)
            conn.progress_on = True
        return run_statement(raw, sql, params, max_rows, count_all_rows)
    except _ERRORS as exc:
        if conn.stopped or is_busy(exc):
            raise _InlineAbort(exc) from exc
        raise translate(exc) from exc
    finally:
        conn.stop_at = _INF


async def _run_threaded(
    conn: PooledConnection,
    hop: StatementHop,
    sql: str,
    params: Sequence[object],
    *,
    max_rows: int,
    count_all_rows: bool,
    deadline: float,
    timeout_s: float,
    stats: ExecutionStats,
) -> ResultSet:
    raw = conn.raw
    if conn.progress_on:
        # In a worker the handler would take the GIL every PROGRESS_EVERY instructions;
        # the loop timer bounds the statement instead.
        raw.set_progress_handler(None, 0)
        conn.progress_on = False
    limit_ms = max(0, min(conn.pool.spec.busy_timeout_ms, math.ceil(timeout_s * 1000)))
    ticket = _Ticket()

    def job() -> ResultSet:
        with conn.lock:
            if ticket.state is not _PENDING:
                return empty_result()  # abandoned before it started: not ours any more
            ticket.state = _RUNNING
        try:
            # A worker that starts late must not wait for a lock past the deadline; a
            # slack of 100 ms keeps the usual value, and its pragma, cached.
            left_ms = int((deadline - time.monotonic()) * 1000)
            set_busy_timeout(conn, max(0, left_ms) if left_ms < limit_ms - 100 else limit_ms)
            return run_statement(raw, sql, params, max_rows, count_all_rows)
        finally:
            with conn.lock:
                orphaned = ticket.state is _ORPHANED
                ticket.state = _DONE
            if orphaned:
                conn.pool.discard(conn)

    conn.fired = False
    now = time.monotonic()
    interrupter = _Interrupter(conn, ticket, deadline - now, deadline + backstop_delay(timeout_s))
    try:
        return await hop(job, abandon=True)
    except _ERRORS as exc:
        if conn.fired and code_of(exc) == SQLITE_INTERRUPT:
            stats.timeouts += 1
            raise _timeout(exc, timeout_s) from exc
        raise translate(exc) from exc
    except asyncio.CancelledError:
        _abandon(conn, ticket, stats)
        # Our backstop's cancel, and nobody else's: a timeout, as asyncio.timeout does it.
        if interrupter.backstopped and interrupter.task.uncancel() == 0:
            stats.timeouts += 1
            error = StatementTimeout(
                "the statement was cancelled: it ran past its timeout",
                timeout_ms=round(timeout_s * 1000),
            )
            error.connection_unusable = conn.orphaned
            raise error from None
        raise
    except BaseException:
        _abandon(conn, ticket, stats)
        raise
    finally:
        interrupter.cancel()


_PENDING, _RUNNING, _ABANDONED, _ORPHANED, _DONE = (
    "pending",
    "running",
    "abandoned",
    "orphaned",
    "done",
)


class _Ticket:
    """Who owns a connection handed to a worker, decided under ``conn.lock``.

    pending → running → done is the normal life. A caller that stops waiting
    (cancelled, or the backstop) turns *pending* into *abandoned*: the job will not
    touch the connection, which stays the caller's. It turns *running* into
    *orphaned*: the worker closes the connection when the statement returns, and the
    caller must not give it back to the pool.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = _PENDING


def _abandon(conn: PooledConnection, ticket: _Ticket, stats: ExecutionStats) -> None:
    with conn.lock:
        if ticket.state is _PENDING:
            ticket.state = _ABANDONED
            return
        if ticket.state is not _RUNNING:
            return
        ticket.state = _ORPHANED
        conn.orphaned = True
    stats.orphaned += 1
    with contextlib.suppress(sqlite3.Error):
        conn.raw.interrupt()


class _Interrupter:
    """The loop timer of a threaded statement (see the module's Timeouts).

    At the deadline it interrupts the statement, then again every ``REFIRE_S`` while
    the worker has not returned; at the backstop it cancels the waiting task. One
    timer handle at a time: ``anyio.fail_after`` for the backstop cost about 40 µs of
    CPU per statement more than this (measured with ``proxy.drivers.sqlite.bench``'s
    setup).
    """

    __slots__ = ("backstop_at", "backstopped", "conn", "handle", "loop", "task", "ticket")

    def __init__(
        self, conn: PooledConnection, ticket: _Ticket, delay: float, backstop_at: float
    ) -> None:
        self.conn = conn
        self.ticket = ticket
        self.backstop_at = backstop_at
        self.backstopped = False
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("the sqlite3 driver runs statements inside an asyncio task")
        self.task = task
        self.handle = self.loop.call_later(max(0.0, delay), self.fire)

    def fire(self) -> None:
        conn = self.conn
        conn.fired = True
        with contextlib.suppress(sqlite3.Error):
            conn.raw.interrupt()
        if self.ticket.state not in (_PENDING, _RUNNING):
            return
        left = self.backstop_at - time.monotonic()
        if left > 0:
            self.handle = self.loop.call_later(min(REFIRE_S, left), self.fire)
        elif not self.backstopped:
            self.backstopped = True
            self.task.cancel()

    def cancel(self) -> None:
        self.handle.cancel()


def _timeout(cause: BaseException, timeout_s: float) -> ProxyError:
    error = translate(cause, timed_out=True)
    error.details["timeout_ms"] = round(timeout_s * 1000)
    return error


def _collect(cursor: sqlite3.Cursor, max_rows: int, count_all_rows: bool) -> ResultSet:
    description = cursor.description
    if description is None:
        # No result set: a write without RETURNING, or DDL (-1).
        return empty_result(cursor.rowcount)
    fetched = cursor.fetchmany(max_rows + 1)
    truncated = len(fetched) > max_rows
    rows = [list(row) for row in (fetched[:max_rows] if truncated else fetched)]
    count = len(rows)
    if count_all_rows and truncated:
        count = len(fetched)
        while chunk := cursor.fetchmany(_FETCH_CHUNK):
            count += len(chunk)
    return ResultSet(
        columns=_columns(description, rows),
        rows=rows,
        row_count=count,
        truncated=truncated,
    )


def _columns(
    description: Sequence[Sequence[object]], rows: list[list[object]]
) -> list[ResultColumn]:
    """Names from the description, types from the first non-NULL value of each column.

    sqlite3's description carries names only (SQLite types values, not columns); a
    column that is NULL in every returned row, or a result without rows, is
    ``unknown``.
    """
    if rows:
        found = [_TYPE_OF.get(type(value), "unknown") for value in rows[0]]
        if None in found:
            _types_from_later_rows(found, rows)
        types = cast("list[str]", found)
    else:
        types = ["unknown"] * len(description)
    columns: list[ResultColumn] = []
    for entry, type_name in zip(description, types, strict=True):
        name = str(entry[0])
        by_type = _COLUMNS.get(name)
        if by_type is None:
            if len(name) > _COLUMN_NAME_MAX:
                columns.append(ResultColumn(name, type_name))
                continue
            if len(_COLUMNS) >= _COLUMNS_MAX:
                _COLUMNS.clear()
            by_type = _COLUMNS[name] = {}
        column = by_type.get(type_name)
        if column is None:
            column = by_type[type_name] = ResultColumn(name, type_name)
        columns.append(column)
    return columns


def _types_from_later_rows(types: list[str | None], rows: list[list[object]]) -> None:
    """Fill the ``None`` entries of ``types`` (NULL in the first row) from later rows."""
    for row in rows[1:]:
        missing = False
        for i, type_name in enumerate(types):
            if type_name is None:
                value = row[i]
                if value is None:
                    missing = True
                else:
                    types[i] = _TYPE_OF.get(type(value), "unknown")
        if not missing:
            break
    for i, type_name in enumerate(types):
        if type_name is None:
            types[i] = "unknown"
