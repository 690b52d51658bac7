"""The PEP 249 exceptions, and the one table that maps the client's errors to them.

The hierarchy is the PEP's, to the letter::

    Warning                  a truncated result (more rows than ``max_rows``)
    Error
    ├── InterfaceError       the driver itself: a closed cursor or connection, a
    │                        parameter the API cannot carry, an endpoint the service lacks
    └── DatabaseError
        ├── DataError        a value the database refused (bad cast, out of range)
        ├── OperationalError the service or database could not do it: unreachable,
        │                    timed out, saturated, unknown tenant, refused token
        ├── IntegrityError   a constraint the statement violated
        ├── InternalError    the transaction is out of sync: rolled back by the
        │                    service already (``transaction_aborted``); a service bug
        ├── ProgrammingError the statement is wrong: syntax, unknown table or column,
        │                    wrong parameters, a statement class the token may not run
        └── NotSupportedError a construct the tenant's backend cannot run

Every error raised for an answer of the service keeps the client's exception as
``__cause__`` and repeats what it carries: ``code`` (the server's stable code),
``status``, ``message``, ``details`` and ``request_id``. ``ERRORS`` is keyed by the
client's exception classes and walked along a raised error's MRO, so a code the
client does not know yet (it falls back to the class of its HTTP status) still lands
in the nearest family. The choices the PEP leaves open, and why:

* ``transaction_aborted`` → InternalError, the PEP's "transaction is out of sync",
  as psycopg maps PostgreSQL's ``in_failed_sql_transaction``: the service rolled the
  transaction back (a failed statement, an idle or lifetime limit) and only
  ``rollback()`` is left to do.
* 401 ``unauthenticated`` → OperationalError (psycopg: a failed login); 403
  ``forbidden`` → ProgrammingError (psycopg: ``insufficient_privilege``).
* ``unknown_tenant`` / ``invalid_tenant`` → OperationalError: the PEP's "data source
  name not found".
* ``backend_rejected`` → DataError: the database refused a value of a statement that
  passed validation; ``backend_object_missing`` (a dropped column) → ProgrammingError.
* ``not_found`` / ``method_not_allowed`` and answers that are not the API's →
  InterfaceError: the driver and the service do not speak the same API.
"""

from __future__ import annotations

import builtins
from typing import Any

from proxy.client import errors as ce

__all__ = [
    "ERRORS",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "translate",
]


class Warning(builtins.Exception):
    """An important warning: here, a result cut at ``max_rows``."""


class Error(builtins.Exception):
    """The base of every error of the driver."""

    code: str = "dbapi_error"
    status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = details or {}
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class InterfaceError(Error):
    code = "interface_error"


class DatabaseError(Error):
    code = "database_error"


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


ERRORS: dict[type[ce.TenantgateError], type[Error]] = {
    ce.TenantgateError: DatabaseError,
    # no answer
    ce.TransportError: OperationalError,
    ce.ProtocolError: InterfaceError,
    # 4xx: the statement or the way it was sent
    ce.RequestError: ProgrammingError,
    ce.InvalidFieldValue: DataError,
    ce.InvalidTenant: OperationalError,
    ce.ConstructNotSupportedOnBackend: NotSupportedError,
    ce.BackendRejected: DataError,
    ce.BackendObjectMissing: ProgrammingError,
    ce.Unauthenticated: OperationalError,
    ce.Forbidden: ProgrammingError,
    ce.NotFound: InterfaceError,
    ce.UnknownTenant: OperationalError,
    ce.TransactionNotFound: OperationalError,
    ce.MethodNotAllowed: InterfaceError,
    ce.Conflict: OperationalError,
    ce.ConstraintViolation: IntegrityError,
    ce.ColumnExists: ProgrammingError,
    ce.ColumnLimitReached: OperationalError,
    ce.BaseColumnProtected: ProgrammingError,
    ce.TransactionAborted: InternalError,
    ce.PreconditionFailed: OperationalError,
    ce.RateLimited: OperationalError,
    # 5xx
    ce.ServerError: OperationalError,
    ce.InternalError: InternalError,
}
"""The client's error classes → the PEP 249 class; a raised error takes the entry of
the first class of its MRO found here."""


def dbapi_class(error: ce.TenantgateError) -> type[Error]:
    for cls in type(error).__mro__:
        found = ERRORS.get(cls)
        if found is not None:
            return found
    return DatabaseError


def translate(error: ce.TenantgateError) -> Error:
    """The PEP 249 exception for a client error; raise it ``from error``."""
    return dbapi_class(error)(
        error.message,
        code=error.code,
        status=error.status,
        details=dict(error.details),
        request_id=error.request_id,
    )
