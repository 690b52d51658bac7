"""Prometheus metrics: counted in plain Python, exposed on a registry the caller injects.

The request path counts into dicts under one lock: no ``prometheus_client`` metric
object is touched per request. Its ``Histogram.observe`` and ``Counter.inc`` took
6.0 µs for one query's eight observations, this 2.5 µs (``docs/decisions.md``). A
collector turns the counts into metric families when ``/metrics`` is scraped, beside
the cache and pool figures that the caches and pools already count (``get_stats()``).
No metric has a per-tenant label: with thousands of tenants the series count would
explode. The busiest tenants are ranks instead (``tenantgate_top_tenant_*{rank}``, a
fixed set of series; ``proxy.pipeline.activity``), their names at
``GET /v1/stats/tenants``. Pools are labelled by ``server``, a secret-free server key.

Several worker processes (``server.workers``) add up in one scrape, whichever process
answers it: each writes a snapshot of all its figures to ``multiprocess_dir`` about
once a second (``write_snapshot``, and once more when it closes), and a scrape adds the
other processes' snapshots to its own live figures. So another worker's figures may lag
by a second. Counters and histograms of a worker that has exited stay in the sum (its
last snapshot), so totals never go backwards; its gauges (pool connections, waiting
requests) leave with it.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from proxy.pipeline.activity import MEASURES, Export, merge_exports

__all__ = ["LATENCY_BUCKETS", "PHASES", "Metrics"]

PHASES = ("resolve", "metadata", "rewrite", "execute", "serialize")
"""``execute`` includes the wait for a pooled connection (see ``tenantgate_pool_wait_seconds``)."""

# Point selects take well under a millisecond on a warm path; wide rows and slow
# statements take seconds. Buckets span both.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

StatsSource = Callable[[], Mapping[str, int]]
PoolStatsSource = Callable[[], Mapping[str, Mapping[str, int]]]

Labels = tuple[str, ...]
Counts = dict[Labels, float]
"""A counter family's values by label values."""
Buckets = dict[Labels, list[float]]
"""A histogram family's values by label values: one count per bucket of
``LATENCY_BUCKETS`` plus +Inf (not cumulative), then the sum."""

_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tenantgate_requests": (
        "HTTP requests by endpoint, outcome and error code.",
        ("endpoint", "outcome", "code"),
    ),
    "tenantgate_rows_returned": ("Rows returned to callers, by backend.", ("backend",)),
    "tenantgate_results_truncated": ("Results cut at max_rows, by backend.", ("backend",)),
    "tenantgate_metadata_heals": (
        "Metadata found stale and refreshed on a request's path, by outcome: "
        "rerun_ok, rerun_refused, rerun_failed, write_not_rerun (the backend "
        "reported a missing object); revalidated, still_unknown (a query named a "
        "column the cache lacked).",
        ("outcome",),
    ),
    "tenantgate_reads_retried": (
        "Reads run once more on a fresh connection because theirs was found lost (a "
        "server restart, a terminated backend), by backend and outcome (ok, failed).",
        ("backend", "outcome"),
    ),
    "tenantgate_transactions": (
        "Interactive transactions by outcome: begun; committed, rolled_back (asked for); "
        "statement_failed, commit_failed, idle_timeout, max_lifetime, tenant_moved, "
        "shutdown (rolled back by tenantgate). Open ones: begun less the others.",
        ("outcome",),
    ),
    "tenantgate_batches": (
        "Atomic batches by outcome (committed, rolled_back) and backend.",
        ("backend", "outcome"),
    ),
}
_HISTOGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tenantgate_request_duration_seconds": (
        "Time from request received to response ready, by endpoint.",
        ("endpoint",),
    ),
    "tenantgate_query_duration_seconds": (
        "Time spent per query phase, by backend and statement class.",
        ("backend", "statement_class", "phase"),
    ),
}
# Pool figures that only grow; the others are gauges, gone with their process.
_POOL_COUNTERS = frozenset(
    ("requests_num", "requests_wait_ms", "requests_timeouts", "connections_lost",
     "connections_errors")
)  # fmt: skip
# A cache's figures that are levels, not counts: a process that is gone holds none.
_CACHE_GAUGES = frozenset(("size", "parsed_size", "bytes", "parsed_bytes", "shapes"))


class Metrics:
    def __init__(self, registry: CollectorRegistry, *, multiprocess_dir: str | None = None) -> None:
        self.registry = registry
        """What a scrape reads (``generate_latest(metrics.registry)``)."""
        self.multiprocess_dir = multiprocess_dir
        self._lock = threading.Lock()
        self._counters: dict[str, Counts] = {name: {} for name in _COUNTERS}
        self._histograms: dict[str, Buckets] = {name: {} for name in _HISTOGRAMS}
        # The hot families, named once.
        self._requests = self._counters["tenantgate_requests"]
        self._rows = self._counters["tenantgate_rows_returned"]
        self._truncated = self._counters["tenantgate_results_truncated"]
        self._heals = self._counters["tenantgate_metadata_heals"]
        self._request_seconds = self._histograms["tenantgate_request_duration_seconds"]
        self._query_seconds = self._histograms["tenantgate_query_duration_seconds"]
        self._caches: Mapping[str, StatsSource] = {}
        self._pools: PoolStatsSource = dict
        self._activity: Callable[[], Export] = dict
        self._top_tenants = 10
        own = _process_key(os.getpid()) or str(os.getpid())
        self._snapshot_name = f"{_SNAPSHOT_PREFIX}{own}.json"
        registry.register(_Collector(self))

    # -- the request path ----------------------------------------------------------------

    def observe_request(self, endpoint: str, code: str | None, seconds: float) -> None:
        with self._lock:
            self._request(endpoint, code, seconds)

    def _request(self, endpoint: str, code: str | None, seconds: float) -> None:
        """One request in the counts (lock held)."""
        labels = (endpoint, "ok", "") if code is None else (endpoint, "error", code)
        requests = self._requests
        requests[labels] = requests.get(labels, 0) + 1
        values = self._request_seconds.get((endpoint,))
        if values is None:
            values = self._request_seconds[(endpoint,)] = _empty_histogram()
        values[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        values[-1] += seconds

    def observe_query(
        self,
        backend: str,
        statement_class: str,
        phases: Mapping[str, float],
        *,
        rows: int,
        truncated: bool,
        request: tuple[str, float] | None = None,
    ) -> None:
        """One query's phase durations and the rows it returned.

        ``request``: (endpoint, seconds) when the query is a whole request that went
        well, counted as ``observe_request`` would, under the same lock (a wire
        statement: one lock taken where two were).
        """
        key = (backend,)
        # Inlined, not a helper per phase: a Python call per observation was a third
        # of this method's cost.
        bisect_left = bisect.bisect_left
        with self._lock:
            if request is not None:
                self._request(request[0], None, request[1])
            histograms = self._query_seconds
            for phase, seconds in phases.items():
                labels = (backend, statement_class, phase)
                values = histograms.get(labels)
                if values is None:
                    values = histograms[labels] = _empty_histogram()
                values[bisect_left(LATENCY_BUCKETS, seconds)] += 1
                values[-1] += seconds
            counts = self._rows
            counts[key] = counts.get(key, 0) + rows
            if truncated:
                counts = self._truncated
                counts[key] = counts.get(key, 0) + 1

    def record_retry(self, backend: str, outcome: str) -> None:
        key = (backend, outcome)
        retries = self._counters["tenantgate_reads_retried"]
        with self._lock:
            retries[key] = retries.get(key, 0) + 1

    def record_transaction(self, outcome: str) -> None:
        self._count("tenantgate_transactions", (outcome,))

    def record_batch(self, backend: str, outcome: str) -> None:
        self._count("tenantgate_batches", (backend, outcome))

    def _count(self, name: str, key: Labels) -> None:
        values = self._counters[name]
        with self._lock:
            values[key] = values.get(key, 0) + 1

    def record_heal(self, outcome: str) -> None:
        key = (outcome,)
        with self._lock:
            self._heals[key] = self._heals.get(key, 0) + 1

    # -- cache and pool figures, several processes ---------------------------------------

    def watch(
        self,
        *,
        caches: Mapping[str, StatsSource],
        pools: PoolStatsSource,
        activity: Callable[[], Export] = dict,
        top_tenants: int = 10,
    ) -> None:
        self._caches = caches
        self._pools = pools
        self._activity = activity
        self._top_tenants = top_tenants

    def tenant_activity(self) -> Export:
        """Every live process's tenant activity over the window, added up."""
        exports = [self._activity()]
        if self.multiprocess_dir is not None:
            own = self._snapshot_name
            for snapshot, alive in _snapshots(self.multiprocess_dir, own):
                if alive:
                    exports.append(snapshot.activity)
        return merge_exports(exports)

    def write_snapshot(self) -> None:
        """Write this process's figures for the other processes' scrapes."""
        if self.multiprocess_dir is None:
            return
        path = os.path.join(self.multiprocess_dir, self._snapshot_name)
        temporary = f"{path}.tmp"
        with open(temporary, "wb") as f:
            f.write(orjson.dumps(_encode(self._figures())))
        os.replace(temporary, path)  # a scrape never reads half a file

    def _figures(self) -> _Figures:
        """This process's figures, copied (the lock is held only for the copy)."""
        with self._lock:
            counters = {name: dict(values) for name, values in self._counters.items()}
            histograms = {
                name: {labels: list(v) for labels, v in values.items()}
                for name, values in self._histograms.items()
            }
        caches = {name: dict(source()) for name, source in self._caches.items()}
        pools = {server: dict(stats) for server, stats in self._pools().items()}
        return _Figures(counters, histograms, caches, pools, self._activity())

    def _scraped(self) -> _Figures:
        """This process's figures plus the other processes' last snapshots."""
        figures = self._figures()
        if self.multiprocess_dir is not None:
            for snapshot, alive in _snapshots(self.multiprocess_dir, self._snapshot_name):
                figures.add(snapshot, gauges=alive)
        return figures


def _empty_histogram() -> list[float]:
    return [0.0] * (len(LATENCY_BUCKETS) + 2)  # the buckets, +Inf, the sum


class _Figures:
    """Every figure of one process, or of several added up."""

    def __init__(
        self,
        counters: dict[str, Counts],
        histograms: dict[str, Buckets],
        caches: dict[str, dict[str, int]],
        pools: dict[str, dict[str, int]],
        activity: Export,
    ) -> None:
        self.counters = counters
        self.histograms = histograms
        self.caches = caches
        self.pools = pools
        self.activity = activity

    def add(self, other: _Figures, *, gauges: bool) -> None:
        for name, counts in other.counters.items():
            mine = self.counters.setdefault(name, {})
            for labels, value in counts.items():
                mine[labels] = mine.get(labels, 0) + value
        for name, histogram in other.histograms.items():
            ours = self.histograms.setdefault(name, {})
            for labels, values in histogram.items():
                total = ours.get(labels)
                if total is None:
                    ours[labels] = list(values)
                else:
                    for i, value in enumerate(values):
                        total[i] += value
        for cache, stats in other.caches.items():
            _add(self.caches.setdefault(cache, {}), stats, _everything if gauges else _cached)
        for server, stats in other.pools.items():
            _add(self.pools.setdefault(server, {}), stats, _everything if gauges else _counted)
        if gauges:  # a window's activity, gone with its process like the gauges
            self.activity = merge_exports((self.activity, other.activity))


def _everything(_: str) -> bool:
    return True


def _counted(key: str) -> bool:
    return key in _POOL_COUNTERS


def _cached(key: str) -> bool:
    return key not in _CACHE_GAUGES


def _add(total: dict[str, int], stats: Mapping[str, int], keep: Callable[[str], bool]) -> None:
    for key, value in stats.items():
        if keep(key):
            total[key] = total.get(key, 0) + value


# -- snapshots ---------------------------------------------------------------------------

_SNAPSHOT_PREFIX = "tenantgate_stats_"


def _process_key(pid: int) -> str | None:
    """``PID_STARTTIME``: a process's name that a later process with its pid cannot take."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count fields after its ")".
    return f"{pid}_{stat[stat.rindex(b')') + 2 :].split()[19].decode()}"


def _snapshots(folder: str, own: str) -> Iterator[tuple[_Figures, bool]]:
    """Every other process's last snapshot, and whether that process still runs."""
    for name in os.listdir(folder):
        if name == own or not (name.startswith(_SNAPSHOT_PREFIX) and name.endswith(".json")):
            continue
        key = name[len(_SNAPSHOT_PREFIX) : -len(".json")]
        pid = key.partition("_")[0]
        if not pid.isdigit():
            continue
        try:
            with open(os.path.join(folder, name), "rb") as f:
                figures = _decode(orjson.loads(f.read()))
        except (OSError, ValueError, KeyError, TypeError):  # ValueError: bad JSON too
            continue  # gone since listed, or not a snapshot of ours
        # Yielded outside the try: an error of the caller's must not pass for a bad file.
        yield figures, _process_key(int(pid)) == key


def _encode(figures: _Figures) -> dict[str, Any]:
    return {
        "counters": {
            n: [[*k, v] for k, v in values.items()] for n, values in figures.counters.items()
        },
        "histograms": {
            n: [[list(k), v] for k, v in values.items()] for n, values in figures.histograms.items()
        },
        "caches": figures.caches,
        "pools": figures.pools,
        "activity": figures.activity,
    }


def _decode(raw: dict[str, Any]) -> _Figures:
    return _Figures(
        {n: {tuple(row[:-1]): row[-1] for row in rows} for n, rows in raw["counters"].items()},
        {n: {tuple(k): v for k, v in rows} for n, rows in raw["histograms"].items()},
        raw["caches"],
        raw["pools"],
        raw.get("activity", {}),
    )


# -- the scrape --------------------------------------------------------------------------

# Written as prometheus_client writes its own histograms' bounds.
_LE = (*(floatToGoString(b) for b in LATENCY_BUCKETS), "+Inf")  # type: ignore[no-untyped-call]


def _histogram(name: str, values: Buckets) -> HistogramMetricFamily:
    documentation, labels = _HISTOGRAMS[name]
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for label_values, counts in sorted(values.items()):
        cumulative, buckets = 0.0, []
        for le, count in zip(_LE, counts, strict=False):
            cumulative += count
            buckets.append((le, cumulative))
        family.add_metric(list(label_values), buckets, counts[-1])
    return family


def _counter(name: str, values: Counts) -> CounterMetricFamily:
    documentation, labels = _COUNTERS[name]
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, value in sorted(values.items()):
        family.add_metric(list(label_values), value)
    return family


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        figures = self._metrics._scraped()
        for name in _COUNTERS:
            yield _counter(name, figures.counters.get(name, {}))
        for name in _HISTOGRAMS:
            yield _histogram(name, figures.histograms.get(name, {}))
        yield from _cache_families(figures.caches)
        yield from _pool_families(figures.pools)
        yield from _activity_families(figures.activity, self._metrics._top_tenants)


def _cache_families(caches: Mapping[str, Mapping[str, int]]) -> Iterable[Metric]:
    lookups = CounterMetricFamily(
        "tenantgate_cache_lookups",
        "Cache lookups by cache (tenant, metadata, plan, prepared) and result (hit, miss).",
        labels=["cache", "result"],
    )
    stale = CounterMetricFamily(
        "tenantgate_cache_stale_served",
        "Entries served past their time to live because their source could not answer "
        "(tenant: the controller, within controller.stale_grace_s), by cache.",
        labels=["cache"],
    )
    entries = GaugeMetricFamily(
        "tenantgate_cache_entries",
        "Entries held, by cache (tenant, metadata, plan, parse, prepared).",
        labels=["cache"],
    )
    held = GaugeMetricFamily(
        "tenantgate_cache_bytes",
        "Estimated bytes held by the caches bounded in bytes (plan, parse: "
        "query.plan_cache_bytes, query.parse_cache_bytes).",
        labels=["cache"],
    )
    uncached = CounterMetricFamily(
        "tenantgate_cache_oversized",
        "Statements and plans not cached because their entry would exceed "
        "query.cache_max_entry_bytes (parse and plan caches together: plan).",
        labels=["cache"],
    )
    for cache, stats in caches.items():
        lookups.add_metric([cache, "hit"], stats.get("hits", 0))
        lookups.add_metric([cache, "miss"], stats.get("misses", 0))
        if "stale_hits" in stats:
            stale.add_metric([cache], stats["stale_hits"])
        entries.add_metric([cache], stats.get("size", 0))
        if "bytes" in stats:
            held.add_metric([cache], stats["bytes"])
        if "parsed_size" in stats:
            entries.add_metric(["parse"], stats["parsed_size"])
            held.add_metric(["parse"], stats.get("parsed_bytes", 0))
        if "uncached" in stats:
            uncached.add_metric([cache], stats["uncached"])
    yield lookups
    yield stale
    yield entries
    yield held
    yield uncached
    tenant = caches.get("tenant", {})
    failures = CounterMetricFamily(
        "tenantgate_controller_lookup_failures",
        "Tenant lookups that got no usable answer from the controller, by reason: timeout "
        "(none within controller.timeout_ms, or every controller thread stuck), error.",
        labels=["reason"],
    )
    timeouts = tenant.get("timeouts", 0)
    failures.add_metric(["timeout"], timeouts)
    failures.add_metric(["error"], tenant.get("errors", 0) - timeouts)
    yield failures


def _pool_families(pools: Mapping[str, Mapping[str, int]]) -> Iterable[Metric]:
    connections = GaugeMetricFamily(
        "tenantgate_pool_connections",
        "Pooled connections by server and state (in_use, idle).",
        labels=["server", "state"],
    )
    waiting = GaugeMetricFamily(
        "tenantgate_pool_requests_waiting",
        "Requests waiting for a connection, by server.",
        labels=["server"],
    )
    max_size = GaugeMetricFamily(
        "tenantgate_pool_max_connections",
        "Upper bound of pooled connections, by server.",
        labels=["server"],
    )
    acquires = CounterMetricFamily(
        "tenantgate_pool_acquires", "Connection requests, by server.", labels=["server"]
    )
    wait_seconds = CounterMetricFamily(
        "tenantgate_pool_wait_seconds",
        "Time spent waiting for a connection, by server.",
        labels=["server"],
    )
    timeouts = CounterMetricFamily(
        "tenantgate_pool_timeouts",
        "Connection requests that timed out waiting, by server.",
        labels=["server"],
    )
    lost = CounterMetricFamily(
        "tenantgate_pool_connections_lost",
        "Connections discarded as broken, by server.",
        labels=["server"],
    )
    errors = CounterMetricFamily(
        "tenantgate_pool_connect_errors",
        "Failed attempts to open a connection, by server.",
        labels=["server"],
    )
    failing = GaugeMetricFamily(
        "tenantgate_server_failing",
        "Processes whose requests lately found the server unavailable (0: up; see "
        "/readyz), by PostgreSQL and SQL Server server.",
        labels=["server"],
    )
    for server, s in sorted(pools.items()):
        size, idle = s.get("pool_size", 0), s.get("pool_available", 0)
        connections.add_metric([server, "in_use"], size - idle)
        connections.add_metric([server, "idle"], idle)
        waiting.add_metric([server], s.get("requests_waiting", 0))
        max_size.add_metric([server], s.get("pool_max", 0))
        acquires.add_metric([server], s.get("requests_num", 0))
        wait_seconds.add_metric([server], s.get("requests_wait_ms", 0) / 1000.0)
        timeouts.add_metric([server], s.get("requests_timeouts", 0))
        lost.add_metric([server], s.get("connections_lost", 0))
        errors.add_metric([server], s.get("connections_errors", 0))
        if "failing" in s:
            failing.add_metric([server], s["failing"])
    yield from (connections, waiting, max_size, acquires, wait_seconds, timeouts, lost, errors)
    yield failing


_TOP_HELP = {
    "requests": "Requests of the tenant ranked rank by requests over the last "
    "stats.tenants_window_s (estimated; names at GET /v1/stats/tenants).",
    "errors": "Error answers of the tenant ranked rank by errors over the window.",
    "seconds": "Seconds spent serving the tenant ranked rank by that time over the window.",
}


def _activity_families(activity: Export, ranks: int) -> Iterable[Metric]:
    for measure in MEASURES:
        family = GaugeMetricFamily(
            f"tenantgate_top_tenant_{measure}", _TOP_HELP[measure], labels=["rank"]
        )
        values = sorted(activity.get(measure, {}).values(), reverse=True)
        # Every rank always, 0 when fewer tenants were active: a fixed set of series.
        for rank in range(1, ranks + 1):
            family.add_metric([str(rank)], values[rank - 1] if rank <= len(values) else 0.0)
        yield family
    total = GaugeMetricFamily(
        "tenantgate_tenants_window_requests",
        "Requests of all tenants over the window: the denominator of a rank's share.",
    )
    total.add_metric([], activity.get("total", {}).get("requests", 0.0))
    yield total
    active = GaugeMetricFamily(
        "tenantgate_tenants_active",
        "Tenants that sent requests over the window (per process, added up).",
    )
    active.add_metric([], activity.get("active", {}).get("tenants", 0.0))
    yield active
