"""The endpoints of batches and interactive transactions (docs/transactions.md).

Requests for a transaction are answered by the worker process that holds it: one that
arrives elsewhere is passed on (``proxy.frontends.http.forward``) before its body is
even decoded.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response

from proxy.drivers.base import ResultSet
from proxy.frontends.http.endpoints import (
    JSONResponse,
    authenticate,
    read_request_body,
    result_body,
    service_of,
)
from proxy.frontends.http.forward import FORWARDED, forward, socket_path
from proxy.frontends.http.models import (
    TRANSACTION,
    TRANSACTION_BATCH,
    batch_request,
    statements_of,
    transaction_query,
)
from proxy.jsonenc import dumps

__all__ = ["batch", "begin", "commit", "rollback", "tx_batch", "tx_query"]


def _results(results: list[ResultSet]) -> Response:
    return Response(
        dumps({"results": [result_body(r) for r in results]}), media_type="application/json"
    )


async def batch(request: Request) -> Response:
    service = service_of(request)
    principal = authenticate(service, request)
    req = batch_request(await read_request_body(service, request), service.settings)
    return _results(await service.transactions.batch(principal, req))


async def begin(request: Request) -> Response:
    service = service_of(request)
    principal = authenticate(service, request)
    body = TRANSACTION.decode(await read_request_body(service, request))
    isolation = None if body.isolation is UNSET else body.isolation
    opened = await service.transactions.begin(principal, body.tenant, isolation=isolation)
    return JSONResponse(
        {
            "id": opened.id,
            "tenant": {"id": opened.tenant.customer_id, "domain": opened.tenant.domain},
            "idle_timeout_ms": opened.idle_timeout_ms,
            "max_lifetime_ms": opened.max_lifetime_ms,
        },
        status_code=201,
    )


async def _elsewhere(request: Request, body: bytes) -> Response | None:
    """The owner's answer, when another worker holds the transaction."""
    run_dir = request.app.state.run_dir
    if run_dir is None:
        return None
    tag, _, _ = request.path_params["id"].partition(".")
    if tag == service_of(request).transactions.tag or not tag.isalnum():
        return None
    if any(key == FORWARDED for key, _ in request.scope["headers"]):
        return None  # never forwarded twice: the owner's answer is "not found"
    return await forward(socket_path(run_dir, tag), request, body)


async def tx_query(request: Request) -> Response:
    service = service_of(request)
    raw = await read_request_body(service, request)
    answer = await _elsewhere(request, raw)
    if answer is not None:
        return answer
    principal = authenticate(service, request)
    tx_id = request.path_params["id"]
    transactions = service.transactions
    req = transaction_query(raw, transactions.tenant_of(principal, tx_id), service.settings)
    outcome = await transactions.query(principal, tx_id, req)
    return Response(dumps(result_body(outcome.result)), media_type="application/json")


async def tx_batch(request: Request) -> Response:
    service = service_of(request)
    raw = await read_request_body(service, request)
    answer = await _elsewhere(request, raw)
    if answer is not None:
        return answer
    principal = authenticate(service, request)
    tx_id = request.path_params["id"]
    transactions = service.transactions
    body = TRANSACTION_BATCH.decode(raw)
    tenant = transactions.tenant_of(principal, tx_id)
    statements, timeout_ms = statements_of(body, tenant, service.settings)
    return _results(await transactions.batch_in(principal, tx_id, statements, timeout_ms))


async def commit(request: Request) -> Any:
    service = service_of(request)
    answer = await _elsewhere(request, await read_request_body(service, request))
    if answer is not None:
        return answer
    principal = authenticate(service, request)
    tx_id = request.path_params["id"]
    await service.transactions.commit(principal, tx_id)
    return {"id": tx_id, "committed": True}


async def rollback(request: Request) -> Any:
    service = service_of(request)
    answer = await _elsewhere(request, await read_request_body(service, request))
    if answer is not None:
        return answer
    principal = authenticate(service, request)
    tx_id = request.path_params["id"]
    await service.transactions.rollback(principal, tx_id)
    return {"id": tx_id, "rolled_back": True}
