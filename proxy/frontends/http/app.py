"""The HTTP API (Starlette on uvicorn): routes as data, errors and metrics in one place.

``ROUTES`` lists every endpoint once: path, method, metric name, function; the OpenAPI
document is derived from it (``proxy.frontends.http.openapi``, operation ids are the
metric names). ``create_app`` wraps each function with ``_instrumented``, the single
place where an exception becomes the JSON error shape (status from
``proxy.frontends.http.statuses`` and nowhere else) and where every request's duration and
outcome is recorded.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy.errors import MethodNotAllowed, NotFound
from proxy.frontends.http import endpoints as ep
from proxy.frontends.http.endpoints import JSONResponse
from proxy.frontends.http.openapi import openapi_document
from proxy.frontends.http.statuses import status_for
from proxy.jsonenc import dumps
from proxy.pipeline.service import Service
from proxy.tables.records import Records

__all__ = ["ROUTES", "create_app", "error_response"]

log = logging.getLogger("tenantgate.http")

Endpoint = Callable[[Request], Awaitable[Any]]

_TENANT = "/v1/tenants/{tenant}"
_TABLE = _TENANT + "/tables/{table}"

ROUTES: tuple[tuple[str, str, str, Endpoint], ...] = (
    ("POST", "/v1/query", "query", ep.query),
    ("POST", "/v1/explain", "explain", ep.explain),
    ("GET", _TENANT + "/schema", "schema", ep.schema),
    ("POST", _TENANT + "/schema/refresh", "schema_refresh", ep.refresh),
    ("GET", _TABLE + "/custom-fields", "custom_fields_list", ep.list_custom_fields),
    ("POST", _TABLE + "/custom-fields", "custom_fields_add", ep.add_custom_field),
    ("DELETE", _TABLE + "/custom-fields/{name}", "custom_fields_drop", ep.drop_custom_field),
    ("POST", _TABLE + "/records", "record_insert", ep.insert_record),
    ("GET", _TABLE + "/records/{key}", "record_get", ep.get_record),
    ("PATCH", _TABLE + "/records/{key}", "record_patch", ep.patch_record),
    ("GET", "/healthz", "healthz", ep.healthz),
    ("GET", "/readyz", "readyz", ep.readyz),
    ("GET", "/metrics", "metrics", ep.metrics),
    ("GET", "/openapi.json", "openapi", ep.openapi),
)
"""(method, path, metric name, endpoint) of every route."""


def error_response(exc: BaseException) -> Response:
    status, code = status_for(exc)
    if status >= 500 and code == "internal_error":
        log.error("unhandled error", exc_info=exc)
        message = "internal error; the incident has been logged"
        details: dict[str, Any] = {}
    else:
        message = getattr(exc, "message", str(exc))
        details = dict(getattr(exc, "details", {}))
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        {"error": {"code": code, "message": message, **details}},
        status_code=status,
        headers=headers,
    )


def _instrumented(name: str, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        started = time.perf_counter()
        code = None
        try:
            payload = await endpoint(request)
            response = payload if isinstance(payload, Response) else JSONResponse(payload)
        except Exception as exc:  # noqa: BLE001 - every error must become the JSON shape
            response = error_response(exc)
            code = status_for(exc)[1]
        request.app.state.service.metrics.observe_request(name, code, time.perf_counter() - started)
        return response

    return handle


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    if status == 404:
        return error_response(NotFound(f"no such endpoint: {request.url.path}"))
    if status == 405:
        return error_response(MethodNotAllowed(f"{request.method} is not allowed here"))
    return error_response(exc)


def create_app(service: Service) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with anyio.create_task_group() as background:
                # The change-log poller and the metrics snapshots, beside the requests.
                background.start_soon(service.background)
                yield
                background.cancel_scope.cancel()
        finally:
            await service.aclose()

    app = Starlette(
        routes=[
            Route(path, _instrumented(name, endpoint), methods=[method])
            for method, path, name, endpoint in ROUTES
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.service = service
    # Rendered once: the routes, the models and this configuration's defaults and caps.
    app.state.openapi = dumps(openapi_document(ROUTES, service.settings))
    # Per process: its primary-key cache outlives requests.
    app.state.records = Records(service)
    return app
