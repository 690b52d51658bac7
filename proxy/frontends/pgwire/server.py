"""The PostgreSQL wire front end's listener: one asyncio server beside the HTTP one.

It runs on the serving process's event loop and shares its ``Service`` (caches,
pools, transactions, metrics), started and stopped by the app's lifespan
(``proxy.frontends.http.app``) when ``[pgwire] enabled``. With several worker
processes each binds the port with ``SO_REUSEPORT`` and the kernel spreads the
connections; a wire session lives in one worker, so nothing is routed between them.
A CancelRequest is honoured by the worker it reaches, which is the session's own only
by chance: with several workers, cancellation is best effort (docs/pgwire.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator

from proxy.frontends.pgwire.connection import Connection
from proxy.pipeline.service import Service

__all__ = ["WireServer", "serving"]

log = logging.getLogger("tenantgate.pgwire")


class WireServer:
    """The sessions of this process, by their cancel keys."""

    def __init__(self, service: Service) -> None:
        self.service = service
        settings = service.settings.pgwire
        self.tls: ssl.SSLContext | None = None
        if settings.tls_cert_file:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
            self.tls = context
        self._sessions: dict[tuple[int, int], Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, connection: Connection) -> None:
        self._sessions[connection.key] = connection

    def unregister(self, connection: Connection) -> None:
        self._sessions.pop(connection.key, None)

    def cancel(self, pid: int, secret: int) -> None:
        connection = self._sessions.get((pid, secret))
        if connection is not None:
            connection.cancel()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await Connection(self, reader, writer).run()
        except Exception:  # a bug of ours: logged, and only this client is lost
            log.exception("a wire session failed")
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        """End every session (each rolls back its open transaction on the way out)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)


@contextlib.asynccontextmanager
async def serving(service: Service, *, reuse_port: bool = False) -> AsyncIterator[WireServer]:
    """The wire front end listening while inside (``[pgwire]`` host and port)."""
    settings = service.settings.pgwire
    wire = WireServer(service)
    server = await asyncio.start_server(
        wire.handle, settings.host, settings.port, reuse_port=reuse_port or None
    )
    log.info("PostgreSQL wire front end on %s:%d", settings.host, settings.port)
    try:
        yield wire
    finally:
        server.close()
        await wire.close()
        await server.wait_closed()
