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
* SQL Server: ODBC's query timeout (``connection.timeout``, whole seconds, applied to
  the statements of that connection; the driver raises HYT00) set when it changes,
  plus the watchdog at the exact deadline.

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
import decimal
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import pyodbc

from proxy.errors import BackendRejected, StatementTimeout
from proxy.pool import PooledConnection
from proxy.sqlstate import translate
from proxy.watchdog import Handle, Watchdog

__all__ = ["ResultColumn", "ResultSet", "column_type", "execute"]

BACKENDS = ("postgresql", "sqlite", "sqlserver")

# Session keys in PooledConnection.session.
_PG_TIMEOUT_KEY = "statement_timeout_ms"
_MSSQL_TIMEOUT_KEY = "query_timeout_s"

_TYPE_NAMES: dict[type, str] = {
    int: "integer",
    decimal.Decimal: "decimal",
    float: "number",
    str: "string",
    bool: "boolean",
    datetime.date: "date",
    datetime.datetime: "datetime",
    datetime.time: "time",
    bytes: "binary",
    bytearray: "binary",
    memoryview: "binary",
    uuid.UUID: "uuid",
}


@dataclass(frozen=True, slots=True)
class ResultColumn:
    name: str
    type: str
    """A stable type name: integer, decimal, number, string, boolean, date, datetime,
    time, binary, uuid or unknown."""


@dataclass(frozen=True, slots=True)
class ResultSet:
    columns: list[ResultColumn]
    rows: list[list[object]]
    row_count: int
    """Rows returned for a result set; rows affected (``cursor.rowcount``, -1 when the
    driver does not know) for a statement without one."""
    truncated: bool
    """True when the statement had more than ``max_rows`` rows."""


def column_type(python_type: object) -> str:
    """The stable name of a ``cursor.description`` type code.

    The driver decides the Python type: psqlODBC reports ``uuid`` columns as ``str``
    (so "string"), and booleans as ``str`` unless the connection string says
    ``BoolsAsChar=0``; sqliteodbc reports ``DECIMAL`` columns as ``str`` and
    ``NUMERIC`` as ``float``.
    """
    if isinstance(python_type, type):
        return _TYPE_NAMES.get(python_type, "unknown")
    return "unknown"


def backstop_delay(timeout_s: float) -> float:
    """How long after the server-side timeout the watchdog cancels (PostgreSQL).

    Long enough that the server's own 57014 normally wins (a clean error and no
    cancel request on the wire), short enough to matter.
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
) -> ResultSet:
    """Run ``sql`` with ``params`` on ``conn``; errors come as ``ProxyError`` subclasses.

    ``count_all_rows``: ``row_count`` counts every row of the result, not only those
    returned (a write's OUTPUT/RETURNING rows are the rows it changed).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    if not (timeout_s > 0) or math.isinf(timeout_s):
        raise ValueError(f"timeout_s must be finite and > 0, got {timeout_s!r}")
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")
    raw = conn.raw
    cancel_after = apply_timeout(conn, backend, timeout_s)
    try:
        cursor = raw.cursor()
    except pyodbc.Error as exc:
        raise translate(exc) from exc
    handle: Handle | None = None
    try:
        handle = watchdog.watch(cancel_after, cursor.cancel)
        if params:
            cursor.execute(sql, list(params))
        else:
            cursor.execute(sql)
        return _collect(cursor, max_rows, count_all_rows)
    except pyodbc.Error as exc:
        fired = False
        if handle is not None:
            # done() waits for a cancel in flight, so `fired` is final here.
            handle.done()
            fired = handle.fired
        error = translate(exc, timed_out=fired)
        if isinstance(error, StatementTimeout):
            error.details["timeout_ms"] = round(timeout_s * 1000)
        raise error from exc
    except OverflowError as exc:
        # pyodbc cannot bind an integer beyond 64 bits: the caller's value, a 400.
        raise BackendRejected(f"a parameter does not fit the backend's types: {exc}") from exc
    finally:
        if handle is not None:
            handle.done()  # before close(): never cancel a freed statement handle
        # On a dead connection close() may fail too; the pool learns it from the error.
        with contextlib.suppress(pyodbc.Error):
            cursor.close()


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


def _collect(cursor: pyodbc.Cursor, max_rows: int, count_all_rows: bool = False) -> ResultSet:
    description = cursor.description
    if description is None:
        # No result set: an INSERT/UPDATE/DELETE or DDL.
        return ResultSet(columns=[], rows=[], row_count=cursor.rowcount, truncated=False)
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


def _set_query_timeout(conn: PooledConnection, timeout_s: float) -> None:
    seconds = max(1, math.ceil(timeout_s))  # ODBC's query timeout is whole seconds; 0 = none
    if conn.session.get(_MSSQL_TIMEOUT_KEY) == seconds:
        return
    try:
        conn.raw.timeout = seconds
    except pyodbc.Error as exc:
        conn.session.pop(_MSSQL_TIMEOUT_KEY, None)
        raise translate(exc) from exc
    conn.session[_MSSQL_TIMEOUT_KEY] = seconds
