"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load generator.

Why not httpx or aiohttp: on this workload (small JSON POSTs to one host over a few
keep-alive connections) a client's own CPU is what limits a 2-core box, and the
generator's CPU competes with tenantgate's. Measured in ``docs/decisions.md``
(``benchmarks/http_clients.py``): this client costs a fraction of httpx's CPU per
request and less than aiohttp's. It does exactly what the bench needs and no more:
one host, requests written whole, ``Content-Length`` or chunked responses, no
redirects, no cookies, no TLS (``http://`` only; the bench is an operator's tool on the
proxy's own network).

``Pool`` holds up to ``size`` connections, each used by one request (or one
multi-request transaction) at a time; a caller waits for a free one, and that wait is
part of the request's latency, not of its service time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

__all__ = ["Connection", "HttpError", "Pool", "Response", "split_base"]


class HttpError(Exception):
    """The connection failed or the server answered something that is not HTTP/1.1."""


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.status = status
        self.headers = headers
        """Lower-cased names."""
        self.body = body


def split_base(url: str) -> tuple[str, int, str]:
    """(host, port, path prefix) of an ``http://`` base URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected an http://host:port URL, got {url!r}")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_header = f"Host: {host}:{port}\r\n".encode("ascii")

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._reader, self._writer = reader, writer
        return reader, writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(self, method: str, path: str, headers: bytes, body: bytes = b"") -> Response:
        """One exchange. ``headers``: preformatted ``Name: value\\r\\n`` lines."""
        reused = self._writer is not None
        try:
            return await self._exchange(method, path, headers, body)
        except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
            self.close()
            if not reused:
                raise HttpError(type(exc).__name__) from exc
        # The server may close an idle keep-alive connection just as we reuse it: one
        # retry on a fresh connection (the request was not answered, nor, for HTTP/1.1
        # servers closing idle connections, read).
        try:
            return await self._exchange(method, path, headers, body)
        except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
            self.close()
            raise HttpError(type(exc).__name__) from exc

    async def _exchange(self, method: str, path: str, headers: bytes, body: bytes) -> Response:
        if self._writer is None or self._reader is None:
            reader, writer = await self._connect()
        else:
            reader, writer = self._reader, self._writer
        head = b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n" % (
            method.encode("ascii"),
            path.encode("utf-8"),
            self._host_header,
            headers,
            len(body),
        )
        writer.write(head + body if body else head)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise HttpError("not an HTTP/1.x response")
        status = int(status_line[1])
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        length = fields.get(b"content-length")
        if length is not None:
            data = await reader.readexactly(int(length)) if length != b"0" else b""
        elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            data = await _chunked(reader)
        elif method == "HEAD" or status in (204, 304):
            data = b""
        else:
            data = await reader.read()
            self.close()
        if fields.get(b"connection", b"").lower() == b"close":
            self.close()
        return Response(status, fields, data)


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers from our servers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Pool:
    """Up to ``size`` keep-alive connections to one host, opened on first use."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self._idle: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()
        for _ in range(size):
            self._idle.put_nowait(Connection(host, port))
        self.size = size

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        conn = await self._idle.get()
        try:
            yield conn
        except BaseException:
            # Cancelled or failed mid-exchange: the stream may hold half a response.
            conn.close()
            raise
        finally:
            self._idle.put_nowait(conn)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()
