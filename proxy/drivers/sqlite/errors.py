"""The one place where Python's sqlite3 errors become tenantgate errors.

SQLite's own errors carry its result code (``sqlite_errorcode``, Python 3.11+); the
shared table ``proxy.drivers.errors.kind_of_sqlite`` reads the message first (it names
"no such column", "database is locked"...), then the code's low byte, exactly as the
ODBC path reads sqliteodbc's ``(code)`` trailer. Errors Python's sqlite3 raises itself
carry no code and are read by message and class:

======================================  =========================  =======  =============
signal                                  tenantgate error           retire   why
======================================  =========================  =======  =============
our deadline passed (``timed_out``:     ``StatementTimeout``       no       interrupted;
the loop timer's ``interrupt()`` or     (504), ``timeout_ms``               the statement
the inline deadline fired)                                                  rolled back
SQLITE_BUSY / SQLITE_LOCKED             ``BackendUnavailable``     no       another
("database is locked")                  retry_after 0.5 s                   connection's
                                                                            lock
SQLITE_CONSTRAINT                       ``ConstraintViolation``    no
"no such column" / "no such table"      ``BackendObjectMissing``   no       stale metadata
SQLITE_ERROR (syntax...), MISMATCH,     ``BackendRejected`` (400)  no       the statement
RANGE, TOOBIG, READONLY                                                     is at fault
sqlite3.ProgrammingError without a      ``BackendRejected``        no       the caller's
code (wrong number of bindings, a                                           values
parameter type sqlite3 cannot bind,
more than one statement), sqlite3.
Warning, ``OverflowError`` (an int
beyond 64 bits)
"Could not decode to UTF-8 column"      ``BackendRejected``        no       stored bytes
                                        (message without the text)          are not text
"Cannot operate on a closed database"   ``ConnectionLost``         yes
IOERR, CORRUPT, NOTADB, FULL,           ``BackendUnavailable``     yes      the file is
CANTOPEN, NOMEM, ABORT                  retry_after 1 s                     in trouble
SQLITE_INTERRUPT not ours (shutdown)    ``BackendUnavailable``     no
anything else without a code            by class: Integrity →      no
                                        constraint, Programming/
                                        Data/Interface/NotSupported
                                        → rejected, else
                                        unavailable
======================================  =========================  =======  =============

"retire" sets ``connection_unusable``: the pool closes that connection instead of
lending it again. A fresh one costs about 0.2 ms, and the file may have been replaced
or repaired meanwhile. Messages go through ``clean_message``; the decode error's text
is replaced, because sqlite3 quotes the offending value in it.
"""

from __future__ import annotations

import sqlite3

from proxy.drivers.errors import Kind, clean_message, error_for, kind_of_sqlite
from proxy.errors import BackendRejected, ProxyError

__all__ = [
    "SQLITE_BUSY",
    "SQLITE_INTERRUPT",
    "SQLITE_LOCKED",
    "code_of",
    "is_busy",
    "kind_of",
    "translate",
]

SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_INTERRUPT = 9

_BROKEN_MESSAGES = ("cannot operate on a closed database",)
_DECODE_MESSAGE = "could not decode to utf-8"


def code_of(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc``, or ``None`` when Python raised it."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another connection holds a lock (worth waiting for)."""
    return code_of(exc) in (SQLITE_BUSY, SQLITE_LOCKED)


def kind_of(exc: BaseException) -> Kind:
    """What ``exc`` (a sqlite3 error, sqlite3.Warning or OverflowError) means."""
    if isinstance(exc, OverflowError):
        return Kind.REJECTED
    message = str(exc)
    lowered = message.lower()
    if any(m in lowered for m in _BROKEN_MESSAGES):
        return Kind.BROKEN
    if _DECODE_MESSAGE in lowered:
        return Kind.REJECTED
    code = getattr(exc, "sqlite_errorcode", None)
    kind = kind_of_sqlite(code if isinstance(code, int) else None, message)
    if kind is not None:
        return kind
    if isinstance(exc, sqlite3.IntegrityError):
        return Kind.CONSTRAINT
    if isinstance(
        exc,
        sqlite3.ProgrammingError
        | sqlite3.DataError
        | sqlite3.InterfaceError
        | sqlite3.NotSupportedError
        | sqlite3.Warning,
    ):
        return Kind.REJECTED
    return Kind.UNAVAILABLE


def translate(exc: BaseException, *, timed_out: bool = False) -> ProxyError:
    """The tenantgate error for ``exc``, with ``__cause__`` set to it.

    Raise it with ``raise translate(e, timed_out=...) from e``.
    """
    kind = kind_of(exc)
    message = str(exc)
    if isinstance(exc, OverflowError):
        error: ProxyError = BackendRejected(
            f"a parameter does not fit SQLite's 64-bit integers: {clean_message(message)}"
        )
    elif not timed_out and _DECODE_MESSAGE in message.lower():
        error = BackendRejected("a text value in the result is not valid UTF-8")
    else:
        cleaned = clean_message(message) or "the SQLite library reported an error"
        error = error_for(kind, cleaned, timed_out=timed_out)
        if not timed_out and kind in (Kind.UNAVAILABLE, Kind.BROKEN):
            error.connection_unusable = True
    error.__cause__ = exc
    return error
