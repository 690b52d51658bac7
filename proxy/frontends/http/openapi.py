"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Written by hand rather than derived from handlers: the contract (DESIGN section 3)
is the source of truth, and a test checks that every route is described here.
"""

from __future__ import annotations

from typing import Any

from proxy import __version__

ERROR_CODES = [
    "invalid_request", "request_too_large", "unauthenticated", "forbidden", "rate_limited",
    "not_found", "method_not_allowed", "parse_error", "multiple_statements",
    "statement_not_allowed", "construct_not_allowed", "construct_not_supported_on_backend",
    "cross_database_reference", "unknown_table", "unknown_column", "ambiguous_column",
    "invalid_parameters", "unfiltered_write", "invalid_tenant", "unknown_tenant",
    "backend_rejected",
    "backend_object_missing",
    "constraint_violation", "tenant_misconfigured", "controller_unavailable",
    "backend_unavailable", "pool_saturated", "statement_timeout", "internal_error",
    "invalid_custom_field", "invalid_field_value", "unsupported_primary_key",
    "custom_field_not_found", "record_not_found", "column_exists", "column_limit_reached",
    "base_column_protected", "precondition_failed",
]  # fmt: skip

_ERROR = {"$ref": "#/components/responses/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _ERROR for s in statuses}


def openapi_document() -> dict[str, Any]:
    query_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueryRequest"}}},
    }
    tenant_param = {
        "name": "tenant",
        "in": "path",
        "required": True,
        "description": "Customer id or domain name.",
        "schema": {"type": "string"},
    }
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    common_errors = _errors(400, 401, 403, 404, 413, 429, 502, 503, 504)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tenantgate",
            "version": __version__,
            "description": "Tenant-aware SQL proxy: one logical statement in, "
            "the right tenant's rows out.",
        },
        "paths": {
            "/v1/query": {
                "post": {
                    "summary": "Run one logical statement for a tenant",
                    "security": secured,
                    "requestBody": query_body,
                    "responses": {
                        "200": {
                            "description": "Rows, or rows affected by a write.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/QueryResult"}
                                }
                            },
                        },
                        **common_errors,
                    },
                }
            },
            "/v1/explain": {
                "post": {
                    "summary": "Show the backend SQL a statement becomes, without running it",
                    "security": secured,
                    "requestBody": query_body,
                    "responses": {
                        "200": {
                            "description": "The generated statement.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Explain"}
                                }
                            },
                        },
                        **common_errors,
                    },
                }
            },
            "/v1/tenants/{tenant}/schema": {
                "get": {
                    "summary": "A tenant's tables with base and custom columns",
                    "security": secured,
                    "parameters": [tenant_param],
                    "responses": {
                        "200": {"description": "Tables and columns."},
                        **_errors(400, 401, 403, 404, 502, 503),
                    },
                }
            },
            "/v1/tenants/{tenant}/schema/refresh": {
                "post": {
                    "summary": "Forget cached metadata of a tenant (admin)",
                    "security": secured,
                    "parameters": [tenant_param],
                    "responses": {
                        "200": {"description": "Refreshed."},
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            **_custom_field_and_record_paths(tenant_param, secured),
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "The controller is reachable",
                    "responses": {"200": {"description": "ready"}, **_errors(503)},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics in the text exposition format",
                    "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}},
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "ok"}}}
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error with a stable code.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
            "schemas": {
                "QueryRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["tenant", "sql"],
                    "properties": {
                        "tenant": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                        "sql": {"type": "string", "minLength": 1},
                        "params": {
                            "oneOf": [
                                {"type": "array", "description": "values for ? in order"},
                                {"type": "object", "description": "values for @name"},
                            ]
                        },
                        "dialect": {"enum": ["tsql", "postgres", "sqlite"], "default": "tsql"},
                        "max_rows": {"type": "integer", "minimum": 1},
                        "timeout_ms": {"type": "integer", "minimum": 1},
                        "missing_columns": {
                            "enum": ["error", "null"],
                            "default": "error",
                            "description": "reads only: writes always refuse a missing column",
                        },
                        "allow_unfiltered": {
                            "type": "boolean",
                            "default": False,
                            "description": "let an UPDATE or DELETE without WHERE run "
                            "(refused with unfiltered_write otherwise)",
                        },
                    },
                },
                "QueryResult": {
                    "type": "object",
                    "required": ["columns", "rows", "row_count", "truncated"],
                    "properties": {
                        "columns": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "type": {"type": "string"},
                                },
                            },
                        },
                        "rows": {"type": "array", "items": {"type": "array"}},
                        "row_count": {
                            "type": "integer",
                            "description": "rows returned by a read; rows affected by a write "
                            "(with OUTPUT/RETURNING too, even when rows are truncated)",
                        },
                        "truncated": {"type": "boolean"},
                    },
                },
                "Explain": {
                    "type": "object",
                    "properties": {
                        "backend": {"type": "string"},
                        "server": {"type": "string"},
                        "database": {"type": ["string", "null"]},
                        "sql": {"type": "string"},
                        "params": {
                            "type": "array",
                            "description": "The bind values in the SQL's order, including "
                            "the row cap (max_rows + 1, or the statement's own smaller count) "
                            "on PostgreSQL and SQLite reads",
                        },
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "statement_class": {"type": "string"},
                        "plan_cached": {"type": "boolean"},
                    },
                },
                **_custom_field_and_record_schemas(),
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"enum": ERROR_CODES},
                                "message": {"type": "string"},
                            },
                            "additionalProperties": True,
                        }
                    },
                },
            },
        },
    }


def _custom_field_and_record_paths(
    tenant_param: dict[str, Any], secured: list[dict[str, list[str]]]
) -> dict[str, Any]:
    def path_param(name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string"},
        }

    table = path_param("table", "Table name (matched case-insensitively).")
    custom = {
        "name": "custom",
        "in": "query",
        "required": False,
        "description": "Also return the custom fields (read only when asked for).",
        "schema": {"type": "boolean", "default": False},
    }
    etag = {
        "ETag": {
            "description": "Strong hash of the record's returned values.",
            "schema": {"type": "string"},
        }
    }

    def content(schema: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}

    def json_body(schema: str) -> dict[str, Any]:
        return {"required": True, "content": content(schema)}

    def ok(description: str, schema: str, **extra: Any) -> dict[str, Any]:
        return {"description": description, "content": content(schema), **extra}

    fields = "/v1/tenants/{tenant}/tables/{table}/custom-fields"
    records = "/v1/tenants/{tenant}/tables/{table}/records"
    return {
        fields: {
            "get": {
                "summary": "A table's custom fields with their types (admin)",
                "security": secured,
                "parameters": [tenant_param, table],
                "responses": {
                    "200": ok("Custom fields.", "CustomFieldList"),
                    **_errors(400, 401, 403, 404, 502, 503),
                },
            },
            "post": {
                "summary": "Add a custom field (admin); the metadata cache reflects it at once",
                "security": secured,
                "parameters": [tenant_param, table],
                "requestBody": json_body("CustomFieldRequest"),
                "responses": {
                    "201": ok("The field as the catalog now reports it.", "CustomField"),
                    **_errors(400, 401, 403, 404, 409, 413, 502, 503, 504),
                },
            },
        },
        fields + "/{name}": {
            "delete": {
                "summary": "Drop a custom field (admin); base columns are refused",
                "security": secured,
                "parameters": [tenant_param, table, path_param("name", "The field's name.")],
                "responses": {
                    "200": {"description": "Dropped."},
                    **_errors(400, 401, 403, 404, 409, 502, 503, 504),
                },
            }
        },
        records: {
            "post": {
                "summary": "Insert a record from the given fields (write); returns its key",
                "security": secured,
                "parameters": [tenant_param, table],
                "requestBody": json_body("RecordFields"),
                "responses": {
                    "201": {"description": "Created: {table, key, primary_key}; Location set."},
                    **_errors(400, 401, 403, 404, 409, 413, 502, 503, 504),
                },
            }
        },
        records + "/{key}": {
            "get": {
                "summary": "One record by primary key (read)",
                "security": secured,
                "parameters": [
                    tenant_param,
                    table,
                    path_param("key", "Primary-key value."),
                    custom,
                ],
                "responses": {
                    "200": ok(
                        "The record, keyed by physical column name.", "RecordFields", headers=etag
                    ),
                    **_errors(400, 401, 403, 404, 502, 503, 504),
                },
            },
            "patch": {
                "summary": "Change only the given fields (write); If-Match for optimistic "
                "concurrency",
                "security": secured,
                "parameters": [
                    tenant_param,
                    table,
                    path_param("key", "Primary-key value."),
                    custom,
                    {
                        "name": "If-Match",
                        "in": "header",
                        "required": False,
                        "description": "An ETag from GET; 412 precondition_failed if the "
                        "record changed since. '*' requires only that it exists.",
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": json_body("RecordFields"),
                "responses": {
                    "200": ok(
                        "The record after the change, with its new ETag.",
                        "RecordFields",
                        headers=etag,
                    ),
                    **_errors(400, 401, 403, 404, 409, 412, 413, 502, 503, 504),
                },
            },
        },
    }


def _custom_field_and_record_schemas() -> dict[str, Any]:
    kinds = ["text", "integer", "decimal", "boolean", "date", "datetime"]
    field = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "type": {"enum": [*kinds, "float", "other"]},
            "length": {"type": ["integer", "null"]},
            "precision": {"type": ["integer", "null"]},
            "scale": {"type": ["integer", "null"]},
            "nullable": {"type": "boolean"},
            "backend_type": {"type": "string"},
        },
    }  # fmt: skip
    return {
        "CustomField": field,
        "CustomFieldList": {
            "type": "object",
            "properties": {
                "table": {"type": "string"},
                "custom_fields": {"type": "array", "items": field},
                "column_count": {"type": "integer"},
                "column_limit": {"type": "integer"},
            },
        },
        "CustomFieldRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "type"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 128},
                "type": {"enum": kinds},
                "length": {"type": "integer", "minimum": 1, "maximum": 4000},
                "precision": {"type": "integer", "minimum": 1, "maximum": 38},
                "scale": {"type": "integer", "minimum": 0},
                "nullable": {"type": "boolean", "default": True},
                "default": {
                    "description": "a value of the field's type; required when nullable is false"
                },
            },
        },
        "RecordFields": {
            "type": "object",
            "description": "Column name to value; dates 'YYYY-MM-DD', date-times "
            "'YYYY-MM-DD HH:MM:SS', decimals as numbers or strings.",
            "additionalProperties": True,
        },
    }
