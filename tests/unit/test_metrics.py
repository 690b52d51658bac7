"""Metrics counted in plain Python must read as prometheus_client's own objects would,
and add up over the processes that share a run folder."""

from __future__ import annotations

import os
import random
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from proxy.metrics import LATENCY_BUCKETS, Metrics

PHASES = {"resolve": 1e-5, "rewrite": 3e-4, "execute": 0.02}


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_histogram_reads_as_prometheus_clients_own() -> None:
    ours = Metrics(CollectorRegistry())
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "tenantgate_request_duration_seconds",
        "x",
        ["endpoint"],
        buckets=LATENCY_BUCKETS,
        registry=reference_registry,
    )
    rng = random.Random(8)
    # Bounds themselves too: an observation equal to a bound belongs to its bucket.
    values = [rng.expovariate(1 / 0.003) for _ in range(500)] + list(LATENCY_BUCKETS) + [99.0]
    for value in values:
        ours.observe_request("query", None, value)
        reference.labels("query").observe(value)
    for le in (*(str(b) for b in LATENCY_BUCKETS), "+Inf"):
        expected = reference_registry.get_sample_value(
            "tenantgate_request_duration_seconds_bucket", {"endpoint": "query", "le": le}
        )
        got = sample(ours, "tenantgate_request_duration_seconds_bucket", endpoint="query", le=le)
        assert got == expected, le
    for suffix in ("_count", "_sum"):
        name = "tenantgate_request_duration_seconds" + suffix
        expected = reference_registry.get_sample_value(name, {"endpoint": "query"})
        assert sample(ours, name, endpoint="query") == pytest.approx(expected)
    assert sample(ours, "tenantgate_requests_total", endpoint="query", outcome="ok", code="") == (
        len(values)
    )


def test_queries_errors_and_heals_are_counted() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.observe_query("postgres", "read", PHASES, rows=3, truncated=False)
    metrics.observe_query("postgres", "read", PHASES, rows=250, truncated=True)
    metrics.observe_request("query", "unknown_column", 0.001)
    metrics.record_heal("revalidated")
    labels = {"backend": "postgres", "statement_class": "read", "phase": "execute"}
    assert sample(metrics, "tenantgate_query_duration_seconds_count", **labels) == 2
    assert sample(metrics, "tenantgate_query_duration_seconds_sum", **labels) == 0.04
    assert sample(metrics, "tenantgate_rows_returned_total", backend="postgres") == 253
    assert sample(metrics, "tenantgate_results_truncated_total", backend="postgres") == 1
    refused = {"endpoint": "query", "outcome": "error", "code": "unknown_column"}
    assert sample(metrics, "tenantgate_requests_total", **refused) == 1
    assert sample(metrics, "tenantgate_metadata_heals_total", outcome="revalidated") == 1
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE tenantgate_query_duration_seconds histogram" in text


def _pools(size: int) -> dict[str, dict[str, int]]:
    return {"pg:1": {"pool_size": size, "pool_available": 0, "pool_max": 4, "requests_num": 10}}


def test_processes_sharing_a_run_folder_add_up(tmp_path: Path) -> None:
    first = Metrics(CollectorRegistry(), multiprocess_dir=str(tmp_path))
    second = Metrics(CollectorRegistry(), multiprocess_dir=str(tmp_path))
    # Two objects of one process stand for two processes: distinct snapshot names.
    second._snapshot_name = "tenantgate_stats_other.json"  # not a pid: never read as one
    for m in (first, second):
        m.watch(caches={"plan": lambda: {"hits": 5, "misses": 1}}, pools=lambda: _pools(2))
        m.observe_request("query", None, 0.001)
    first.write_snapshot()
    # "other" is no pid: the second's snapshot is skipped, as an unreadable file would be.
    second.write_snapshot()
    assert sample(second, "tenantgate_requests_total", endpoint="query", outcome="ok", code="") == 2
    assert sample(first, "tenantgate_requests_total", endpoint="query", outcome="ok", code="") == 1
    assert sample(second, "tenantgate_cache_lookups_total", cache="plan", result="hit") == 10
    assert sample(second, "tenantgate_pool_connections", server="pg:1", state="in_use") == 4


def test_an_exited_process_keeps_its_counts_and_loses_its_gauges(tmp_path: Path) -> None:
    live = Metrics(CollectorRegistry(), multiprocess_dir=str(tmp_path))
    live.watch(caches={"plan": lambda: _plan_cache(1)}, pools=lambda: _pools(1))
    gone = Metrics(CollectorRegistry(), multiprocess_dir=str(tmp_path))
    gone.watch(caches={"plan": lambda: _plan_cache(3)}, pools=lambda: _pools(3))
    gone.observe_request("query", None, 0.001)
    gone.write_snapshot()
    # Renamed as a process that has exited: this pid with a start time it never had.
    written = tmp_path / gone._snapshot_name
    written.rename(tmp_path / f"tenantgate_stats_{os.getpid()}_1.json")
    assert orjson.loads((tmp_path / f"tenantgate_stats_{os.getpid()}_1.json").read_bytes())
    ok = {"endpoint": "query", "outcome": "ok", "code": ""}
    assert sample(live, "tenantgate_requests_total", **ok) == 1
    assert sample(live, "tenantgate_pool_acquires_total", server="pg:1") == 20
    assert sample(live, "tenantgate_pool_connections", server="pg:1", state="in_use") == 1
    # Cache sizes are levels (the gone process holds nothing); lookups are counts.
    assert sample(live, "tenantgate_cache_bytes", cache="plan") == 1000
    assert sample(live, "tenantgate_cache_bytes", cache="parse") == 100
    assert sample(live, "tenantgate_cache_entries", cache="parse") == 1
    assert sample(live, "tenantgate_cache_lookups_total", cache="plan", result="hit") == 4
    assert sample(live, "tenantgate_cache_oversized_total", cache="plan") == 2


def _plan_cache(n: int) -> dict[str, int]:
    return {"hits": n, "misses": 0, "size": n, "bytes": 1000 * n, "parsed_size": n,
            "parsed_bytes": 100 * n, "uncached": 1}  # fmt: skip


def test_an_unreadable_snapshot_is_skipped(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry(), multiprocess_dir=str(tmp_path))
    metrics.observe_request("query", None, 0.001)
    (tmp_path / "tenantgate_stats_1_2.json").write_bytes(b'{"counters": [')  # half written
    (tmp_path / "tenantgate_stats_3_4.json").write_bytes(b'{"counters": {"x": 5}}')
    ok = {"endpoint": "query", "outcome": "ok", "code": ""}
    assert sample(metrics, "tenantgate_requests_total", **ok) == 1
