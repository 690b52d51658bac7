"""The HTTP endpoints, one function each: authenticate, decode, call the pipeline.

Each takes the Starlette request and returns a ``Response`` or a JSON-able payload;
bodies are decoded and validated by their models (``proxy.frontends.http.models``);
errors propagate as exceptions to ``proxy.frontends.http.app``, which maps them to
statuses and records metrics in one place. Nothing here blocks the event loop: the
pipeline hops to a thread itself when it must.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from proxy.auth import Principal
from proxy.drivers.base import ResultSet
from proxy.errors import Forbidden, InvalidRequest, NotReady
from proxy.frontends.http import stream
from proxy.frontends.http.body import flag, header, read_body
from proxy.frontends.http.models import RECORD, custom_field, query_request
from proxy.jsonenc import dumps
from proxy.pipeline.activity import MEASURES, top
from proxy.pipeline.service import Service
from proxy.tables.custom_fields import CustomFields
from proxy.tables.records import Record, Records

__all__ = [
    "add_custom_field",
    "drop_custom_field",
    "explain",
    "get_record",
    "healthz",
    "insert_record",
    "list_custom_fields",
    "metrics",
    "openapi",
    "patch_record",
    "query",
    "read_request_body",
    "readyz",
    "refresh",
    "result_body",
    "schema",
    "tenant_stats",
]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def result_body(result: ResultSet) -> dict[str, Any]:
    """A result as the API answers it (``QueryResult``)."""
    return {
        # orjson writes a dataclass as {"name": ..., "type": ...} itself: an
        # 818-column result spent ~100 µs building the dicts in Python.
        "columns": result.columns,
        "rows": result.rows,
        "row_count": result.row_count,
        "truncated": result.truncated,
    }


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def authenticate(service: Service, request: Request) -> Principal:
    return service.auth.authenticate(header(request, b"authorization"))


async def read_request_body(service: Service, request: Request) -> bytes:
    return await read_body(request, service.settings.server.max_body_bytes)


async def query(request: Request) -> Response:
    service = service_of(request)
    principal = authenticate(service, request)
    raw = await read_request_body(service, request)
    media_type = stream.wanted(header(request, b"accept"))
    if media_type is not None:
        streamed = await stream.query(service, principal, raw, media_type)
        if streamed is not None:  # None: not a read, answered as JSON below
            return streamed
    req = query_request(raw, service.settings)
    outcome = await service.query(principal, req)
    t0 = time.perf_counter()
    result = outcome.result
    body = dumps(result_body(result))
    outcome.phases["serialize"] = time.perf_counter() - t0
    service.metrics.observe_query(
        outcome.backend,
        outcome.statement_class,
        outcome.phases,
        rows=len(result.rows),
        truncated=result.truncated,
    )
    return Response(body, media_type="application/json")


async def explain(request: Request) -> Any:
    service = service_of(request)
    principal = authenticate(service, request)
    req = query_request(await read_request_body(service, request), service.settings)
    return await service.explain(principal, req)


async def schema(request: Request) -> Any:
    service = service_of(request)
    principal = authenticate(service, request)
    return await service.schema(principal, request.path_params["tenant"])


async def refresh(request: Request) -> Any:
    service = service_of(request)
    principal = authenticate(service, request)
    return await service.refresh(principal, request.path_params["tenant"])


async def healthz(request: Request) -> Any:
    return {"status": "ok"}


async def readyz(request: Request) -> Any:
    service = service_of(request)
    checks = await service.ready()
    # Reported, never a reason to be unready: one server's outage must not take the
    # proxy out of rotation for the tenants of every other server.
    servers = service.servers.snapshot()
    failing = [name for name, check in checks.items() if not check["ok"]]
    if failing:
        raise NotReady(f"not ready: {', '.join(failing)}", checks=checks, servers=servers)
    return {"status": "ready", "checks": checks, "servers": servers}


async def metrics(request: Request) -> Response:
    service = service_of(request)
    if service.settings.server.metrics_require_token:
        authenticate(service, request)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


_MAX_TOP = 1000


async def tenant_stats(request: Request) -> Any:
    """The busiest tenants over the window (``proxy.pipeline.activity``)."""
    service = service_of(request)
    principal = authenticate(service, request)
    if not principal.all_tenants:
        # The names and load of every tenant: not for a token scoped to some.
        raise Forbidden(f"token {principal.name!r} may not read every tenant's activity")
    raw_top = request.query_params.get("top", "20")
    if not raw_top.isdigit() or not 1 <= int(raw_top) <= _MAX_TOP:
        raise InvalidRequest(f"'top' must be an integer from 1 to {_MAX_TOP}")
    by = request.query_params.get("by", "requests")
    if by not in MEASURES:
        raise InvalidRequest(f"'by' must be one of {', '.join(MEASURES)}")
    activity = service.metrics.tenant_activity()
    total = activity.get("total", {}).get("requests", 0.0)
    return {
        "window_s": service.settings.stats.tenants_window_s,
        "by": by,
        "requests": round(total, 3),
        "active_tenants": int(activity.get("active", {}).get("tenants", 0.0)),
        "tenants": [
            {
                "rank": rank,
                "tenant": figures.tenant,
                "requests": round(figures.requests, 3),
                "errors": round(figures.errors, 3),
                "seconds": round(figures.seconds, 6),
                "share": round(figures.requests / total, 4) if total else 0.0,
            }
            for rank, figures in enumerate(top(activity, int(raw_top), by), start=1)
        ],
    }


async def openapi(request: Request) -> Response:
    # Rendered once per app by ``create_app``, from the models and the routes.
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


# -- custom fields and records ----------------------------------------------------------


async def list_custom_fields(request: Request) -> Any:
    service = service_of(request)
    principal = authenticate(service, request)
    p = request.path_params
    return await CustomFields(service).list_fields(principal, p["tenant"], p["table"])


async def add_custom_field(request: Request) -> Response:
    service = service_of(request)
    principal = authenticate(service, request)
    body = custom_field(await read_request_body(service, request))
    p = request.path_params
    fields = CustomFields(service)
    created = await fields.add(principal, p["tenant"], p["table"], body)
    return JSONResponse(created, status_code=201)


async def drop_custom_field(request: Request) -> Any:
    service = service_of(request)
    principal = authenticate(service, request)
    p = request.path_params
    fields = CustomFields(service)
    return await fields.drop(principal, p["tenant"], p["table"], p["name"])


def _records(request: Request) -> Records:
    records: Records = request.app.state.records
    return records


def _record_response(record: Record) -> Response:
    return JSONResponse(record.values, headers={"ETag": record.etag})


async def get_record(request: Request) -> Response:
    principal = authenticate(service_of(request), request)
    p = request.path_params
    custom = flag(request, "custom")
    record = await _records(request).get(
        principal, p["tenant"], p["table"], p["key"], custom=custom
    )
    return _record_response(record)


async def patch_record(request: Request) -> Response:
    service = service_of(request)
    principal = authenticate(service, request)
    p = request.path_params
    custom = flag(request, "custom")
    body = RECORD.decode(await read_request_body(service, request))
    record = await _records(request).patch(
        principal,
        p["tenant"],
        p["table"],
        p["key"],
        body,
        if_match=request.headers.get("if-match"),
        custom=custom,
    )
    return _record_response(record)


async def insert_record(request: Request) -> Response:
    service = service_of(request)
    principal = authenticate(service, request)
    p = request.path_params
    body = RECORD.decode(await read_request_body(service, request))
    created = await _records(request).insert(principal, p["tenant"], p["table"], body)
    location = f"{request.url.path}/{created['key']}"
    return JSONResponse(created, status_code=201, headers={"Location": location})
