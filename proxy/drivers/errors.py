"""What a database error means, shared by every driver.

Each driver reads its library's signals (a SQLSTATE, SQLite's result code, a native
number, a message) into a ``Kind`` in one table of its own; ``error_for`` turns a kind
into the tenantgate error the caller sees. The SQLSTATE classes are the SQL standard's
and PostgreSQL's appendix A, so that psycopg and psqlODBC, which report the server's
states, classify the same way; SQLite's result codes serve the ODBC and the native
SQLite drivers alike.

Messages go through ``clean_message``: driver decoration is stripped, only the first
line of the server's message is kept (PostgreSQL's ``DETAIL: Failing row contains
(...)`` carries row values), anything that looks like ``pwd=``/``password=`` is masked,
and the text is capped.
"""

from __future__ import annotations

import enum
import re

from proxy.errors import (
    BackendObjectMissing,
    BackendRejected,
    BackendUnavailable,
    ConnectionLost,
    ConstraintViolation,
    ProxyError,
    StatementTimeout,
)

__all__ = [
    "BY_SQLITE_CODE",
    "RETRY_AFTER_TRANSIENT",
    "RETRY_AFTER_UNAVAILABLE",
    "SQLITE_MESSAGES",
    "Kind",
    "clean_message",
    "error_for",
    "is_broken",
    "kind_of_sqlite",
    "kind_of_sqlstate",
]

RETRY_AFTER_TRANSIENT = 0.5
"""Seconds a caller should wait after a serialization failure, deadlock or lock."""
RETRY_AFTER_UNAVAILABLE = 1.0
"""Seconds a caller should wait when the backend or the connection is down."""
MAX_MESSAGE = 300


class Kind(enum.Enum):
    """What an error means for the caller and for the connection."""

    BROKEN = "broken"
    TIMEOUT = "timeout"
    TRANSIENT = "transient"
    UNAVAILABLE = "unavailable"
    CONSTRAINT = "constraint"
    MISSING = "missing"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"


# Longest prefix wins, so exact states override their class.
BY_SQLSTATE: dict[str, Kind] = {
    "08": Kind.BROKEN,
    "57P01": Kind.BROKEN,
    "57P02": Kind.BROKEN,
    "57P03": Kind.BROKEN,
    "57P04": Kind.BROKEN,
    "57P05": Kind.BROKEN,
    "HYT01": Kind.BROKEN,
    "57014": Kind.TIMEOUT,
    "HYT00": Kind.TIMEOUT,
    "HY008": Kind.TIMEOUT,
    "40001": Kind.TRANSIENT,
    "40P01": Kind.TRANSIENT,
    "55P03": Kind.TRANSIENT,
    "53": Kind.UNAVAILABLE,
    "58": Kind.UNAVAILABLE,
    "XX": Kind.UNAVAILABLE,
    "28": Kind.UNAVAILABLE,
    "57": Kind.UNAVAILABLE,
    "23": Kind.CONSTRAINT,
    "42703": Kind.MISSING,
    "42P01": Kind.MISSING,
    "42S02": Kind.MISSING,
    "42S22": Kind.MISSING,
    "21": Kind.REJECTED,
    "22": Kind.REJECTED,
    "42": Kind.REJECTED,
    "0A": Kind.REJECTED,
    "07": Kind.REJECTED,
    "25": Kind.REJECTED,
    "2D": Kind.REJECTED,
    "3B": Kind.REJECTED,
    "44": Kind.REJECTED,
    "54": Kind.REJECTED,
    "P0": Kind.REJECTED,
    # pyodbc's own: a parameter of a type it cannot bind (a JSON object, say).
    "HY004": Kind.REJECTED,
    "HY105": Kind.REJECTED,
}

# SQLite primary result codes (https://sqlite.org/rescode.html): sqliteodbc prints
# them in parentheses after the message, Python's sqlite3 has ``sqlite_errorcode``.
BY_SQLITE_CODE: dict[int, Kind] = {
    1: Kind.REJECTED,  # SQLITE_ERROR: syntax, no such table/column/function
    4: Kind.UNAVAILABLE,  # SQLITE_ABORT
    5: Kind.TRANSIENT,  # SQLITE_BUSY: database is locked
    6: Kind.TRANSIENT,  # SQLITE_LOCKED
    7: Kind.UNAVAILABLE,  # SQLITE_NOMEM
    8: Kind.REJECTED,  # SQLITE_READONLY: a write to a read-only database
    9: Kind.INTERRUPTED,  # SQLITE_INTERRUPT: sqlite3_interrupt, our cancel
    10: Kind.UNAVAILABLE,  # SQLITE_IOERR
    11: Kind.UNAVAILABLE,  # SQLITE_CORRUPT
    13: Kind.UNAVAILABLE,  # SQLITE_FULL
    14: Kind.UNAVAILABLE,  # SQLITE_CANTOPEN ("connect failed" at connect time)
    17: Kind.TRANSIENT,  # SQLITE_SCHEMA: the schema changed under a prepared statement
    18: Kind.REJECTED,  # SQLITE_TOOBIG
    19: Kind.CONSTRAINT,  # SQLITE_CONSTRAINT
    20: Kind.REJECTED,  # SQLITE_MISMATCH
    25: Kind.REJECTED,  # SQLITE_RANGE
    26: Kind.UNAVAILABLE,  # SQLITE_NOTADB
}

# Substrings (lower case) of SQLite's messages, for when no code is available.
SQLITE_MESSAGES: tuple[tuple[str, Kind], ...] = (
    ("no such column", Kind.MISSING),
    ("no such table", Kind.MISSING),
    ("database is locked", Kind.TRANSIENT),
    ("database table is locked", Kind.TRANSIENT),
    ("interrupted", Kind.INTERRUPTED),
    ("constraint failed", Kind.CONSTRAINT),
    ("disk i/o error", Kind.UNAVAILABLE),
    ("malformed", Kind.UNAVAILABLE),
    ("not a database", Kind.UNAVAILABLE),
    ("unable to open database", Kind.UNAVAILABLE),
    ("connect failed", Kind.UNAVAILABLE),
    ("database or disk is full", Kind.UNAVAILABLE),
    ("out of memory", Kind.UNAVAILABLE),
)

_BRACKETS_RE = re.compile(r"^(\s*\[[^\]]*\])+\s*")
_TRAILER_RE = re.compile(r"(\s*\((?:-?\d+|SQL\w+)\))+\s*$")
_LIBPQ_PREFIX_RE = re.compile(r'^connection to server (?:at|on) "[^"]*"(?:, port \d+)? failed:\s*')
_SEVERITY_RE = re.compile(r"^(?:ERROR|FATAL|PANIC|WARNING):\s*")
_SECRET_RE = re.compile(
    r"(?i)\b(pwd|password|passwd|secret|token|accesstoken)\s*=\s*(\{(?:[^}]|\}\})*\}?|[^;\s]*)"
)
_MISSING_NAME_RE = re.compile(
    r'column "(?P<target>[^"]+)" of relation'
    r'|(?:column|relation|table) "?(?P<pg>[^"\s]+)"? does not exist'
    r"|no such (?:column|table): (?P<lite>\S+)"
    r"|Invalid (?:column|object) name '(?P<ms>[^']+)'"
)


def kind_of_sqlstate(state: str) -> Kind | None:
    """The kind a SQLSTATE names (longest listed prefix), or ``None`` if unlisted."""
    for length in (5, 2):
        kind = BY_SQLSTATE.get(state[:length])
        if kind is not None:
            return kind
    return None


def kind_of_sqlite(code: int | None, message: str) -> Kind | None:
    """The kind of a SQLite error: its message first (more precise), then its code."""
    text = message.lower()
    for needle, kind in SQLITE_MESSAGES:
        if needle in text:
            return kind
    if code is None:
        return None
    return BY_SQLITE_CODE.get(code & 0xFF)  # an extended code's low byte is its primary


def clean_message(raw: str) -> str:
    """Strip driver decoration from ``raw``, keep the first line, mask secrets."""
    text = raw
    # psqlODBC appends ";\n<its own remark>" to the server's message.
    text = text.split(";\n", 1)[0]
    text = _BRACKETS_RE.sub("", text)
    text = _TRAILER_RE.sub("", text)
    text = _LIBPQ_PREFIX_RE.sub("", text.strip())
    text = _SEVERITY_RE.sub("", text.strip())
    text = next((line.strip() for line in text.splitlines() if line.strip()), "")
    text = _SECRET_RE.sub(lambda m: f"{m.group(1)}=***", text)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return text


def error_for(
    kind: Kind, message: str, *, sqlstate: str | None = None, timed_out: bool = False
) -> ProxyError:
    """The tenantgate error for an error of ``kind``.

    ``message`` is already clean; ``sqlstate`` is shown to the caller when given.
    ``timed_out`` (our own cancel fired) wins over the kind: once a statement was
    cancelled, whatever error the library then reports is the cancel's doing.
    """
    if timed_out or kind is Kind.TIMEOUT:
        return StatementTimeout(
            "the statement was cancelled: it ran past its timeout", sqlstate=sqlstate
        )
    if kind is Kind.BROKEN:
        return ConnectionLost(
            f"the connection to the backend failed: {message}",
            retry_after=RETRY_AFTER_UNAVAILABLE,
            sqlstate=sqlstate,
        )
    if kind is Kind.TRANSIENT:
        return BackendUnavailable(
            f"the backend asks to retry: {message}",
            retry_after=RETRY_AFTER_TRANSIENT,
            sqlstate=sqlstate,
        )
    if kind is Kind.INTERRUPTED:
        # Not our cancel: someone else interrupted the statement (shutdown).
        return BackendUnavailable(
            f"the statement was interrupted: {message}",
            retry_after=RETRY_AFTER_UNAVAILABLE,
            sqlstate=sqlstate,
        )
    if kind is Kind.UNAVAILABLE:
        return BackendUnavailable(
            f"the backend is unavailable: {message}",
            retry_after=RETRY_AFTER_UNAVAILABLE,
            sqlstate=sqlstate,
        )
    if kind is Kind.CONSTRAINT:
        return ConstraintViolation(message, sqlstate=sqlstate)
    if kind is Kind.MISSING:
        return _object_missing(message, sqlstate)
    return BackendRejected(message, sqlstate=sqlstate)


def _object_missing(message: str, state: str | None) -> ProxyError:
    lowered = message.lower()
    table = state in ("42P01", "42S02") or any(
        word in lowered for word in ("table", "relation", "object name")
    )
    if state in ("42703", "42S22") or lowered.startswith(("column", "invalid column")):
        table = False
    match = _MISSING_NAME_RE.search(message)
    name = None
    if match is not None:
        name = match.group("target") or match.group("pg") or match.group("lite")
        name = name or match.group("ms")
    return BackendObjectMissing(
        message,
        sqlstate=state,
        object_kind="table" if table else "column",
        object_name=name,
    )


def is_broken(exc: BaseException) -> bool:
    """Whether a translated error says its connection must be discarded.

    Follows ``__cause__`` so that a ``StatementTimeout`` raised because of a lost
    connection still retires it. A driver whose library errors can reach its pool
    untranslated checks those itself (``proxy.drivers.odbc.sqlstate.is_broken``).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionLost) or (
            isinstance(current, ProxyError) and current.connection_unusable
        ):
            return True
        current = current.__cause__
    return False
