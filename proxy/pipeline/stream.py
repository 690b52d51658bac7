"""A read's result streamed: prepared as any query, run with the driver's ``stream``.

The front end decides the wire format; this module only opens the stream
(``open_stream``) and hands out its ``RowStream`` with what metrics want to know.

* Reads only. A statement of another class raises ``NotARead`` before anything runs:
  the front end answers it the usual way (HTTP: as JSON). A write's result is its
  affected rows, and a write streamed row by row would commit whatever the client
  read before it went away.
* ``max_rows``: the caller's value, up to ``query.stream_max_rows`` (the default when
  absent); the front end applies it (``stream_request``). The rewriter's row cap bounds
  the SQL at ``max_rows + 1`` as for any read.
* Deadlines: ``timeout_ms`` bounds each round trip to the server (the statement's
  start with its first batch, each later batch), not the whole stream, whose length
  depends on the client's reading. What bounds the whole is the front end's write
  timeout (a client that stops reading ends the stream) together with ``max_rows``.
* What ``Service.query`` does for a read before it returns anything, this does before
  the first batch: a read that met stale metadata (``BackendObjectMissing``) is
  prepared and opened once more after healing, one whose connection was lost is
  opened once more; each counts in the same metrics. Once rows are out, an error ends
  the stream (the front end writes it in its trailer).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from proxy.auth import Principal
from proxy.drivers.base import RowStream
from proxy.errors import (
    BackendObjectMissing,
    BackendRejected,
    BackendUnavailable,
    ConnectionLost,
    PoolSaturated,
)
from proxy.pipeline.request import QueryRequest
from proxy.pipeline.service import Prepared, Service

__all__ = ["BATCH_ROWS", "BATCH_VALUES", "NotARead", "Stream", "batch_rows_for", "open_stream"]

BATCH_ROWS = 1000
"""Rows fetched per round trip: at 50-100 bytes a row, 50-100 KB a batch on the wire
and about 1 ms of the server's time; measured in ``benchmarks/streaming.py``."""
BATCH_VALUES = 20_000
"""Values fetched per round trip at most: a wide row (a tenant's 800 columns) makes
smaller batches, so that what a stream holds is bounded by values, not rows."""
_MIN_BATCH_ROWS = 10


def batch_rows_for(columns: int) -> int:
    """Rows per round trip for a result of ``columns`` columns."""
    return max(_MIN_BATCH_ROWS, min(BATCH_ROWS, BATCH_VALUES // max(1, columns)))


class NotARead(Exception):
    """The statement is not a read: answer it the usual way."""


@dataclass(slots=True)
class Stream:
    rows: RowStream
    backend: str
    phases: dict[str, float]
    """The preparation's phases and ``execute`` (up to the first batch)."""
    statement_class: str = "read"


@contextlib.asynccontextmanager
async def open_stream(
    service: Service, principal: Principal, req: QueryRequest, *, batch_rows: int | None = None
) -> AsyncIterator[Stream]:
    """``req`` prepared and started: its columns and first batch are fetched on entering.
    ``batch_rows``: rows per round trip (``batch_rows_for`` the statement's columns)."""
    prepared = await service.prepare(principal, req)
    if prepared.plan.statement_class != "read":
        raise NotARead(prepared.plan.statement_class)
    if batch_rows is None:
        batch_rows = batch_rows_for(len(prepared.plan.columns))
    stack = contextlib.AsyncExitStack()
    async with stack:
        try:
            rows = await _open(service, stack, prepared, req, batch_rows=batch_rows)
        except BackendObjectMissing as error:
            if not service.heal.after_missing(prepared.tenant.location, prepared.plan):
                raise
            prepared, rows = await _reopen(
                service,
                principal,
                req,
                stale=prepared,
                error=error,
                stack=stack,
                batch_rows=batch_rows,
            )
        yield Stream(rows, prepared.tenant.location.kind, prepared.phases)


async def _reopen(
    service: Service,
    principal: Principal,
    req: QueryRequest,
    *,
    stale: Prepared,
    error: BackendObjectMissing,
    stack: contextlib.AsyncExitStack,
    batch_rows: int,
) -> tuple[Prepared, RowStream]:
    """As ``Service._rerun``: once more on fresh metadata, unless the SQL is the same."""
    try:
        prepared = await service.prepare(principal, req)
    except Exception:
        service.heal.record("rerun_refused")
        raise
    if prepared.sql == stale.sql:
        service.heal.record("rerun_failed")
        raise error
    try:
        rows = await _open(service, stack, prepared, req, batch_rows=batch_rows)
    except BackendObjectMissing:
        service.metadata.refresh(prepared.tenant.location)
        service.heal.record("rerun_failed")
        raise
    service.heal.record("rerun_ok")
    return prepared, rows


async def _open(
    service: Service,
    stack: contextlib.AsyncExitStack,
    prepared: Prepared,
    req: QueryRequest,
    *,
    batch_rows: int,
) -> RowStream:
    """The driver's stream entered on ``stack``; a lost connection, once more."""
    location = prepared.tenant.location
    driver = service.drivers.for_location(location)
    timeout_s = req.timeout_ms / 1000
    started = time.perf_counter()
    for last in (False, True):
        try:
            rows = await stack.enter_async_context(
                driver.stream(
                    location,
                    prepared.sql,
                    prepared.params,
                    timeout_s=timeout_s,
                    max_rows=req.max_rows,
                    batch_rows=batch_rows,
                )
            )
        except PoolSaturated:
            raise
        except ConnectionLost:
            # Nothing was read yet, and a read changed nothing: as ``Service._run``.
            if last:
                service.metrics.record_retry(location.kind, "failed")
                raise
            continue
        except (BackendUnavailable, BackendRejected) as error:
            service.observe_server(location, error)
            raise
        if last:
            service.metrics.record_retry(location.kind, "ok")
        break
    service.observe_server(location)
    prepared.phases["execute"] = time.perf_counter() - started
    return rows
