"""How tenancy gets a database connection: it is handed one, it never owns a pool.

A ``ConnectionSource`` is a callable that returns a context manager yielding a DB-API
connection (the proxy passes its pool's ``connection``; tests and the command line
pass ``odbc_source(...)``, which opens and closes a real connection per use).

Database errors raised inside a source (while connecting or while running a statement)
are translated by the tenancy module that used it, in one place per module, into
``ControllerUnavailable`` or ``MetadataUnavailable``. Which exception classes count as
database errors is ``DB_ERRORS`` unless the caller names others (for example
``(pyodbc.Error, psycopg.Error)``). Any other exception, such as a pool's own
"saturated" error, propagates unchanged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import pyodbc

ConnectionSource = Callable[[], AbstractContextManager[Any]]
"""A callable returning a context manager that yields a DB-API connection."""

_STATE = re.compile(r"[0-9A-Z]{5}")

DB_ERRORS: tuple[type[BaseException], ...] = (pyodbc.Error,)
"""The exception classes that mean "the database could not answer"."""


def odbc_source(
    connection_string: str, *, autocommit: bool = True, timeout: int = 5
) -> ConnectionSource:
    """A source that opens a fresh pyodbc connection per use and closes it afterwards.

    ``timeout`` is the login timeout in seconds. Meant for tests, tools and the
    embedded single-file controller, not for request paths (use a pool there).
    """

    @contextlib.contextmanager
    def connection() -> Iterator[Any]:
        conn = pyodbc.connect(connection_string, autocommit=autocommit, timeout=timeout)
        try:
            yield conn
        finally:
            conn.close()

    return connection


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a DB-API error when it carries one; the one reader of it.

    psycopg has ``sqlstate``; pyodbc puts the driver's state first in ``args`` (its own
    errors carry only a message, or ``(message, "HY000")`` the other way round).
    """
    state = getattr(error, "sqlstate", None)  # psycopg
    if isinstance(state, str) and state:
        return state
    for arg in getattr(error, "args", ())[:2]:
        if isinstance(arg, str) and _STATE.fullmatch(arg):
            return arg
    return None


def fetch(
    conn: Any, sql: str, params: Sequence[Any] = (), *, limit: int | None = None
) -> list[Sequence[Any]]:
    """Runs ``sql`` on a cursor of ``conn`` and returns all its rows, or at most ``limit``.

    ``params`` are bound as given (``?`` placeholders); without any, ``sql`` is executed
    alone. The cursor is closed afterwards; database errors propagate.
    """
    cursor = conn.cursor()
    try:
        if params:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql)
        rows: list[Sequence[Any]] = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
        return rows
    finally:
        cursor.close()
