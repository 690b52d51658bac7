"""Requests for another worker's transaction, passed to that worker over a Unix socket.

With several worker processes (``server.workers``) the kernel hands each connection to
any of them, but an interactive transaction lives in the one worker that holds its
connection. A transaction's id starts with its worker's tag
(``proxy.pipeline.transactions``); a worker that receives a request for a tag not its
own passes the request, as it came (method, path, headers, body), to that worker's
socket in the shared run folder, and relays the answer. The owner runs it through its
own app like any request, so authentication, the id's binding to its token and the
metrics all happen where the transaction is. A forwarded request is never forwarded
again: an owner that is gone (its socket too) means the transaction is gone, 404.

Why not route at the edge, or share transactions? docs/decisions.md, "Transactions
across worker processes".

The frames are small: a length-prefixed JSON head and a length-prefixed body, each way.
Transaction answers are never streamed, so a whole answer is one frame. The run folder
is private to the service's user (``tempfile.mkdtemp``), so only the workers reach the
sockets, and the forwarded request is authenticated again anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message

from proxy import context
from proxy.errors import StatementTimeout, TransactionAborted, TransactionNotFound

__all__ = ["FORWARDED", "forward", "listening", "socket_path"]

log = logging.getLogger("tenantgate.http")

FORWARDED = b"x-tenantgate-forwarded"
"""Set on a forwarded request: its receiver answers it itself, whatever the id says."""
_NOT_FORWARDED = frozenset((b"content-length", b"transfer-encoding", b"x-request-id", FORWARDED))
_LENGTH = struct.Struct("!I")
_MAX_FRAME = 64 << 20
_FORWARD_TIMEOUT_S = 65.0
"""Longer than any request for a transaction may take (``query.max_timeout_ms`` is
capped in config well below it); the owner's own deadlines end it first."""


def socket_path(run_dir: str, tag: str) -> str:
    return os.path.join(run_dir, f"tx-{tag}.sock")


async def _write(writer: asyncio.StreamWriter, head: dict[str, Any], body: bytes) -> None:
    encoded = orjson.dumps(head)
    writer.write(_LENGTH.pack(len(encoded)) + encoded + _LENGTH.pack(len(body)) + body)
    await writer.drain()


async def _read_part(reader: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > _MAX_FRAME:
        raise ValueError("frame too large")
    return await reader.readexactly(length)


async def _read(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    head = orjson.loads(await _read_part(reader))
    return head, await _read_part(reader)


# -- the owner's side -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def listening(app: ASGIApp, path: str) -> AsyncIterator[None]:
    """Serve requests forwarded to this worker on ``path`` while inside."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head, body = await _read(reader)
            status, headers, answer = await _call(app, head, body)
            await _write(writer, {"status": status, "headers": headers}, answer)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            log.warning("a forwarded request failed: %s", type(exc).__name__)
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await asyncio.start_unix_server(serve, path)
    try:
        yield
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def _call(app: ASGIApp, head: dict[str, Any], body: bytes) -> tuple[int, Any, bytes]:
    """Run one forwarded request through ``app``; its status, headers and body."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head["headers"]]
    headers.append((FORWARDED, b"1"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": head["method"],
        "scheme": "http",
        "path": head["path"],
        "raw_path": head["path"].encode("latin-1"),
        "query_string": head["query"].encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": None,
        "server": None,
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # nothing more will come: no disconnect either
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    out_headers: list[list[str]] = []
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.extend(
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in message["headers"]
            )
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, out_headers, b"".join(chunks)


# -- the receiving worker's side --------------------------------------------------------


async def forward(path: str, request: Request, body: bytes) -> Response:
    """``request`` answered by the worker listening on ``path``."""
    headers = [
        [k.decode("latin-1"), v.decode("latin-1")]
        for k, v in request.scope["headers"]
        if k not in _NOT_FORWARDED
    ]
    ctx = context.current()
    if ctx is not None:  # one id in both workers' logs
        headers.append(["x-request-id", ctx.request_id])
    head = {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": headers,
    }
    try:
        reader, writer = await asyncio.open_unix_connection(path)
    except (FileNotFoundError, ConnectionRefusedError):
        # Its worker is gone, and its transactions with it (their connections closed).
        raise TransactionNotFound("no open transaction has this id for this token") from None
    try:
        async with asyncio.timeout(_FORWARD_TIMEOUT_S):
            await _write(writer, head, body)
            answer, content = await _read(reader)
    except TimeoutError:
        raise StatementTimeout(
            f"the transaction's worker did not answer within {_FORWARD_TIMEOUT_S:.0f} s",
            timeout_ms=round(_FORWARD_TIMEOUT_S * 1000),
        ) from None
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        # The worker stopped with the request in hand: its connections closed, so the
        # server rolled the transaction back.
        raise TransactionAborted(
            "the worker process holding the transaction stopped; it was rolled back",
            reason="worker_stopped",
        ) from None
    finally:
        writer.close()
    response = Response(content, status_code=answer["status"])
    response.forwarded = True  # type: ignore[attr-defined]  # counted by its owner
    response.raw_headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in answer["headers"]
        if k.lower() != "x-request-id"  # ours is added by our own dispatch
    ]
    return response
