"""The blocking client: ``Client``, its transactions and streamed results.

Everything but the sending lives in ``proxy.client.protocol``; ``AsyncClient``
(``proxy.client.aio``) is this module with ``await``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from proxy.client import protocol
from proxy.client.errors import TenantgateError, TransactionAborted
from proxy.client.models import Params, Result, StatementLike
from proxy.client.records import Records
from proxy.client.streaming import StreamCore, is_ndjson

__all__ = ["Client", "RowStream", "Transaction"]

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 30.0


class Client:
    """tenantgate over HTTP, one connection pool; close it, or use it as a context manager.

    ``timeout`` (seconds, or an ``httpx.Timeout``) bounds each request; a call with its
    own ``timeout_ms`` waits a few seconds longer than that, so the server's
    ``statement_timeout`` arrives before the client gives up. ``transport`` is httpx's
    (an ``httpx.HTTPTransport(retries=...)``, a mounted test app...).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._timeout = httpx.Timeout(timeout)
        self._http = httpx.Client(
            base_url=url,
            headers=protocol.client_headers(token, headers),
            timeout=self._timeout,
            transport=transport,
        )

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------

    def send(self, call: protocol.Call[T]) -> T:
        """Send one call of ``proxy.client.protocol`` and decode its answer."""
        try:
            response = self._http.request(
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

    # -- the API -------------------------------------------------------------------

    def query(
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
        """Run one statement; it commits on its own."""
        return self.send(
            protocol.query(
                tenant, sql, params, max_rows=max_rows, timeout_ms=timeout_ms,
                dialect=dialect, missing_columns=missing_columns,
                allow_unfiltered=allow_unfiltered,
            )
        )  # fmt: skip

    def batch(
        self,
        tenant: str | int,
        statements: Iterable[StatementLike],
        *,
        isolation: str | None = None,
        timeout_ms: int | None = None,
        max_rows: int | None = None,
        dialect: str | None = None,
    ) -> list[Result]:
        """Run statements in one transaction: all of them, or none (the error's
        ``index`` names the statement that failed)."""
        return self.send(
            protocol.batch(
                tenant, statements, isolation=isolation, timeout_ms=timeout_ms,
                max_rows=max_rows, dialect=dialect,
            )
        )  # fmt: skip

    def transaction(self, tenant: str | int, *, isolation: str | None = None) -> Transaction:
        """An interactive transaction, begun by ``with`` (or ``begin()``): committed
        when the block ends cleanly, rolled back when it raises."""
        return Transaction(self, tenant, isolation)

    def begin(self, tenant: str | int, *, isolation: str | None = None) -> Transaction:
        """An interactive transaction, begun now; end it with ``commit`` or ``rollback``."""
        return Transaction(self, tenant, isolation).begin()

    @contextlib.contextmanager
    def stream(
        self,
        tenant: str | int,
        sql: str,
        params: Params = (),
        *,
        max_rows: int | None = None,
        timeout_ms: int | None = None,
        dialect: str | None = None,
        missing_columns: str | None = None,
    ) -> Iterator[RowStream]:
        """A read's rows as they arrive (NDJSON), without holding the result."""
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
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise protocol.transport_error(exc) from exc
        try:
            rows = RowStream(response)
            yield rows
        finally:
            response.close()

    def records(self, tenant: str | int, table: str) -> Records:
        """One table's records: loaded, changed and saved field by field."""
        return Records(self, tenant, table)


class Transaction(protocol.TransactionCore):
    """An interactive transaction on one connection of the tenant's server."""

    def __init__(self, client: Client, tenant: str | int, isolation: str | None) -> None:
        super().__init__(tenant, isolation)
        self._client = client

    def begin(self) -> Transaction:
        self.began(self._client.send(self.begin_call()))
        return self

    def query(
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
        return self._client.send(
            protocol.tx_query(
                self.open_id(), sql, params, max_rows=max_rows, timeout_ms=timeout_ms,
                dialect=dialect, missing_columns=missing_columns,
                allow_unfiltered=allow_unfiltered,
            )
        )  # fmt: skip

    def batch(
        self,
        statements: Iterable[StatementLike],
        *,
        timeout_ms: int | None = None,
        max_rows: int | None = None,
        dialect: str | None = None,
    ) -> list[Result]:
        return self._client.send(
            protocol.tx_batch(
                self.open_id(), statements, timeout_ms=timeout_ms, max_rows=max_rows,
                dialect=dialect,
            )
        )  # fmt: skip

    def commit(self) -> None:
        self._client.send(protocol.commit(self.open_id()))
        self.state = "committed"

    def rollback(self) -> None:
        self._client.send(protocol.rollback(self.open_id()))
        self.state = "rolled_back"

    def __enter__(self) -> Transaction:
        if self.state == "new":
            self.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.state != "open":
            return  # ended inside the block
        if exc is None:
            try:
                self.commit()
            except TransactionAborted:
                # Rolled back on the server already; the rollback ends it here too.
                with contextlib.suppress(TenantgateError):
                    self.rollback()
                raise
            return
        # The block's own error is the one to see; a failed rollback is rolled back by
        # the server anyway (idle timeout), so it must not hide it.
        with contextlib.suppress(TenantgateError):
            self.rollback()


class RowStream(StreamCore):
    """A streamed result: ``columns`` at once, the rows by iteration, then ``row_count``
    and ``truncated``. Iterate it once."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__()
        self._response = response
        try:
            if response.status_code >= 400 or not is_ndjson(response):
                response.read()
                protocol.stream_opened(response)
                self.opened_whole(response.content)
                self._lines: Iterator[str] = iter(())
            else:
                self._lines = response.iter_lines()
                while self.decoder.columns is None:
                    line = next(self._lines, None)
                    if line is None:
                        self.decoder.finish()
                    else:
                        self.decoder.feed(line)
        except httpx.TransportError as exc:
            raise protocol.transport_error(exc) from exc

    def __iter__(self) -> Iterator[list[Any]]:
        if self.whole is not None:
            yield from self.whole.rows
            return
        try:
            for line in self._lines:
                row = self.decoder.feed(line)
                if row is not None:
                    yield row
        except httpx.TransportError as exc:
            raise protocol.transport_error(exc) from exc
        self.decoder.finish()
