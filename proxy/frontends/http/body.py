"""Reading what an HTTP caller sent: a bounded JSON body, query flags."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from proxy.errors import InvalidRequest, RequestTooLarge

__all__ = ["flag", "read_json"]


async def read_json(request: Request, max_bytes: int) -> Any:
    """The decoded body; 413 past ``max_bytes`` (declared or streamed), 400 if not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLarge(f"request body exceeds {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestTooLarge(f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc.msg}") from None


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter (``true``/``false``/``1``/``0``, default false)."""
    value = request.query_params.get(name, "false").casefold()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"'{name}' must be true or false")
    return value in ("true", "1")
