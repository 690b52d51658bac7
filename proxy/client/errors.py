"""What the client raises: one class per stable error code of the service.

Every error the service answers is ``{"error": {"code", "message", ...}}`` with a fixed
HTTP status (docs/errors.md). The client turns it into the class of its code, so callers
catch what they mean (``except UnknownColumn``) or a whole family (``except
RequestError``) instead of comparing strings. A code this client does not know yet (a
newer service) falls back to the class of its HTTP status; nothing is lost, ``code``
still says what the server said.

    TenantgateError                          (code)                     status
    ├── TransportError                       no answer from the service
    │   ├── ConnectError                     (also builtins.ConnectionError)
    │   ├── ClientTimeout                    (also builtins.TimeoutError)
    │   └── ProtocolError                    an answer that is not the API's
    ├── RequestError                         the caller's to fix         4xx
    │   ├── BadRequest                                                  400
    │   │   ├── InvalidRequest               invalid_request
    │   │   │   ├── InvalidCustomField       invalid_custom_field
    │   │   │   ├── InvalidFieldValue        invalid_field_value
    │   │   │   └── UnsupportedPrimaryKey    unsupported_primary_key
    │   │   ├── StatementTooLarge            statement_too_large
    │   │   ├── ParseError                   parse_error
    │   │   ├── MultipleStatements           multiple_statements
    │   │   ├── StatementNotAllowed          statement_not_allowed
    │   │   ├── ConstructNotAllowed          construct_not_allowed
    │   │   ├── ConstructNotSupportedOnBackend construct_not_supported_on_backend
    │   │   ├── CrossDatabaseReference       cross_database_reference
    │   │   ├── UnknownTable                 unknown_table
    │   │   ├── UnknownColumn                unknown_column
    │   │   ├── AmbiguousColumn              ambiguous_column
    │   │   ├── UnfilteredWrite              unfiltered_write
    │   │   ├── InvalidParameters            invalid_parameters
    │   │   ├── InvalidTenant                invalid_tenant
    │   │   └── BackendRejected              backend_rejected
    │   │       └── BackendObjectMissing     backend_object_missing
    │   ├── Unauthenticated                  unauthenticated             401
    │   ├── Forbidden                        forbidden                   403
    │   ├── NotFound                         not_found                   404
    │   │   ├── UnknownTenant                unknown_tenant
    │   │   ├── CustomFieldNotFound          custom_field_not_found
    │   │   ├── RecordNotFound               record_not_found
    │   │   └── TransactionNotFound          transaction_not_found
    │   ├── MethodNotAllowed                 method_not_allowed          405
    │   ├── Conflict                                                    409
    │   │   ├── ConstraintViolation          constraint_violation
    │   │   ├── ColumnExists                 column_exists
    │   │   ├── ColumnLimitReached           column_limit_reached
    │   │   ├── BaseColumnProtected          base_column_protected
    │   │   ├── TransactionBusy              transaction_busy
    │   │   └── TransactionAborted           transaction_aborted
    │   ├── PreconditionFailed               precondition_failed         412
    │   │   └── RecordChanged                (client) the record changed between two reads
    │   ├── RequestTooLarge                  request_too_large           413
    │   └── RateLimited                      rate_limited                429  retry_after
    │       └── TooManyTransactions          too_many_transactions       429  retry_after
    └── ServerError                                                      5xx
        ├── InternalError                    internal_error              500
        ├── TenantMisconfigured              tenant_misconfigured        502
        └── Unavailable                      worth retrying later        503/504
            ├── BackendUnavailable           backend_unavailable         503  retry_after
            ├── PoolSaturated                pool_saturated              503  retry_after
            ├── ControllerUnavailable        controller_unavailable      503  retry_after
            ├── NotReady                     not_ready                   503  retry_after
            └── StatementTimeout             statement_timeout           504

Each error carries ``code``, ``message`` (the server's, verbatim), ``status``,
``details`` (the body's other keys: ``index`` of a batch's statement, ``column``,
``field``...), ``request_id`` (the answer's ``X-Request-ID``, to find the server's log
lines) and ``retry_after`` (seconds, from ``Retry-After``). This module imports the
standard library only: it is the part of the client that a test compares with the
server's error classes (tests/unit/client/test_errors.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AmbiguousColumn",
    "BackendObjectMissing",
    "BackendRejected",
    "BackendUnavailable",
    "BadRequest",
    "BaseColumnProtected",
    "ClientTimeout",
    "ColumnExists",
    "ColumnLimitReached",
    "Conflict",
    "ConnectError",
    "ConstraintViolation",
    "ConstructNotAllowed",
    "ConstructNotSupportedOnBackend",
    "ControllerUnavailable",
    "CrossDatabaseReference",
    "CustomFieldNotFound",
    "Forbidden",
    "InternalError",
    "InvalidCustomField",
    "InvalidFieldValue",
    "InvalidParameters",
    "InvalidRequest",
    "InvalidTenant",
    "MethodNotAllowed",
    "MultipleStatements",
    "NotFound",
    "NotReady",
    "ParseError",
    "PoolSaturated",
    "PreconditionFailed",
    "ProtocolError",
    "RateLimited",
    "RecordChanged",
    "RecordNotFound",
    "RequestError",
    "RequestTooLarge",
    "ServerError",
    "StatementNotAllowed",
    "StatementTimeout",
    "StatementTooLarge",
    "TenantMisconfigured",
    "TenantgateError",
    "TooManyTransactions",
    "TransactionAborted",
    "TransactionBusy",
    "TransactionNotFound",
    "TransportError",
    "Unauthenticated",
    "Unavailable",
    "UnfilteredWrite",
    "UnknownColumn",
    "UnknownTable",
    "UnknownTenant",
    "UnsupportedPrimaryKey",
    "error_for",
]


class TenantgateError(Exception):
    """Anything the client raises about a request."""

    code: str = "tenantgate_error"
    status: int | None = None
    """The HTTP status of the answer; ``None`` when there was no answer."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            # A fallback class still reports the server's own code.
            self.code = code
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = dict(details or {})
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def index(self) -> int | None:
        """The 0-based statement of a batch that failed, when the server named one."""
        value = self.details.get("index")
        return value if isinstance(value, int) else None

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


# -- no answer -------------------------------------------------------------------------


class TransportError(TenantgateError):
    code = "transport_error"


class ConnectError(TransportError, ConnectionError):
    """The service could not be reached (refused, unresolvable, reset before answering)."""

    code = "connect_error"


class ClientTimeout(TransportError, TimeoutError):
    """The client gave up waiting (its ``timeout``); the statement may still have run."""

    code = "client_timeout"


class ProtocolError(TransportError):
    """An answer that is not the API's: not JSON, or a stream cut before its trailer."""

    code = "protocol_error"


# -- 4xx -------------------------------------------------------------------------------


class RequestError(TenantgateError):
    code = "request_error"


class BadRequest(RequestError):
    code = "bad_request"
    status = 400


class InvalidRequest(BadRequest):
    code = "invalid_request"


class InvalidCustomField(InvalidRequest):
    code = "invalid_custom_field"


class InvalidFieldValue(InvalidRequest):
    code = "invalid_field_value"


class UnsupportedPrimaryKey(InvalidRequest):
    code = "unsupported_primary_key"


class StatementTooLarge(BadRequest):
    code = "statement_too_large"


class ParseError(BadRequest):
    code = "parse_error"


class MultipleStatements(BadRequest):
    code = "multiple_statements"


class StatementNotAllowed(BadRequest):
    code = "statement_not_allowed"


class ConstructNotAllowed(BadRequest):
    code = "construct_not_allowed"


class ConstructNotSupportedOnBackend(BadRequest):
    code = "construct_not_supported_on_backend"


class CrossDatabaseReference(BadRequest):
    code = "cross_database_reference"


class UnknownTable(BadRequest):
    code = "unknown_table"


class UnknownColumn(BadRequest):
    code = "unknown_column"


class AmbiguousColumn(BadRequest):
    code = "ambiguous_column"


class UnfilteredWrite(BadRequest):
    code = "unfiltered_write"


class InvalidParameters(BadRequest):
    code = "invalid_parameters"


class InvalidTenant(BadRequest):
    code = "invalid_tenant"


class BackendRejected(BadRequest):
    code = "backend_rejected"


class BackendObjectMissing(BackendRejected):
    code = "backend_object_missing"


class Unauthenticated(RequestError):
    code = "unauthenticated"
    status = 401


class Forbidden(RequestError):
    code = "forbidden"
    status = 403


class NotFound(RequestError):
    code = "not_found"
    status = 404


class UnknownTenant(NotFound):
    code = "unknown_tenant"


class CustomFieldNotFound(NotFound):
    code = "custom_field_not_found"


class RecordNotFound(NotFound):
    code = "record_not_found"


class TransactionNotFound(NotFound):
    code = "transaction_not_found"


class MethodNotAllowed(RequestError):
    code = "method_not_allowed"
    status = 405


class Conflict(RequestError):
    code = "conflict"
    status = 409


class ConstraintViolation(Conflict):
    code = "constraint_violation"


class ColumnExists(Conflict):
    code = "column_exists"


class ColumnLimitReached(Conflict):
    code = "column_limit_reached"


class BaseColumnProtected(Conflict):
    code = "base_column_protected"


class TransactionBusy(Conflict):
    code = "transaction_busy"


class TransactionAborted(Conflict):
    """The transaction was rolled back (``details``: ``reason``, and ``cause``, the code
    of the statement that failed); only ``rollback`` is left to do."""

    code = "transaction_aborted"


class PreconditionFailed(RequestError):
    code = "precondition_failed"
    status = 412


class RecordChanged(PreconditionFailed):
    """Raised by the client itself (``proxy.client.records``): the record's base fields
    read with its custom fields differ from those loaded first; someone wrote it since."""

    code = "record_changed"


class RequestTooLarge(RequestError):
    code = "request_too_large"
    status = 413


class RateLimited(RequestError):
    code = "rate_limited"
    status = 429


class TooManyTransactions(RateLimited):
    code = "too_many_transactions"


# -- 5xx -------------------------------------------------------------------------------


class ServerError(TenantgateError):
    code = "server_error"


class InternalError(ServerError):
    code = "internal_error"
    status = 500


class TenantMisconfigured(ServerError):
    code = "tenant_misconfigured"
    status = 502


class Unavailable(ServerError):
    code = "unavailable"
    status = 503


class BackendUnavailable(Unavailable):
    code = "backend_unavailable"


class PoolSaturated(Unavailable):
    code = "pool_saturated"


class ControllerUnavailable(Unavailable):
    code = "controller_unavailable"


class NotReady(Unavailable):
    code = "not_ready"


class StatementTimeout(Unavailable):
    code = "statement_timeout"
    status = 504


def _classes(root: type[TenantgateError]) -> list[type[TenantgateError]]:
    found = []
    for sub in root.__subclasses__():
        found.append(sub)
        found.extend(_classes(sub))
    return found


_CLIENT_SIDE = (TransportError, RecordChanged)
BY_CODE: dict[str, type[TenantgateError]] = {
    cls.code: cls for cls in _classes(TenantgateError) if not issubclass(cls, _CLIENT_SIDE)
}
"""Every code the service answers → its class (and the families' own codes, harmless)."""

_BY_STATUS: dict[int, type[TenantgateError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    412: PreconditionFailed,
    413: RequestTooLarge,
    429: RateLimited,
    500: InternalError,
    502: TenantMisconfigured,
    503: Unavailable,
    504: Unavailable,
}


def error_for(
    status: int | None,
    code: str | None,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> TenantgateError:
    """The exception for an error answer: its code's class, else its status's.

    ``status`` is ``None`` for an error that ended a stream after its 200: the error
    then keeps its class's usual status.
    """
    cls = BY_CODE.get(code or "")
    if cls is None and status is not None:
        cls = _BY_STATUS.get(status)
    if cls is None:
        cls = RequestError if status is not None and 400 <= status < 500 else ServerError
    return cls(
        message,
        code=code,
        status=status,
        details=details,
        request_id=request_id,
        retry_after=retry_after,
    )
