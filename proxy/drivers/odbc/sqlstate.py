"""The one place where pyodbc exceptions become tenantgate errors.

Classification is by SQLSTATE first (the driver's ``args[0]``), then, for the
catch-all ``HY000`` that sqliteodbc uses for nearly everything, by the SQLite result
code and message, then by pyodbc's own exception class. The states and messages
quoted in ``tests/unit/test_sqlstate.py`` were observed with psqlODBC 13.02 against
PostgreSQL 15 and sqliteodbc 0.9998 (SQLite 3.40) through unixODBC 2.3.11 (40001,
40P01 and 53300 raised on purpose with PL/pgSQL ``RAISE ... USING ERRCODE``); the
other rows follow the SQLSTATE classes of the SQL standard and PostgreSQL's
appendix A, and *(spec)* marks states no driver here produces (SQL Server's).

=====================================  ==========================  ======  ==============
SQLSTATE / driver signal               tenantgate error            broken  why
=====================================  ==========================  ======  ==============
``08xxx`` (08001 connect failed,       ``ConnectionLost``          yes     the session is
08S01 link lost)                       (BackendUnavailable, 503)           gone
``57P01``-``57P05`` (admin shutdown,   ``ConnectionLost``          yes     the server ends
crash, cannot connect now, db                                              the session
dropped, idle-session timeout)
``HYT01`` connection timeout *(spec)*  ``ConnectionLost``          yes
psqlODBC "connection has been lost",   ``ConnectionLost``          yes     defensive: any
"connection is down", "server closed                                       state, message
the connection"; pyodbc "Attempt to                                        wins
use a closed connection."
``57014``, ``HYT00``, ``HY008``        ``StatementTimeout`` (504)  no      cancelled; the
*(spec)*, or ``timed_out=True``                                            session lives
``40001``, ``40P01``, ``55P03``        ``BackendUnavailable``      no      transient:
SQLite BUSY/LOCKED ("database is       retry_after 0.5 s                   retry later
locked")
``53xxx`` resources, ``58xxx`` system  ``BackendUnavailable``      no      the server's
``XXxxx`` internal, ``28xxx`` login,                                       problem, not
SQLite IOERR/CORRUPT/FULL/CANTOPEN/                                        the caller's
NOTADB/NOMEM                                                               statement
``23xxx``; SQLite CONSTRAINT           ``ConstraintViolation``     no
("... constraint failed")              (409)
``42703``, ``42P01``, ``42S02``,       ``BackendObjectMissing``    no      stale metadata:
``42S22`` *(spec, SQL Server)*;        (400)                               issue #4 heals
SQLite "no such column/table"
``22xxx``, ``42xxx``, ``21xxx``,       ``BackendRejected`` (400)   no      the statement
``0Axxx``, ``07xxx``, ``25xxx``,                                           is at fault
``2Dxxx``, ``3Bxxx``, ``44xxx``,
``54xxx``, ``P0xxx``, ``HY004``/
``HY105`` (pyodbc: unbindable
parameter type); SQLite ERROR/
MISMATCH/RANGE/TOOBIG/READONLY
SQLite INTERRUPT ("interrupted")       ``StatementTimeout`` when   no      sqlite3_interrupt
                                       timed_out, else
                                       ``BackendUnavailable``
other SQLSTATE from the server         ``BackendRejected``         no      see below
other ``HYxxx``/``IMxxx`` (driver)     ``BackendUnavailable``      no      see below
no SQLSTATE                            by pyodbc class             no
=====================================  ==========================  ======  ==============

SQL Server (Microsoft ODBC 18, FreeTDS): both drivers end a server message with its
native error number, ``[SQL Server]<text> (<number>)``; where the SQLSTATE is too coarse
(42000, 01000, HY000) the number decides (``_BY_MSSQL_NUMBER``: 207/208/4104 missing,
1205/1222 transient, 515/547/2601/2627 constraint, 911/4060/18456 unavailable, 596/6005
and FreeTDS's 20004/20006/20017 broken). Babelfish, the T-SQL engine of the tests,
reports stale names with PostgreSQL's texts under 42000, matched by
``_PG_TEXT_MISSING_RE``. FreeTDS's ``Unknown error (0)`` on a session the server ended
while idle is broken too. docs/drivers.md has the observed pairs.

Unknown codes: a SQLSTATE whose class we do not list came from the server about the
statement (PostgreSQL raises them for user-defined errors too), and is deterministic,
so it is a 400 ``BackendRejected``: retrying would not help. An unknown driver-level
state (``HY``, ``IM``) says nothing about the statement and usually means driver or
configuration trouble, so it is a 503 ``BackendUnavailable``. Without a SQLSTATE
(pyodbc's own errors) pyodbc's class decides: ``IntegrityError`` → constraint,
``DataError``/``ProgrammingError`` → rejected, anything else → unavailable.

``timed_out`` (the watchdog fired) wins over the classification: once we cancelled a
statement, whatever error the driver then reports is the cancel's doing. The
connection may still be broken (08S01 after the cancel), so ``is_broken`` follows the
``__cause__`` chain to the pyodbc error instead of trusting the returned class.

Messages: driver decoration (``[HY000] [SQLite]``, ``(1) (SQLExecDirectW)``,
psqlODBC's ``;\\nError while executing the query``, ``ERROR:``/``FATAL:``, libpq's
``connection to server at ..., port N failed:``) is stripped; only the first line of
the server's message is kept, so PostgreSQL's ``DETAIL: Failing row contains (...)``
(row values) never reaches a caller; anything that looks like ``pwd=``/``password=``
is masked; the text is capped. ``details`` carry the ``sqlstate`` when the driver gave
a meaningful one.
"""

from __future__ import annotations

import re

import pyodbc

from proxy.drivers.errors import Kind, clean_message, error_for, kind_of_sqlite, kind_of_sqlstate
from proxy.errors import ConnectionLost, ProxyError
from tenancy.sources import sqlstate_of

__all__ = [
    "classify",
    "is_broken",
    "message_of",
    "sqlstate_of",
    "translate",
]

# Substrings (lower case) of messages, for when no code is available. The psqlODBC
# ones come with 08S01/57P0x in every case we produced (terminate, crash, stop, RST,
# FIN, garbage on the wire); they are here so that a lost connection reported under
# another state (HY000, say, by another driver version) still retires the connection.
_BROKEN_MESSAGES = (
    "connection has been lost",
    "connection is down",
    "connection lost",
    "server closed the connection unexpectedly",
    "could not send query",
    "no response from the backend",
    "connection dead",
    "lost synchronization with server",
    "attempt to use a closed connection",
    "communication link failure",
    # FreeTDS reports a session ended by the server (KILL, restart) as 01000 "Unexpected
    # EOF from the server (20017)", then 24000 on the next call; Microsoft ODBC 18 says
    # the second one after a cancel the server never acknowledged.
    "unexpected eof from the server",
    "read from the server failed",
    "write to the server failed",
    "the connection is no longer usable",
    "session is in the kill state",
)
# SQL Server's native error numbers, for states too coarse to act on (42000, 01000,
# HY000). Both Microsoft ODBC 18 and FreeTDS print the number in parentheses after a
# message they mark ``[SQL Server]`` (the server's), FreeTDS its own library errors
# (2000x) likewise. https://learn.microsoft.com/sql/relational-databases/errors-events
_BY_MSSQL_NUMBER: dict[int, Kind] = {
    207: Kind.MISSING,  # Invalid column name
    208: Kind.MISSING,  # Invalid object name
    4104: Kind.MISSING,  # The multi-part identifier could not be bound
    1205: Kind.TRANSIENT,  # chosen as deadlock victim
    1222: Kind.TRANSIENT,  # lock request time out
    515: Kind.CONSTRAINT,  # cannot insert NULL
    547: Kind.CONSTRAINT,  # FOREIGN KEY / CHECK conflict
    2601: Kind.CONSTRAINT,  # duplicate key row (unique index)
    2627: Kind.CONSTRAINT,  # PRIMARY KEY / UNIQUE violation
    596: Kind.BROKEN,  # the session is in the kill state
    6005: Kind.BROKEN,  # SHUTDOWN is in progress
    4060: Kind.UNAVAILABLE,  # cannot open database requested by the login
    911: Kind.UNAVAILABLE,  # database does not exist (08004: the session itself is fine)
    18456: Kind.UNAVAILABLE,  # login failed
    20017: Kind.BROKEN,  # FreeTDS: unexpected EOF from the server
    20004: Kind.BROKEN,  # FreeTDS: read from the server failed
    20006: Kind.BROKEN,  # FreeTDS: write to the server failed
    20009: Kind.UNAVAILABLE,  # FreeTDS: unable to connect
}
# FreeTDS's first answer on a session the server has ended while it sat idle (08S01
# "Communication link failure" follows); nothing else it reports reads like this.
_FREETDS_LOST_RE = re.compile(r"\[FreeTDS\]\[SQL Server\]Unknown error \(0\)")
# The native number is the last parenthesised integer of the record, before pyodbc's
# "(SQLExecDirectW)", the next record's ";" or the end: "varchar(208)" is not one.
_MSSQL_RE = re.compile(
    r"\[SQL Server\](?P<text>.*?)\s*\((?P<number>-?\d+)\)\s*(?:\(SQL\w+\)|;|$)", re.DOTALL
)
# Babelfish answers stale names with PostgreSQL's texts under 42000 (native 33557097)
# where SQL Server says 207/208: `column "x" does not exist`, `column t.x does not
# exist` (a qualified reference), `column "x" of relation "t" does not exist` (a SET
# target), `relation "db_dbo.t" does not exist`.
_PG_TEXT_MISSING_RE = re.compile(
    r'^(?:column (?:"[^"]+"(?: of relation "[^"]+")?|[\w.]+)|relation "[^"]+") does not exist'
)

_STATE_RE = re.compile(r"^[0-9A-Z]{5}$")
_SQLITE_RE = re.compile(r"\[SQLite\]\s*(?P<text>.*?)\s*\((?P<code>\d+)\)", re.DOTALL)


def _raw_message(exc: BaseException) -> str:
    parts = [a for a in exc.args if isinstance(a, str) and not _STATE_RE.match(a)]
    return parts[0] if parts else ""


def message_of(exc: BaseException) -> str:
    """The cleaned message of a pyodbc error (see ``clean_message``)."""
    return clean_message(_raw_message(exc)) or "the backend reported an error"


def classify(exc: BaseException) -> Kind:
    """What ``exc`` (a pyodbc error) means; see the module's table."""
    state = sqlstate_of(exc)
    raw = _raw_message(exc)
    lowered = raw.lower()
    if any(m in lowered for m in _BROKEN_MESSAGES) or _FREETDS_LOST_RE.search(raw):
        return Kind.BROKEN
    mssql = _MSSQL_RE.search(raw)
    if mssql is not None:
        by_number = _BY_MSSQL_NUMBER.get(int(mssql.group("number")))
        if by_number is not None:
            return by_number
        if _PG_TEXT_MISSING_RE.match(mssql.group("text").strip()):
            return Kind.MISSING
    if state is not None:
        kind = kind_of_sqlstate(state)
        if kind is not None:
            return kind
    sqlite = _SQLITE_RE.search(raw)
    if sqlite is not None:
        kind = kind_of_sqlite(int(sqlite.group("code")), sqlite.group("text"))
        if kind is not None:
            return kind
    if state is not None and not state.startswith(("HY", "IM", "01")):
        # A server-side state we do not list: deterministic, the statement's fault.
        return Kind.REJECTED
    if isinstance(exc, pyodbc.IntegrityError):
        return Kind.CONSTRAINT
    if isinstance(exc, pyodbc.DataError | pyodbc.ProgrammingError):
        return Kind.REJECTED
    return Kind.UNAVAILABLE


def translate(exc: pyodbc.Error, *, timed_out: bool = False) -> ProxyError:
    """The tenantgate error for ``exc``; its ``__cause__`` is set to ``exc``.

    Raise it with ``raise translate(e, timed_out=...) from e``.
    """
    state = sqlstate_of(exc)
    # HY000 is sqliteodbc's answer to everything: it tells a caller nothing.
    shown_state = state if state not in (None, "HY000") else None
    error = error_for(classify(exc), message_of(exc), sqlstate=shown_state, timed_out=timed_out)
    error.__cause__ = exc
    return error


def is_broken(exc: BaseException) -> bool:
    """Whether the connection that raised ``exc`` must be discarded.

    Follows ``__cause__`` so that a ``StatementTimeout`` translated from an 08S01
    still retires its connection.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionLost) or (
            isinstance(current, ProxyError) and current.connection_unusable
        ):
            return True
        if isinstance(current, pyodbc.Error):
            return classify(current) is Kind.BROKEN
        current = current.__cause__
    return False
