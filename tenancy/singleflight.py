"""Single flight over a cache: one load per key at a time, shared by concurrent callers.

``SingleFlight.run(key, load, cached=..., store=...)`` looks the key up with ``cached``
and, on a miss, either leads a flight (runs ``load``) or waits for the flight already
under way for that key. Waiters get the leader's value, or its error: a fresh copy per
waiter for a ``TenancyError`` (one exception raised in many threads would collect all
their tracebacks), the same object otherwise.

The leader's value is passed to ``store`` only if the flight was not invalidated while
it loaded (``invalidate``, ``invalidate_where``, ``clear``): a load that started before
an invalidation must not put stale data back into the cache. Its callers still get it.

Everything happens under one lock, ``SingleFlight.lock``, which the owner also uses for
its cache: ``cached`` and ``store`` run with it held, so a lookup and joining a flight
are one step, and so are a flight's end and its store. It is re-entrant, so the owner
may invalidate inside its own critical section. ``load`` runs without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from tenancy.errors import TenancyError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Flight(Generic[V]):
    __slots__ = ("done", "error", "value")

    value: V

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None

    def outcome(self) -> V:
        error = self.error
        if isinstance(error, TenancyError):
            raise type(error)(error.message, **error.details)
        if error is not None:
            raise error
        return self.value


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._flights: dict[K, _Flight[V]] = {}

    def run(
        self,
        key: K,
        load: Callable[[], V],
        *,
        cached: Callable[[], V | None] | None = None,
        store: Callable[[V], None] | None = None,
    ) -> V:
        """``cached()`` if not ``None``, else the outcome of the one ``load()`` for ``key``.

        ``None`` from ``cached`` means a miss, so a cached ``V`` must not be ``None``.
        Must not be called with ``lock`` held: the caller would hold it while it waits.
        """
        with self.lock:
            if cached is not None:
                found = cached()
                if found is not None:
                    return found
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            return flight.outcome()
        try:
            flight.value = load()
        except BaseException as error:
            flight.error = error
            raise
        finally:
            try:
                with self.lock:
                    if self._flights.get(key) is flight:  # not invalidated meanwhile
                        del self._flights[key]
                        if flight.error is None and store is not None:
                            store(flight.value)
            finally:
                flight.done.set()
        return flight.value

    def invalidate(self, key: K) -> None:
        """The flight under way for ``key``, if any, will not store its value."""
        with self.lock:
            self._flights.pop(key, None)

    def invalidate_where(self, predicate: Callable[[K], bool]) -> None:
        """``invalidate`` every key in flight for which ``predicate`` is true."""
        with self.lock:
            for key in [k for k in self._flights if predicate(k)]:
                del self._flights[key]

    def clear(self) -> None:
        """``invalidate`` every key in flight."""
        with self.lock:
            self._flights.clear()
