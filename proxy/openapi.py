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
                        "params": {"type": "array"},
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "statement_class": {"type": "string"},
                        "plan_cached": {"type": "boolean"},
                    },
                },
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
