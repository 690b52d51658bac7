"""psycopg's errors as tenantgate errors: the one table for this driver.

A server error carries a SQLSTATE, read by ``proxy.drivers.errors.kind_of_sqlstate``
like every other driver's. What has none was raised by psycopg or libpq on the client:

================================================  ============  =========================
psycopg error without a SQLSTATE                  kind          why
================================================  ============  =========================
OperationalError, InterfaceError                  BROKEN        the connection failed or
                                                                was closed under us
DataError, ProgrammingError, NotSupportedError    REJECTED      a parameter psycopg cannot
                                                                send (a JSON object, a NUL
                                                                in text, a mixed list) or
                                                                a marker/parameter count
                                                                mismatch: the request's
IntegrityError                                    CONSTRAINT
anything else                                     BROKEN        unknown: retire the
                                                                connection to be safe
================================================  ============  =========================

psycopg's dumpers also fail on some values with a plain TypeError or ValueError (a
list of an int and a str): ``session`` turns those into ``BackendRejected`` too.

A SQLSTATE that the shared table does not list is read by psycopg's class for it:
OperationalError (a server-side condition: resources, shutdown) is UNAVAILABLE,
anything else REJECTED.

The message is the server's primary message (``diag.message_primary``), never its
DETAIL, which carries row values (``Failing row contains (...)``), nor its CONTEXT,
which can quote a parameter. Everything goes through ``clean_message``, and the
connection's password, should libpq ever repeat it, is masked as well.

``0A000 cached plan must not change result type`` is special: a prepared statement
whose result columns changed type because another session altered the table. It is
our cache's doing, not the caller's, so it is TRANSIENT (retry) and the session
clears its prepared statements (``proxy.drivers.postgres.session``).
"""

from __future__ import annotations

import psycopg

from proxy.drivers.errors import Kind, clean_message, error_for, kind_of_sqlstate
from proxy.errors import BackendUnavailable, ProxyError

__all__ = [
    "RETRY_AFTER_CONNECT",
    "connect_error",
    "is_broken_pg",
    "is_stale_plan",
    "kind_of",
    "translate",
]

RETRY_AFTER_CONNECT = 1.0

_WITHOUT_SQLSTATE: tuple[tuple[type[psycopg.Error], Kind], ...] = (
    (psycopg.OperationalError, Kind.BROKEN),
    (psycopg.InterfaceError, Kind.BROKEN),
    (psycopg.DataError, Kind.REJECTED),
    (psycopg.ProgrammingError, Kind.REJECTED),
    (psycopg.NotSupportedError, Kind.REJECTED),
    (psycopg.IntegrityError, Kind.CONSTRAINT),
)

_STALE_PLAN_STATE = "0A000"
_STALE_PLAN_MESSAGE = "cached plan must not change result type"
_CONNECT_PREFIX = "connection failed: "


def kind_of(exc: psycopg.Error) -> Kind:
    """What ``exc`` means (see the module's table)."""
    state = exc.sqlstate
    if state:
        if is_stale_plan(exc):
            return Kind.TRANSIENT
        kind = kind_of_sqlstate(state)
        if kind is not None:
            return kind
        return Kind.UNAVAILABLE if isinstance(exc, psycopg.OperationalError) else Kind.REJECTED
    for cls, kind in _WITHOUT_SQLSTATE:
        if isinstance(exc, cls):
            return kind
    return Kind.BROKEN


def is_stale_plan(exc: psycopg.Error) -> bool:
    """Whether ``exc`` is a prepared statement invalidated by another session's DDL."""
    return (
        exc.sqlstate == _STALE_PLAN_STATE
        and _STALE_PLAN_MESSAGE in (exc.diag.message_primary or "").casefold()
    )


def is_broken_pg(exc: BaseException) -> bool:
    """Whether a psycopg error (untranslated) leaves its connection unusable."""
    return isinstance(exc, psycopg.Error) and kind_of(exc) is Kind.BROKEN


def message_of(exc: psycopg.Error, password: str | None = None) -> str:
    """The primary message of ``exc``, cleaned, with ``password`` masked."""
    raw = exc.diag.message_primary if exc.sqlstate else None
    if not raw:
        raw = str(exc)
        if raw.startswith(_CONNECT_PREFIX):
            raw = raw[len(_CONNECT_PREFIX) :]
    return _mask(clean_message(raw), password)


def translate(
    exc: psycopg.Error, *, timed_out: bool = False, password: str | None = None
) -> ProxyError:
    """The tenantgate error for ``exc``; the caller raises it ``from exc``."""
    return error_for(
        kind_of(exc), message_of(exc, password), sqlstate=exc.sqlstate, timed_out=timed_out
    )


def connect_error(name: str, exc: psycopg.Error, password: str | None) -> BackendUnavailable:
    """A failed connect as ``BackendUnavailable``, naming the pool, never the password.

    Whatever libpq says (refused, timeout, no such database or role, bad password), a
    failed connect is the backend being unreachable for this request, not the
    statement's fault; the retry hint is the one its kind suggests, if any.
    """
    translated = translate(exc, password=password)
    return BackendUnavailable(
        f"cannot connect to {name}: {message_of(exc, password)}",
        retry_after=translated.retry_after or RETRY_AFTER_CONNECT,
        sqlstate=exc.sqlstate,
    )


def _mask(text: str, password: str | None) -> str:
    if password and password in text:
        text = text.replace(password, "***")
    return text
