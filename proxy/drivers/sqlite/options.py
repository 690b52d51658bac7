"""How a tenant's ODBC connection string opens a file with the standard library's sqlite3.

Tenants of the SQLite backend are described by sqliteodbc connection strings
(``Driver=SQLite3;Database=/srv/tenants/42.db;Timeout=2000``), merged over the
backend's template. The native driver reads the same strings, so that switching a
deployment between ``driver = "odbc"`` and ``driver = "native"`` changes no
controller record. Keys, by sqliteodbc's names (case-insensitive, as ODBC's):

==============  =========================================================================
key             native driver
==============  =========================================================================
Database        the file. Relative paths are made absolute against the working directory
                (as sqliteodbc resolves them), then percent-quoted into a ``file:`` URI
                with ``mode=rw``: a missing file is ``BackendUnavailable``, never created
                (sqliteodbc creates it unless ``NoCreat``), and ``:memory:`` or a value
                carrying ``?``/``#`` cannot turn into another database or URI parameters.
Timeout         busy timeout in milliseconds (how long a statement waits for another
                connection's lock). Default 5000 (Python's sqlite3 default; sqliteodbc's
                is 100000, far past any statement timeout). A statement does not wait
                past its own timeout: its busy wait is ``min(Timeout, timeout_s)`` (less
                what a late worker thread already lost, with 100 ms of slack), because
                ``sqlite3_interrupt`` does not end a busy wait (measured: a 3 s busy
                timeout ran its 3 s despite an interrupt at 0.3 s).
FKSupport       sqliteodbc's boolean (true when the value starts with one of
                ``Yy123456789Tt``): ``PRAGMA foreign_keys = ON``; otherwise SQLite's
                default (off), as with sqliteodbc.
SyncPragma      ``PRAGMA synchronous``: OFF, NORMAL, FULL, EXTRA or 0-3; anything else
                is ``TenantMisconfigured`` (the value is formatted into the pragma, so
                it comes from an allow-list, never from the record as is).
JournalMode     ``PRAGMA journal_mode``: DELETE, TRUNCATE, PERSIST, MEMORY, WAL or OFF;
                anything else is ``TenantMisconfigured``.
NoCreat         implied: the native driver never creates a file.
==============  =========================================================================

Ignored: ``Driver`` (it chose the backend), ``StepAPI``, ``NoWCHAR``, ``LongNames``,
``ShortNames``, ``OEMCP``, ``BigInt``, ``JDConv`` (ODBC-side conversions with no
meaning for sqlite3, which returns SQLite's own storage classes), ``NoTXN`` (the
native driver's transactions are always real), ``TraceFile`` (would write every
statement to a file), ``PWD`` (SEE encryption; the standard library cannot open such
files, which then fail as "file is not a database"), ``LoadExt`` (a controller record
must never make this process load a shared library; extension loading stays off), and
any key sqliteodbc does not know.

Every connection also gets ``SQLITE_LIMIT_ATTACHED = 0``: a tenant's statement can
never ``ATTACH`` another file (another tenant's), whatever slipped past the rewriter.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from urllib.parse import quote

from proxy.drivers.sqlite import types
from tenancy.errors import TenantMisconfigured

# Values keep the shape sqliteodbc gives them (see ``types``).
types.register()

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "OpenSpec", "open_connection", "open_spec"]

DEFAULT_BUSY_TIMEOUT_MS = 5000
MAX_BUSY_TIMEOUT_MS = 2**31 - 1  # SQLite takes an int
CACHED_STATEMENTS = 128
"""Prepared statements kept per connection (sqlite3's LRU, keyed by SQL text). The
rewriter's plan cache hands out a bounded set of statements per tenant, and a pooled
connection serves one tenant file only."""
CACHED_STATEMENT_CHARS = 128 * 1024
"""The texts of the statements a connection's cache may hold, together; a connection
past it is closed when it is given back (``PooledConnection.note_statement``).
sqlite3's cache counts statements, not bytes, and a compiled statement holds 2 (a long
string literal) to 30 (a select list) bytes of SQLite's memory per character of its
text: 128 statements of 2,000-item IN lists held 27 MB, outside Python's heap."""

_TRUE_FIRST = frozenset("Yy123456789Tt")  # sqliteodbc's getbool()
_SYNCHRONOUS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA", "0", "1", "2", "3"})
_JOURNAL_MODES = frozenset({"DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF"})


@dataclass(frozen=True, slots=True)
class OpenSpec:
    """Everything needed to open one tenant file; free of secrets, derived once per pool."""

    path: str
    """Absolute path of the file."""
    uri: str
    """``file:`` URI with ``mode=rw``."""
    busy_timeout_ms: int
    pragmas: tuple[str, ...]
    """Statements run once on every new connection; values come from allow-lists."""


def open_spec(connect: object) -> OpenSpec:
    """Read a tenant's (merged) connection string; ``TenantMisconfigured`` when unusable.

    ``connect`` is a ``tenancy.connstr.ConnectionString`` (any mapping with ``get``).
    """
    get = getattr(connect, "get", None)
    if get is None:
        raise TenantMisconfigured("the SQLite tenant has no connection string")
    database = get("Database")
    if not isinstance(database, str) or not database.strip():
        raise TenantMisconfigured("the SQLite tenant's connection string names no Database")
    if "\x00" in database:
        raise TenantMisconfigured("the SQLite tenant's Database contains a NUL character")
    # Not stripped: a braced value keeps its blanks, and sqliteodbc would open exactly it.
    path = os.path.abspath(database)
    # "file://" + an absolute path gives an empty authority, also for a path that
    # starts with "//"; quote() escapes "?", "#", "%" and ":" (":memory:" stays a file).
    uri = f"file://{quote(path, safe='/')}?mode=rw"
    pragmas: list[str] = []
    sync = _choice(get("SyncPragma"), _SYNCHRONOUS, "SyncPragma")
    if sync is not None:
        pragmas.append(f"PRAGMA synchronous = {sync}")
    if _boolean(get("FKSupport")):
        pragmas.append("PRAGMA foreign_keys = ON")
    journal = _choice(get("JournalMode"), _JOURNAL_MODES, "JournalMode")
    if journal is not None:
        pragmas.append(f"PRAGMA journal_mode = {journal}")
    return OpenSpec(
        path=path,
        uri=uri,
        busy_timeout_ms=_busy_timeout(get("Timeout")),
        pragmas=tuple(pragmas),
    )


def open_connection(spec: OpenSpec) -> sqlite3.Connection:
    """Open and set up one connection (blocking: call it from a worker thread).

    Autocommit (``isolation_level=None``): every statement is its own transaction
    unless a session opens one, and an interrupted statement is rolled back whole,
    which is what makes the inline attempt of ``proxy.drivers.sqlite.execute`` safe to
    repeat. ``check_same_thread=False``: a pooled connection is used by the event loop
    and by worker threads, one at a time.
    """
    raw = sqlite3.connect(
        spec.uri,
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=CACHED_STATEMENTS,
        timeout=spec.busy_timeout_ms / 1000,
        detect_types=types.DETECT_TYPES,
    )
    try:
        raw.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        for pragma in spec.pragmas:
            raw.execute(pragma).close()
    except BaseException:
        raw.close()
        raise
    return raw


def _busy_timeout(value: str | None) -> int:
    if value is None or not value.strip():
        return DEFAULT_BUSY_TIMEOUT_MS
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise TenantMisconfigured(
            "the SQLite tenant's Timeout must be a whole number of milliseconds"
        )
    return min(int(text), MAX_BUSY_TIMEOUT_MS)


def _boolean(value: str | None) -> bool:
    return value is not None and value[:1] in _TRUE_FIRST


def _choice(value: str | None, allowed: frozenset[str], key: str) -> str | None:
    if value is None or not value.strip():
        return None
    text = value.strip().upper()
    if text not in allowed:
        raise TenantMisconfigured(
            f"the SQLite tenant's {key} must be one of {', '.join(sorted(allowed))}"
        )
    return text
