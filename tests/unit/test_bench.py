"""The pure parts of ``tenantgate bench``: schedule, workload, recorder, report maths,
the explain-to-template mapping; open-loop times are computed, not slept. Last, the
open loop itself against a stand-in server slower than the schedule (no database, a
fraction of a second): what it asserts holds however slow the machine."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest

from proxy.bench.fleet import FleetTenant
from proxy.bench.recorder import Recorder
from proxy.bench.report import fairness, metrics_delta, summary
from proxy.bench.runner import Lane, RunSpec, run_lanes
from proxy.bench.schedule import Skew, SkewError, TenantPicker, arrivals, parse_skew
from proxy.bench.targets import (
    BenchError,
    Stamp,
    _sentinels,
    error_code,
    template_from_explain,
)
from proxy.bench.workload import (
    DEFAULT_MIX,
    SCRIPTS,
    FieldAddDrop,
    Patch,
    Query,
    WorkloadError,
    parse_mix,
)


def test_parse_skew() -> None:
    assert parse_skew("uniform") == Skew("uniform")
    assert parse_skew("zipf:1.1") == Skew("zipf", 1.1)
    assert parse_skew("zipf") == Skew("zipf", 1.0)
    for bad in ("zipf:0", "zipf:-1", "zipf:x", "pareto", "uniform:2", "zipf:nan"):
        with pytest.raises(SkewError):
            parse_skew(bad)


def test_zipf_picks_ranks_in_proportion() -> None:
    n, s, draws = 50, 1.1, 40_000
    picker = TenantPicker(n, Skew("zipf", s), seed=7)
    rng = random.Random(1)
    counts = Counter(picker.pick(rng) for _ in range(draws))
    first, second, tenth = picker.order[0], picker.order[1], picker.order[9]
    # Rank k is drawn with weight k**-s: rank 1 twice rank 2's 2**1.1 times, ten times
    # rank 10's 10**1.1 times (within sampling error at 40,000 draws).
    assert counts[first] / counts[second] == pytest.approx(2**s, rel=0.1)
    assert counts[first] / counts[tenth] == pytest.approx(10**s, rel=0.2)
    assert counts[first] / draws == pytest.approx(picker.share[first], rel=0.05)
    assert sum(picker.share.values()) == pytest.approx(1.0)


def test_tenant_order_is_a_seeded_shuffle() -> None:
    a = TenantPicker(100, Skew("zipf", 1.0), seed=3)
    assert a.order == TenantPicker(100, Skew("zipf", 1.0), seed=3).order
    assert sorted(a.order) == list(range(100))
    orders = {TenantPicker(100, Skew("zipf", 1.0), seed=k).order for k in range(5)}
    assert len(orders) == 5
    assert {o[0] for o in orders} != {0}  # the busiest tenant is not always the first


def test_uniform_spreads_evenly() -> None:
    picker = TenantPicker(10, Skew("uniform"), seed=1)
    rng = random.Random(2)
    counts = Counter(picker.pick(rng) for _ in range(20_000))
    assert set(counts) == set(range(10))
    assert max(counts.values()) / min(counts.values()) < 1.15


def test_open_loop_arrivals_are_a_seeded_poisson_process() -> None:
    rate = 500.0
    times = [t for _, t in zip(range(20_000), arrivals(rate, random.Random(5)), strict=False)]
    again = [t for _, t in zip(range(20_000), arrivals(rate, random.Random(5)), strict=False)]
    assert times == again
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert all(g > 0 for g in gaps)
    assert sum(gaps) / len(gaps) == pytest.approx(1 / rate, rel=0.03)
    # Exponential gaps: about e**-1 of them longer than the mean (bursts and lulls).
    assert sum(g > 1 / rate for g in gaps) / len(gaps) == pytest.approx(0.368, abs=0.02)
    # A schedule does not depend on how fast anything answers: it is fixed up front.
    assert times[999] == pytest.approx(1000 / rate, rel=0.1)
    with pytest.raises(ValueError, match="rate"):
        next(arrivals(0, random.Random(1)))


def test_parse_mix() -> None:
    mix = parse_mix(["point_read@60", "join@20", "point_read@20", "insert"])
    assert mix.shares() == {"point_read": 80 / 101, "join": 20 / 101, "insert": 1 / 101}
    assert set(parse_mix(DEFAULT_MIX).shares()) <= set(SCRIPTS)
    with pytest.raises(WorkloadError, match=r"unknown script 'point_reads' \(known: point_read"):
        parse_mix(["point_reads@5"])
    with pytest.raises(WorkloadError, match="weight must be a number"):
        parse_mix(["join@lots"])
    with pytest.raises(WorkloadError, match=">= 0"):
        parse_mix(["join@-1"])
    with pytest.raises(WorkloadError, match="no script has a weight"):
        parse_mix(["join@0"])


def test_draws_are_per_request_and_within_the_tenant() -> None:
    tenant = FleetTenant(1, "t1.example", "Driver=SQLite3;Database=x", 3, 40, 8, 20)
    rng = random.Random(9)
    keys = set()
    for i in range(400):
        op = SCRIPTS["point_read"].draw(rng, tenant, str(i))
        assert isinstance(op, Query)
        keys.add(op.params[0])
    assert keys == set(range(1, 41))
    insert = SCRIPTS["insert"].draw(rng, tenant, "tag7")
    assert isinstance(insert, Query) and 1 <= insert.params[0] <= 8 and "tag7" in insert.params[3]
    patch = SCRIPTS["patch"].draw(rng, tenant, "p1")
    assert isinstance(patch, Patch) and 1 <= patch.key <= 40
    ddl = SCRIPTS["field_ddl"].draw(rng, tenant, "abc1")
    assert isinstance(ddl, FieldAddDrop) and ddl.name == "bench_abc1"


def test_recorder_separates_latency_from_service_time() -> None:
    rec = Recorder("http")
    rec.sent(0)
    # Scheduled at 0, sent at 40 ms (queued behind others), done at 50 ms.
    rec.done("point_read", 0, scheduled=0.0, sent=0.040, finished=0.050, error=None)
    rec.sent(1)
    rec.done("point_read", 1, scheduled=1.0, sent=1.0, finished=1.002, error="timeout")
    rec.sent(1)
    rec.skipped("join")
    stats = rec.scripts["point_read"]
    assert stats.latency.get_max_value() == pytest.approx(50_000, rel=0.01)
    assert stats.service.get_max_value() == pytest.approx(10_000, rel=0.01)
    assert stats.errors == {"timeout": 1}
    assert rec.totals() == (1, 1, 1)
    assert (rec.tenants[0].sent, rec.tenants[0].served) == (1, 1)
    assert (rec.tenants[1].sent, rec.tenants[1].served) == (2, 0)
    tick = rec.tick(1.0)
    assert (tick.completed, tick.failed, tick.skipped) == (1, 1, 1)
    report = summary([rec], ["a.example", "b.example"], {}, None)["targets"]["http"]
    assert report["completed"] == 1 and report["errors"] == {"timeout": 1}
    assert report["tps"] == pytest.approx(1.0)


def test_fairness() -> None:
    tenants = {
        "a": (500, 490, 12.0),
        "b": (300, 300, 4.0),
        "c": (150, 150, 8.0),
        "d": (50, 60, None),  # too few served for a p99
    }
    f = fairness(tenants, top=2)
    assert f["tenants"] == 4 and f["tenants_with_p99"] == 3
    assert f["p99_ms"] == {"min": 4.0, "median": 8.0, "max": 12.0}
    assert [x["tenant"] for x in f["top"]] == ["a", "b"]
    a = f["top"][0]
    assert a["sent_share"] == pytest.approx(50.0)
    assert a["served_share"] == pytest.approx(49.0)
    assert fairness({})["p99_ms"] == {}


def test_metrics_delta_sums_over_servers() -> None:
    before = (
        'tenantgate_requests_total{endpoint="query",outcome="ok",code=""} 10\n'
        'tenantgate_pool_timeouts_total{server="pg://a"} 1\n'
        'tenantgate_pool_timeouts_total{server="pg://b"} 0\n'
    )
    after = (
        'tenantgate_requests_total{endpoint="query",outcome="ok",code=""} 25\n'
        'tenantgate_requests_total{endpoint="query",outcome="error",code="timeout"} 2\n'
        'tenantgate_pool_timeouts_total{server="pg://a"} 3\n'
        'tenantgate_pool_timeouts_total{server="pg://b"} 4\n'
        'tenantgate_cache_lookups_total{cache="plan",result="hit"} 0\n'
    )
    assert metrics_delta(before, after) == {
        "requests": {"query ok": 15, "query error timeout": 2},
        "pool_timeouts": {"total": 6},
    }


def test_template_from_explain_finds_each_parameter() -> None:
    params = (7, "Ada", True)
    sentinels = _sentinels(params)
    plan = {
        "backend": "postgresql",
        "sql": 'SELECT "x" FROM "t1"."Contacts" WHERE "a" = ? AND "b" = ? AND "c" = ? LIMIT ?',
        "params": [sentinels[1], sentinels[0], True, 1001],
        "statement_class": "read",
    }
    t = template_from_explain(plan, sentinels)
    assert t.sql.endswith('"a" = $1 AND "b" = $2 AND "c" = $3 LIMIT $4')
    assert t.params((42, "Grace", True)) == ("Grace", 42, True, 1001)
    assert not t.write
    plan["params"] = [sentinels[1], 1001]
    with pytest.raises(BenchError, match="does not bind every parameter"):
        template_from_explain(plan, sentinels)


def test_error_code() -> None:
    assert error_code(409, b'{"error": {"code": "precondition_failed"}}') == "precondition_failed"
    assert error_code(502, b"<html>bad gateway</html>") == "http_502"
    assert error_code(500, b'{"detail": "x"}') == "http_500"


class _OneAtATime:
    """A target serving one transaction at a time, each taking ``seconds``: the
    generator's own logic under a server slower than the schedule (no database)."""

    name = "http"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = asyncio.Lock()

    async def run(self, op: object, tenant: FleetTenant, stamp: Stamp) -> str | None:
        async with self.lock:
            stamp.sent = time.perf_counter()
            await asyncio.sleep(self.seconds)
        return None

    async def close(self) -> None:
        pass


def _lane(target: _OneAtATime) -> Lane:
    tenants = (FleetTenant(1, "t1.example", "", 0, 100, 10, 10),)
    mix = parse_mix(["point_read"])
    return Lane(target, tenants, TenantPicker(1, Skew("uniform"), 1), mix, seed=3)


@pytest.mark.parametrize("max_inflight", [1000, 4])
def test_open_loop_latency_counts_the_queue_not_just_the_service(max_inflight: int) -> None:
    """No coordinated omission: a slow server does not slow the schedule down; the
    requests due meanwhile wait, and their latency says so."""
    lane = _lane(_OneAtATime(0.02))
    spec = RunSpec(rate=200, clients=1, duration=0.3, transactions=None, warmup=0.0,
                   max_inflight=max_inflight, timeout=30, rounds=1, seed=3)  # fmt: skip
    asyncio.run(run_lanes([lane], spec, lambda lane, tick: None))
    stats = lane.recorder.scripts["point_read"]
    completed, failed, skipped = lane.recorder.totals()
    sent = sum(t.sent for t in lane.recorder.tenants.values())
    assert failed == 0 and completed + skipped == sent > 20
    # Served one at a time at 50/s while due at ~200/s: the queue grows all along.
    assert stats.latency.get_max_value() > 3 * stats.service.get_max_value()
    if max_inflight == 4:
        assert skipped > 0
    else:
        assert skipped == 0
