from __future__ import annotations

import inspect

import pytest

import proxy.errors as proxy_errors
import rewriter.errors as rewriter_errors
import tenancy.errors as tenancy_errors
from proxy.frontends.http.app import ROUTES
from proxy.frontends.http.openapi import ERROR_CODES, openapi_document
from proxy.frontends.http.statuses import status_for

# Abstract roots of each hierarchy: never raised themselves.
BASES = {proxy_errors.ProxyError, rewriter_errors.RewriteError, tenancy_errors.TenancyError}


def error_classes():
    for module in (proxy_errors, rewriter_errors, tenancy_errors):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            ours = cls.__module__ == module.__name__ and issubclass(cls, Exception)
            if ours and cls not in BASES:
                yield cls


@pytest.mark.parametrize("cls", list(error_classes()), ids=lambda c: c.__name__)
def test_every_error_class_has_a_status_below_500_or_a_documented_5xx(cls) -> None:
    status, code = status_for(cls("message"))
    assert code != "internal_error", f"{cls.__name__} is not in ERROR_TABLE"
    assert code in ERROR_CODES, f"{code} missing from the OpenAPI error codes"
    assert status in {400, 401, 403, 404, 405, 409, 412, 413, 429, 502, 503, 504}


def test_foreign_exceptions_are_internal_errors() -> None:
    assert status_for(ZeroDivisionError()) == (500, "internal_error")
    assert status_for(KeyError("x")) == (500, "internal_error")


def test_openapi_documents_every_route() -> None:
    doc = openapi_document(ROUTES)
    expected = {
        "/v1/query", "/v1/explain", "/v1/tenants/{tenant}/schema",
        "/v1/tenants/{tenant}/schema/refresh", "/healthz", "/readyz", "/metrics", "/openapi.json",
        "/v1/tenants/{tenant}/tables/{table}/custom-fields",
        "/v1/tenants/{tenant}/tables/{table}/custom-fields/{name}",
        "/v1/tenants/{tenant}/tables/{table}/records",
        "/v1/tenants/{tenant}/tables/{table}/records/{key}", "/v1/stats/tenants",
        "/v1/batch", "/v1/transactions", "/v1/transactions/{id}/query",
        "/v1/transactions/{id}/batch", "/v1/transactions/{id}/commit",
        "/v1/transactions/{id}/rollback",
    }  # fmt: skip
    assert set(doc["paths"]) == expected
    assert doc["openapi"].startswith("3.")


def test_the_error_schema_lists_every_code() -> None:
    schemas = openapi_document(ROUTES)["components"]["schemas"]
    assert schemas["ErrorDetail"]["properties"]["code"]["enum"] == ERROR_CODES
    assert len(set(ERROR_CODES)) == len(ERROR_CODES)
