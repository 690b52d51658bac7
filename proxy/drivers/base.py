"""The seam between the request pipeline and the databases.

A ``Driver`` reaches one kind of backend through one client library; it owns the
pools, timeouts, cancellation and error translation for it. The pipeline sees only
this module::

    Driver                       one per (backend, client library), process-wide
      .connection(location)      async context manager: a Session on loan from the
                                 pool of the tenant's database (or server)
      .run(location, ...)        one statement on a pooled session, in one step
      .stream(location, ...)     async context manager: a read's rows in batches
                                 (``RowStream``), fetched as they are consumed
      .blocking_source(location) a DB-API connection source for ``tenancy`` (catalog
                                 reads), to be used from a worker thread only
      .get_stats()               pool statistics summed per server label
      .aclose()
    Session
      .execute(sql, params, timeout_s=, max_rows=)  → ResultSet
      .transaction(isolation=)   async context manager: BEGIN … COMMIT / ROLLBACK

Rules every driver keeps:

* SQL arrives with ``?`` markers, in the order of ``params``; the driver turns them
  into its library's placeholder (``%s`` for psycopg).
* ``timeout_s`` stops the statement on the server (``statement_timeout``, a TDS
  attention, ``sqlite3_interrupt``), and a client-side backstop a little later ends
  the wait even when the server cannot answer. Either way the caller gets
  ``StatementTimeout``.
* At most ``max_rows + 1`` rows are turned into Python objects; ``truncated`` says
  whether the extra row existed. ``count_all_rows`` makes ``row_count`` count every
  row of the result (a write's OUTPUT/RETURNING rows are the rows it changed).
* ``stream`` fetches from a server-side cursor (or the wire) ``batch_rows`` at a time,
  only when the consumer asks for the next batch: whatever the result's size, the
  driver holds about one batch. ``timeout_s`` bounds each round trip (the statement's
  start, each fetch), not the whole stream, whose length the consumer decides. The
  first batch is fetched on entering, so that most errors come before any row is
  handed out; rows and column types are those ``run`` would give.
* Every library error leaves as a ``proxy.errors.ProxyError``, translated in one
  table inside the driver that touched it. A connection that an error leaves unusable
  is closed, never returned to its pool.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from tenancy.location import TenantLocation

__all__ = [
    "ISOLATION_LEVELS",
    "Driver",
    "ResultColumn",
    "ResultSet",
    "RowStream",
    "Session",
    "column_type",
    "empty_result",
]

ISOLATION_LEVELS = ("read_uncommitted", "read_committed", "repeatable_read", "serializable")
"""What ``Session.transaction(isolation=...)`` takes; ``None`` is the backend's default.
SQLite runs every level SERIALIZABLE (a stronger level than asked, which SQL permits)."""

TYPE_NAMES: dict[type, str] = {
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
"""Python type of a column's values → the stable type name the API reports."""


# Without __slots__ on purpose: orjson writes a dataclass from its __dict__ 8x faster
# than through its slots (818 columns: 52 µs against 374 µs, benchmarks/overheads.py).
# The instances are few: the drivers keep one per (name, type).
@dataclass(frozen=True)
class ResultColumn:
    name: str
    type: str
    """A stable type name: integer, decimal, number, string, boolean, date, datetime,
    time, binary, uuid or unknown."""


# The __init__ is written out to be compiled (as QueryRequest's, proxy/pipeline/request.py).
@dataclass(init=False, slots=True)
class ResultSet:
    columns: list[ResultColumn]
    rows: list[list[object]]
    row_count: int
    """Rows returned for a result set; rows affected (-1 when the driver does not
    know) for a statement without one."""
    truncated: bool
    """True when the statement had more than ``max_rows`` rows."""

    def __init__(
        self, columns: list[ResultColumn], rows: list[list[object]], row_count: int, truncated: bool
    ) -> None:
        self.columns = columns
        self.rows = rows
        self.row_count = row_count
        self.truncated = truncated


def empty_result(row_count: int = 0) -> ResultSet:
    return ResultSet(columns=[], rows=[], row_count=row_count, truncated=False)


def column_type(python_type: object) -> str:
    """The stable name of a Python type (``cursor.description``'s type code for ODBC)."""
    if isinstance(python_type, type):
        return TYPE_NAMES.get(python_type, "unknown")
    return "unknown"


class RowStream(Protocol):
    """A read's result, in batches (``Driver.stream``).

    ``columns`` are known on entering; iterating gives non-empty lists of at most
    ``batch_rows`` rows, ``max_rows`` rows in all at most. When the iteration ends,
    ``row_count`` is the rows given and ``truncated`` whether the result had more.
    """

    columns: list[ResultColumn]
    row_count: int
    truncated: bool

    def __aiter__(self) -> AsyncIterator[list[list[object]]]: ...


class Session(Protocol):
    """A connection on loan from a driver's pool."""

    async def execute(
        self,
        sql: str,
        params: Sequence[object] = (),
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool = False,
    ) -> ResultSet: ...

    def transaction(self, *, isolation: str | None = None) -> AbstractAsyncContextManager[None]: ...


class Driver(Protocol):
    name: str
    """The client library, as metrics and ``explain`` name it: odbc, psycopg, sqlite3."""
    db_errors: tuple[type[BaseException], ...]
    """What ``blocking_source`` connections raise when the database cannot answer."""

    def connection(self, location: TenantLocation) -> AbstractAsyncContextManager[Session]: ...

    async def run(
        self,
        location: TenantLocation,
        sql: str,
        params: Sequence[object],
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool = False,
    ) -> ResultSet: ...

    def stream(
        self,
        location: TenantLocation,
        sql: str,
        params: Sequence[object],
        *,
        timeout_s: float,
        max_rows: int,
        batch_rows: int,
    ) -> AbstractAsyncContextManager[RowStream]: ...

    def blocking_source(
        self, location: TenantLocation, *, timeout_s: float
    ) -> Callable[[], AbstractContextManager[Any]]: ...

    def get_stats(self) -> dict[str, dict[str, int]]: ...

    async def aclose(self) -> None: ...
