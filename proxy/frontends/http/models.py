"""The HTTP API's bodies, declared once: decoded, validated and documented from here.

Each request body is a msgspec type. ``Body.decode`` turns the raw bytes into it in one
pass (a microsecond or two for a typical ``/v1/query`` body, see docs/decisions.md), and
``proxy.frontends.http.openapi`` derives the JSON Schema of the OpenAPI document from the
same types. A body that does not fit is a 400 whose message names the field; nothing a
caller sends becomes a 500.

What depends on the configuration (the defaults and caps of ``[query]``) is applied by
``query_request``, which makes the pipeline's ``QueryRequest``. The semantic rules of a
custom field (a length only for text, scale within precision, a default of the field's
type) stay with ``tenancy.ddl.field_spec``, which ``proxy.tables.custom_fields`` runs on
the decoded body; the model refuses what has the wrong shape.

The response classes at the end document what the endpoints answer; they are not used
to encode it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from proxy.config import Settings
from proxy.errors import InvalidCustomField, InvalidRequest
from proxy.pipeline.request import QueryRequest
from proxy.pipeline.transactions import BatchRequest
from tenancy import ddl

__all__ = [
    "BATCH",
    "CUSTOM_FIELD",
    "QUERY",
    "RECORD",
    "TRANSACTION",
    "TRANSACTION_BATCH",
    "TRANSACTION_QUERY",
    "BatchBody",
    "BatchResult",
    "BatchStatement",
    "Body",
    "Check",
    "Column",
    "CustomField",
    "CustomFieldBody",
    "CustomFieldList",
    "Error",
    "ErrorDetail",
    "Explain",
    "QueryBody",
    "QueryResult",
    "Readiness",
    "RecordFields",
    "TenantRef",
    "TransactionBatchBody",
    "TransactionBody",
    "TransactionEnded",
    "TransactionOpened",
    "TransactionQueryBody",
    "batch_request",
    "custom_field",
    "query_request",
    "statements_of",
    "transaction_query",
]

# -- request bodies -------------------------------------------------------------------

Dialect = Literal["tsql", "postgres", "sqlite"]
"""``proxy.config.DIALECTS``, the rewriter's input dialects (a test keeps them equal)."""
Kind = Literal["text", "integer", "decimal", "boolean", "date", "datetime"]
"""``tenancy.ddl.CREATABLE_KINDS`` (a test keeps them equal)."""


class QueryBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One logical statement for one tenant (POST /v1/query and /v1/explain)."""

    tenant: Annotated[
        Annotated[str, Meta(min_length=1)] | int,
        Meta(description="Customer id or domain name."),
    ]
    sql: Annotated[
        str,
        Meta(pattern=r"\S", description="One statement, in `dialect`, naming logical tables."),
    ]
    params: Annotated[
        Annotated[list[Any], Meta(description="values for ? in order")]
        | Annotated[dict[str, Any], Meta(description="values for @name")],
        Meta(description="Strings, numbers, booleans or null."),
    ] = msgspec.field(default_factory=list)
    dialect: Dialect | UnsetType = UNSET
    max_rows: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    timeout_ms: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    missing_columns: Annotated[
        Literal["error", "null"],
        Meta(description="reads only: writes always refuse a missing column"),
    ] = "error"
    allow_unfiltered: Annotated[
        bool,
        Meta(
            description="let an UPDATE or DELETE without WHERE run "
            "(refused with unfiltered_write otherwise)"
        ),
    ] = False


Isolation = Literal["read_uncommitted", "read_committed", "repeatable_read", "serializable"]
"""``proxy.drivers.base.ISOLATION_LEVELS`` (a test keeps them equal)."""

_Params = Annotated[
    Annotated[list[Any], Meta(description="values for ? in order")]
    | Annotated[dict[str, Any], Meta(description="values for @name")],
    Meta(description="Strings, numbers, booleans or null."),
]
_Sql = Annotated[
    str, Meta(pattern=r"\S", description="One statement, in `dialect`, naming logical tables.")
]
_MissingColumns = Annotated[
    Literal["error", "null"], Meta(description="reads only: writes always refuse a missing column")
]


class BatchStatement(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One statement of a batch: a /v1/query body's statement fields."""

    sql: _Sql
    params: _Params = msgspec.field(default_factory=list)
    max_rows: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    missing_columns: _MissingColumns = "error"
    allow_unfiltered: bool = False


class BatchBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Statements run in order in one transaction, all or nothing (POST /v1/batch)."""

    tenant: Annotated[
        Annotated[str, Meta(min_length=1)] | int,
        Meta(description="Customer id or domain name."),
    ]
    statements: Annotated[list[BatchStatement], Meta(min_length=1)]
    isolation: Isolation | UnsetType = UNSET
    dialect: Dialect | UnsetType = UNSET
    max_rows: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    timeout_ms: Annotated[int, Meta(ge=1, description="the whole batch's deadline")] | UnsetType = (
        UNSET
    )


class TransactionBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An interactive transaction to begin (POST /v1/transactions)."""

    tenant: Annotated[
        Annotated[str, Meta(min_length=1)] | int,
        Meta(description="Customer id or domain name."),
    ]
    isolation: Isolation | UnsetType = UNSET


class TransactionQueryBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One statement in an open transaction: a /v1/query body without `tenant`."""

    sql: _Sql
    params: _Params = msgspec.field(default_factory=list)
    dialect: Dialect | UnsetType = UNSET
    max_rows: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    timeout_ms: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    missing_columns: _MissingColumns = "error"
    allow_unfiltered: bool = False


class TransactionBatchBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Statements run in order in an open transaction: a /v1/batch body without
    `tenant` and `isolation`."""

    statements: Annotated[list[BatchStatement], Meta(min_length=1)]
    dialect: Dialect | UnsetType = UNSET
    max_rows: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    timeout_ms: Annotated[int, Meta(ge=1, description="the whole batch's deadline")] | UnsetType = (
        UNSET
    )


class CustomFieldBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A custom field to add. `length` applies to text only (required there), `precision`
    and `scale` to decimal only (both required, scale at most precision)."""

    name: Annotated[str, Meta(pattern="^[A-Za-z_][A-Za-z0-9_]*$", max_length=ddl.MAX_NAME)]
    type: Kind
    length: Annotated[int, Meta(ge=1, le=ddl.MAX_TEXT_LENGTH)] | UnsetType = UNSET
    precision: Annotated[int, Meta(ge=1, le=38)] | UnsetType = UNSET
    scale: Annotated[int, Meta(ge=0, le=38)] | UnsetType = UNSET
    nullable: bool = True
    default: Annotated[
        Any, Meta(description="a value of the field's type; required when nullable is false")
    ] = None


RecordFields = Annotated[
    dict[str, Any],
    Meta(
        min_length=1,
        title="RecordFields",
        description="Column name to value; dates 'YYYY-MM-DD', date-times "
        "'YYYY-MM-DD HH:MM:SS', decimals as numbers or strings.",
    ),
]


# -- decoding -------------------------------------------------------------------------

T = TypeVar("T")

# msgspec's messages: "<what> - at `$.field...`" below the top; at the top "Object
# missing required field `x`", "Object contains unknown field `x`", "Expected `object`...".
_AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_FIELD = re.compile(r"^\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>.*)$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>.*)`$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>.*)`$", re.DOTALL)
_NOT_PLAIN = object()


class Body(Generic[T]):
    """A request body: its type, its decoder, and what to say when a body does not fit.

    ``messages`` has one sentence per field, used when that field is missing or its value
    does not fit; ``not_object`` answers a body that is JSON but not the expected object.
    ``explain`` (optional) is given the body decoded as plain JSON when the model refuses
    it, and may raise the error to answer with instead (a sentence of its own).
    """

    def __init__(
        self,
        type_: Any,
        *,
        not_object: str,
        messages: Mapping[str, str] | None = None,
        error: type[InvalidRequest] = InvalidRequest,
        explain: Callable[[Any], None] | None = None,
    ) -> None:
        self.type = type_
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)
        self._not_object = not_object
        self._messages = dict(messages or {})
        self._error = error
        self._explain = explain
        fields: tuple[str, ...] = getattr(type_, "__struct_fields__", ())
        self._fields = frozenset(fields)

    def decode(self, raw: bytes) -> T:
        """The decoded body; ``InvalidRequest`` (or ``error``) saying what is wrong."""
        try:
            try:
                return self._decoder.decode(raw)
            except msgspec.ValidationError as exc:
                raise self._refusal(raw, str(exc)) from None
        except msgspec.DecodeError as exc:
            raise _malformed(exc) from None
        except RecursionError:
            # msgspec recurses per level of nesting: ``[[[...]]]`` thousands deep in
            # params (or anywhere) must be the caller's 400, not our 500.
            raise self._error("the body is nested too deeply") from None

    def _refusal(self, raw: bytes, text: str) -> InvalidRequest:
        # The error path only: decode again as plain JSON, for a fuller answer.
        try:
            plain: Any = msgspec.json.decode(raw)
        except msgspec.ValidationError:  # a number beyond any type's range
            plain = _NOT_PLAIN
        except msgspec.DecodeError as exc:  # the type refused it before the syntax did
            return _malformed(exc)
        if self._explain is not None and plain is not _NOT_PLAIN:
            self._explain(plain)
        if not (at := _AT.match(text)):
            if (m := _UNKNOWN.match(text)) and isinstance(plain, dict) and self._fields:
                unknown = sorted(set(plain) - self._fields) or [m["name"]]
                return self._error(f"unknown fields: {', '.join(unknown)}", field=unknown[0])
            if m := _MISSING.match(text):
                return self._field(m["name"], text)
            return self._error(self._not_object)
        field = _FIELD.match(at["path"])
        if field is None:  # inside a free-form object: msgspec's own words
            return self._error(f"the body does not fit: {text}")
        if field["rest"]:  # inside a field's value (a number out of range in params...)
            return self._error(f"'{field['name']}': {text}", field=field["name"])
        return self._field(field["name"], text)

    def _field(self, name: str, text: str) -> InvalidRequest:
        return self._error(self._messages.get(name, f"'{name}': {text}"), field=name)


def _malformed(exc: msgspec.DecodeError) -> InvalidRequest:
    text = str(exc).removeprefix("JSON is malformed: ")
    return InvalidRequest(f"the body is not valid JSON: {text}")


def _field_spec_refusal(plain: Any) -> None:
    """``tenancy.ddl.field_spec``'s sentence for a body it refuses, as a 400."""
    try:
        ddl.field_spec(plain)
    except ddl.FieldError as exc:
        raise InvalidCustomField(exc.message, field=exc.field) from None


_STATEMENT_MESSAGES = {
    "sql": "'sql' must be a non-empty string",
    "params": "'params' must be a list (for ?) or an object (for @name)",
    "dialect": "'dialect' must be one of tsql, postgres, sqlite",
    "max_rows": "'max_rows' must be a positive integer",
    "timeout_ms": "'timeout_ms' must be a positive integer",
    "missing_columns": "'missing_columns' must be 'error' or 'null'",
    "allow_unfiltered": "'allow_unfiltered' must be true or false",
    "isolation": "'isolation' must be one of read_uncommitted, read_committed, "
    "repeatable_read, serializable",
    "statements": "'statements' must be a non-empty list of {sql, params} objects",
    "tenant": "'tenant' must be a customer id or a domain name",
}
QUERY: Body[QueryBody] = Body(
    QueryBody, not_object="the body must be a JSON object", messages=_STATEMENT_MESSAGES
)
CUSTOM_FIELD: Body[CustomFieldBody] = Body(
    CustomFieldBody,
    not_object="the body must be a JSON object",
    error=InvalidCustomField,
    explain=_field_spec_refusal,
)
RECORD: Body[dict[str, Any]] = Body(
    RecordFields, not_object="the body must be a JSON object with at least one field"
)


def query_request(raw: bytes, settings: Settings) -> QueryRequest:
    """A ``/v1/query`` or ``/v1/explain`` body as the pipeline takes it: the defaults of
    ``[query]`` filled in, ``max_rows`` and ``timeout_ms`` clamped to their caps."""
    body = QUERY.decode(raw)
    q = settings.query
    dialect, max_rows, timeout_ms = body.dialect, body.max_rows, body.timeout_ms
    return QueryRequest(
        body.tenant,
        body.sql,
        body.params,
        q.default_dialect if dialect is UNSET else dialect,
        max_rows=q.default_max_rows if max_rows is UNSET else min(max_rows, q.max_rows_cap),
        timeout_ms=q.default_timeout_ms
        if timeout_ms is UNSET
        else min(timeout_ms, q.max_timeout_ms),
        missing_columns=body.missing_columns,
        allow_unfiltered=body.allow_unfiltered,
    )


BATCH: Body[BatchBody] = Body(
    BatchBody, not_object="the body must be a JSON object", messages=_STATEMENT_MESSAGES
)
TRANSACTION: Body[TransactionBody] = Body(
    TransactionBody, not_object="the body must be a JSON object", messages=_STATEMENT_MESSAGES
)
TRANSACTION_QUERY: Body[TransactionQueryBody] = Body(
    TransactionQueryBody,
    not_object="the body must be a JSON object",
    messages=_STATEMENT_MESSAGES,
)
TRANSACTION_BATCH: Body[TransactionBatchBody] = Body(
    TransactionBatchBody,
    not_object="the body must be a JSON object",
    messages=_STATEMENT_MESSAGES,
)


def _capped(value: int | UnsetType, default: int, cap: int) -> int:
    return default if value is UNSET else min(value, cap)


def statements_of(
    body: BatchBody | TransactionBatchBody, tenant: str | int, settings: Settings
) -> tuple[tuple[QueryRequest, ...], int]:
    """A batch's statements as the pipeline takes them, and the batch's timeout."""
    q = settings.query
    limit = settings.transactions.max_batch_statements
    if len(body.statements) > limit:
        raise InvalidRequest(
            f"a batch may hold at most {limit} statements, this one has {len(body.statements)}",
            field="statements",
        )
    dialect = q.default_dialect if body.dialect is UNSET else body.dialect
    timeout_ms = _capped(body.timeout_ms, q.default_timeout_ms, q.max_timeout_ms)
    default_rows = _capped(body.max_rows, q.default_max_rows, q.max_rows_cap)
    statements = tuple(
        QueryRequest(
            tenant,
            s.sql,
            s.params,
            dialect,
            max_rows=_capped(s.max_rows, default_rows, q.max_rows_cap),
            timeout_ms=timeout_ms,
            missing_columns=s.missing_columns,
            allow_unfiltered=s.allow_unfiltered,
        )
        for s in body.statements
    )
    return statements, timeout_ms


def batch_request(raw: bytes, settings: Settings) -> BatchRequest:
    """A ``/v1/batch`` body as the pipeline takes it."""
    body = BATCH.decode(raw)
    statements, timeout_ms = statements_of(body, body.tenant, settings)
    isolation = None if body.isolation is UNSET else body.isolation
    return BatchRequest(body.tenant, statements, isolation, timeout_ms)


def transaction_query(raw: bytes, tenant: str | int, settings: Settings) -> QueryRequest:
    """A statement for an open transaction of ``tenant``, as the pipeline takes it."""
    body = TRANSACTION_QUERY.decode(raw)
    q = settings.query
    return QueryRequest(
        tenant,
        body.sql,
        body.params,
        q.default_dialect if body.dialect is UNSET else body.dialect,
        max_rows=_capped(body.max_rows, q.default_max_rows, q.max_rows_cap),
        timeout_ms=_capped(body.timeout_ms, q.default_timeout_ms, q.max_timeout_ms),
        missing_columns=body.missing_columns,
        allow_unfiltered=body.allow_unfiltered,
    )


def custom_field(raw: bytes) -> dict[str, Any]:
    """A custom-field body as ``tenancy.ddl.field_spec`` reads it (absent fields absent).

    The rules the model cannot state (a scale within its precision, the reserved
    prefix in a name...) are checked here too, so every refusal comes before the tenant
    is looked up."""
    fields: dict[str, Any] = msgspec.to_builtins(CUSTOM_FIELD.decode(raw))
    _field_spec_refusal(fields)
    return fields


# -- responses (documented shapes) ------------------------------------------------------


class Column(msgspec.Struct):
    name: str
    type: str


class QueryResult(msgspec.Struct):
    """Rows of a read, or rows affected by a write."""

    columns: list[Column]
    rows: list[list[Any]]
    row_count: Annotated[
        int,
        Meta(
            description="rows returned by a read; rows affected by a write "
            "(with OUTPUT/RETURNING too, even when rows are truncated)"
        ),
    ]
    truncated: bool


class TenantRef(msgspec.Struct):
    id: int
    domain: str


class BatchResult(msgspec.Struct):
    """One result per statement, in order."""

    results: list[QueryResult]


class TransactionOpened(msgspec.Struct):
    """An open transaction: send its statements to /v1/transactions/{id}/query."""

    id: str
    tenant: TenantRef
    idle_timeout_ms: Annotated[
        int, Meta(description="rolled back after this long without a request")
    ]
    max_lifetime_ms: Annotated[int, Meta(description="rolled back this long after it began")]


class TransactionEnded(msgspec.Struct):
    id: str
    committed: bool | UnsetType = UNSET
    rolled_back: bool | UnsetType = UNSET


class Explain(msgspec.Struct):
    """The backend statement a logical one becomes, without running it."""

    tenant: TenantRef
    backend: str
    driver: str
    server: str
    database: str | None
    sql: str
    params: Annotated[
        list[Any],
        Meta(
            description="The bind values in the SQL's order, including the row cap "
            "(max_rows + 1, or the statement's own smaller count) on reads"
        ),
    ]
    columns: list[str]
    statement_class: str
    plan_cached: bool


class CustomField(msgspec.Struct):
    """A custom field as the catalog reports it; `length` for text, `precision` and
    `scale` for decimal."""

    name: str
    type: Literal["text", "integer", "decimal", "boolean", "date", "datetime", "float", "other"]
    backend_type: str
    nullable: bool
    length: int | UnsetType | None = UNSET
    precision: int | UnsetType | None = UNSET
    scale: int | UnsetType | None = UNSET


class CustomFieldList(msgspec.Struct):
    table: str
    custom_fields: list[CustomField]
    column_count: int
    column_limit: int


class ErrorDetail(msgspec.Struct):
    """A stable `code`, a sentence, and details (`field`, `table`...) where known."""

    code: str  # its enum (the error codes) is added by proxy.frontends.http.openapi
    message: str


class Error(msgspec.Struct):
    error: ErrorDetail


class Check(msgspec.Struct):
    """One readiness check: `code` and `message` say why when it fails."""

    ok: bool
    ms: Annotated[float, Meta(description="how long the check took, in milliseconds")]
    code: str | UnsetType = UNSET
    message: str | UnsetType = UNSET


class ServerState(msgspec.Struct):
    """A backend server as requests lately found it: `failing` from its first
    `backend_unavailable` (no connection, or one lost under a statement) until a
    statement runs on it again."""

    state: Literal["up", "failing"]
    for_s: Annotated[float, Meta(description="seconds since the state began")]
    failures: Annotated[int, Meta(description="errors since it began failing")] | UnsetType = UNSET
    code: Annotated[str, Meta(description="the last error's code")] | UnsetType = UNSET


class Readiness(msgspec.Struct):
    """`/readyz`: every check by name (`controller`: a query of the customer table,
    bounded by `controller.timeout_ms`). When one fails the answer is 503 with the
    error shape (`not_ready`), `Retry-After`, and this body's fields beside `error`.
    `servers` reports each PostgreSQL and SQL Server server that requests have used
    since the process started, keyed by its secret-free label; a failing server does
    not make the process unready (its tenants get 503 `backend_unavailable`, the
    others are served)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Check]
    servers: dict[str, ServerState]
