"""Admission to one ODBC pool, decided on the event loop before a worker thread is taken.

pyodbc blocks a thread for the whole of a call. If requests queued for a pool inside
worker threads (``ConnectionPool.getconn`` waiting), a flood on one tenant would hold
every thread of the process and starve the others, ``/readyz`` included. So each pool
has a ``Gate``: at most ``size`` (the pool's ``max_size``) requests hold a thread for
it; up to ``max_waiting`` more wait here, on the loop, first come first served, each
until its own deadline; the next one is refused at once with ``PoolSaturated``.

A request whose thread does not come back in time (a partitioned server, a cancel that
cannot reach it) is abandoned by the driver, but its slot stays taken until the thread
really returns: a server in trouble keeps at most ``size`` threads busy, and further
requests for it are refused in microseconds instead of piling threads up.

Loop-only: ``leave`` from a worker thread goes through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from proxy.errors import PoolSaturated

__all__ = ["Gate"]

RETRY_AFTER_SATURATED = 1.0


class Gate:
    __slots__ = ("_waiters", "in_use", "max_waiting", "name", "size")

    def __init__(self, size: int, *, max_waiting: int, name: str) -> None:
        self.size = size
        self.max_waiting = max_waiting
        self.name = name
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self, timeout_s: float) -> None:
        """Take a slot within ``timeout_s``, or raise ``PoolSaturated``."""
        if self.in_use < self.size and not self._waiters:
            self.in_use += 1
            return
        if len(self._waiters) >= self.max_waiting:
            raise PoolSaturated(
                f"connection pool {self.name} is saturated: {self.in_use} requests running,"
                f" {len(self._waiters)} queued",
                retry_after=RETRY_AFTER_SATURATED,
                pool_max=self.size,
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(timeout_s):
                await fut
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return  # handed a slot just as the wait expired: keep it
            raise PoolSaturated(
                f"connection pool {self.name} is saturated: no connection within {timeout_s:.3g}s",
                retry_after=RETRY_AFTER_SATURATED,
                pool_max=self.size,
            ) from None
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.leave()  # handed a slot as the request was cancelled: pass it on
            raise
        finally:
            if fut.cancelled() or not fut.done():  # not handed a slot: still queued
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)

    def leave(self) -> None:
        """Give a slot back: to the oldest waiter if there is one."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.in_use -= 1
