"""Errors of the service: a class and a stable code each.

The statuses drawn here are the HTTP front end's (``proxy.frontends.http.statuses``,
the one table that maps every error class to a status).

    ProxyError                       (code)                 status
    ├── InvalidRequest               invalid_request        400
    ├── RequestTooLarge              request_too_large      413
    ├── Unauthenticated              unauthenticated        401
    ├── Forbidden                    forbidden              403
    ├── RateLimited                  rate_limited           429  Retry-After
    ├── NotFound                     not_found              404
    ├── MethodNotAllowed             method_not_allowed     405
    ├── BackendRejected              backend_rejected       400  the backend refused the statement
    │   ├── ConstraintViolation      constraint_violation   409
    │   └── BackendObjectMissing     backend_object_missing 400  no such column/table (stale)
    ├── BackendUnavailable           backend_unavailable    503  Retry-After
    │   ├── PoolSaturated            pool_saturated         503  Retry-After
    │   └── ConnectionLost           backend_unavailable    503  Retry-After; the connection is dead
    ├── StatementTimeout             statement_timeout      504
    ├── NotReady                     not_ready              503  Retry-After; /readyz, its checks
    ├── (batches and interactive transactions, ``proxy.pipeline.transactions``)
    │   TransactionNotFound          transaction_not_found  404  (NotFound) not this token's
    │   TransactionAborted           transaction_aborted    409  rolled back already; ``reason``
    │   TransactionBusy              transaction_busy       409  another request of it is running
    │   TooManyTransactions          too_many_transactions  429  Retry-After; ``limit``
    └── (custom fields and records, ``proxy.admin`` / ``proxy.records``)
        InvalidCustomField           invalid_custom_field   400  (InvalidRequest)
        InvalidFieldValue            invalid_field_value    400  (InvalidRequest)
        UnsupportedPrimaryKey        unsupported_primary_key 400 (InvalidRequest)
        CustomFieldNotFound          custom_field_not_found 404  (NotFound)
        RecordNotFound               record_not_found       404  (NotFound)
        ColumnExists                 column_exists          409
        ColumnLimitReached           column_limit_reached   409
        BaseColumnProtected          base_column_protected  409
        PreconditionFailed           precondition_failed    412  If-Match no longer matches

The errors of ``rewriter`` and ``tenancy`` are mapped by that table too. A driver's
foreign exceptions are translated into these classes inside that driver
(``proxy.drivers.*.errors``, ``proxy.drivers.odbc.sqlstate``), nowhere else.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

_E = TypeVar("_E", bound=BaseException)


def chained(error: _E, cause: BaseException | None) -> _E:
    """``error`` with ``cause`` as its ``__cause__``, for ``raise chained(error, exc)``:
    ``raise error from exc`` spelled out, which the compiled modules (``proxy.compiled``)
    need. mypyc ignores ``from``: the cause is lost, and ``from None`` no longer hides
    the exception being handled (a driver's error, with what it quotes) from a logged
    traceback. ``cause=None`` hides it, as ``from None`` does."""
    error.__cause__ = cause
    return error


class ProxyError(Exception):
    code: ClassVar[str] = "proxy_error"
    connection_unusable: bool = False
    """Set on an error after which the connection that raised it must not be reused
    although its class does not say so (a SQL Server timeout whose cancel the server
    did not acknowledge); ``proxy.drivers.odbc.sqlstate.is_broken`` reads it."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **details: str | int | None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.details = {k: v for k, v in details.items() if v is not None}


class InvalidRequest(ProxyError):
    code = "invalid_request"


class RequestTooLarge(ProxyError):
    code = "request_too_large"


class Unauthenticated(ProxyError):
    code = "unauthenticated"


class Forbidden(ProxyError):
    code = "forbidden"


class RateLimited(ProxyError):
    code = "rate_limited"


class NotFound(ProxyError):
    code = "not_found"


class MethodNotAllowed(ProxyError):
    code = "method_not_allowed"


class BackendRejected(ProxyError):
    """The backend refused a statement that passed validation (bad value, failed cast...)."""

    code = "backend_rejected"


class ConstraintViolation(BackendRejected):
    code = "constraint_violation"


class BackendObjectMissing(BackendRejected):
    """The backend reported an unknown column or table although validation passed.

    That means our cached metadata is stale (a column was dropped or renamed since it
    was loaded): the staleness healing of issue #4 catches this class, refreshes the
    tenant's metadata and retries. ``details`` carry ``object_kind`` ("column" or
    "table") and ``object_name`` when the driver's message names them.
    """

    code = "backend_object_missing"


class BackendUnavailable(ProxyError):
    code = "backend_unavailable"


class ConnectionLost(BackendUnavailable):
    """The connection to the backend is dead; the pool discards it.

    Same stable code as its parent: to a caller it is just an unavailable backend.
    """

    code = "backend_unavailable"


class PoolSaturated(BackendUnavailable):
    code = "pool_saturated"


class StatementTimeout(ProxyError):
    code = "statement_timeout"


class NotReady(ProxyError):
    """``/readyz``: a readiness check failed. ``checks`` is every check's outcome by
    name and ``servers`` the backend servers' states, which the answer carries beside
    the error."""

    code = "not_ready"

    def __init__(
        self,
        message: str,
        *,
        checks: dict[str, dict[str, Any]] | None = None,
        servers: dict[str, dict[str, Any]] | None = None,
        retry_after: float = 1.0,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.checks = checks or {}
        self.servers = servers or {}


# -- batches and interactive transactions ---------------------------------------------


class TransactionNotFound(NotFound):
    """No open transaction has this id for this token (never had, or ended long ago)."""

    code = "transaction_not_found"


class TransactionAborted(ProxyError):
    """The transaction was rolled back (``reason``: statement_failed, idle_timeout,
    max_lifetime, shutdown); only ``rollback`` is left to do."""

    code = "transaction_aborted"


class TransactionBusy(ProxyError):
    """A transaction serves one request at a time."""

    code = "transaction_busy"


class TooManyTransactions(RateLimited):
    """The token's or the server's cap of open transactions (``limit``) is reached."""

    code = "too_many_transactions"


# -- custom fields and records --------------------------------------------------------


class InvalidCustomField(InvalidRequest):
    """A custom-field definition that fails validation (name, type, default...)."""

    code = "invalid_custom_field"


class InvalidFieldValue(InvalidRequest):
    """A record value that does not fit its column's type."""

    code = "invalid_field_value"


class UnsupportedPrimaryKey(InvalidRequest):
    """The records API needs a table with a single-column primary key."""

    code = "unsupported_primary_key"


class CustomFieldNotFound(NotFound):
    code = "custom_field_not_found"


class RecordNotFound(NotFound):
    code = "record_not_found"


class ColumnExists(ProxyError):
    """A new field's name equals an existing column's, ignoring case."""

    code = "column_exists"


class ColumnLimitReached(ProxyError):
    """The table already has as many columns as its backend allows."""

    code = "column_limit_reached"


class BaseColumnProtected(ProxyError):
    """Only custom fields can be dropped; base-model columns belong to every tenant."""

    code = "base_column_protected"


class PreconditionFailed(ProxyError):
    """``If-Match`` names a version of the record that is no longer current."""

    code = "precondition_failed"
