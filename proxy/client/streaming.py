"""Streamed results: NDJSON read line by line, without holding the result.

``RowDecoder`` is the format (a header line of columns, a line per row, a trailer of
``row_count`` and ``truncated`` or of the error that ended the stream), fed one line at a
time; ``StreamCore`` the state that ``RowStream`` and ``AsyncRowStream`` share, which
differ only in how they read lines. The contract is docs/transactions.md, "Streaming
results".
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from proxy.client.errors import ProtocolError, TenantgateError, error_for
from proxy.client.models import Column, Result
from proxy.client.protocol import NDJSON, columns_of, decode_result

__all__ = ["RowDecoder", "StreamCore", "is_ndjson"]


class RowDecoder:
    """An NDJSON result read line by line: a header, rows, then a trailer.

    ``feed`` takes each line as it arrives and returns the row it holds (``None`` for
    the header and the trailer); an error trailer raises its exception. ``finish``
    checks that the trailer came: a stream cut short must not pass for a short result.
    """

    def __init__(self) -> None:
        self.columns: list[Column] | None = None
        self.row_count: int | None = None
        self.truncated: bool | None = None
        self.rows_seen = 0
        self.done = False

    def feed(self, line: str | bytes) -> list[Any] | None:
        if not line.strip():
            return None
        if self.done:
            raise ProtocolError("a line after the stream's trailer")
        try:
            item = json.loads(line)
        except ValueError:
            raise ProtocolError("a stream line that is not JSON") from None
        if self.columns is None:
            if not isinstance(item, dict) or "columns" not in item:
                raise ProtocolError("the stream does not begin with its columns")
            try:
                self.columns = columns_of(item["columns"])
            except (KeyError, TypeError):
                raise ProtocolError("the stream's columns are malformed") from None
            return None
        if isinstance(item, list):
            self.rows_seen += 1
            return item
        if not isinstance(item, dict):
            raise ProtocolError("a stream line that is neither a row nor the trailer")
        self.done = True
        if "error" in item:
            raise self._error(item)
        self.row_count = int(item.get("row_count", self.rows_seen))
        self.truncated = bool(item.get("truncated", False))
        return None

    def _error(self, item: dict[str, Any]) -> TenantgateError:
        error = item["error"] if isinstance(item["error"], dict) else {}
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        details["row_count"] = item.get("row_count", self.rows_seen)
        return error_for(
            None,
            error.get("code"),
            str(error.get("message", "the stream ended with an error")),
            details=details,
        )

    def finish(self) -> None:
        if not self.done:
            raise ProtocolError(f"the stream ended after {self.rows_seen} rows without its trailer")


class StreamCore:
    """A streamed result's state (``RowStream``/``AsyncRowStream`` add the reading).

    A server that answers ``application/json`` instead of NDJSON (one that predates
    streaming, or a result it chose to send whole) is read whole and iterated the same.
    """

    def __init__(self) -> None:
        self.decoder = RowDecoder()
        self.whole: Result | None = None

    def opened_whole(self, content: bytes) -> None:
        try:
            self.whole = decode_result(json.loads(content))
        except ValueError:
            raise ProtocolError("the answer is neither NDJSON nor JSON") from None
        self.decoder.columns = self.whole.columns
        self.decoder.row_count = self.whole.row_count
        self.decoder.truncated = self.whole.truncated
        self.decoder.rows_seen = len(self.whole.rows)
        self.decoder.done = True

    @property
    def columns(self) -> list[Column]:
        if self.decoder.columns is None:
            raise RuntimeError("the stream's header has not been read")
        return self.decoder.columns

    @property
    def row_count(self) -> int | None:
        """Known once every row was read (``None`` before)."""
        return self.decoder.row_count

    @property
    def truncated(self) -> bool | None:
        return self.decoder.truncated


def is_ndjson(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", maxsplit=1)[0].strip() == NDJSON
