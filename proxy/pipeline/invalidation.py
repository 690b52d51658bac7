"""Keeping every process's caches in step: the controller's change log, and a host-local bell.

Each process caches tenants and table shapes. When one process changes a tenant's
schema (custom fields) or refreshes it, the others must forget what they cached:

* **Across hosts and processes** — the change is written to the controller's change
  log (``tenancy.changes``); every process reads the log about every
  ``poll_interval`` seconds and refreshes what the new rows name. A change made on
  another host is therefore seen within about one poll interval plus a catalog read.
* **On one host** — the writer also rings a bell: it increments a counter in a small
  shared file (``server.workers`` processes map the same one). Every request reads
  that counter (a memory read, no system call); when it moved, the request first
  catches up with the log. So a change made through any worker of this host is seen by
  the very next request on every worker.

Every read of the log (and every tenant lookup it causes) runs on the controller's
own threads within ``controller.timeout_ms`` (``Service.on_controller``): a stalled
controller delays invalidation, and holds up neither requests nor catalog reads.

Tenants changed in the controller by someone else (an operator editing the customer
table) are seen when their cache entry expires (``controller.cache_ttl_s``), or at
once through ``POST /v1/tenants/{t}/schema/refresh`` on any process.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from tenancy.changes import Change, ChangeLog
from tenancy.errors import (
    InvalidTenantReference,
    TenancyError,
    TenantMisconfigured,
    UnknownTenant,
)
from tenancy.metadata import MetadataCache
from tenancy.resolver import TenantResolver

__all__ = ["Bell", "Invalidation"]

log = logging.getLogger("tenantgate.invalidation")

T = TypeVar("T")
_COUNTER = struct.Struct("<Q")


class Bell:
    """A counter shared by the processes of one host through a mapped file."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _COUNTER.size:
                os.ftruncate(fd, _COUNTER.size)
            self._map = mmap.mmap(fd, _COUNTER.size)
        finally:
            os.close(fd)
        self._path = path

    def value(self) -> int:
        # An aligned 8-byte read: never torn on the platforms we run on.
        return int(_COUNTER.unpack_from(self._map)[0])

    def ring(self) -> None:
        with open(self._path, "rb+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # two writers must not lose an increment
            try:
                _COUNTER.pack_into(self._map, 0, self.value() + 1)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()


class Invalidation:
    def __init__(
        self,
        changes: ChangeLog,
        *,
        resolver: TenantResolver,
        metadata: MetadataCache,
        on_controller: Callable[..., Awaitable[Any]],
        poll_interval: float = 1.0,
        bell: Bell | None = None,
    ) -> None:
        self._changes = changes
        self._resolver = resolver
        self._metadata = metadata
        self._on_controller = on_controller
        self._poll_interval = poll_interval
        self._bell = bell
        self._seq: int | None = None
        self._heard = bell.value() if bell is not None else 0
        self._lock: anyio.Lock | None = None

    def rang(self) -> bool:
        """Whether another process of this host announced a change not yet read."""
        return self._bell is not None and self._bell.value() != self._heard

    async def publish(self, customer_id: int, table: str | None, kind: str = "schema") -> None:
        """Tell every process (this one has already refreshed its own caches)."""
        if self._seq is None:
            await self.catch_up()  # creates the log if no process has yet
        await self._on_controller(self._changes.record, customer_id, table, kind)
        if self._bell is not None:
            self._bell.ring()

    async def catch_up(self) -> None:
        """Read the log from where this process left off and apply what is new."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            heard = self._bell.value() if self._bell is not None else 0
            if self._seq is None:
                # Where this process starts reading. What it cached before (requests
                # served before the first read) may predate changes it will never
                # read: forget it.
                self._seq = await self._on_controller(self._changes.ensure_latest)
                self._resolver.clear()
                self._metadata.clear()
                self._heard = heard
                return
            changes: list[Change] = await self._on_controller(self._changes.since, self._seq)
            for change in changes:
                await self._apply(change)
                self._seq = change.seq
            self._heard = heard

    async def run(self) -> None:
        """Poll the log forever (a background task of the process)."""
        while True:
            try:
                await self.catch_up()
            except TenancyError as exc:
                log.warning("the change log could not be read: %s", exc.message)
            await anyio.sleep(self._poll_interval)

    async def _apply(self, change: Change) -> None:
        # A tenant gone or misconfigured has nothing cached to refresh. A controller
        # that does not answer stops the catch-up before this change, so that the next
        # poll applies it rather than the log's position moving past it unapplied.
        with contextlib.suppress(UnknownTenant, TenantMisconfigured, InvalidTenantReference):
            tenant = self._resolver.peek(change.customer_id)
            if change.kind == "tenant":
                self._resolver.invalidate(change.customer_id)
            if tenant is None:
                # Not cached by id here; its tables may be, under its location.
                tenant = await self._on_controller(self._resolver.resolve, change.customer_id)
            self._metadata.refresh(tenant.location, change.table)
