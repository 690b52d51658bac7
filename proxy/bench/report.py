"""The final report: one JSON-able dict per run, and its text for the terminal.

``summary(...)`` turns recorders into plain data (the ``--json`` output, and what
``plots`` draws from, so a saved report can be re-plotted); ``render_text`` prints it
the way pgbench users read theirs. Pure apart from the HdrHistograms it reads.

Fairness, per target: each tenant's p99 latency (tenants with at least
``MIN_TENANT_REQUESTS`` served, fewer make no p99), reduced to min / median / max; and
for the tenants sent the most transactions, their share of what was sent against their
share of what was served. A proxy that starves busy (or quiet) tenants shows a served
share below the sent share.

The proxy's own metrics are the difference of two ``/metrics`` scrapes, before the
first segment and after the last: requests by endpoint/outcome/code, pool acquires,
waits and timeouts, cache hits and misses, metadata heals (``metrics_delta``).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from proxy.bench.recorder import Recorder

__all__ = [
    "MIN_TENANT_REQUESTS",
    "PERCENTILES",
    "fairness",
    "metrics_delta",
    "render_text",
    "summary",
]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
MIN_TENANT_REQUESTS = 10
# The spectrum's points: ~21%, then 10 per decade of 1/(1-p) (90, 99, 99.9...); only
# those a run's count can resolve, then its maximum.
_SPECTRUM = [100.0 * (1.0 - 10 ** (-k / 10)) for k in range(1, 51)]

_METRICS = (
    "tenantgate_requests_total",
    "tenantgate_pool_acquires_total",
    "tenantgate_pool_wait_seconds_total",
    "tenantgate_pool_timeouts_total",
    "tenantgate_pool_connections_lost_total",
    "tenantgate_pool_connect_errors_total",
    "tenantgate_cache_lookups_total",
    "tenantgate_metadata_heals_total",
    "tenantgate_reads_retried_total",
    "tenantgate_controller_lookup_failures_total",
)
# Summed over these labels: per-server rows would make the table as long as the fleet.
_DROPPED_LABELS = frozenset(("server",))
# Read as "query ok", "query error timeout", "plan hit".
_LABEL_ORDER = {"endpoint": 0, "cache": 0, "outcome": 1, "result": 1, "code": 2}


def _ms(us: float) -> float:
    return round(us / 1e3, 3)


def _spread(h: Any, total_us: float) -> dict[str, float]:
    if h.get_total_count() == 0:
        return {}
    # One pass over the counts for all of them (hdrh walks them once per call otherwise).
    values = h.get_percentile_to_value_dict(list(PERCENTILES))
    out = {f"p{p:g}": _ms(values[p]) for p in PERCENTILES}
    out["max"] = _ms(h.get_max_value())
    out["mean"] = _ms(total_us / h.get_total_count())
    return out


def _spectrum(h: Any) -> list[list[float]]:
    if h.get_total_count() == 0:
        return []
    count = h.get_total_count()
    wanted = [p for p in _SPECTRUM if 1 / (1 - p / 100) <= count]
    values = h.get_percentile_to_value_dict(wanted)
    points = [[round(p, 5), _ms(values[p])] for p in wanted]
    points.append([round(100 * (1 - 1 / (count + 1)), 5), _ms(h.get_max_value())])
    return points


def fairness(tenants: Mapping[str, tuple[int, int, float | None]], top: int = 10) -> dict[str, Any]:
    """``tenants``: name -> (sent, served, p99 ms or None). Min/median/max of the p99s
    and the ``top`` most-sent tenants' shares (percent) of sent and served."""
    p99s = sorted(p for _, _, p in tenants.values() if p is not None)
    total_sent = sum(s for s, _, _ in tenants.values())
    total_served = sum(v for _, v, _ in tenants.values())
    busiest = sorted(tenants.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
    return {
        "tenants": len(tenants),
        "tenants_with_p99": len(p99s),
        "p99_ms": (
            {"min": p99s[0], "median": statistics.median(p99s), "max": p99s[-1]} if p99s else {}
        ),
        "top": [
            {
                "tenant": name,
                "sent": sent,
                "served": served,
                "sent_share": round(100.0 * sent / total_sent, 3) if total_sent else 0.0,
                "served_share": round(100.0 * served / total_served, 3) if total_served else 0.0,
                "p99_ms": p99,
            }
            for name, (sent, served, p99) in busiest
        ],
    }


def _target(rec: Recorder, names: list[str]) -> dict[str, Any]:
    elapsed = rec.elapsed or 1e-9
    errors: Counter[str] = Counter()
    scripts: dict[str, Any] = {}
    for name, s in sorted(rec.scripts.items()):
        errors.update(s.errors)
        scripts[name] = {
            "completed": s.completed,
            "failed": s.failed,
            "skipped": s.skipped,
            "tps": round(s.completed / elapsed, 2),
            "latency_ms": _spread(s.latency, s.latency_sum_us),
            "service_ms": _spread(s.service, s.service_sum_us),
            "errors": dict(s.errors.most_common()),
        }
    completed, failed, skipped = rec.totals()
    per_tenant = {}
    for index, t in rec.tenants.items():
        p99 = (
            _ms(t.latency.get_value_at_percentile(99))
            if t.latency.get_total_count() >= MIN_TENANT_REQUESTS
            else None
        )
        per_tenant[names[index]] = (t.sent, t.served, p99)
    lag = rec.lag
    return {
        "duration_s": round(rec.elapsed, 3),
        "completed": completed,
        "failed": failed,
        "skipped": skipped,
        "tps": round(completed / elapsed, 2),
        "latency_ms": _spread(rec.latency, sum(s.latency_sum_us for s in rec.scripts.values())),
        "service_ms": _spread(rec.service, sum(s.service_sum_us for s in rec.scripts.values())),
        "spectrum": {"latency": _spectrum(rec.latency), "service": _spectrum(rec.service)},
        "errors": dict(errors.most_common()),
        "scripts": scripts,
        "fairness": fairness(per_tenant),
        "tenant_p99_ms": sorted(p for _, _, p in per_tenant.values() if p is not None),
        "schedule_lag_ms": _spread(lag, rec.lag_sum_us),
        "cpu_us_per_request": {
            "bench": round(rec.bench_cpu_s / completed * 1e6, 1) if completed else None,
            "proxy": (
                round(rec.proxy_cpu_s / completed * 1e6, 1)
                if completed and rec.proxy_cpu_s is not None
                else None
            ),
        },
        "cpu_s": {"bench": round(rec.bench_cpu_s, 3), "proxy": rec.proxy_cpu_s},
        "timeline": [
            {
                "t": round(k.t, 3),
                "completed": k.completed,
                "failed": k.failed,
                "skipped": k.skipped,
                "p50_ms": k.p50_ms,
                "p99_ms": k.p99_ms,
                "max_ms": k.max_ms,
                "lag_ms": k.lag_ms,
            }
            for k in rec.ticks
        ],
    }


def summary(
    recorders: Iterable[Recorder], tenant_names: list[str], config: Mapping[str, Any],
    proxy_metrics: Mapping[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "tool": "tenantgate bench",
        "format": 1,
        "config": dict(config),
        "targets": {rec.target: _target(rec, tenant_names) for rec in recorders},
        "proxy_metrics": proxy_metrics,
    }


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _METRICS:
                labels = tuple(
                    sorted(
                        ((k, v) for k, v in sample.labels.items() if k not in _DROPPED_LABELS),
                        key=lambda kv: (_LABEL_ORDER.get(kv[0], len(_LABEL_ORDER)), kv[0]),
                    )
                )
                key = (sample.name, labels)
                out[key] = out.get(key, 0.0) + float(sample.value)
    return out


def metrics_delta(before: str, after: str) -> dict[str, dict[str, float]]:
    """Counter increases between two scrapes: metric -> label values (in label-name
    order, empty ones left out, e.g. ``query ok``) -> delta."""
    old, new = _samples(before), _samples(after)
    out: dict[str, dict[str, float]] = {}
    for (name, labels), value in sorted(new.items()):
        delta = value - old.get((name, labels), 0.0)
        if abs(delta) > 1e-12:
            key = " ".join(v for _, v in labels if v) or "total"
            short = name.removeprefix("tenantgate_").removesuffix("_total")
            out.setdefault(short, {})[key] = round(delta, 6)
    return out


# -- text --------------------------------------------------------------------------------


def _fmt_spread(s: Mapping[str, float]) -> str:
    if not s:
        return "-"
    return " ".join(f"{k} {s[k]:.2f}" for k in ("p50", "p90", "p99", "p99.9", "max"))


def render_text(report: Mapping[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        f"tenantgate bench: {cfg['tenants']} tenants ({cfg['backend']}), skew {cfg['skew']}, "
        f"{cfg['mode']}, mix {cfg['mix']}",
    ]
    for name, t in report["targets"].items():
        lines += [
            "",
            f"== target: {name} " + "=" * max(0, 60 - len(name)),
            f"measured {t['duration_s']:.1f} s: {t['completed']} completed, "
            f"{t['failed']} failed, {t['skipped']} skipped; {t['tps']:.1f} tps",
            f"latency ms  {_fmt_spread(t['latency_ms'])}",
            f"service ms  {_fmt_spread(t['service_ms'])}",
        ]
        if t["schedule_lag_ms"]:
            lag = t["schedule_lag_ms"]
            late = "  <- sent late: the generator (or its machine) did not keep the schedule"
            note = late if lag["p99"] > 10 else ""
            lines.append(f"schedule lag ms p99 {lag['p99']:.2f} max {lag['max']:.2f}{note}")
        cpu = t["cpu_us_per_request"]
        cpu_line = f"CPU µs/request: bench {cpu['bench']}"
        if cpu["proxy"] is not None:
            cpu_line += f", tenantgate {cpu['proxy']}"
        lines.append(cpu_line)
        lines.append("")
        lines.append(
            f"{'script':<14}{'tps':>9}{'done':>8}{'fail':>6}{'skip':>6}"
            f"{'lat p50':>9}{'p99':>8}{'p99.9':>8}{'max':>8}{'svc p50':>9}{'p99':>8}"
        )
        for sname, s in t["scripts"].items():
            lat, svc = s["latency_ms"], s["service_ms"]
            lines.append(
                f"{sname:<14}{s['tps']:>9.1f}{s['completed']:>8}{s['failed']:>6}{s['skipped']:>6}"
                f"{lat.get('p50', 0):>9.2f}{lat.get('p99', 0):>8.2f}"
                f"{lat.get('p99.9', 0):>8.2f}{lat.get('max', 0):>8.2f}"
                f"{svc.get('p50', 0):>9.2f}{svc.get('p99', 0):>8.2f}"
            )
        if t["errors"]:
            lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in t["errors"].items()))
        fair = t["fairness"]
        p99 = fair["p99_ms"]
        if p99:
            lines.append(
                f"tenant p99 ms over {fair['tenants_with_p99']} tenants "
                f"(>= {MIN_TENANT_REQUESTS} served): min {p99['min']:.2f} "
                f"median {p99['median']:.2f} max {p99['max']:.2f}"
            )
        top = fair["top"]
        for start in range(0, len(top), 5):
            lead = "busiest tenants, % of sent/served: " if start == 0 else " " * 35
            lines.append(lead + ", ".join(
                f"{x['tenant']} {x['sent_share']:.1f}/{x['served_share']:.1f}"
                for x in top[start:start + 5]
            ))  # fmt: skip
    names = list(report["targets"])
    if len(names) == 2:
        a, b = (report["targets"][n]["latency_ms"] for n in names)
        if a and b:
            lines += [
                "",
                f"{names[0]} minus {names[1]}: p50 {a['p50'] - b['p50']:+.2f} ms, "
                f"p99 {a['p99'] - b['p99']:+.2f} ms (the proxy's cost at this load)",
            ]
    metrics = report.get("proxy_metrics")
    if metrics:
        lines += ["", "tenantgate /metrics, increase over the run:"]
        for family, rows in metrics.items():
            shown = sorted(rows.items(), key=lambda kv: -abs(kv[1]))[:8]
            cells = ", ".join(f"{k} {v:g}" for k, v in shown)
            more = f" (+{len(rows) - 8} more)" if len(rows) > 8 else ""
            lines.append(f"  {family:<28} {cells}{more}")
    return "\n".join(lines) + "\n"
