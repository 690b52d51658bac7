"""What one target's run measured: HdrHistograms per script and per tenant, counts,
and a one-second timeline.

Two times per transaction (microseconds, HdrHistogram from PyPI ``hdrhistogram``):

* **latency**: completion minus the *scheduled* start (open loop) — what a user whose
  request was due then would have waited, queueing in the generator included;
* **service time**: completion minus the moment the first byte was sent (after a
  connection was free) — what the server took.

In closed loop the two are the same time. Script histograms keep 3 significant digits
from 1 µs to 60 s (~140 KB each); tenants' keep 2 (~20 KB each, created on a tenant's
first request) because a 10,000-tenant fleet would otherwise hold a gigabyte of
counters, and a p99 to 1% is enough to compare tenants.

Transactions *scheduled* before the warm-up's end are not recorded at all (not even if
they complete after it), nor counted as sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ["HIGHEST_US", "Recorder", "Tick", "new_histogram"]

HIGHEST_US = 60_000_000


def new_histogram(digits: int = 3) -> Any:
    return HdrHistogram(1, HIGHEST_US, digits)


def _us(seconds: float) -> int:
    return min(HIGHEST_US, max(1, round(seconds * 1e6)))


@dataclass
class ScriptStats:
    latency: Any = field(default_factory=new_histogram)
    service: Any = field(default_factory=new_histogram)
    latency_sum_us: int = 0
    """For the mean: hdrh's ``get_mean_value`` walks every bucket in Python."""
    service_sum_us: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class TenantStats:
    latency: Any = field(default_factory=lambda: new_histogram(2))
    sent: int = 0
    """Transactions due for this tenant (skipped ones included)."""
    served: int = 0
    """Transactions that completed without an error."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One second of the measured run."""

    t: float
    """Seconds of measured time at the end of this second."""
    completed: int
    failed: int
    skipped: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lag_ms: float
    """The latest a transaction was sent after its schedule in this second."""
    mean_ms: float


class Recorder:
    def __init__(self, target: str) -> None:
        self.target = target
        self.scripts: dict[str, ScriptStats] = {}
        self.tenants: dict[int, TenantStats] = {}
        self.lag_sum_us = 0
        self.latency = new_histogram()
        """All scripts together, recorded as they go (merging hdrh histograms afterwards
        walks every bucket in Python: seconds for a report)."""
        self.service = new_histogram()
        self.lag = new_histogram()
        """How late the generator sent transactions after their schedule (open loop):
        the generator's own bottleneck shows here first."""
        self.ticks: list[Tick] = []
        self.elapsed = 0.0
        """Measured seconds so far (segments of interleaved rounds add up)."""
        self.bench_cpu_s = 0.0
        self.proxy_cpu_s: float | None = None
        self._interval = new_histogram(2)
        self._counts = [0, 0, 0]  # completed, failed, skipped in the current second
        self._lag_max = 0.0
        self._interval_sum_us = 0

    def _script(self, name: str) -> ScriptStats:
        stats = self.scripts.get(name)
        if stats is None:
            stats = self.scripts[name] = ScriptStats()
        return stats

    def _tenant(self, index: int) -> TenantStats:
        stats = self.tenants.get(index)
        if stats is None:
            stats = self.tenants[index] = TenantStats()
        return stats

    def sent(self, tenant: int) -> None:
        self._tenant(tenant).sent += 1

    def skipped(self, script: str) -> None:
        self._script(script).skipped += 1
        self._counts[2] += 1

    def late(self, seconds: float) -> None:
        lag = _us(seconds)
        self.lag.record_value(lag)
        self.lag_sum_us += lag
        self._lag_max = max(self._lag_max, seconds)

    def done(
        self, script: str, tenant: int, *, scheduled: float, sent: float, finished: float,
        error: str | None,
    ) -> None:  # fmt: skip
        stats = self._script(script)
        # Open loop sends up to half a millisecond early rather than sleep so briefly.
        sent = max(sent, scheduled)
        latency = _us(finished - scheduled)
        if error is None:
            service = _us(finished - sent)
            stats.completed += 1
            stats.latency.record_value(latency)
            stats.service.record_value(service)
            stats.latency_sum_us += latency
            stats.service_sum_us += service
            self.latency.record_value(latency)
            self.service.record_value(service)
            self._interval_sum_us += latency
            tenant_stats = self._tenant(tenant)
            tenant_stats.served += 1
            tenant_stats.latency.record_value(latency)
            self._interval.record_value(latency)
            self._counts[0] += 1
        else:
            stats.failed += 1
            stats.errors[error] += 1
            self._counts[1] += 1

    def tick(self, seconds: float) -> Tick:
        """Close the current interval of ``seconds`` of measured time."""
        self.elapsed += seconds
        h = self._interval
        empty = h.get_total_count() == 0
        at = {} if empty else h.get_percentile_to_value_dict([50.0, 99.0])
        tick = Tick(
            t=self.elapsed,
            completed=self._counts[0],
            failed=self._counts[1],
            skipped=self._counts[2],
            p50_ms=at.get(50.0, 0) / 1e3,
            p99_ms=at.get(99.0, 0) / 1e3,
            max_ms=0.0 if empty else h.get_max_value() / 1e3,
            lag_ms=round(self._lag_max * 1e3, 3),
            mean_ms=0.0 if empty else self._interval_sum_us / self._counts[0] / 1e3,
        )
        self.ticks.append(tick)
        h.reset()
        self._counts = [0, 0, 0]
        self._lag_max = 0.0
        self._interval_sum_us = 0
        return tick

    def totals(self) -> tuple[int, int, int]:
        """(completed, failed, skipped) so far."""
        s = self.scripts.values()
        return (
            sum(x.completed for x in s),
            sum(x.failed for x in s),
            sum(x.skipped for x in s),
        )
