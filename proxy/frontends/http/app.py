"""The HTTP API: an ASGI application with routes as data, errors and metrics in one place.

``ROUTES`` lists every endpoint once: path, method, metric name, function; the OpenAPI
document is derived from it (``proxy.frontends.http.openapi``, operation ids are the
metric names). ``App`` dispatches on it, and wraps each function with ``_instrumented``,
the single place where an exception becomes the JSON error shape (status from
``proxy.frontends.http.statuses`` and nowhere else) and where every request's duration
and outcome is recorded.

The dispatch is ours, not Starlette's ``Router``: Starlette's application, its two
middlewares, router and route wrappers took 11 µs a request in process, this dispatch
with its timing and metrics under 6 (``docs/decisions.md``), against an HTTP floor of
about 45 µs. Endpoints still receive Starlette's ``Request`` and return its
``Response``; paths are compiled by Starlette's ``compile_path``, so ``{param}`` means
what it means there.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

from proxy import context
from proxy.errors import MethodNotAllowed, NotFound, NotReady
from proxy.frontends.http import endpoints as ep
from proxy.frontends.http import transactions as tx
from proxy.frontends.http.endpoints import JSONResponse
from proxy.frontends.http.forward import listening, socket_path
from proxy.frontends.http.openapi import openapi_document
from proxy.frontends.http.statuses import status_for
from proxy.frontends.http.stream import StreamResponse
from proxy.jsonenc import dumps
from proxy.pipeline.service import Service
from proxy.tables.records import Records

__all__ = ["ROUTES", "App", "Route", "compile_routes", "create_app", "error_response"]

log = logging.getLogger("tenantgate.http")
access_log = logging.getLogger("tenantgate.access")

Endpoint = Callable[[Request], Awaitable[Any]]
Handler = Callable[[Request], Awaitable[Response | None]]

_TENANT = "/v1/tenants/{tenant}"
_TX = "/v1/transactions/{id}"
_TABLE = _TENANT + "/tables/{table}"

ROUTES: tuple[tuple[str, str, str, Endpoint], ...] = (
    ("POST", "/v1/query", "query", ep.query),
    ("POST", "/v1/explain", "explain", ep.explain),
    ("POST", "/v1/batch", "batch", tx.batch),
    ("POST", "/v1/transactions", "transaction_begin", tx.begin),
    ("POST", _TX + "/query", "transaction_query", tx.tx_query),
    ("POST", _TX + "/batch", "transaction_batch", tx.tx_batch),
    ("POST", _TX + "/commit", "transaction_commit", tx.commit),
    ("POST", _TX + "/rollback", "transaction_rollback", tx.rollback),
    ("GET", _TENANT + "/schema", "schema", ep.schema),
    ("POST", _TENANT + "/schema/refresh", "schema_refresh", ep.refresh),
    ("GET", _TABLE + "/custom-fields", "custom_fields_list", ep.list_custom_fields),
    ("POST", _TABLE + "/custom-fields", "custom_fields_add", ep.add_custom_field),
    ("DELETE", _TABLE + "/custom-fields/{name}", "custom_fields_drop", ep.drop_custom_field),
    ("POST", _TABLE + "/records", "record_insert", ep.insert_record),
    ("GET", _TABLE + "/records/{key}", "record_get", ep.get_record),
    ("PATCH", _TABLE + "/records/{key}", "record_patch", ep.patch_record),
    ("GET", "/v1/stats/tenants", "tenant_stats", ep.tenant_stats),
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
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = str(exc.details["allowed"])
    body: dict[str, Any] = {"error": {"code": code, "message": message, **details}}
    if isinstance(exc, NotReady):
        body.update(status="not_ready", checks=exc.checks, servers=exc.servers)
    return JSONResponse(body, status_code=status, headers=headers)


def _instrumented(name: str, endpoint: Endpoint) -> Handler:
    async def handle(request: Request) -> Response | None:
        started = time.perf_counter()
        service: Service = request.app.state.service
        ctx = context.current()

        def account(code: str | None) -> None:
            seconds = time.perf_counter() - started
            service.metrics.observe_request(name, code, seconds)
            if ctx is not None:
                ctx.code = code
                if ctx.tenant is not None:
                    service.activity.record(ctx.tenant, seconds, error=code is not None)

        code = None
        response: Response | None
        try:
            payload = await endpoint(request)
            if isinstance(payload, Response) and getattr(payload, "forwarded", False):
                return payload  # counted by the worker that answered it
            if isinstance(payload, StreamResponse):
                # Its outcome is known once the last row is sent (or the stream fails).
                payload.on_end = account
                return payload
            response = payload if isinstance(payload, Response) else JSONResponse(payload)
        except ClientDisconnect:
            # Nobody is left to answer; counted, not logged as an error of ours.
            response, code = None, "client_disconnected"
        except Exception as exc:  # noqa: BLE001 - every error must become the JSON shape
            response = error_response(exc)
            code = status_for(exc)[1]
        account(code)
        return response

    return handle


@dataclass(frozen=True, slots=True)
class Route:
    """One path and what each of its methods runs (``HEAD`` runs ``GET``'s)."""

    path: str
    methods: frozenset[str]
    handlers: dict[str, Handler]
    regex: re.Pattern[str] | None
    """``None`` for a path without parameters, looked up by equality."""
    allowed: str
    """The ``Allow`` header of a 405."""


def compile_routes(table: tuple[tuple[str, str, str, Endpoint], ...]) -> tuple[Route, ...]:
    """``ROUTES``-shaped rows as ``Route``s: one per path, its methods' handlers."""
    grouped: dict[str, dict[str, Handler]] = {}
    for method, path, name, endpoint in table:
        handlers = grouped.setdefault(path, {})
        if method in handlers:
            raise ValueError(f"{method} {path} is routed twice")
        handlers[method] = _instrumented(name, endpoint)
        if method == "GET":
            handlers["HEAD"] = handlers["GET"]
    routes = []
    for path, handlers in grouped.items():
        regex, _, _ = compile_path(path)
        templated = "{" in path
        routes.append(
            Route(
                path,
                frozenset(handlers),
                handlers,
                regex if templated else None,
                ", ".join(sorted(handlers)),
            )
        )
    return tuple(routes)


class App:
    """The ASGI application: ``ROUTES`` dispatched, the service's lifespan run."""

    def __init__(
        self, service: Service, routes: tuple[Route, ...], *, run_dir: str | None = None
    ) -> None:
        self.routes = routes
        self.state = State()
        """Per app, read by the endpoints through ``request.app.state``."""
        self.state.service = service
        # The folder a host's workers share (``tenantgate serve``), or None for one
        # process: where each worker listens for requests of its transactions.
        self.state.run_dir = run_dir
        # Rendered once: the routes, the models and this configuration's defaults and caps.
        self.state.openapi = dumps(openapi_document(ROUTES, service.settings))
        # Per process: its primary-key cache outlives requests.
        self.state.records = Records(service)
        self._service = service
        self._access_log = service.settings.logging.access_log
        self._exact = {route.path: route for route in routes if route.regex is None}
        self._templated = tuple(route for route in routes if route.regex is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # a websocket: none is served; the server answers 403
            await send({"type": "websocket.close"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        given = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                given = value
                break
        ctx, token = context.begin(context.request_id_from(given))
        try:
            await self._dispatch(scope, receive, send, ctx)
        finally:
            context.end(token)

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, ctx: context.RequestContext
    ) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        route = self._exact.get(path)
        if route is None:
            route = self._match(scope, path)
        if route is None:
            response: Response | None = error_response(NotFound(f"no such endpoint: {path}"))
            ctx.code = NotFound.code
        else:
            handler = route.handlers.get(scope["method"])
            if handler is None:
                refused = MethodNotAllowed(
                    f"{scope['method']} is not allowed here", allowed=route.allowed
                )
                response = error_response(refused)
                ctx.code = MethodNotAllowed.code
            else:
                response = await handler(Request(scope, receive))
        if response is not None:
            response.raw_headers.append((b"x-request-id", ctx.request_id.encode("ascii")))
            await response(scope, receive, send)
        if self._access_log:
            # The route's template would hide which tenant; the path shows it, and holds
            # nothing secret (tokens travel in headers, statements in bodies).
            access_log.info(
                "%s %s %d %.1f ms%s",
                scope["method"],
                path,
                499 if response is None else response.status_code,
                (time.perf_counter() - started) * 1000,
                "" if ctx.code is None else f" {ctx.code}",
            )

    def _match(self, scope: Scope, path: str) -> Route | None:
        for route in self._templated:
            assert route.regex is not None
            found = route.regex.match(path)
            if found is not None:
                scope["path_params"] = found.groupdict()
                return route
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around ``_running``."""
        await receive()  # lifespan.startup
        started = False
        try:
            async with self._running():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except BaseException as exc:
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        service = self._service
        run_dir = self.state.run_dir
        try:
            async with contextlib.AsyncExitStack() as stack:
                # Open transactions are rolled back when this exits, before the pools close.
                await stack.enter_async_context(service.transactions.running())
                if run_dir is not None:
                    path = socket_path(run_dir, service.transactions.tag)
                    await stack.enter_async_context(listening(self, path))
                if service.settings.pgwire.enabled:
                    # Imported here: the HTTP front end runs without it.
                    from proxy.frontends.pgwire.server import serving  # noqa: PLC0415

                    reuse = service.settings.server.workers > 1
                    await stack.enter_async_context(
                        serving(service, reuse_port=reuse, run_dir=run_dir)
                    )
                background = await stack.enter_async_context(anyio.create_task_group())
                # The change-log poller and the metrics snapshots, beside the requests.
                background.start_soon(service.background)
                yield
                background.cancel_scope.cancel()
        finally:
            await service.aclose()


def create_app(service: Service, *, run_dir: str | None = None) -> App:
    return App(service, compile_routes(ROUTES), run_dir=run_dir)
