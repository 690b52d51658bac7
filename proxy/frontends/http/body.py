"""Reading what an HTTP caller sent: a bounded body, query flags.

The body's bytes go to a model of ``proxy.frontends.http.models``, which decodes and
validates them in one pass.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from proxy.errors import InvalidRequest, RequestTooLarge

__all__ = ["flag", "header", "read_body"]


def header(request: Request, name: bytes) -> str | None:
    """The value of header ``name`` (lower case, as ASGI gives names), or ``None``.

    Read from the scope: building Starlette's ``Headers`` and looking up through it
    costs more than scanning the few headers a request carries.
    """
    for key, value in request.scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body's bytes; 413 past ``max_bytes`` (declared or streamed)."""
    declared = header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLarge(f"request body exceeds {max_bytes} bytes")
    # The ASGI messages themselves, not ``request.stream()``: an async generator per
    # request cost more than the usual one-message body's whole read.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise RequestTooLarge(f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter (``true``/``false``/``1``/``0``, default false)."""
    value = request.query_params.get(name, "false").casefold()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"'{name}' must be true or false")
    return value in ("true", "1")
