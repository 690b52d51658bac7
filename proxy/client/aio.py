"""The asyncio client: ``AsyncClient``, the same surface as ``Client`` with ``await``.

Everything but the sending lives in ``proxy.client.protocol``, shared with the blocking
client (``proxy.client.sync``); this module differs from that one only in its awaits.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from proxy.client import protocol
from proxy.client.errors import TenantgateError, TransactionAborted
from proxy.client.models import Params, Result, StatementLike
from proxy.client.streaming import StreamCore, is_ndjson
from proxy.client.sync import DEFAULT_TIMEOUT_S

__all__ = ["AsyncClient", "AsyncRowStream", "AsyncTransaction"]

T = TypeVar("T")


class AsyncClient:
    """tenantgate over HTTP for asyncio; ``async with`` it, or ``await aclose()``."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
            base_url=url,
            headers=protocol.client_headers(token, headers),
            timeout=self._timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, call: protocol.Call[T]) -> T:
        """Send one call of ``proxy.client.protocol`` and decode its answer."""
        try:
            response = await self._http.request(
                call.method,
                call.path,
                content=call.body,
                params=call.query,
                headers=protocol.request_headers(call),
                timeout=protocol.timeout_for(self._timeout, call),
            )
        except httpx.TransportError as exc:
            raise protocol.transport_error(exc) from exc
        return call.decode(response)

    async def query(
        self,
        tenant: str | int,
        sql: str,
        params: Params = (),
        *,
        max_rows: int | None = None,
        timeout_ms: int | None = None,
        dialect: str | None = None,
        missing_columns: str | None = None,
        allow_unfiltered: bool = False,
    ) -> Result:
        return await self.send(
            protocol.query(
                tenant, sql, params, max_rows=max_rows, timeout_ms=timeout_ms,
                dialect=dialect, missing_columns=missing_columns,
                allow_unfiltered=allow_unfiltered,
            )
        )  # fmt: skip

    async def batch(
        self,
        tenant: str | int,
        statements: Iterable[StatementLike],
        *,
        isolation: str | None = None,
        timeout_ms: int | None = None,
        max_rows: int | None = None,
        dialect: str | None = None,
    ) -> list[Result]:
        return await self.send(
            protocol.batch(
                tenant, statements, isolation=isolation, timeout_ms=timeout_ms,
                max_rows=max_rows, dialect=dialect,
            )
        )  # fmt: skip

    def transaction(self, tenant: str | int, *, isolation: str | None = None) -> AsyncTransaction:
        """Begun by ``async with`` (or ``await begin()``)."""
        return AsyncTransaction(self, tenant, isolation)

    async def begin(self, tenant: str | int, *, isolation: str | None = None) -> AsyncTransaction:
        return await AsyncTransaction(self, tenant, isolation).begin()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        tenant: str | int,
        sql: str,
        params: Params = (),
        *,
        max_rows: int | None = None,
        timeout_ms: int | None = None,
        dialect: str | None = None,
        missing_columns: str | None = None,
    ) -> AsyncIterator[AsyncRowStream]:
        call = protocol.stream(
            tenant, sql, params, max_rows=max_rows, timeout_ms=timeout_ms,
            dialect=dialect, missing_columns=missing_columns,
        )  # fmt: skip
        request = self._http.build_request(
            call.method,
            call.path,
            content=call.body,
            headers=protocol.request_headers(call),
            timeout=protocol.timeout_for(self._timeout, call),
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise protocol.transport_error(exc) from exc
        try:
            rows = AsyncRowStream(response)
            await rows.open()
            yield rows
        finally:
            await response.aclose()


class AsyncTransaction(protocol.TransactionCore):
    def __init__(self, client: AsyncClient, tenant: str | int, isolation: str | None) -> None:
        super().__init__(tenant, isolation)
        self._client = client

    async def begin(self) -> AsyncTransaction:
        self.began(await self._client.send(self.begin_call()))
        return self

    async def query(
        self,
        sql: str,
        params: Params = (),
        *,
        max_rows: int | None = None,
        timeout_ms: int | None = None,
        dialect: str | None = None,
        missing_columns: str | None = None,
        allow_unfiltered: bool = False,
    ) -> Result:
        return await self._client.send(
            protocol.tx_query(
                self.open_id(), sql, params, max_rows=max_rows, timeout_ms=timeout_ms,
                dialect=dialect, missing_columns=missing_columns,
                allow_unfiltered=allow_unfiltered,
            )
        )  # fmt: skip

    async def batch(
        self,
        statements: Iterable[StatementLike],
        *,
        timeout_ms: int | None = None,
        max_rows: int | None = None,
        dialect: str | None = None,
    ) -> list[Result]:
        return await self._client.send(
            protocol.tx_batch(
                self.open_id(), statements, timeout_ms=timeout_ms, max_rows=max_rows,
                dialect=dialect,
            )
        )  # fmt: skip

    async def commit(self) -> None:
        await self._client.send(protocol.commit(self.open_id()))
        self.state = "committed"

    async def rollback(self) -> None:
        await self._client.send(protocol.rollback(self.open_id()))
        self.state = "rolled_back"

    async def __aenter__(self) -> AsyncTransaction:
        if self.state == "new":
            await self.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.state != "open":
            return
        if exc is None:
            try:
                await self.commit()
            except TransactionAborted:
                with contextlib.suppress(TenantgateError):
                    await self.rollback()
                raise
            return
        with contextlib.suppress(TenantgateError):
            await self.rollback()


class AsyncRowStream(StreamCore):
    """``RowStream`` for asyncio: ``async for row in rows``."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__()
        self._response = response
        self._lines: AsyncIterator[str] | None = None

    async def open(self) -> None:
        response = self._response
        try:
            if response.status_code >= 400 or not is_ndjson(response):
                await response.aread()
                protocol.stream_opened(response)
                self.opened_whole(response.content)
                return
            self._lines = response.aiter_lines()
            while self.decoder.columns is None:
                line = await anext(self._lines, None)
                if line is None:
                    self.decoder.finish()
                else:
                    self.decoder.feed(line)
        except httpx.TransportError as exc:
            raise protocol.transport_error(exc) from exc

    def __aiter__(self) -> AsyncIterator[list[Any]]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[list[Any]]:
        if self.whole is not None:
            for whole_row in self.whole.rows:
                yield whole_row
            return
        assert self._lines is not None
        try:
            async for line in self._lines:
                row = self.decoder.feed(line)
                if row is not None:
                    yield row
        except httpx.TransportError as exc:
            raise protocol.transport_error(exc) from exc
        self.decoder.finish()
