"""Prometheus metrics, on a registry that the caller injects.

Request-path metrics are ordinary counters and histograms. Cache and pool figures
are already counted by the caches and pools themselves (``get_stats()``); a
collector reads them at scrape time, so the request path pays nothing extra for
them. No metric has a per-tenant label: with thousands of tenants the series
count would explode. Pools are labelled by ``server``, a secret-free server key.

Several worker processes (``server.workers``) add up in one scrape, whichever process
answers it: counters and histograms use prometheus_client's multiprocess mode (each
process writes its values to files in ``multiprocess_dir``, the scrape merges them),
and each process writes a snapshot of its cache and pool figures to the same folder
about once a second (``write_snapshot``), which the scrape sums over the processes
still alive. So cache and pool figures may lag by a second with several workers, and
a worker that exits takes its share of those counters with it (Prometheus's ``rate``
treats that as a counter reset).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

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


class Metrics:
    def __init__(self, registry: CollectorRegistry, *, multiprocess_dir: str | None = None) -> None:
        self.registry = registry
        """What a scrape reads (``generate_latest(metrics.registry)``)."""
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir is not None:
            # The values live in the folder's files; the scrape merges every process's.
            MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
            registry = CollectorRegistry()  # the metric objects' own, never scraped
        self._caches: Mapping[str, StatsSource] = {}
        self._pools: PoolStatsSource = dict
        self.requests = Counter(
            "tenantgate_requests",
            "HTTP requests by endpoint, outcome and error code.",
            ["endpoint", "outcome", "code"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "tenantgate_request_duration_seconds",
            "Time from request received to response ready, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.query_seconds = Histogram(
            "tenantgate_query_duration_seconds",
            "Time spent per query phase, by backend and statement class.",
            ["backend", "statement_class", "phase"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            "tenantgate_rows_returned",
            "Rows returned to callers, by backend.",
            ["backend"],
            registry=registry,
        )
        self.truncated = Counter(
            "tenantgate_results_truncated",
            "Results cut at max_rows, by backend.",
            ["backend"],
            registry=registry,
        )
        self.heals = Counter(
            "tenantgate_metadata_heals",
            "Metadata found stale and refreshed on a request's path, by outcome: "
            "rerun_ok, rerun_refused, rerun_failed, write_not_rerun (the backend "
            "reported a missing object); revalidated, still_unknown (a query named a "
            "column the cache lacked).",
            ["outcome"],
            registry=registry,
        )

        # Children resolved once per label tuple: ``labels()`` takes a lock and builds
        # a tuple on every call, several times per request. Every label set here is
        # small and bounded (endpoints, error codes, backends, classes, phases). Two
        # threads racing on a new key both get the same child from ``labels()``.
        self._request_children: dict[tuple[str, str | None], tuple[Any, Any]] = {}
        self._phase_children: dict[tuple[str, str, str], Any] = {}
        self._rows_children: dict[str, Any] = {}
        self._truncated_children: dict[str, Any] = {}

    def observe_request(self, endpoint: str, code: str | None, seconds: float) -> None:
        children = self._request_children.get((endpoint, code))
        if children is None:
            outcome = "ok" if code is None else "error"
            children = (
                self.requests.labels(endpoint, outcome, code or ""),
                self.request_seconds.labels(endpoint),
            )
            self._request_children[(endpoint, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_phases(
        self, backend: str, statement_class: str, phases: Mapping[str, float]
    ) -> None:
        cache = self._phase_children
        for phase, seconds in phases.items():
            key = (backend, statement_class, phase)
            child = cache.get(key)
            if child is None:
                child = cache[key] = self.query_seconds.labels(*key)
            child.observe(seconds)

    def observe_rows(self, backend: str, rows: int, *, truncated: bool) -> None:
        child = self._rows_children.get(backend)
        if child is None:
            child = self._rows_children[backend] = self.rows.labels(backend)
        child.inc(rows)
        if truncated:
            child = self._truncated_children.get(backend)
            if child is None:
                child = self._truncated_children[backend] = self.truncated.labels(backend)
            child.inc()

    def watch(self, *, caches: Mapping[str, StatsSource], pools: PoolStatsSource) -> None:
        self._caches = caches
        self._pools = pools
        if self.multiprocess_dir is None:
            self.registry.register(_StatsCollector(caches, pools))
        else:
            folder = self.multiprocess_dir
            self.registry.register(
                _StatsCollector(
                    {name: functools.partial(_summed_caches, folder, name) for name in caches},
                    functools.partial(_summed_pools, folder),
                )
            )

    def write_snapshot(self) -> None:
        """Write this process's cache and pool figures for a multi-process scrape."""
        if self.multiprocess_dir is None:
            return
        snapshot = {
            "caches": {name: dict(source()) for name, source in self._caches.items()},
            "pools": {server: dict(s) for server, s in self._pools().items()},
        }
        path = os.path.join(self.multiprocess_dir, f"{_SNAPSHOT_PREFIX}{os.getpid()}.json")
        temporary = f"{path}.tmp"
        with open(temporary, "wb") as f:
            f.write(orjson.dumps(snapshot))
        os.replace(temporary, path)  # a scrape never reads half a file


_SNAPSHOT_PREFIX = "tenantgate_stats_"


def _snapshots(folder: str) -> list[dict[str, Any]]:
    """The snapshots of the processes still alive (a dead worker's figures are gone)."""
    found = []
    for name in os.listdir(folder):
        if not (name.startswith(_SNAPSHOT_PREFIX) and name.endswith(".json")):
            continue
        pid = name[len(_SNAPSHOT_PREFIX) : -len(".json")]
        if not pid.isdigit() or not os.path.exists(f"/proc/{pid}"):
            continue
        with (
            contextlib.suppress(OSError, orjson.JSONDecodeError),
            open(os.path.join(folder, name), "rb") as f,
        ):
            found.append(orjson.loads(f.read()))
    return found


def _add(total: dict[str, int], stats: Mapping[str, int]) -> None:
    for key, value in stats.items():
        total[key] = total.get(key, 0) + value


def _summed_caches(folder: str, cache: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for snapshot in _snapshots(folder):
        _add(total, snapshot["caches"].get(cache, {}))
    return total


def _summed_pools(folder: str) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for snapshot in _snapshots(folder):
        for server, stats in snapshot["pools"].items():
            _add(totals.setdefault(server, {}), stats)
    return totals


class _StatsCollector(Collector):
    def __init__(self, caches: Mapping[str, StatsSource], pools: PoolStatsSource) -> None:
        self._caches = caches
        self._pools = pools

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "tenantgate_cache_lookups",
            "Cache lookups by cache (tenant, metadata, plan) and result (hit, miss).",
            labels=["cache", "result"],
        )
        for cache, source in self._caches.items():
            stats = source()
            lookups.add_metric([cache, "hit"], stats.get("hits", 0))
            lookups.add_metric([cache, "miss"], stats.get("misses", 0))
        yield lookups

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
        for server, s in sorted(self._pools().items()):
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
        yield from (connections, waiting, max_size, acquires, wait_seconds, timeouts, lost, errors)
