"""One thread that serves every statement deadline of the process.

A thread (or ``threading.Timer``) per query would cost a thread start per request and
hundreds of sleeping threads under load; instead deadlines sit in a heap ordered by
time, and a single daemon thread sleeps on a condition variable until the earliest one
is due (or an earlier one is added), then runs its action.

The timer thread does not run actions itself: it hands them to a few daemon worker
threads. ``cursor.cancel()`` on psqlODBC opens a *new* connection to the server to
deliver the cancel request, and during a network partition that connect can block
for minutes; run inline, one such cancel would hold up every other deadline of the
process. A raised exception is logged and swallowed, it never kills a thread.

``Handle.done()`` waits for an action that is already running to finish. That is what
makes it safe for the executor to close the cursor right after ``done()``: the
watchdog thread is never inside ``cursor.cancel()`` on a freed statement handle.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["Handle", "Watchdog"]

log = logging.getLogger(__name__)

_ARMED, _FIRING, _FIRED, _DISARMED = range(4)


class Handle:
    """One armed deadline. ``done()`` disarms it; ``fired`` says whether it went off."""

    __slots__ = ("_action", "_own_thread", "_state", "_watchdog", "deadline")

    def __init__(
        self,
        watchdog: Watchdog,
        deadline: float,
        action: Callable[[], None],
        own_thread: bool = False,
    ) -> None:
        self._watchdog = watchdog
        self._action: Callable[[], None] | None = action
        self._own_thread = own_thread
        self._state = _ARMED
        self.deadline = deadline

    @property
    def fired(self) -> bool:
        """True once the action has started (and, after ``done()``, finished)."""
        return self._state in (_FIRING, _FIRED)

    def done(self) -> None:
        """Disarm; if the action is running, wait for it to finish. Idempotent."""
        self._watchdog._disarm(self)

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()


class Watchdog:
    """Deadlines for many callers, served by one lazily started daemon thread."""

    # Rebuild the heap once this many disarmed entries sit in it and they are the
    # majority: statements usually finish long before their deadline, and without
    # compaction their entries would linger until the deadline passes.
    _COMPACT_MIN = 256

    def __init__(self, name: str = "tenantgate-watchdog", *, action_workers: int = 4) -> None:
        if action_workers < 1:
            raise ValueError(f"action_workers must be >= 1, got {action_workers!r}")
        self._name = name
        self._action_workers = action_workers
        self._lock = threading.Lock()
        # Two conditions on one lock: the timer thread waits on ``_wake`` (new
        # earliest deadline, close), ``done()`` waits on ``_finished``. With one
        # condition a notify() meant for the timer could wake a ``done()`` instead.
        self._wake = threading.Condition(self._lock)
        self._finished = threading.Condition(self._lock)
        self._actions: queue.SimpleQueue[Handle | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._heap: list[tuple[float, int, Handle]] = []
        self._seq = itertools.count()
        self._disarmed_in_heap = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(
        self, timeout_s: float, action: Callable[[], None], *, own_thread: bool = False
    ) -> Handle:
        """Run ``action`` once, ``timeout_s`` seconds from now, unless disarmed first.

        ``own_thread``: run it on a thread of its own rather than a shared worker, for an
        action that may block until something else (a later action) unblocks it: an
        ODBC ``SQLCancel`` that a TDS server acknowledges only when the statement ends.
        """
        if not timeout_s >= 0:  # also rejects NaN
            raise ValueError(f"timeout_s must be >= 0, got {timeout_s!r}")
        deadline = time.monotonic() + timeout_s
        with self._lock:
            if self._closed:
                raise RuntimeError("watchdog is closed")
            handle = Handle(self, deadline, action, own_thread)
            heapq.heappush(self._heap, (deadline, next(self._seq), handle))
            if self._thread is None:
                self._start_threads()
            elif self._heap[0][2] is handle:
                # The new deadline is the earliest: the thread sleeps too long otherwise.
                self._wake.notify()
        return handle

    def _start_threads(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        for i in range(self._action_workers):
            worker = threading.Thread(
                target=self._work, name=f"{self._name}-action-{i}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    @property
    def pending(self) -> int:
        """Armed deadlines (for tests and metrics)."""
        with self._lock:
            return len(self._heap) - self._disarmed_in_heap

    def close(self) -> None:
        """Stop the threads; armed deadlines are dropped without running."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _, _, handle in self._heap:
                if handle._state == _ARMED:
                    handle._state = _DISARMED
                    handle._action = None
            self._heap.clear()
            self._disarmed_in_heap = 0
            self._wake.notify_all()
            thread = self._thread
            workers = list(self._workers)
        for _ in workers:
            self._actions.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _disarm(self, handle: Handle) -> None:
        with self._lock:
            if handle._state == _ARMED:
                handle._state = _DISARMED
                handle._action = None
                if not self._closed:
                    self._disarmed_in_heap += 1
                    self._maybe_compact()
                return
            while handle._state == _FIRING:
                self._finished.wait()

    def _maybe_compact(self) -> None:
        if self._disarmed_in_heap >= self._COMPACT_MIN and self._disarmed_in_heap * 2 > len(
            self._heap
        ):
            self._heap = [entry for entry in self._heap if entry[2]._state == _ARMED]
            heapq.heapify(self._heap)
            self._disarmed_in_heap = 0

    def _run(self) -> None:
        while True:
            with self._lock:
                handle = self._next_due()
                if handle is None:
                    return
                # FIRING from here on: ``fired`` is true and ``done()`` waits for the
                # worker to finish, even while the action still sits in the queue.
                handle._state = _FIRING
            if handle._own_thread:
                threading.Thread(
                    target=self._fire, args=(handle,), name=f"{self._name}-own", daemon=True
                ).start()
            else:
                self._actions.put(handle)

    def _work(self) -> None:
        while True:
            handle = self._actions.get()
            if handle is None:
                return
            self._fire(handle)

    def _fire(self, handle: Handle) -> None:
        action = handle._action
        handle._action = None
        try:
            if action is not None:
                action()
        except Exception:
            log.exception("watchdog action failed")
        finally:
            with self._lock:
                handle._state = _FIRED
                self._finished.notify_all()

    def _next_due(self) -> Handle | None:
        """Under the lock: wait for the next due armed handle; None when closed."""
        while not self._closed:
            if not self._heap:
                self._wake.wait()
                continue
            deadline, _, handle = self._heap[0]
            if handle._state != _ARMED:
                heapq.heappop(self._heap)
                self._disarmed_in_heap -= 1
                continue
            delay = deadline - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)
                continue
            heapq.heappop(self._heap)
            return handle
        return None
