"""PNG charts of a bench report (matplotlib, Agg backend): drawn from the report's
JSON, so a saved ``--json`` file can be re-plotted (``python -m proxy.bench.plots
report.json DIR``).

Four charts, each with every target that ran on the same axes (tenantgate in blue,
the databases directly in orange):

* ``latency_over_time.png``: p50 and p99 latency per second (log scale: one stall
  should not flatten the rest);
* ``percentile_spectrum.png``: HdrHistogram's percentile plot, latency (solid) and
  service time (dashed) against 1/(1-p) on a log axis labelled 50%, 90%, 99%...;
* ``throughput_over_time.png``: completed transactions per second, the scheduled rate
  for reference, failed and skipped ones as markers;
* ``tenant_p99.png``: how tenants' p99 latencies are spread (histogram, log bins), with
  each target's median tenant marked.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CHARTS", "write_plots"]

CHARTS = (
    "latency_over_time.png",
    "percentile_spectrum.png",
    "throughput_over_time.png",
    "tenant_p99.png",
)
_COLOURS = {"http": "#1f77b4", "direct": "#ff7f0e"}
_LABELS = {"http": "through tenantgate", "direct": "direct to the databases"}


def _label(name: str) -> str:
    return _LABELS.get(name, name)


def _subtitle(report: Mapping[str, Any]) -> str:
    c = report["config"]
    return f"{c['tenants']} {c['backend']} tenants, skew {c['skew']}, {c['mode']}"


def _plain(axis: Any) -> None:
    """Log-scale tick labels as 0.5, 2, 10 rather than 5x10^-1..."""
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415 - matplotlib is optional

    plain = FuncFormatter(lambda x, _: f"{x:g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}" if f"{x:.0e}"[0] in "25" else ""))


def _latency_over_time(plt: Any, targets: Mapping[str, Any], sub: str) -> Any:
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for name, t in targets.items():
        ticks = [k for k in t["timeline"] if k["completed"]]
        xs = [k["t"] for k in ticks]
        colour = _COLOURS.get(name)
        ax.plot(xs, [k["p99_ms"] for k in ticks], color=colour, lw=1.8,
                label=f"{_label(name)}: p99")  # fmt: skip
        ax.plot(xs, [k["p50_ms"] for k in ticks], color=colour, lw=1.2, ls="--",
                label=f"{_label(name)}: p50")  # fmt: skip
    ax.set_yscale("log")
    _plain(ax.yaxis)
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("latency (ms, from scheduled start)")
    ax.set_title(f"Latency over time\n{sub}", fontsize=11)
    ax.legend(fontsize=8)
    return fig


def _spectrum(plt: Any, targets: Mapping[str, Any], sub: str) -> Any:
    from matplotlib.ticker import (  # noqa: PLC0415 - matplotlib is optional
        FixedLocator,
        FuncFormatter,
        NullLocator,
    )

    fig, ax = plt.subplots(figsize=(9, 5))
    widest = 10.0
    for name, t in targets.items():
        colour = _COLOURS.get(name)
        for kind, style in (("latency", "-"), ("service", "--")):
            points = [(1 / (1 - p / 100), v) for p, v in t["spectrum"][kind] if p < 100]
            if points:
                widest = max(widest, points[-1][0])
                ax.plot([x for x, _ in points], [v for _, v in points], color=colour,
                        ls=style, lw=1.8 if style == "-" else 1.2,
                        label=f"{_label(name)}: {kind}")  # fmt: skip
    ticks = [x for x in (1, 2, 10, 100, 1000, 10_000, 100_000, 1_000_000) if x <= widest * 1.01]
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda x, _: f"{100 * (1 - 1 / x):g}%" if x > 0 else "")
    )
    ax.set_xlim(1, widest * 1.05)
    ax.set_yscale("log")
    _plain(ax.yaxis)
    ax.set_xlabel("percentile")
    ax.set_ylabel("ms")
    ax.set_title(f"Latency by percentile (HdrHistogram)\n{sub}", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _throughput(plt: Any, targets: Mapping[str, Any], sub: str, rate: float | None) -> Any:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, t in targets.items():
        colour = _COLOURS.get(name)
        prev = 0.0
        xs: list[float] = []
        tps: list[float] = []
        bad: list[float] = []
        for k in t["timeline"]:
            span, prev = k["t"] - prev, k["t"]
            if span > 0.2:  # a segment's last partial second, if short, would be noise
                xs.append(k["t"])
                tps.append(k["completed"] / span)
                bad.append((k["failed"] + k["skipped"]) / span)
        # Dashed after the first: with one seed both targets are sent the same schedule,
        # so at a rate both keep up with, the lines lie on each other.
        ax.plot(xs, tps, color=colour, lw=1.8, marker=".", ls="-" if not ax.lines else "--",
                label=f"{_label(name)}: completed/s")  # fmt: skip
        if any(bad):
            ax.scatter(xs, bad, color=colour, marker="x", s=22,
                       label=f"{_label(name)}: failed + skipped /s")  # fmt: skip
    if rate:
        ax.axhline(rate, color="grey", ls=":", lw=1.2, label=f"scheduled rate {rate:g}/s")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("transactions per second")
    ax.set_title(f"Throughput over time\n{sub}", fontsize=11)
    ax.legend(fontsize=8, loc="center right")
    return fig


def _tenant_p99(plt: Any, targets: Mapping[str, Any], sub: str) -> Any:
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415 - matplotlib is optional

    fig, ax = plt.subplots(figsize=(9, 4.5))
    values = [v for t in targets.values() for v in t["tenant_p99_ms"] if v > 0]
    if values:
        low = min(values)
        high = max(*values, low * 1.5)
        n = max(8, min(40, len(values) // 4))
        bins = [low * (high / low) ** (i / n) for i in range(n + 1)]
        for name, t in targets.items():
            data = t["tenant_p99_ms"]
            if not data:
                continue
            colour = _COLOURS.get(name)
            ax.hist(data, bins=bins, histtype="stepfilled", alpha=0.35, color=colour,
                    label=f"{_label(name)} ({len(data)} tenants)")  # fmt: skip
            median = sorted(data)[len(data) // 2]
            ax.axvline(median, color=colour, ls="--", lw=1.2,
                       label=f"{_label(name)}: median tenant {median:.2f} ms")  # fmt: skip
        ax.set_xscale("log")
        _plain(ax.xaxis)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no tenant had enough requests for a p99", ha="center",
                transform=ax.transAxes)  # fmt: skip
    ax.set_xlabel("tenant's p99 latency (ms)")
    ax.set_ylabel("tenants")
    ax.set_title(f"Per-tenant p99 latency\n{sub}", fontsize=11)
    return fig


def write_plots(report: Mapping[str, Any], directory: Path) -> list[Path]:
    """The four charts in ``directory``; their paths."""
    import matplotlib  # noqa: PLC0415 - optional: only --plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    targets: Mapping[str, Any] = report["targets"]
    sub = _subtitle(report)
    plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3})
    figures = {
        "latency_over_time.png": _latency_over_time(plt, targets, sub),
        "percentile_spectrum.png": _spectrum(plt, targets, sub),
        "throughput_over_time.png": _throughput(plt, targets, sub, report["config"].get("rate")),
        "tenant_p99.png": _tenant_p99(plt, targets, sub),
    }
    written = []
    for name, fig in figures.items():
        path = directory / name
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m proxy.bench.plots REPORT.json DIR", file=sys.stderr)
        return 2
    report = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    for path in write_plots(report, Path(args[1])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
