"""The PostgreSQL wire front end's listener: one asyncio server beside the HTTP one.

It runs on the serving process's event loop and shares its ``Service`` (caches,
pools, transactions, metrics), started and stopped by the app's lifespan
(``proxy.frontends.http.app``) when ``[pgwire] enabled``. With several worker
processes each binds the port with ``SO_REUSEPORT`` and the kernel spreads the
connections; a wire session lives in one worker, so its statements are never routed.

A CancelRequest comes on a connection of its own, which the kernel may give to any
worker. So a session's cancel key is (its worker's pid, a random secret), and a
worker that gets a key of another pid passes it to that worker's cancel socket in
the shared run folder (``pgcancel-<pid hex>.sock``, 8 bytes: the key), as a
transaction's request is passed (``proxy.frontends.http.forward``). Like PostgreSQL,
a cancel is answered with nothing: one for a session that ended, or a worker that is
gone, does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import ssl
import struct
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from proxy.frontends.pgwire.connection import Connection
from proxy.pipeline.service import Service

__all__ = ["WireServer", "cancel_socket", "serving"]

log = logging.getLogger("tenantgate.pgwire")

_KEY = struct.Struct("!II")
_FORWARD_TIMEOUT_S = 5.0


def cancel_socket(run_dir: str, pid: int) -> str:
    return os.path.join(run_dir, f"pgcancel-{pid:x}.sock")


class WireServer:
    """The sessions of this process, by their cancel keys."""

    def __init__(self, service: Service, *, run_dir: str | None = None) -> None:
        self.service = service
        self.pid = os.getpid()
        self.run_dir = run_dir
        """Where the workers' cancel sockets are (``None``: one process, no sockets)."""
        settings = service.settings.pgwire
        self.tls: ssl.SSLContext | None = None
        if settings.tls_cert_file:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
            self.tls = context
        self._sessions: dict[tuple[int, int], Connection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def new_key(self) -> tuple[int, int]:
        """A cancel key (BackendKeyData's process id and secret) no session here has."""
        while True:
            key = (self.pid, secrets.randbits(31))
            if key not in self._sessions:
                return key

    def register(self, connection: Connection) -> None:
        self._sessions[connection.key] = connection

    def unregister(self, connection: Connection) -> None:
        self._sessions.pop(connection.key, None)

    async def cancel(self, pid: int, secret: int) -> None:
        """A CancelRequest: this worker's session, or passed to the worker of ``pid``."""
        if pid == self.pid:
            self.cancel_here(pid, secret)
        elif self.run_dir is not None:
            await self._pass_on(cancel_socket(self.run_dir, pid), pid, secret)

    def cancel_here(self, pid: int, secret: int) -> None:
        connection = self._sessions.get((pid, secret))
        if connection is not None:
            connection.cancel()

    async def _pass_on(self, path: str, pid: int, secret: int) -> None:
        try:
            async with asyncio.timeout(_FORWARD_TIMEOUT_S):
                _, writer = await asyncio.open_unix_connection(path)
                try:
                    writer.write(_KEY.pack(pid, secret))
                    await writer.drain()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            pass  # no such worker (any more): nothing to cancel, as PostgreSQL says nothing

    async def _cancel_passed_on(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A key another worker passed on (``_pass_on``)."""
        try:
            async with asyncio.timeout(_FORWARD_TIMEOUT_S):
                pid, secret = _KEY.unpack(await reader.readexactly(_KEY.size))
            self.cancel_here(pid, secret)
        except (asyncio.IncompleteReadError, OSError, TimeoutError):
            pass
        finally:
            writer.close()

    def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Coroutine[Any, Any, None]:
        # The session's task runs what this returns: Connection.run, compiled by mypyc.
        # An interpreted coroutine here would be resumed, frame and all, at each of the
        # task's wake-ups (1.4 % of a statement's CPU in session 15's profile).
        return Connection(self, reader, writer).run()

    def opened(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)

    def closed(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    async def close(self) -> None:
        """End every session (each rolls back its open transaction on the way out)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)


@contextlib.asynccontextmanager
async def serving(
    service: Service, *, reuse_port: bool = False, run_dir: str | None = None
) -> AsyncIterator[WireServer]:
    """The wire front end listening while inside (``[pgwire]`` host and port); with
    ``run_dir`` (several workers), this worker's cancel socket too."""
    settings = service.settings.pgwire
    wire = WireServer(service, run_dir=run_dir)
    async with contextlib.AsyncExitStack() as stack:
        if run_dir is not None:
            path = cancel_socket(run_dir, wire.pid)
            cancels = await asyncio.start_unix_server(wire._cancel_passed_on, path)
            stack.callback(_remove, path)
            stack.push_async_callback(cancels.wait_closed)
            stack.callback(cancels.close)
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


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
