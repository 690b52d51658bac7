"""Blocking calls with a deadline, each on a thread of its own, a bounded number at once.

A DB-API call cannot be interrupted from Python: a SQLite file locked by another
process keeps the SQLite ODBC driver in its busy loop for its ``Timeout=`` (100 s by
default), and a controller server that stopped answering keeps the driver in a socket
read until TCP gives up. ``BoundedCalls.call(fn, timeout)`` runs ``fn`` on a new thread
and waits for it at most ``timeout`` seconds; past that the caller gets ``CallTimedOut``
and the thread is left to finish on its own (its result is dropped).

Such threads still hold what they were using (a pooled connection, a thread), so at
most ``max_threads`` calls run at once, overdue ones included. A call that finds every
slot taken waits for one within its own deadline; if every slot is held by an overdue
call (the callee is evidently stalled), it fails at once with ``NoCapacity`` rather
than wait for a slot that will not come in time.

Threads are started per call, not pooled: the calls this is for (controller lookups
on a cache miss, readiness checks) are rare next to the requests served from caches,
and a thread that is stuck in a driver must not be one that the next call waits for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["BoundedCalls", "CallTimedOut", "NoCapacity"]

T = TypeVar("T")


class CallTimedOut(Exception):
    """The call did not return (or could not start) before its deadline."""


class NoCapacity(Exception):
    """Every slot is held by a call past its deadline: the callee is stalled."""


class _Call(Generic[T]):
    __slots__ = ("deadline", "done", "error", "value")

    value: T

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = threading.Event()
        self.error: BaseException | None = None


class BoundedCalls:
    """Runs blocking calls on threads of their own, at most ``max_threads`` at once."""

    def __init__(
        self,
        *,
        max_threads: int,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError("max_threads must be an integer >= 1")
        self.max_threads = max_threads
        self.name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._running: set[_Call[Any]] = set()
        self._stats = dict.fromkeys(("calls", "timeouts", "refused"), 0)

    def call(self, fn: Callable[[], T], timeout: float) -> T:
        """``fn()``, or ``CallTimedOut`` after ``timeout`` seconds (slot wait included),
        or ``NoCapacity`` at once when every slot is held by an overdue call."""
        if not timeout > 0:
            raise ValueError("timeout must be > 0")
        deadline = self._clock() + timeout
        job: _Call[T] = _Call(deadline)
        with self._cond:
            self._stats["calls"] += 1
            while len(self._running) >= self.max_threads:
                now = self._clock()
                if all(c.deadline <= now for c in self._running):
                    self._stats["refused"] += 1
                    raise NoCapacity(
                        f"{len(self._running)} {self.name} calls are past their deadline "
                        "and still unanswered"
                    )
                if deadline <= now:
                    self._stats["timeouts"] += 1
                    raise CallTimedOut(f"no {self.name} thread became free in time")
                # A slot that frees wakes us (notify); otherwise wake at our deadline, or
                # when the last running call becomes overdue and the refusal applies.
                wake = min(deadline, max(c.deadline for c in self._running))
                self._cond.wait(wake - now)
            self._running.add(job)
        thread = threading.Thread(
            target=self._run, args=(job, fn), name=f"tenantgate-{self.name}", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            self._release(job)
            raise
        if not job.done.wait(max(deadline - self._clock(), 0.0)):
            with self._cond:
                self._stats["timeouts"] += 1
            raise CallTimedOut(f"the {self.name} call did not return within {timeout:.3g} s")
        if job.error is not None:
            raise job.error
        return job.value

    def overdue(self) -> int:
        """How many calls are still running past their deadline (abandoned)."""
        now = self._clock()
        with self._cond:
            return sum(1 for c in self._running if c.deadline <= now)

    def get_stats(self) -> dict[str, int]:
        """Counters (``calls``, ``timeouts``, ``refused``) and gauges (``running``,
        ``overdue``)."""
        now = self._clock()
        with self._cond:
            running = len(self._running)
            overdue = sum(1 for c in self._running if c.deadline <= now)
            return {**self._stats, "running": running, "overdue": overdue}

    # -- internals ---------------------------------------------------------------

    def _run(self, job: _Call[T], fn: Callable[[], T]) -> None:
        try:
            job.value = fn()
        except BaseException as error:  # noqa: BLE001 - handed to the caller, who re-raises
            job.error = error
        finally:
            self._release(job)
            job.done.set()

    def _release(self, job: _Call[T]) -> None:
        with self._cond:
            self._running.discard(job)
            self._cond.notify_all()
