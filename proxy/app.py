"""The HTTP API (Starlette on uvicorn), a thin shell over ``proxy.service``.

Each endpoint authenticates, decodes and validates the body on the event loop
(cheap), then hands the whole blocking pipeline to a worker thread in one hop.
Every error, ours or a bug, leaves as the JSON error shape; the status comes from
``proxy.errors.status_for`` and nowhere else.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy.admin import CustomFields
from proxy.auth import Principal
from proxy.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    status_for,
)
from proxy.jsonenc import dumps
from proxy.openapi import openapi_document
from proxy.records import Record, Records
from proxy.service import Service, validate_request

log = logging.getLogger("tenantgate.http")

Handler = Callable[[Request], Awaitable[Response]]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


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


def create_app(service: Service) -> Starlette:  # noqa: PLR0915 - routes close over the service
    settings = service.settings
    limiter = anyio.CapacityLimiter(settings.server.worker_threads)
    metrics = service.metrics
    max_body = settings.server.max_body_bytes

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise RequestTooLarge(f"request body exceeds {max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise RequestTooLarge(f"request body exceeds {max_body} bytes")
            chunks.append(chunk)
        try:
            return orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc.msg}") from None

    def authenticate(request: Request) -> Principal:
        return service.auth.authenticate(request.headers.get("authorization"))

    def endpoint(name: str, fn: Callable[[Request], Awaitable[Any]]) -> Handler:
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            code = None
            try:
                payload = await fn(request)
                response = payload if isinstance(payload, Response) else JSONResponse(payload)
            except Exception as exc:  # noqa: BLE001 - every error must become the JSON shape
                response = error_response(exc)
                code = status_for(exc)[1]
            metrics.observe_request(name, code, time.perf_counter() - started)
            return response

        return handle

    async def query(request: Request) -> Response:
        principal = authenticate(request)
        req = validate_request(await read_json(request), settings)
        outcome = await run(service.query, principal, req)
        t0 = time.perf_counter()
        result = outcome.result
        body = dumps(
            {
                "columns": [{"name": c.name, "type": c.type} for c in result.columns],
                "rows": result.rows,
                "row_count": result.row_count,
                "truncated": result.truncated,
            }
        )
        outcome.phases["serialize"] = time.perf_counter() - t0
        metrics.observe_phases(outcome.backend, outcome.statement_class, outcome.phases)
        metrics.observe_rows(outcome.backend, len(result.rows), truncated=result.truncated)
        return Response(body, media_type="application/json")

    async def explain(request: Request) -> Any:
        principal = authenticate(request)
        req = validate_request(await read_json(request), settings)
        return await run(service.explain, principal, req)

    async def schema(request: Request) -> Any:
        principal = authenticate(request)
        return await run(service.schema, principal, request.path_params["tenant"])

    async def refresh(request: Request) -> Any:
        principal = authenticate(request)
        return await run(service.refresh, principal, request.path_params["tenant"])

    async def healthz(request: Request) -> Any:
        return {"status": "ok"}

    async def readyz(request: Request) -> Any:
        await run(service.ready)
        return {"status": "ready"}

    async def metrics_endpoint(request: Request) -> Response:
        if settings.server.metrics_require_token:
            authenticate(request)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    custom_fields = CustomFields(service)
    records = Records(service)

    def custom_flag(request: Request) -> bool:
        value = request.query_params.get("custom", "false").casefold()
        if value not in ("true", "false", "1", "0"):
            raise InvalidRequest("'custom' must be true or false")
        return value in ("true", "1")

    def record_response(record: Record) -> Response:
        return JSONResponse(record.values, headers={"ETag": record.etag})

    async def list_custom_fields(request: Request) -> Any:
        principal = authenticate(request)
        p = request.path_params
        return await run(custom_fields.list_fields, principal, p["tenant"], p["table"])

    async def add_custom_field(request: Request) -> Response:
        principal = authenticate(request)
        body = await read_json(request)
        p = request.path_params
        created = await run(custom_fields.add, principal, p["tenant"], p["table"], body)
        return JSONResponse(created, status_code=201)

    async def drop_custom_field(request: Request) -> Any:
        principal = authenticate(request)
        p = request.path_params
        return await run(custom_fields.drop, principal, p["tenant"], p["table"], p["name"])

    async def get_record(request: Request) -> Response:
        principal = authenticate(request)
        p = request.path_params
        custom = custom_flag(request)
        record = await run(
            functools.partial(records.get, custom=custom),
            principal, p["tenant"], p["table"], p["key"],
        )  # fmt: skip
        return record_response(record)

    async def patch_record(request: Request) -> Response:
        principal = authenticate(request)
        p = request.path_params
        custom = custom_flag(request)
        body = await read_json(request)
        record = await run(
            functools.partial(
                records.patch, if_match=request.headers.get("if-match"), custom=custom
            ),
            principal, p["tenant"], p["table"], p["key"], body,
        )  # fmt: skip
        return record_response(record)

    async def insert_record(request: Request) -> Response:
        principal = authenticate(request)
        p = request.path_params
        body = await read_json(request)
        created = await run(records.insert, principal, p["tenant"], p["table"], body)
        location = f"{request.url.path}/{created['key']}"
        return JSONResponse(created, status_code=201, headers={"Location": location})

    document = openapi_document()

    async def openapi(request: Request) -> Any:
        return document

    routes = [
        Route("/v1/query", endpoint("query", query), methods=["POST"]),
        Route("/v1/explain", endpoint("explain", explain), methods=["POST"]),
        Route("/v1/tenants/{tenant}/schema", endpoint("schema", schema), methods=["GET"]),
        Route(
            "/v1/tenants/{tenant}/schema/refresh",
            endpoint("schema_refresh", refresh),
            methods=["POST"],
        ),
        Route(
            "/v1/tenants/{tenant}/tables/{table}/custom-fields",
            endpoint("custom_fields_list", list_custom_fields),
            methods=["GET"],
        ),
        Route(
            "/v1/tenants/{tenant}/tables/{table}/custom-fields",
            endpoint("custom_fields_add", add_custom_field),
            methods=["POST"],
        ),
        Route(
            "/v1/tenants/{tenant}/tables/{table}/custom-fields/{name}",
            endpoint("custom_fields_drop", drop_custom_field),
            methods=["DELETE"],
        ),
        Route(
            "/v1/tenants/{tenant}/tables/{table}/records",
            endpoint("record_insert", insert_record),
            methods=["POST"],
        ),
        Route(
            "/v1/tenants/{tenant}/tables/{table}/records/{key}",
            endpoint("record_get", get_record),
            methods=["GET"],
        ),
        Route(
            "/v1/tenants/{tenant}/tables/{table}/records/{key}",
            endpoint("record_patch", patch_record),
            methods=["PATCH"],
        ),
        Route("/healthz", endpoint("healthz", healthz), methods=["GET"]),
        Route("/readyz", endpoint("readyz", readyz), methods=["GET"]),
        Route("/metrics", endpoint("metrics", metrics_endpoint), methods=["GET"]),
        Route("/openapi.json", endpoint("openapi", openapi), methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if status == 404:
            return error_response(NotFound(f"no such endpoint: {request.url.path}"))
        if status == 405:
            return error_response(MethodNotAllowed(f"{request.method} is not allowed here"))
        return error_response(exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.close)

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
