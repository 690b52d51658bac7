"""``POST /v1/query`` streamed: ``Accept: application/x-ndjson`` or ``text/csv``.

The contract is docs/transactions.md, "Streaming results". Here:

* ``query`` (called by ``endpoints.query`` when ``wanted`` finds a streaming media type
  in ``Accept``) prepares and opens the stream, first batch included, before it answers
  anything: an error up to there is the usual JSON error with its status. A statement
  that is not a read is answered as JSON, as if ``Accept`` had not asked for a stream
  (``None``: ``endpoints.query`` goes on).
* ``StreamResponse`` then writes the header line, a chunk per batch and the trailer.
  Each batch is one ASGI ``send``, which in uvicorn waits while the transport's buffer
  is over its high-water mark: a slow client holds up the next fetch, and at most one
  batch is held here beside what the transport buffers. A send that waits longer than
  ``query.stream_write_timeout_ms`` ends the stream (the client stopped reading; the
  connection is closed without a trailer). A disconnect, seen by a task that waits on
  ``receive`` meanwhile, cancels the fetch in flight at once; the driver stops the
  statement on the server and gives its connection back clean, or closes it.
* An error after the header (a batch's timeout, a lost connection) ends the stream
  with a trailer: NDJSON ``{"error": {"code": …, "message": …}, "row_count": n}``; CSV
  has no place for one, so the response then ends without the final chunk of its
  chunked encoding (the client sees a truncated transfer, not a complete file) after a
  last line ``#error,<code>,<message>``. A complete CSV body has no trailer: the header
  row, then the rows; ``X-Row-Cap`` is not knowable up front, so a truncated CSV result
  ends with the line ``#truncated,<row_count>``.
* Metrics: the request counts as a ``query`` like any other (``observe_query``, once
  the stream ended) with the rows sent; ``execute`` covers the fetching, ``serialize``
  the encoding and writing (back-pressure included).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

import anyio
import orjson
from msgspec import UNSET
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from proxy import context
from proxy.auth import Principal
from proxy.drivers.base import ResultColumn
from proxy.errors import StatementTimeout
from proxy.frontends.http.models import QUERY, query_request
from proxy.frontends.http.statuses import status_for
from proxy.jsonenc import default
from proxy.pipeline.request import QueryRequest
from proxy.pipeline.service import Service
from proxy.pipeline.stream import NotARead, Stream, open_stream

__all__ = ["CSV", "NDJSON", "StreamResponse", "query", "stream_request", "wanted"]

log = logging.getLogger("tenantgate.http")

NDJSON = "application/x-ndjson"
CSV = "text/csv"
_LINE = orjson.OPT_APPEND_NEWLINE
_SEPARATOR = orjson.Fragment(b"\x00")
_dumps = orjson.dumps


class ClientGone(Exception):
    """The client disconnected or stopped reading: the stream's statement must stop.
    ``code`` is what the request's metrics count it as."""

    def __init__(self, message: str, *, code: str = "client_disconnected") -> None:
        super().__init__(message)
        self.code = code


def wanted(accept: str | None) -> str | None:
    """The streaming media type ``accept`` asks for (NDJSON first), or ``None``.

    Only the types are looked at: a client that lists a streaming type accepts it;
    ``q`` weights are not compared with ``application/json``'s.
    """
    if not accept:
        return None
    types = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    if NDJSON in types:
        return NDJSON
    if CSV in types:
        return CSV
    return None


def stream_request(raw: bytes, service: Service) -> QueryRequest:
    """A ``/v1/query`` body for a stream: ``models.query_request``'s, but ``max_rows`` up
    to ``query.stream_max_rows``, which is also its default."""
    req = query_request(raw, service.settings)
    asked = QUERY.decode(raw).max_rows  # a second decode, of a small body: 1-2 µs
    cap = service.settings.query.stream_max_rows
    return dataclasses.replace(req, max_rows=cap if asked is UNSET else min(asked, cap))


async def query(
    service: Service, principal: Principal, raw: bytes, media_type: str
) -> Response | None:
    """The stream opened, as a response to send; ``None`` for a statement not a read."""
    req = stream_request(raw, service)
    stack = AsyncExitStack()
    try:
        opened = await stack.enter_async_context(open_stream(service, principal, req))
    except NotARead:
        await stack.aclose()
        return None
    except BaseException:
        await stack.aclose()
        raise
    return StreamResponse(service, opened, stack, media_type)


class StreamResponse(Response):
    """Writes an opened stream (see the module); owns it until the stream ends."""

    def __init__(
        self, service: Service, opened: Stream, stack: AsyncExitStack, media_type: str
    ) -> None:
        super().__init__(media_type=media_type)
        del self.headers["content-length"]
        self._service = service
        self._opened = opened
        self._stack = stack
        self._csv = media_type == CSV
        self._write_timeout_s = service.settings.query.stream_write_timeout_ms / 1000
        self._sent_rows = 0
        self._fetch_s = 0.0
        self._write_s = 0.0
        self._max_s = service.settings.query.stream_max_ms / 1000
        self.on_end: Callable[[str | None], None] | None = None
        """Told the stream's outcome (an error code, ``None`` when it completed), once
        it ended: the request's metrics (set by ``proxy.frontends.http.app``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome: BaseException | None = None
        finished = False
        gone = False
        try:
            async with anyio.create_task_group() as tasks:

                async def watch() -> None:
                    nonlocal gone
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not finished:
                        gone = True
                        tasks.cancel_scope.cancel()

                tasks.start_soon(watch)
                try:
                    outcome = await self._write(send)
                    finished = True
                except ClientGone as exc:
                    # The response stays unfinished: uvicorn closes the connection (and
                    # logs that the application returned without completing it).
                    outcome = exc
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            if gone or (outcome is None and not finished):
                outcome = ClientGone("the client went away")
            await self._close(outcome)

    async def _write(self, send: Send) -> BaseException | None:
        """Header, rows, trailer; the error that ended the stream, if any. A client that
        stopped reading raises ``ClientGone``."""
        rows = self._opened.rows
        columns = rows.columns
        start: Message = {
            "type": "http.response.start",
            "status": 200,
            "headers": self.raw_headers,
        }
        await self._send(send, start)
        encode = self._csv_rows if self._csv else _ndjson_rows
        header = (
            _csv_header(columns) if self._csv else orjson.dumps({"columns": columns}, option=_LINE)
        )
        await self._chunk(send, header)
        error: BaseException | None = None
        clock = time.perf_counter
        ends = clock() + self._max_s
        batches = aiter(rows)
        while True:
            t0 = clock()
            if t0 > ends:
                # However each round trip and write is bounded, the whole stream is too.
                max_ms = round(self._max_s * 1000)
                error = StatementTimeout(
                    f"the stream ran past query.stream_max_ms ({max_ms} ms)", timeout_ms=max_ms
                )
                break
            try:
                batch = await anext(batches, None)
            except Exception as exc:  # noqa: BLE001 - every error goes into the trailer
                error = exc
                self._fetch_s += clock() - t0
                break
            t1 = clock()
            self._fetch_s += t1 - t0
            if batch is None:
                break
            self._sent_rows += len(batch)
            await self._chunk(send, encode(batch))
            self._write_s += clock() - t1
        if error is not None:
            await self._error_trailer(send, error)
            return error
        trailer = (
            (f"#truncated,{rows.row_count}\r\n".encode() if rows.truncated else b"")
            if self._csv
            else orjson.dumps(
                {"row_count": rows.row_count, "truncated": rows.truncated}, option=_LINE
            )
        )
        await self._send(send, {"type": "http.response.body", "body": trailer, "more_body": False})
        return None

    async def _error_trailer(self, send: Send, error: BaseException) -> None:
        status, code = status_for(error)
        if status >= 500 and code == "internal_error":
            log.error("unhandled error in a stream", exc_info=error)
            message = "internal error; the incident has been logged"
        else:
            message = getattr(error, "message", str(error))
        ctx = context.current()
        if ctx is not None:
            ctx.code = code
        if self._csv:
            # No final chunk: the client sees a transfer cut short, not a complete file.
            await self._chunk(send, f"#error,{code},{_csv_field(message)}\r\n".encode())
            raise ClientGone("a CSV stream ends unfinished on an error", code=code)
        trailer = {"error": {"code": code, "message": message}, "row_count": self._sent_rows}
        body = orjson.dumps(trailer, option=_LINE)
        await self._send(send, {"type": "http.response.body", "body": body, "more_body": False})

    async def _chunk(self, send: Send, body: bytes) -> None:
        await self._send(send, {"type": "http.response.body", "body": body, "more_body": True})

    async def _send(self, send: Send, message: Message) -> None:
        with anyio.move_on_after(self._write_timeout_s) as scope:
            await send(message)
        if scope.cancelled_caught:
            raise ClientGone("the client stopped reading")

    async def _close(self, outcome: BaseException | None) -> None:
        """End the driver's stream (with the error, if any) and record the query."""
        try:
            with anyio.CancelScope(shield=True):
                if outcome is None:
                    await self._stack.aclose()
                else:
                    await self._stack.__aexit__(type(outcome), outcome, outcome.__traceback__)
        except Exception:
            log.warning("a stream's statement did not end cleanly", exc_info=True)
        if self.on_end is not None:
            if outcome is None:
                self.on_end(None)
            elif isinstance(outcome, ClientGone):
                self.on_end(outcome.code)
            else:
                self.on_end(status_for(outcome)[1])
        opened = self._opened
        phases = dict(opened.phases)
        phases["execute"] = phases.get("execute", 0.0) + self._fetch_s
        phases["serialize"] = self._write_s
        self._service.metrics.observe_query(
            opened.backend,
            opened.statement_class,
            phases,
            rows=self._sent_rows,
            truncated=opened.rows.truncated,
        )

    def _csv_rows(self, batch: list[list[object]]) -> bytes:
        return "".join([_csv_line(row) for row in batch]).encode()


def _ndjson_rows(batch: list[list[object]]) -> bytes:
    """The rows of ``batch`` as JSON lines, in one ``orjson.dumps`` of the whole batch.

    The rows are interleaved with a fragment that writes a NUL byte, which JSON text
    never holds raw (strings escape it as ``\\u0000``): ``,NUL,`` between two rows is
    then the one place a line ends. One call per row cost 1.0-1.2 µs a row, this
    0.05-0.17 (1,000 rows of two or three columns).
    """
    if not batch:
        return b""
    spaced: list[object] = [_SEPARATOR] * (2 * len(batch) - 1)
    spaced[0::2] = batch
    return _dumps(spaced, default=default)[1:-1].replace(b",\x00,", b"\n") + b"\n"


def _csv_header(columns: list[ResultColumn]) -> bytes:
    return _csv_line([column.name for column in columns]).encode()


def _csv_line(row: list[object]) -> str:
    return ",".join([_csv_field(value) for value in row]) + "\r\n"


_QUOTED = frozenset(',"\r\n')


def _csv_field(value: object) -> str:
    """A value as the JSON answer writes it, as a CSV field (RFC 4180).

    NULL is an empty field and an empty string ``""``; a text is quoted when it holds a
    separator, a quote or a line break, or starts with ``#``, so that a line starting
    with ``#`` unquoted is always the stream's own marker (``#truncated``, ``#error``).
    """
    if value is None:
        return ""
    if type(value) is str:
        if value and not value.startswith("#") and _QUOTED.isdisjoint(value):
            return value
        return '"' + value.replace('"', '""') + '"'
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | bytes | bytearray | memoryview):
        return str(default(value))
    return _csv_field(str(value))
