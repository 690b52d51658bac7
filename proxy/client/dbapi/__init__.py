"""A PEP 249 (DB-API 2.0) driver for tenantgate, on ``proxy.client``.

    from proxy.client import dbapi

    with dbapi.connect("http://tenantgate:8040", token=TOKEN, tenant="beta.example") as conn:
        cur = conn.cursor()
        cur.execute("SELECT ContactID, FirstName FROM Contacts WHERE ContactID < ?", [10])
        rows = cur.fetchall()

One connection is one tenant. Statements are the service's logical SQL with ``?``
markers (``paramstyle = "qmark"``; a mapping of ``@name`` values is accepted as an
extension). Transactions are the service's interactive ones, opened by the first
statement (``connection``); ``autocommit=True`` sends each statement on its own.
Values are converted both ways by column type (``types``); errors are the PEP's
classes, mapped from the service's stable codes in one table (``errors``).

``threadsafety = 1``: threads may share the module, not a connection or a cursor (a
connection holds one transaction, which takes one request at a time).
"""

from __future__ import annotations

from typing import Any

from proxy.client import Client
from proxy.client.dbapi.connection import Connection
from proxy.client.dbapi.cursor import Cursor
from proxy.client.dbapi.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from proxy.client.dbapi.types import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
)

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
]

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"


def connect(
    url: str,
    *,
    token: str,
    tenant: str | int,
    autocommit: bool = False,
    isolation: str | None = None,
    timeout: float = 30.0,
    max_rows: int | None = None,
    timeout_ms: int | None = None,
    dialect: str | None = None,
    **client_options: Any,
) -> Connection:
    """A connection to ``tenant`` (its domain or customer id) through the service at ``url``.

    ``isolation``: ``read_uncommitted`` ... ``serializable`` for the transactions it
    opens (``None``: the backend's default). ``timeout``: seconds the HTTP client waits
    for an answer. ``max_rows`` / ``timeout_ms`` / ``dialect``: every statement's, as
    ``/v1/query`` takes them (``None``: the service's defaults). ``client_options`` go
    to ``proxy.client.Client`` (``headers``, ``transport``).

    Nothing is sent until the first statement: a wrong token or tenant is reported
    there, as the error of that statement.
    """
    client = Client(url, token, timeout=timeout, **client_options)
    return Connection(
        client,
        tenant,
        autocommit=autocommit,
        isolation=isolation,
        max_rows=max_rows,
        timeout_ms=timeout_ms,
        dialect=dialect,
    )
