"""Run one statement on a pooled connection, with a timeout that really stops it.

Timeouts, per backend:

* PostgreSQL: ``SET statement_timeout`` on the session, only when it differs from
  what this pooled connection last had (a round trip saved per request). The server
  stops the statement itself (57014) and the session stays usable. psqlODBC rejects
  ODBC's query timeout (HY000, "Couldn't set unsupported connect attribute 113"), so
  there is no driver-side timer. The watchdog calls ``cursor.cancel()`` a little
  later as a backstop for the case the server cannot see, e.g. a stuck network
  (psqlODBC sends the cancel over a new connection, which a partition blocks too, so
  the backstop is best effort; TCP keepalive/user-timeout settings in the connection
  template are what bound a partition).
* SQLite: the watchdog calls ``cursor.cancel()`` at the deadline; sqliteodbc turns it
  into ``sqlite3_interrupt`` and the statement fails with "interrupted" (SQLite code
  9). The connection stays usable.
* SQL Server: the watchdog calls ``cursor.cancel()`` (ODBC ``SQLCancel``: a TDS
  attention) at the exact deadline. SQL Server stops the statement and acknowledges;
  the driver raises HY008 and the session stays usable. A server that does not
  acknowledge in time (Babelfish acts on an attention only when the statement ends;
  a busy or partitioned server cannot) gets a second action ``backstop_delay`` later:
  ``KILL`` of the session from a side connection, guarded by the session's login time
  so that a reused session id is never hit. The session dies, the blocked call returns
  (08S01 / FreeTDS 20017) and the connection is retired; without the permission to
  KILL (``ALTER ANY CONNECTION``) the statement runs on server-side until it ends, and
  the connection is retired all the same. ``SQLCancel`` may itself block until the
  server acknowledges, so it runs on a thread of its own, never on a shared watchdog
  worker that the KILL needs. ODBC's own query timeout (whole seconds) is set well
  past both as a last resort for a server that answers nothing at all (it then gives
  up on the attention and reports HYT00). A timeout that the server did not
  acknowledge (anything but HY008 after our cancel) retires the connection: after an
  unacknowledged attention Microsoft's driver refuses the next statement (08S01),
  FreeTDS reads the previous statement's leftovers.

Rows: ``fetchmany(max_rows + 1)``, so at most one row more than asked for is turned
into Python objects; ``truncated`` says whether that extra row existed. With their
default settings both psqlODBC and sqliteodbc read the whole result into the driver's
memory at ``execute`` time, which ``fetchmany`` cannot bound: that is why reads carry
the row cap in their SQL (``LIMIT ?`` bound to ``max_rows + 1``, see
``rewriter.row_cap`` and ``proxy.service.bind_params``).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import math
import re
import struct
from collections.abc import Sequence

import pyodbc

from proxy import context
from proxy.drivers.base import ResultColumn, ResultSet, column_type, empty_result
from proxy.drivers.odbc.pool import ConnectionPool, PooledConnection
from proxy.drivers.odbc.sqlstate import message_of, sqlstate_of, translate
from proxy.drivers.odbc.watchdog import Handle, Watchdog
from proxy.errors import BackendRejected, ProxyError, StatementTimeout
from tenancy.backends import BackendKind

__all__ = ["apply_timeout", "execute", "forget_session_settings", "prepare_connection"]

log = logging.getLogger(__name__)

BACKENDS = tuple(kind.value for kind in BackendKind)

# Session keys in PooledConnection.session.
# A bytes value binds as varbinary: CONTEXT_INFO's type. Measured on Babelfish, no
# cost within the noise; a DECLARE and two CASTs around it cost 350 µs a statement
# (docs/decisions.md).
_CONTEXT_INFO = "SET CONTEXT_INFO ?; "
_MAX_PARAMS = 2100  # SQL Server's: a statement at it has no room for the label's
_PG_TIMEOUT_KEY = "statement_timeout_ms"
_MSSQL_TIMEOUT_KEY = "query_timeout_s"
_MSSQL_SESSION_KEY = "session"  # (session id, login time as text) or None: cannot KILL

# The session's id and login time, read once per connection: together they name this
# session and no later one that reuses the id. Every session may read its own row.
_MSSQL_SESSION_SQL = (
    "SELECT @@SPID, CONVERT(varchar(30), login_time, 121) "
    "FROM sys.dm_exec_sessions WHERE session_id = @@SPID"
)
_LOGIN_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]{8,12}")
_MSSQL_LAST_RESORT_S = 5
"""Seconds past the KILL backstop before ODBC's own query timeout gives up."""

# SQL Server's datetimeoffset (SQL_SS_TIMESTAMPOFFSET): pyodbc has no conversion of its
# own and raises HY106 for the whole row. Both Microsoft ODBC 18 and FreeTDS deliver the
# driver's SQL_SS_TIMESTAMPOFFSET_STRUCT: six SMALLINTs (year to second), the fraction
# in nanoseconds (UINT), the offset's hours and minutes (SMALLINTs), little-endian.
_SQL_SS_TIMESTAMPOFFSET = -155
_TIMESTAMPOFFSET = struct.Struct("<6hI2h")


def _datetimeoffset(value: bytes | None) -> datetime.datetime | None:
    if value is None:
        return None
    year, month, day, hour, minute, second, nanos, tz_h, tz_m = _TIMESTAMPOFFSET.unpack(value)
    offset = datetime.timezone(datetime.timedelta(hours=tz_h, minutes=tz_m))
    return datetime.datetime(year, month, day, hour, minute, second, nanos // 1000, offset)


def prepare_connection(raw: pyodbc.Connection, backend: str) -> None:
    """Set up a new connection of ``backend`` for ``execute`` (the pool's connect calls it)."""
    if backend == "sqlserver":
        raw.add_output_converter(_SQL_SS_TIMESTAMPOFFSET, _datetimeoffset)


def backstop_delay(timeout_s: float) -> float:
    """How long after the first stop the watchdog acts again.

    PostgreSQL: from the server-side timeout to ``cursor.cancel()``, long enough that
    the server's own 57014 normally wins (a clean error and no cancel request on the
    wire). SQL Server: from the cancel to ``KILL``, long enough for a server that
    honours attentions to acknowledge one. Short enough to matter in both.
    """
    return min(2.0, 0.25 + timeout_s * 0.1)


def execute(
    conn: PooledConnection,
    *,
    backend: str,
    sql: str,
    params: Sequence[object],
    timeout_s: float,
    max_rows: int,
    watchdog: Watchdog,
    count_all_rows: bool = False,
    label: bool = False,
) -> ResultSet:
    """Run ``sql`` with ``params`` on ``conn``; errors come as ``ProxyError`` subclasses.

    ``count_all_rows``: ``row_count`` counts every row of the result, not only those
    returned (a write's OUTPUT/RETURNING rows are the rows it changed).

    ``label``: on SQL Server, the request being served (``proxy.context``) is set as
    the session's ``CONTEXT_INFO`` in the same batch, ahead of the statement, where a
    DBA sees it beside the running statement (``sys.dm_exec_requests.context_info``).
    A parameter rather than a comment or a literal: the batch's text, which SQL
    Server's plan cache is keyed by, stays the same for every request.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    if not (timeout_s > 0) or math.isinf(timeout_s):
        raise ValueError(f"timeout_s must be finite and > 0, got {timeout_s!r}")
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")
    raw = conn.raw
    cancel_after = apply_timeout(conn, backend, timeout_s)
    sqlserver = backend == "sqlserver"
    sql, params = _labelled(sql, params) if label and sqlserver else (sql, params)
    session = _mssql_session(conn) if sqlserver else None
    try:
        cursor = raw.cursor()
    except pyodbc.Error as exc:
        raise translate(exc) from exc
    handle: Handle | None = None
    kill: Handle | None = None
    try:
        # SQLite's cancel is an interrupt, done at once; any other opens or writes to a
        # socket and may block on a silent server: on a thread of its own, so that it
        # never holds up another server's deadline.
        handle = watchdog.watch(
            cancel_after, functools.partial(_cancel, cursor), own_thread=backend != "sqlite"
        )
        if session is not None and conn.pool is not None:
            kill = watchdog.watch(
                cancel_after + backstop_delay(timeout_s),
                functools.partial(_kill_session, conn.pool, *session),
            )
        if params:
            cursor.execute(sql, list(params))
        else:
            cursor.execute(sql)
        return _collect(cursor, max_rows, count_all_rows, drain=sqlserver)
    except pyodbc.Error as exc:
        fired = False
        if handle is not None:
            # done() waits for a cancel in flight, so `fired` is final here.
            handle.done()
            fired = handle.fired
        if kill is not None:
            kill.done()
        error = translate(exc, timed_out=fired)
        if isinstance(error, StatementTimeout):
            error.details["timeout_ms"] = round(timeout_s * 1000)
            if sqlserver and (sqlstate_of(exc) != "HY008" or (kill is not None and kill.fired)):
                # Only HY008 after our cancel says the server acknowledged the attention.
                error.connection_unusable = True
        raise error from exc
    except OverflowError as exc:
        # pyodbc cannot bind an integer beyond 64 bits: the caller's value, a 400.
        raise BackendRejected(f"a parameter does not fit the backend's types: {exc}") from exc
    finally:
        # Before close(): never cancel a freed statement handle.
        if handle is not None:
            handle.done()
        if kill is not None:
            kill.done()
        # On a dead connection close() may fail too; the pool learns it from the error.
        with contextlib.suppress(pyodbc.Error):
            cursor.close()


def _labelled(sql: str, params: Sequence[object]) -> tuple[str, Sequence[object]]:
    """``sql`` and ``params`` with the request's ``CONTEXT_INFO`` first (see ``execute``)."""
    ctx = context.current()
    if ctx is None or len(params) >= _MAX_PARAMS:
        return sql, params
    return _CONTEXT_INFO + sql, [ctx.label(), *params]


def apply_timeout(conn: PooledConnection, backend: str, timeout_s: float) -> float:
    """Make the session stop statements after ``timeout_s``; return when to cancel.

    A pooled session keeps what was last set, so whoever runs anything on a pooled
    connection (catalog reads included) sets its own timeout first.
    """
    if backend == "postgresql":
        _set_pg_statement_timeout(conn, timeout_s)
        return timeout_s + backstop_delay(timeout_s)
    if backend == "sqlserver":
        _set_query_timeout(conn, timeout_s)
    return timeout_s


def forget_session_settings(conn: PooledConnection) -> None:
    """Forget what was applied to the session: a rollback may have undone it.

    PostgreSQL undoes a ``SET`` made inside a transaction that rolls back; the next
    statement on the connection then sets its timeout again.
    """
    conn.session.pop(_PG_TIMEOUT_KEY, None)


def _collect(
    cursor: pyodbc.Cursor, max_rows: int, count_all_rows: bool = False, *, drain: bool = False
) -> ResultSet:
    description = cursor.description
    if description is None:
        # No result set: an INSERT/UPDATE/DELETE or DDL.
        count = cursor.rowcount
        if drain:
            # FreeTDS reports the error of a batch's later statement (the custom-field
            # drop is a batch) only from SQLMoreResults; Microsoft's driver at execute.
            while cursor.nextset():
                pass
        return empty_result(count)
    columns = [ResultColumn(str(d[0]), column_type(d[1])) for d in description]
    fetched = cursor.fetchmany(max_rows + 1)
    truncated = len(fetched) > max_rows
    rows = [list(row) for row in fetched[:max_rows]]
    count = len(rows)
    if count_all_rows and truncated:
        count = len(fetched)
        while chunk := cursor.fetchmany(1000):
            count += len(chunk)
    return ResultSet(columns=columns, rows=rows, row_count=count, truncated=truncated)


def _set_pg_statement_timeout(conn: PooledConnection, timeout_s: float) -> None:
    milliseconds = max(1, math.ceil(timeout_s * 1000))
    if conn.session.get(_PG_TIMEOUT_KEY) == milliseconds:
        return
    try:
        # An integer we formatted ourselves: no injection, and SET takes no binds.
        conn.raw.execute(f"SET statement_timeout = {milliseconds}").close()
    except pyodbc.Error as exc:
        conn.session.pop(_PG_TIMEOUT_KEY, None)
        raise translate(exc) from exc
    conn.session[_PG_TIMEOUT_KEY] = milliseconds


def _mssql_session(conn: PooledConnection) -> tuple[int, str] | None:
    """This connection's (session id, login time), read on first use; ``None`` if unknown."""
    if _MSSQL_SESSION_KEY in conn.session:
        return conn.session[_MSSQL_SESSION_KEY]  # type: ignore[return-value]
    session: tuple[int, str] | None = None
    try:
        row = conn.raw.execute(_MSSQL_SESSION_SQL).fetchone()
    except pyodbc.Error as exc:
        raise translate(exc) from exc
    if row is not None and isinstance(row[0], int) and _LOGIN_TIME_RE.fullmatch(str(row[1])):
        session = (int(row[0]), str(row[1]))
    conn.session[_MSSQL_SESSION_KEY] = session
    return session


def _cancel(cursor: pyodbc.Cursor) -> None:
    """The watchdog's first action. A cancel fails for expected reasons (the statement
    finished meanwhile, the connection broke): one line then, not an error's traceback."""
    try:
        cursor.cancel()
    except pyodbc.Error as exc:
        log.warning("a statement's cancel failed: %s", message_of(exc))


def _kill_session(pool: ConnectionPool, session_id: int, login_time: str) -> None:
    """Stop a session whose statement ignored its cancel (the watchdog's second action)."""
    # Both values were read from the server and checked: an int and a timestamp's digits.
    sql = (
        "IF EXISTS (SELECT 1 FROM sys.dm_exec_sessions WHERE session_id = "
        f"{session_id} AND CONVERT(varchar(30), login_time, 121) = '{login_time}') "
        f"KILL {session_id}"
    )
    try:
        with pool.side_connection() as side:
            side.timeout = _MSSQL_LAST_RESORT_S
            side.execute(sql).close()
    except (pyodbc.Error, ProxyError) as exc:
        detail = exc.message if isinstance(exc, ProxyError) else message_of(exc)
        log.warning("pool %s: could not KILL a session past its deadline: %s", pool.name, detail)
    else:
        log.warning("pool %s: killed a session whose statement ignored its cancel", pool.name)


def _set_query_timeout(conn: PooledConnection, timeout_s: float) -> None:
    # A last resort only (see the module): the watchdog's cancel and KILL come first.
    seconds = math.ceil(timeout_s + backstop_delay(timeout_s)) + _MSSQL_LAST_RESORT_S
    if conn.session.get(_MSSQL_TIMEOUT_KEY) == seconds:
        return
    try:
        conn.raw.timeout = seconds
    except pyodbc.Error as exc:
        conn.session.pop(_MSSQL_TIMEOUT_KEY, None)
        raise translate(exc) from exc
    conn.session[_MSSQL_TIMEOUT_KEY] = seconds
