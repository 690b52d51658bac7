"""``tenantgate bench``: drive load at a fleet through tenantgate, directly, or both.

Arguments are added to the subparser by ``add_arguments``; ``run(args)`` returns the
exit status: 0 after a run (errors under load are results, in the report), 2 when the
run cannot start (bad input, unreachable target, refused token). See docs/bench.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvloop

from proxy.bench.fleet import TOKEN, Fleet, FleetError, load_fleet
from proxy.bench.plots import write_plots
from proxy.bench.recorder import Tick
from proxy.bench.report import metrics_delta, render_text, summary
from proxy.bench.runner import Lane, RunSpec, run_lanes
from proxy.bench.schedule import SkewError, TenantPicker, parse_skew
from proxy.bench.targets import BenchError, DirectTarget, HttpTarget, Target, Templates
from proxy.bench.workload import DEFAULT_MIX, SCRIPTS, WorkloadError, parse_mix

__all__ = ["add_arguments", "run"]

DEFAULT_PORT = 8040


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fleet", required=True, metavar="DIR", help="a tenantgate seed directory")
    p.add_argument("--target", metavar="URL",
                   help="tenantgate's base URL (default: http://127.0.0.1:<port of "
                        "DIR/tenantgate.toml, else 8040>)")  # fmt: skip
    where = p.add_mutually_exclusive_group()
    where.add_argument("--direct", action="store_true",
                       help="run the statements directly against the tenant databases "
                            "(tenantgate at --target still translates them, once)")  # fmt: skip
    where.add_argument(
        "--both", action="store_true", help="tenantgate and direct, in interleaved rounds"
    )
    p.add_argument("--token-env", metavar="VAR", help="read the token from $VAR, not DIR/token")
    p.add_argument("--script", action="append", metavar="NAME[@WEIGHT]",
                   help=f"one of {', '.join(SCRIPTS)}; repeatable "
                        f"(default: {' '.join(DEFAULT_MIX)})")  # fmt: skip
    p.add_argument("--skew", default="uniform", help="uniform (default) or zipf:S")
    loop = p.add_mutually_exclusive_group()
    loop.add_argument("--rate", type=float, metavar="TPS",
                      help="open loop: transactions/s (Poisson arrivals)")  # fmt: skip
    loop.add_argument("--clients", type=int, metavar="N",
                      help="closed loop: concurrent clients (default 4)")  # fmt: skip
    length = p.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, metavar="SECONDS",
                        help="measured, per target (default 10)")  # fmt: skip
    length.add_argument("--transactions", type=int, metavar="N",
                        help="measured transactions per target")  # fmt: skip
    p.add_argument("--warmup", type=float, default=0.0, metavar="SECONDS",
                   help="sent but not recorded, in each target's first round")  # fmt: skip
    p.add_argument("--max-inflight", type=int, default=1000, metavar="N",
                   help="open loop: one due while N are under way is skipped")  # fmt: skip
    p.add_argument("--connections", type=int, default=8, metavar="N",
                   help="per target (default 8)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="per transaction (default 30)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3, metavar="N",
                   help="with --both (default 3)")  # fmt: skip
    p.add_argument("--seed", type=int, default=1, help="same seed, same requests (default 1)")
    p.add_argument("--progress", type=float, default=1.0, metavar="SECONDS",
                   help="progress line interval; 0 for none")  # fmt: skip
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the report as JSON to FILE (or stdout)")  # fmt: skip
    p.add_argument("--plot", metavar="DIR", help="write PNG charts to DIR")
    p.add_argument("--proxy-pid", type=int, metavar="PID",
                   help="tenantgate's pid: its CPU per request (workers too)")  # fmt: skip


class UsageError(Exception):
    pass


def _check(args: argparse.Namespace) -> None:
    if args.rate is not None and not args.rate > 0:
        raise UsageError("--rate must be > 0 (transactions per second)")
    if args.clients is not None and args.clients < 1:
        raise UsageError("--clients must be >= 1")
    if args.duration is not None and not args.duration > 0:
        raise UsageError("--duration must be > 0")
    if args.transactions is not None and args.transactions < 1:
        raise UsageError("--transactions must be >= 1")
    for name in ("warmup", "timeout"):
        if not getattr(args, name) >= 0:
            raise UsageError(f"--{name} must be >= 0")
    for name in ("max_inflight", "connections", "rounds"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.proxy_pid is not None and not Path(f"/proc/{args.proxy_pid}/stat").exists():
        raise UsageError(f"--proxy-pid {args.proxy_pid}: no such process")


def _config_file(directory: Path) -> Mapping[str, Any]:
    path = directory / "tenantgate.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _token(args: argparse.Namespace, directory: Path) -> str:
    if args.token_env:
        token = os.environ.get(args.token_env, "").strip()
        if not token:
            raise UsageError(f"--token-env {args.token_env}: the variable is unset or empty")
        return token
    try:
        token = (directory / TOKEN).read_text(encoding="utf-8").strip()
    except OSError:
        raise UsageError(f"no token file at {directory / TOKEN}; use --token-env VAR") from None
    if not token:
        raise UsageError(f"{directory / TOKEN} is empty")
    return token


class _Progress:
    def __init__(self, every: float, label: bool) -> None:
        self.every = every
        self.label = label
        self.pending: dict[str, list[tuple[float, Tick]]] = {}
        self.last_t: dict[str, float] = {}

    def __call__(self, lane: Lane, tick: Tick) -> None:
        if self.every <= 0:
            return
        name = lane.target.name
        span = tick.t - self.last_t.get(name, 0.0)
        self.last_t[name] = tick.t
        ticks = self.pending.setdefault(name, [])
        ticks.append((span, tick))
        # A whole second (uvloop's timers may wake a millisecond early) or the last,
        # partial one of a segment.
        if sum(s for s, _ in ticks) < self.every - 0.05 and span > 0.95:
            return
        seconds = sum(s for s, _ in ticks) or 1e-9
        done = sum(k.completed for _, k in ticks)
        mean = sum(k.mean_ms * k.completed for _, k in ticks) / done if done else 0.0
        line = (
            f"progress: {tick.t:.1f} s, {done / seconds:.1f} tps, lat {mean:.1f} ms "
            f"p99 {max(k.p99_ms for _, k in ticks):.1f} ms, "
            f"{sum(k.failed for _, k in ticks)} failed, {sum(k.skipped for _, k in ticks)} skipped"
        )
        lag = max(k.lag_ms for _, k in ticks)
        if lag > 5:
            line += f", schedule lag {lag:.1f} ms"
        if self.label:
            line += f" [{name}]"
        print(line, file=sys.stderr, flush=True)
        ticks.clear()


async def _bench(args: argparse.Namespace, fleet: Fleet, token: str, url: str) -> dict[str, Any]:
    directory = Path(args.fleet)
    mix = parse_mix(args.script or DEFAULT_MIX)
    skew = parse_skew(args.skew)
    tenants = fleet.tenants
    picker = TenantPicker(len(tenants), skew, args.seed)
    http = HttpTarget(url, token, args.connections, proxy_pid=args.proxy_pid)
    targets: list[Target] = []
    try:
        await http.probe(tenants[0])
        if not args.direct:
            targets.append(http)
        if args.direct or args.both:
            print(f"translating {len(tenants)} tenants' statements through {url}/v1/explain",
                  file=sys.stderr)  # fmt: skip
            templates = await Templates.collect(
                http, tenants, mix,
                progress=lambda n: print(f"  {n} statements translated", file=sys.stderr),
            )  # fmt: skip
            backend_templates = _config_file(directory).get("backends", {})
            direct = DirectTarget(
                tenants, templates, args.connections,
                {k: v["template"] for k, v in backend_templates.items()
                 if isinstance(v, dict) and isinstance(v.get("template"), str)},
            )  # fmt: skip
            await direct.probe()
            targets.append(direct)
        before = await http.metrics()
        spec = RunSpec(
            rate=args.rate,
            clients=args.clients or 4,
            duration=args.duration if args.transactions is None else None,
            transactions=args.transactions,
            warmup=args.warmup,
            max_inflight=args.max_inflight,
            timeout=args.timeout or 1e9,
            rounds=args.rounds,
            seed=args.seed,
        )
        lanes = [Lane(t, tenants, picker, mix, args.seed) for t in targets]
        await run_lanes(lanes, spec, _Progress(args.progress, len(lanes) > 1))
        after = await http.metrics()
    finally:
        for t in targets if http in targets else [*targets, http]:
            await t.close()
    shares = mix.shares()
    config = {
        "fleet": str(directory),
        "fleet_id": fleet.fleet_id,
        "backend": fleet.backend,
        "tenants": len(tenants),
        "target": url,
        "targets": [t.name for t in targets],
        "mix": " ".join(f"{k}@{round(v * 100, 1):g}%" for k, v in shares.items()),
        "skew": str(skew),
        "mode": (
            f"open loop {args.rate:g}/s" if args.rate else f"closed loop, {spec.clients} clients"
        ),
        "rate": args.rate,
        "clients": None if args.rate else spec.clients,
        "duration_s": spec.duration,
        "transactions": spec.transactions,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "max_inflight": args.max_inflight,
        "rounds": args.rounds if len(targets) > 1 else 1,
        "seed": args.seed,
    }
    delta = metrics_delta(before, after) if before is not None and after is not None else None
    return summary([lane.recorder for lane in lanes], [t.domain for t in tenants], config, delta)


def _prepare(args: argparse.Namespace) -> tuple[Fleet, str, str]:
    """Every check that needs no network: (fleet, token, target URL)."""
    _check(args)
    if args.duration is None and args.transactions is None:
        args.duration = 10.0
    parse_mix(args.script or DEFAULT_MIX)
    parse_skew(args.skew)
    directory = Path(args.fleet)
    fleet = load_fleet(directory)
    if not fleet.tenants:
        raise UsageError(f"the fleet in {directory} has no seeded tenant yet")
    token = _token(args, directory)
    port = _config_file(directory).get("server", {}).get("port", DEFAULT_PORT)
    url = (args.target or f"http://127.0.0.1:{port}").rstrip("/")
    if not url.startswith("http://"):
        raise UsageError(f"--target {url!r}: expected http://host:port")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib (pip install 'tenantgate[bench]')")
    return fleet, token, url


def run(args: argparse.Namespace) -> int:
    try:
        fleet, token, url = _prepare(args)
        report = uvloop.run(_bench(args, fleet, token, url))
    except (UsageError, WorkloadError, SkewError, FleetError, BenchError) as exc:
        print(f"tenantgate bench: {exc}", file=sys.stderr)
        return 2
    # With the JSON on stdout, the text goes to stderr beside the progress lines.
    out = sys.stderr if args.json == "-" else sys.stdout
    if args.json:
        data = json.dumps(report, indent=1)
        if args.json == "-":
            print(data)
        else:
            Path(args.json).write_text(data + "\n", encoding="utf-8")
    print(render_text(report), end="", file=out)
    if args.plot:
        paths = write_plots(report, Path(args.plot))
        print("charts: " + ", ".join(str(p) for p in paths), file=out)
    return 0
