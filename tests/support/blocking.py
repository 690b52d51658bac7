"""Synchronous test code driving tenantgate's async service on one real event loop.

The service's drivers hold connections bound to the loop they were opened on
(psycopg's async connections, anyio limiters), so every call of one service goes to
the same loop: an anyio blocking portal, a loop running in a thread of its own.
``Blocking(obj, portal)`` exposes ``obj``'s coroutine methods as plain calls; anything
else passes through. Nothing is replaced: the calls run the real code.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal
from prometheus_client import CollectorRegistry

from proxy.compose import build
from proxy.config import Settings
from proxy.pipeline.service import Service
from proxy.tables.custom_fields import CustomFields
from proxy.tables.records import Records


class Blocking:
    def __init__(self, target: Any, portal: BlockingPortal) -> None:
        self.target = target
        self.portal = portal

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.target, name)
        if inspect.iscoroutinefunction(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self.portal.call(functools.partial(attr, *args, **kwargs))

            return call
        return attr


class BlockingService(Blocking):
    """A real ``Service`` built from ``settings``, with its loop; ``close()`` ends both."""

    target: Service

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        run_dir: str | None = None,
    ) -> None:
        self._stack = contextlib.ExitStack()
        portal = self._stack.enter_context(start_blocking_portal(backend="asyncio"))
        try:
            service = portal.call(
                functools.partial(_build, settings, registry or CollectorRegistry(), run_dir)
            )
        except BaseException:
            self._stack.close()
            raise
        super().__init__(service, portal)
        self._running = contextlib.ExitStack()
        self._entered = False

    def transactions(self) -> Any:
        """The service's transactions, with their holders' task group running until
        ``close()`` (which rolls back what is still open, as a stopping process does)."""
        if not self._entered:
            self._entered = True
            self._running.enter_context(
                self.portal.wrap_async_context_manager(self.target.transactions.running())
            )
        return Blocking(self.target.transactions, self.portal)

    def stop_transactions(self) -> None:
        """Leave the holders' task group: what is open is rolled back."""
        self._running.close()

    def records(self) -> Any:
        return Blocking(Records(self.target), self.portal)

    def custom_fields(self) -> Any:
        return Blocking(CustomFields(self.target), self.portal)

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call async ``fn`` on the service's loop."""
        return self.portal.call(functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        try:
            self._running.close()
            self.portal.call(self.target.aclose)
        finally:
            self._stack.close()


async def _build(settings: Settings, registry: CollectorRegistry, run_dir: str | None) -> Service:
    # On the loop, like the real server: drivers may bind loop-local state.
    return build(settings, registry=registry, run_dir=run_dir)
