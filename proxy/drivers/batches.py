"""The row accounting every driver's ``RowStream`` shares (``proxy.drivers.base``).

A driver says how to fetch the next ``n`` rows (``_fetch``); ``Batches`` decides how
many to ask for and when the stream is over. It asks for ``batch_rows`` at a time, and
near the end for one row past ``max_rows`` only, so that ``truncated`` is known
without turning more than one extra row into Python objects. A fetch that gives fewer
rows than asked for ends the stream: every driver's fetch (``FETCH n``,
``fetchmany(n)``) gives ``n`` rows unless the result ran out.

The first batch is fetched by ``start``, which the drivers call before handing the
stream out: an error of the statement's first steps then reaches the caller before
any row, and a driver that learns column types from values (SQLite) has values.
"""

from __future__ import annotations

from proxy.drivers.base import ResultColumn

__all__ = ["Batches", "check_stream_limits"]


def check_stream_limits(timeout_s: float, max_rows: int, batch_rows: int) -> None:
    if not (0 < timeout_s < float("inf")):
        raise ValueError(f"timeout_s must be finite and > 0, got {timeout_s!r}")
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows!r}")


class Batches:
    """A ``RowStream`` over a driver's ``_fetch``; subclasses supply it."""

    def __init__(self, *, max_rows: int, batch_rows: int) -> None:
        self.columns: list[ResultColumn] = []
        self.row_count = 0
        self.truncated = False
        self.exhausted = False
        """No more rows will come: the result ran out, or ``max_rows`` were given."""
        self._max_rows = max_rows
        self._batch_rows = batch_rows
        self._first: list[list[object]] | None = None

    async def _fetch(self, count: int) -> list[list[object]]:
        """The next ``count`` rows at most; fewer only at the end of the result."""
        raise NotImplementedError

    async def start(self) -> None:
        """Fetch the first batch (before the stream is handed out)."""
        self._first = await self._next()

    def __aiter__(self) -> Batches:
        return self

    async def __anext__(self) -> list[list[object]]:
        first, self._first = self._first, None
        if first:
            return first
        if self.exhausted:
            raise StopAsyncIteration
        rows = await self._next()
        if not rows:
            raise StopAsyncIteration
        return rows

    async def _next(self) -> list[list[object]]:
        if self.exhausted:
            return []
        wanted = min(self._batch_rows, self._max_rows + 1 - self.row_count)
        rows = await self._fetch(wanted)
        if len(rows) < wanted:
            self.exhausted = True
        room = self._max_rows - self.row_count
        if len(rows) > room:
            del rows[room:]
            self.truncated = True
            self.exhausted = True
        self.row_count += len(rows)
        return rows
