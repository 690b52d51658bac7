"""The PEP 249 connection: one tenant, and at most one open transaction on it.

Without autocommit (the PEP's default), the first statement after ``connect``,
``commit`` or ``rollback`` opens an interactive transaction (``POST
/v1/transactions``); every statement until the next ``commit`` / ``rollback`` runs in
it, on the connection of the tenant's server that the service pinned for it. Opening
lazily keeps a connection that has run nothing free of cost; once it has run a
statement, even a read, it holds that server connection until ``commit``,
``rollback`` or ``close`` (or the service's ``idle_timeout_ms``). With
``autocommit=True`` each statement commits on its own (``/v1/query``), and
``executemany`` is one ``/v1/batch``.

A statement the *database* fails inside a transaction makes the service roll the
whole transaction back at once; the driver keeps it as it is, so every later
statement and ``commit`` raise ``InternalError`` (``transaction_aborted``) until the
caller calls ``rollback()``, as psycopg does with PostgreSQL's failed transactions:
no later statement can run as though the earlier ones had happened.

``close()`` rolls back an open transaction. Used as a context manager, the connection
commits on a clean exit, rolls back on an exception, and closes either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from proxy.client import Client, Transaction
from proxy.client import errors as client_errors
from proxy.client.dbapi import errors
from proxy.client.dbapi.cursor import Cursor
from proxy.client.models import Params, Result

__all__ = ["Connection"]


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise the client's errors as their PEP 249 classes, the client's as the cause."""
    try:
        yield
    except client_errors.TenantgateError as exc:
        raise errors.translate(exc) from exc


class Connection:
    """A DB-API connection to one tenant through tenantgate (``connect()`` makes one)."""

    # The exceptions as attributes: PEP 249's optional extension, so that code holding
    # only a connection can catch its driver's errors.
    Warning = errors.Warning
    Error = errors.Error
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(
        self,
        client: Client,
        tenant: str | int,
        *,
        autocommit: bool = False,
        isolation: str | None = None,
        max_rows: int | None = None,
        timeout_ms: int | None = None,
        dialect: str | None = None,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.tenant = tenant
        self.isolation = isolation
        """The isolation level of the transactions it opens (and of autocommit batches);
        ``None``: the backend's default."""
        self.max_rows = max_rows
        """Each statement's row cap; ``None``: the service's ``query.default_max_rows``."""
        self.timeout_ms = timeout_ms
        """Each statement's timeout; ``None``: the service's default."""
        self.dialect = dialect
        self._autocommit = autocommit
        self._owns_client = owns_client
        self._tx: Transaction | None = None
        self._closed = False

    # -- state -----------------------------------------------------------------------

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._check_open()
        if self._tx is not None and bool(value) != self._autocommit:
            raise errors.ProgrammingError(
                "cannot change autocommit inside a transaction: commit or roll back first",
                code="transaction_open",
            )
        self._autocommit = bool(value)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (begun by a statement, not yet ended)."""
        return self._tx is not None

    @property
    def transaction_id(self) -> str | None:
        """The open transaction's id on the service, for its logs."""
        return None if self._tx is None else self._tx.id

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise errors.InterfaceError("the connection is closed", code="connection_closed")

    # -- the PEP's methods -----------------------------------------------------------

    def cursor(self) -> Cursor:
        self._check_open()
        return Cursor(self)

    def commit(self) -> None:
        """Commit the open transaction; nothing to do without one (or in autocommit)."""
        self._check_open()
        tx, self._tx = self._tx, None
        if tx is None:
            return
        try:
            with translated():
                tx.commit()
        except errors.InternalError:
            # Aborted: the service rolled it back already; ending it frees its id now.
            self._quiet_rollback(tx)
            raise

    def rollback(self) -> None:
        """Roll back the open transaction; nothing to do without one."""
        self._check_open()
        tx, self._tx = self._tx, None
        if tx is None:
            return
        try:
            with translated():
                tx.rollback()
        except errors.OperationalError as exc:
            # Gone already (idle timeout, then forgotten): rolled back all the same.
            if exc.code != "transaction_not_found":
                raise

    def close(self) -> None:
        """Roll back an open transaction and release the HTTP client. Idempotent."""
        if self._closed:
            return
        tx, self._tx = self._tx, None
        self._closed = True
        try:
            if tx is not None:
                self._quiet_rollback(tx)
        finally:
            if self._owns_client:
                self.client.close()

    @staticmethod
    def _quiet_rollback(tx: Transaction) -> None:
        # Whatever stops this rollback (the service unreachable), the service rolls the
        # transaction back itself after its idle timeout: nothing is left committed.
        with contextlib.suppress(client_errors.TenantgateError):
            tx.rollback()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and not self._closed:
                self.commit()
        finally:
            # Rolls back what is still open, quietly: the block's error is the one to see.
            self.close()

    # -- what cursors call -----------------------------------------------------------

    def _transaction(self) -> Transaction:
        if self._tx is None:
            with translated():
                self._tx = self.client.begin(self.tenant, isolation=self.isolation)
        return self._tx

    def _options(self) -> dict[str, Any]:
        return {"max_rows": self.max_rows, "timeout_ms": self.timeout_ms, "dialect": self.dialect}

    def _query(self, sql: str, params: Params) -> Result:
        if self._autocommit:
            with translated():
                return self.client.query(self.tenant, sql, params, **self._options())
        tx = self._transaction()
        with translated():
            return tx.query(sql, params, **self._options())

    def _batch(self, statements: Sequence[tuple[str, Params]]) -> list[Result]:
        if self._autocommit:
            with translated():
                return self.client.batch(
                    self.tenant, statements, isolation=self.isolation, **self._options()
                )
        tx = self._transaction()
        with translated():
            return tx.batch(statements, **self._options())
