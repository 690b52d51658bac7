"""The client's error classes against the server's: one per code, the same status.

The codes are collected from the server's own error classes (``proxy.errors``,
``rewriter.errors``, ``tenancy.errors``) and from the OpenAPI document's list, so a new
server code without a client class fails here, not in a caller's ``except``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

import httpx
import pytest

import proxy.errors
import rewriter.errors
import tenancy.errors
from proxy.client import errors as client_errors
from proxy.client.protocol import error_from, transport_error
from proxy.frontends.http.openapi import ERROR_CODES
from proxy.frontends.http.statuses import status_for

ROOTS = (proxy.errors.ProxyError, rewriter.errors.RewriteError, tenancy.errors.TenancyError)
FAMILIES = {"bad_request", "conflict", "unavailable", "request_error", "server_error",
            "tenantgate_error"}  # fmt: skip
"""The client's family classes: the fallbacks of a status, no code the server sends."""


def _server_classes() -> list[type[Exception]]:
    modules: tuple[ModuleType, ...] = (proxy.errors, rewriter.errors, tenancy.errors)
    found: list[type[Exception]] = []
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, ROOTS) and cls not in ROOTS and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def _server_statuses() -> dict[str, int]:
    statuses: dict[str, int] = {}
    for cls in _server_classes():
        status, code = status_for(cls("message"))
        assert statuses.setdefault(code, status) == status, code
    return statuses


def test_every_server_code_has_its_client_class() -> None:
    codes = set(_server_statuses()) | set(ERROR_CODES)
    missing = sorted(code for code in codes if code not in client_errors.BY_CODE)
    assert not missing, f"add a class to proxy/client/errors.py for: {missing}"


def test_client_classes_answer_the_server_status() -> None:
    for code, status in _server_statuses().items():
        cls = client_errors.BY_CODE[code]
        assert cls.status == status, (code, cls.__name__, cls.status, status)


def test_client_has_no_code_the_server_lost() -> None:
    server = set(_server_statuses()) | set(ERROR_CODES)
    stale = sorted(set(client_errors.BY_CODE) - server - FAMILIES)
    assert not stale, f"client classes for codes the server no longer has: {stale}"


def test_docs_list_every_code() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "client.md").read_text()
    for code, cls in client_errors.BY_CODE.items():
        if code not in FAMILIES:
            assert f"| `{code}` | `{cls.__name__}` |" in text, code


def test_families() -> None:
    e = client_errors
    assert issubclass(e.UnknownColumn, e.BadRequest) and issubclass(e.BadRequest, e.RequestError)
    assert issubclass(e.StatementTimeout, e.Unavailable)
    assert issubclass(e.PoolSaturated, e.ServerError)
    assert issubclass(e.TooManyTransactions, e.RateLimited)
    assert issubclass(e.RecordChanged, e.PreconditionFailed)
    assert issubclass(e.ConnectError, ConnectionError)
    assert issubclass(e.ClientTimeout, TimeoutError)
    assert all(issubclass(c, e.TenantgateError) for c in e.BY_CODE.values())


def _answer(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_error_from_an_answer_carries_everything() -> None:
    body = {"error": {"code": "unknown_column", "message": "column 'X' does not exist",
                      "column": "X", "table": "Contacts", "index": 2}}  # fmt: skip
    error = error_from(_answer(400, body, **{"x-request-id": "req-1"}))
    assert type(error) is client_errors.UnknownColumn
    assert error.code == "unknown_column" and error.status == 400
    assert error.message == "column 'X' does not exist"
    assert error.details == {"column": "X", "table": "Contacts", "index": 2}
    assert error.index == 2 and error.request_id == "req-1" and error.retry_after is None
    assert str(error) == "column 'X' does not exist (unknown_column)"


def test_retry_after_is_seconds() -> None:
    body = {"error": {"code": "pool_saturated", "message": "busy"}}
    error = error_from(_answer(503, body, **{"retry-after": "2"}))
    assert isinstance(error, client_errors.PoolSaturated) and error.retry_after == 2.0
    dated = error_from(_answer(503, body, **{"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert dated.retry_after is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, client_errors.BadRequest),
        (401, client_errors.Unauthenticated),
        (404, client_errors.NotFound),
        (409, client_errors.Conflict),
        (418, client_errors.RequestError),
        (503, client_errors.Unavailable),
        (504, client_errors.Unavailable),
        (507, client_errors.ServerError),
    ],
)
def test_an_unknown_code_falls_back_to_its_status(status: int, cls: type[Exception]) -> None:
    error = error_from(_answer(status, {"error": {"code": "brand_new", "message": "m"}}))
    assert type(error) is cls
    assert isinstance(error, client_errors.TenantgateError)
    assert error.code == "brand_new" and error.status == status


@pytest.mark.parametrize("content", [b"<html>Bad Gateway</html>", b"{}", b'{"error": 3}',
                                     b'{"error": {"code": 1, "message": "m"}}'])  # fmt: skip
def test_an_answer_without_the_error_shape_still_maps_by_status(content: bytes) -> None:
    error = error_from(httpx.Response(502, content=content))
    assert type(error) is client_errors.TenantMisconfigured
    assert error.status == 502 and "HTTP 502" in error.message


def test_transport_errors() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/query")
    refused = transport_error(httpx.ConnectError("Connection refused", request=request))
    assert type(refused) is client_errors.ConnectError and refused.status is None
    slow = transport_error(httpx.ReadTimeout("timed out", request=request))
    assert type(slow) is client_errors.ClientTimeout
    connect_slow = transport_error(httpx.ConnectTimeout("timed out", request=request))
    assert type(connect_slow) is client_errors.ConnectError
    broken = transport_error(httpx.RemoteProtocolError("closed", request=request))
    assert type(broken) is client_errors.TransportError
