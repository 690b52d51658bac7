"""One timer for the client-side backstops of every statement in flight.

A timer per statement (``loop.call_later`` and its ``cancel``) costs 5-7 µs on the
test box, a few percent of a point select; registering in a dict costs a fraction of
that. The single timer ticks every ``TICK_S`` while statements are in flight and not
at all otherwise, so a backstop fires between its deadline and ``TICK_S`` later: a
backstop is at least a tenth of a second past the server's own timeout anyway. At each
tick the statements not yet due are ``check``ed: a look at their sockets, for the
answer the event loop failed to report (``statements.Statements.nudge``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

__all__ = ["TICK_S", "Watch"]

TICK_S = 0.05

log = logging.getLogger(__name__)


class Guarded(Protocol):
    deadline: float

    def fire(self) -> None: ...

    def check(self) -> None:
        """Called at every tick before the deadline (cheap: a look at a socket)."""


class Watch:
    """The statements in flight on one event loop, and their backstop deadlines."""

    def __init__(self) -> None:
        self._guards: dict[Guarded, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop of these statements, found once: each ``asyncio.get_running_loop()``
        costs a ``getpid`` system call (CPython checks the loop was not forked)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def now(self) -> float:
        return self.loop.time()

    def arm(self, guard: Guarded) -> None:
        """Watch ``guard`` until ``disarm``; ``guard.fire()`` once its deadline passed."""
        self._guards[guard] = None
        if self._handle is None:
            self._handle = self.loop.call_later(TICK_S, self._sweep)

    def disarm(self, guard: Guarded) -> None:
        self._guards.pop(guard, None)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._guards.clear()

    def _sweep(self) -> None:
        self._handle = None
        if self._loop is None:  # pragma: no cover - armed means a loop was seen
            return
        now = self._loop.time()
        due = []
        for guard in self._guards:
            if guard.deadline <= now:
                due.append(guard)
            else:
                guard.check()
        for guard in due:
            del self._guards[guard]
            try:
                guard.fire()
            except Exception:
                log.exception("a statement's backstop failed to fire")
        if self._guards:
            self._handle = self._loop.call_later(TICK_S, self._sweep)
