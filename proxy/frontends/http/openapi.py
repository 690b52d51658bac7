"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Derived, not written out: paths, methods and operation ids (the metric names) come from
the routes (``proxy.frontends.http.app.ROUTES``), path parameters from their templates,
and every schema from the models of ``proxy.frontends.http.models`` through msgspec's
JSON Schema, with the defaults and caps of the configuration filled in. What only prose
can say (a summary, the statuses an operation may answer, headers) is in
``OPERATIONS``, one entry per route name: building the document fails if a route has no
entry or an entry no route. ``tests/unit/test_openapi_routes.py`` compares the document
with the routes of a real app and validates the bodies the tests send against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from proxy import __version__
from proxy.config import QuerySettings, Settings
from proxy.frontends.http.models import (
    BATCH,
    CUSTOM_FIELD,
    QUERY,
    RECORD,
    TRANSACTION,
    TRANSACTION_BATCH,
    TRANSACTION_QUERY,
    BatchBody,
    BatchResult,
    Body,
    CustomField,
    CustomFieldBody,
    CustomFieldList,
    Error,
    Explain,
    QueryBody,
    QueryResult,
    Readiness,
    RecordFields,
    TransactionBatchBody,
    TransactionBody,
    TransactionEnded,
    TransactionOpened,
    TransactionQueryBody,
)

__all__ = ["ERROR_CODES", "OPERATIONS", "Operation", "openapi_document"]

ERROR_CODES = [
    "invalid_request", "request_too_large", "statement_too_large", "unauthenticated",
    "forbidden", "rate_limited",
    "not_found", "method_not_allowed", "parse_error", "multiple_statements",
    "statement_not_allowed", "construct_not_allowed", "construct_not_supported_on_backend",
    "cross_database_reference", "unknown_table", "unknown_column", "ambiguous_column",
    "invalid_parameters", "unfiltered_write", "invalid_tenant", "unknown_tenant",
    "backend_rejected",
    "backend_object_missing",
    "constraint_violation", "tenant_misconfigured", "controller_unavailable",
    "backend_unavailable", "pool_saturated", "statement_timeout", "not_ready", "internal_error",
    "invalid_custom_field", "invalid_field_value", "unsupported_primary_key",
    "custom_field_not_found", "record_not_found", "column_exists", "column_limit_reached",
    "base_column_protected", "precondition_failed",
    "transaction_not_found", "transaction_aborted", "transaction_busy", "too_many_transactions",
]  # fmt: skip
"""Every stable error code (``tests/unit/test_errors.py`` checks each error class's)."""

_SCHEMAS = "#/components/schemas/"

DOCUMENTED: tuple[tuple[str, Any], ...] = (
    ("QueryRequest", QueryBody),
    ("QueryResult", QueryResult),
    ("Explain", Explain),
    ("BatchRequest", BatchBody),
    ("BatchResult", BatchResult),
    ("TransactionRequest", TransactionBody),
    ("TransactionOpened", TransactionOpened),
    ("TransactionQueryRequest", TransactionQueryBody),
    ("TransactionBatchRequest", TransactionBatchBody),
    ("TransactionEnded", TransactionEnded),
    ("CustomField", CustomField),
    ("CustomFieldList", CustomFieldList),
    ("CustomFieldRequest", CustomFieldBody),
    ("RecordFields", RecordFields),
    ("Readiness", Readiness),
    ("Error", Error),
)
"""Component name of each documented model (nested ones keep their class names)."""

PATH_PARAMETERS = {
    "tenant": "Customer id or domain name.",
    "table": "Table name (matched case-insensitively).",
    "name": "The field's name.",
    "key": "Primary-key value.",
    "id": "The transaction's id, as its begin answered.",
}
_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says about one route beyond its method and path."""

    summary: str
    ok: str
    """Description of the success answer."""
    status: int = 200
    response: Any = None
    """The documented model of the success body (one of ``DOCUMENTED``), if any."""
    body: Body[Any] | None = None
    example: Any = None
    """A request body that ``body`` accepts (the test checks it)."""
    errors: tuple[int, ...] = ()
    secured: bool = True
    parameters: tuple[Mapping[str, Any], ...] = ()
    """Beyond the path's own (query flags, headers)."""
    headers: Mapping[str, Any] = field(default_factory=dict)
    media_type: str | None = None
    """A success body that is not JSON (``/metrics``)."""
    streamed: Mapping[str, Any] = field(default_factory=dict)
    """Media types the success body may also come as, chosen by ``Accept``."""


_COMMON = (400, 401, 403, 404, 413, 429, 502, 503, 504)
_CUSTOM = {
    "name": "custom",
    "in": "query",
    "required": False,
    "description": "Also return the custom fields (read only when asked for).",
    "schema": {"type": "boolean", "default": False},
}
_ETAG = {
    "ETag": {
        "description": "Strong hash of the record's returned values.",
        "schema": {"type": "string"},
    }
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "An ETag from GET; 412 precondition_failed if the record changed since. "
    "'*' requires only that it exists.",
    "schema": {"type": "string"},
}
_STREAMED = {
    "application/x-ndjson": {
        "schema": {
            "type": "string",
            "description": "With `Accept: application/x-ndjson`, a read is streamed: a line "
            '`{"columns": [...]}`, one JSON array per row, then `{"row_count": n, "truncated": '
            'b}`, or `{"error": {"code": ..., "message": ...}, "row_count": n}` when it failed '
            "after the first line. `max_rows` defaults to, and is capped at, "
            "`query.stream_max_rows`. A write is answered as JSON. See docs/transactions.md.",
        }
    },
    "text/csv": {
        "schema": {
            "type": "string",
            "description": "With `Accept: text/csv`, a read streamed as RFC 4180 CSV: a header "
            "row, one line per row; `#truncated,<n>` last when cut at `max_rows`. An error after "
            "the first line ends the transfer unfinished after a line `#error,<code>,<message>`.",
        }
    },
}
_QUERY_EXAMPLE = {
    "tenant": "beta.example",
    "sql": "SELECT * FROM Contacts WHERE ContactID = ?",
    "params": [5],
}

OPERATIONS: Mapping[str, Operation] = {
    "query": Operation(
        "Run one logical statement for a tenant",
        "Rows, or rows affected by a write.",
        response=QueryResult,
        body=QUERY,
        example=_QUERY_EXAMPLE,
        errors=_COMMON,
        streamed=_STREAMED,
    ),
    "explain": Operation(
        "Show the backend SQL a statement becomes, without running it",
        "The generated statement.",
        response=Explain,
        body=QUERY,
        example=_QUERY_EXAMPLE,
        errors=_COMMON,
    ),
    "batch": Operation(
        "Run statements in order in one transaction, all or nothing",
        "One result per statement; a failure names its statement's index.",
        response=BatchResult,
        body=BATCH,
        example={
            "tenant": "beta.example",
            "statements": [
                {
                    "sql": "UPDATE Contacts SET FirstName = ? WHERE ContactID = ?",
                    "params": ["Ada", 5],
                },
                {"sql": "SELECT FirstName FROM Contacts WHERE ContactID = ?", "params": [5]},
            ],
        },
        errors=(*_COMMON, 409),
    ),
    "transaction_begin": Operation(
        "Begin an interactive transaction for a tenant; its id is bound to the token",
        "Begun: its id and timeouts.",
        status=201,
        response=TransactionOpened,
        body=TRANSACTION,
        example={"tenant": "beta.example", "isolation": "serializable"},
        errors=_COMMON,
    ),
    "transaction_query": Operation(
        "Run one statement in an open transaction",
        "Rows, or rows affected by a write. A database error rolls the transaction back.",
        response=QueryResult,
        body=TRANSACTION_QUERY,
        example={"sql": "SELECT * FROM Contacts WHERE ContactID = ?", "params": [5]},
        errors=(*_COMMON, 409),
    ),
    "transaction_batch": Operation(
        "Run statements in order in an open transaction",
        "One result per statement. A database error rolls the transaction back.",
        response=BatchResult,
        body=TRANSACTION_BATCH,
        example={
            "statements": [{"sql": "DELETE FROM Contacts WHERE ContactID = ?", "params": [5]}]
        },
        errors=(*_COMMON, 409),
    ),
    "transaction_commit": Operation(
        "Commit an open transaction",
        "Committed.",
        response=TransactionEnded,
        errors=(401, 404, 409, 503, 504),
    ),
    "transaction_rollback": Operation(
        "Roll back a transaction (also acknowledges one that was rolled back already)",
        "Rolled back.",
        response=TransactionEnded,
        errors=(401, 404, 409, 503, 504),
    ),
    "schema": Operation(
        "A tenant's tables with base and custom columns",
        "Tables and columns.",
        errors=(400, 401, 403, 404, 502, 503),
    ),
    "schema_refresh": Operation(
        "Forget cached metadata of a tenant (admin)",
        "Refreshed.",
        errors=(400, 401, 403, 404, 503),
    ),
    "custom_fields_list": Operation(
        "A table's custom fields with their types (admin)",
        "Custom fields.",
        response=CustomFieldList,
        errors=(400, 401, 403, 404, 502, 503),
    ),
    "custom_fields_add": Operation(
        "Add a custom field (admin); the metadata cache reflects it at once",
        "The field as the catalog now reports it.",
        status=201,
        response=CustomField,
        body=CUSTOM_FIELD,
        example={"name": "Region", "type": "text", "length": 50},
        errors=(400, 401, 403, 404, 409, 413, 502, 503, 504),
    ),
    "custom_fields_drop": Operation(
        "Drop a custom field (admin); base columns are refused",
        "Dropped.",
        errors=(400, 401, 403, 404, 409, 502, 503, 504),
    ),
    "record_insert": Operation(
        "Insert a record from the given fields (write); returns its key",
        "Created: {table, key, primary_key}; Location set.",
        status=201,
        body=RECORD,
        example={"FirstName": "Ada", "LastName": "Lovelace", "IsActive": True},
        errors=(400, 401, 403, 404, 409, 413, 502, 503, 504),
    ),
    "record_get": Operation(
        "One record by primary key (read)",
        "The record, keyed by physical column name.",
        response=RecordFields,
        parameters=(_CUSTOM,),
        headers=_ETAG,
        errors=(400, 401, 403, 404, 502, 503, 504),
    ),
    "record_patch": Operation(
        "Change only the given fields (write); If-Match for optimistic concurrency",
        "The record after the change, with its new ETag.",
        response=RecordFields,
        body=RECORD,
        example={"Title": "Engineer"},
        parameters=(_CUSTOM, _IF_MATCH),
        headers=_ETAG,
        errors=(400, 401, 403, 404, 409, 412, 413, 502, 503, 504),
    ),
    "tenant_stats": Operation(
        "The busiest tenants over the last stats.tenants_window_s (a token for every tenant)",
        "Ranked tenants with their requests, errors, busy seconds and share of requests "
        "(estimates from a bounded summary).",
        parameters=(
            {
                "name": "top",
                "in": "query",
                "required": False,
                "description": "How many tenants, 1 to 1000.",
                "schema": {"type": "integer", "default": 20, "minimum": 1, "maximum": 1000},
            },
            {
                "name": "by",
                "in": "query",
                "required": False,
                "description": "The measure ranked: requests, errors or seconds.",
                "schema": {
                    "type": "string",
                    "enum": ["requests", "errors", "seconds"],
                    "default": "requests",
                },
            },
        ),
        errors=(400, 401, 403),
    ),
    "healthz": Operation("The process is alive", "ok", secured=False),
    "readyz": Operation(
        "Ready to serve: the controller answers within controller.timeout_ms",
        "Every check passed. A failing one answers 503 not_ready within about "
        "controller.timeout_ms, with Retry-After and the checks beside the error.",
        response=Readiness,
        secured=False,
        errors=(503,),
    ),
    "metrics": Operation(
        "Prometheus metrics in the text exposition format",
        "metrics",
        secured=False,  # unless server.metrics_require_token: see openapi_document
        media_type="text/plain",
    ),
    "openapi": Operation("This document", "ok", secured=False),
}


def openapi_document(
    routes: Iterable[tuple[str, str, str, Any]], settings: Settings | None = None
) -> dict[str, Any]:
    """The document for ``routes`` ((method, path, name, endpoint), as ``ROUTES``), with
    the defaults and caps of ``settings`` (the shipped ones without)."""
    routes = list(routes)
    names = [name for _, _, name, _ in routes]
    if len(set(names)) != len(names):
        raise ValueError("route names (operation ids) must be unique")
    undocumented = sorted(set(names) - OPERATIONS.keys())
    stray = sorted(OPERATIONS.keys() - set(names))
    if undocumented or stray:
        raise ValueError(f"routes without OPERATIONS: {undocumented}; without a route: {stray}")
    metrics_secured = settings is not None and settings.server.metrics_require_token
    paths: dict[str, dict[str, Any]] = {}
    for method, path, name, _ in routes:
        op = OPERATIONS[name]
        if name == "metrics" and metrics_secured:
            op = replace(op, secured=True, errors=(401,))
        paths.setdefault(path, {})[method.lower()] = _operation(path, name, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tenantgate",
            "version": __version__,
            "description": "Tenant-aware SQL proxy: one logical statement in, "
            "the right tenant's rows out.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error with a stable code.",
                    "content": {"application/json": {"schema": {"$ref": _SCHEMAS + "Error"}}},
                }
            },
            "schemas": schemas(settings.query if settings is not None else QuerySettings()),
        },
    }


def schemas(query: QuerySettings) -> dict[str, Any]:
    """The components' schemas: the models' JSON Schema under their documented names."""
    types = [t for _, t in DOCUMENTED]
    refs, components = msgspec.json.schema_components(types, ref_template=_SCHEMAS + "{name}")
    out: dict[str, Any] = dict(components)
    for (name, _), ref in zip(DOCUMENTED, refs, strict=True):
        if "$ref" not in ref:  # not a Struct: its schema is inline
            out[name] = ref
            continue
        own = ref["$ref"].removeprefix(_SCHEMAS)
        if own != name:  # renamed: only if nothing else refers to it
            if f'"{ref["$ref"]}"' in msgspec.json.encode(components).decode():
                raise ValueError(f"{own} is nested in another model: it cannot be renamed")
            out[name] = {**out.pop(own), "title": name}
    for schema in out.values():  # a docstring of several lines: one line of prose
        if "description" in schema:
            schema["description"] = " ".join(schema["description"].split())
    _configure(out["QueryRequest"], query)
    detail = out["ErrorDetail"]
    detail["properties"]["code"]["enum"] = ERROR_CODES
    detail["additionalProperties"] = True
    return dict(sorted(out.items()))


def _configure(schema: dict[str, Any], q: QuerySettings) -> None:
    """The defaults and caps of ``[query]``, which the model leaves to the configuration."""
    props = schema["properties"]
    props["dialect"]["default"] = q.default_dialect
    props["max_rows"]["default"] = q.default_max_rows
    props["max_rows"]["description"] = (
        f"rows returned at most; larger values are capped at {q.max_rows_cap}"
    )
    props["timeout_ms"]["default"] = q.default_timeout_ms
    props["timeout_ms"]["description"] = (
        f"statement timeout; larger values are capped at {q.max_timeout_ms}"
    )


def _name_of(model: Any) -> str:
    for name, t in DOCUMENTED:
        if t is model:
            return name
    raise ValueError(f"{model!r} is not in DOCUMENTED")


def _json(model: Any, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": _SCHEMAS + _name_of(model)}}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _operation(path: str, name: str, op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": name, "summary": op.summary}
    if op.secured:
        out["security"] = [{"bearer": []}]
    parameters = [
        {
            "name": p,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS[p],
            "schema": {"type": "string"},
        }
        for p in _PATH_PARAMETER.findall(path)
    ] + [dict(p) for p in op.parameters]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": _json(op.body.type, op.example)}
    ok: dict[str, Any] = {"description": op.ok}
    if op.response is not None:
        ok["content"] = _json(op.response)
    elif op.media_type is not None:
        ok["content"] = {op.media_type: {}}
    if op.streamed:
        ok["content"] = {**ok.get("content", {}), **op.streamed}
    if op.headers:
        ok["headers"] = dict(op.headers)
    error = {"$ref": "#/components/responses/Error"}
    out["responses"] = {str(op.status): ok, **{str(s): error for s in op.errors}}
    return out
