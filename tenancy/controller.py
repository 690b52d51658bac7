"""The controller directory: the central table of customers and their connection strings.

Default layout, as in the original system::

    Customer(customer_id, domainname, sqlconnectstring)

Table and column names are configurable. They are validated as plain identifiers
(the table may be qualified: ``dbo.Customer``) and quoted with double quotes, which
SQLite, PostgreSQL and SQL Server (``QUOTED_IDENTIFIER ON``, the ODBC default) all
accept. Values are always bound as parameters.

Domain lookups are case-insensitive: ``LOWER(domain_column) = ?`` with the bound value
lower-cased. On PostgreSQL an expression index ``ON Customer (LOWER(domainname))`` lets
that use an index; SQL Server's default collation ignores case anyway.

Deadlines: with ``timeout`` set, every query runs on a thread of ``BoundedCalls``
(``tenancy.deadline``) and the caller waits for it at most ``timeout`` seconds, whatever
the driver does (a locked SQLite file, a server that went silent). Past it the caller
gets ``ControllerTimeout``; the query's thread finishes on its own later, and at most
``max_threads`` such threads exist, so a stalled controller cannot take every thread
of the process. Once all of them are overdue, further queries fail at once.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenancy.deadline import BoundedCalls, CallTimedOut, NoCapacity
from tenancy.errors import ControllerTimeout, ControllerUnavailable, TenantMisconfigured
from tenancy.sources import DB_ERRORS, ConnectionSource, fetch, sqlstate_of

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One row of the controller's customer table."""

    customer_id: int
    domain: str
    connection_string: str = field(repr=False)
    """Holds secrets: never logged, never in a repr."""


def _quote(identifier: str, *, what: str, max_parts: int = 1) -> str:
    parts = identifier.split(".")
    if not 1 <= len(parts) <= max_parts or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ValueError(f"controller {what} is not a plain identifier: {identifier!r}")
    return ".".join(f'"{p}"' for p in parts)


class ControllerDirectory:
    """Looks customers up in the controller database through a ``ConnectionSource``."""

    def __init__(
        self,
        source: ConnectionSource,
        *,
        table: str = "Customer",
        id_column: str = "customer_id",
        domain_column: str = "domainname",
        connection_column: str = "sqlconnectstring",
        db_errors: tuple[type[BaseException], ...] = DB_ERRORS,
        timeout: float | None = None,
        max_threads: int = 4,
    ) -> None:
        """``timeout``: seconds a query may take before ``ControllerTimeout`` (``None``:
        no deadline, the query runs on the caller's thread). ``max_threads``: queries
        that may run at once under a deadline, overdue ones included."""
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be > 0 (or None)")
        self._source = source
        self._db_errors = db_errors
        self._timeout = timeout
        self._calls = (
            BoundedCalls(max_threads=max_threads, name="controller")
            if timeout is not None
            else None
        )
        t = _quote(table, what="table", max_parts=3)
        i = _quote(id_column, what="id column")
        d = _quote(domain_column, what="domain column")
        c = _quote(connection_column, what="connection column")
        select = f"SELECT {i}, {d}, {c} FROM {t}"
        self._by_id_sql = f"{select} WHERE {i} = ?"
        self._by_domain_sql = f"{select} WHERE LOWER({d}) = ?"
        self._ping_sql = f"SELECT {i} FROM {t} WHERE 1 = 0"

    def by_id(self, customer_id: int) -> CustomerRecord | None:
        return self._one(self._by_id_sql, customer_id, f"customer id {customer_id}")

    def by_domain(self, domain: str) -> CustomerRecord | None:
        return self._one(self._by_domain_sql, domain.lower(), f"domain {domain!r}")

    def ping(self) -> None:
        """Raises ``ControllerUnavailable`` unless the customer table can be queried."""
        self._query(self._ping_sql, ())

    def _one(self, sql: str, value: int | str, label: str) -> CustomerRecord | None:
        rows = self._query(sql, (value,))
        if not rows:
            return None
        if len(rows) > 1:
            raise TenantMisconfigured(f"the controller has several customers for {label}")
        customer_id, domain, connection_string = rows[0]
        try:
            return CustomerRecord(
                customer_id=int(customer_id),
                domain=str(domain or ""),
                connection_string=str(connection_string or ""),
            )
        except (TypeError, ValueError):
            raise TenantMisconfigured(
                f"the controller's record for {label} has a non-integer id"
            ) from None

    def overdue(self) -> int:
        """Queries still running past their deadline (0 without a deadline)."""
        return 0 if self._calls is None else self._calls.overdue()

    def _query(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        if self._calls is None or self._timeout is None:
            return self._query_now(sql, params)
        run = functools.partial(self._query_now, sql, params)
        try:
            return self._calls.call(run, self._timeout)
        except CallTimedOut:
            raise ControllerTimeout(
                f"the controller did not answer within {self._timeout * 1000:.0f} ms"
            ) from None
        except NoCapacity as exc:
            raise ControllerTimeout(f"the controller is not answering: {exc}") from None

    def _query_now(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        with self._translate_errors(), self._source() as conn:
            return fetch(conn, sql, params, limit=2)

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """The one place where database errors become ``ControllerUnavailable``.

        The driver's text is left out on purpose: some drivers echo connection
        attributes. The SQLSTATE says enough and is safe.
        """
        try:
            yield
        except self._db_errors as error:
            state = sqlstate_of(error)
            raise ControllerUnavailable(
                f"the controller database could not be queried (SQLSTATE {state or 'unknown'})",
                sqlstate=state,
            ) from None
