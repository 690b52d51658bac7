"""The one table that turns any error into an HTTP status, and its stable code.

``status_for`` walks an exception's MRO, so a subclass inherits its parent's status
unless the table names it; anything not in the table is a bug of ours: 500
``internal_error``. ``tests/unit/test_errors.py`` fails if an error class is missing.
"""

from __future__ import annotations

from proxy.errors import (
    BackendRejected,
    BackendUnavailable,
    BaseColumnProtected,
    ColumnExists,
    ColumnLimitReached,
    ConstraintViolation,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PreconditionFailed,
    ProxyError,
    RateLimited,
    RequestTooLarge,
    StatementTimeout,
    TransactionAborted,
    TransactionBusy,
    Unauthenticated,
)
from rewriter.errors import RewriteError, UnfilteredWrite
from tenancy.errors import (
    ControllerUnavailable,
    InvalidTenantReference,
    MetadataUnavailable,
    TenancyError,
    TenantMisconfigured,
    UnknownTenant,
)

__all__ = ["ERROR_TABLE", "INTERNAL_ERROR", "status_for"]

ERROR_TABLE: dict[type[Exception], int] = {
    RewriteError: 400,
    UnfilteredWrite: 400,  # named for the reader: a refused write is the caller's to fix
    InvalidRequest: 400,
    InvalidTenantReference: 400,
    RequestTooLarge: 413,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    UnknownTenant: 404,
    MethodNotAllowed: 405,
    ConstraintViolation: 409,
    ColumnExists: 409,
    ColumnLimitReached: 409,
    BaseColumnProtected: 409,
    TransactionAborted: 409,
    TransactionBusy: 409,
    PreconditionFailed: 412,
    RateLimited: 429,
    BackendRejected: 400,
    TenantMisconfigured: 502,
    BackendUnavailable: 503,
    ControllerUnavailable: 503,
    MetadataUnavailable: 503,
    NotReady: 503,
    StatementTimeout: 504,
}

INTERNAL_ERROR = (500, "internal_error")


def status_for(error: BaseException) -> tuple[int, str]:
    """The HTTP status and stable code of ``error``; 500 only for our own bugs."""
    for cls in type(error).__mro__:
        status = ERROR_TABLE.get(cls)
        if status is not None:
            code = getattr(error, "code", None)
            if isinstance(error, RewriteError | TenancyError | ProxyError) and code:
                return status, code
            break
    return INTERNAL_ERROR
