"""The per-request costs behind three decisions of ``docs/decisions.md``, in process.

* **Dispatch**: one POST with a small body answered with constant JSON, through a
  Starlette application (its middleware, router and route wrappers) and through
  tenantgate's ``App`` (``proxy.frontends.http.app``) on an endpoint doing the same.
  Both are driven with ASGI messages, no socket; a bare ASGI callable gives the floor.
* **Metrics**: one query's recording (request count and duration, five phase
  durations, rows) with prometheus_client's ``Counter``/``Histogram`` children, and
  with ``proxy.metrics.Metrics``.
* **Columns**: orjson writing 1 and 818 result columns as dataclasses with and without
  ``__slots__`` (``proxy.drivers.base.ResultColumn`` has none).

Figures are medians of ``--rounds`` rounds, each timing ``--n`` calls.

    .venv/bin/python benchmarks/overheads.py [--rounds 5] [--n 20000]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.auth import hash_token
from proxy.compose import build
from proxy.config import ControllerSettings, Settings, TokenSettings
from proxy.frontends.http.app import App, compile_routes
from proxy.frontends.http.body import read_body
from proxy.metrics import LATENCY_BUCKETS, PHASES, Metrics

CONSTANT = orjson.dumps({"columns": ["FirstName"], "rows": [["Floor"]], "row_count": 1})
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "path": "/floor",
    "raw_path": b"/floor",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"x"), (b"content-type", b"application/json")],
    "scheme": "http",
    "server": ("127.0.0.1", 80),
    "client": ("127.0.0.1", 1),
}
MESSAGE = {"type": "http.request", "body": b'{"tenant": 1}', "more_body": False}


async def _receive() -> dict[str, Any]:
    return MESSAGE


async def _send(message: dict[str, Any]) -> None:
    pass


async def _starlette_floor(request: Request) -> Response:
    await request.body()
    return Response(CONSTANT, media_type="application/json")


async def _tenantgate_floor(request: Request) -> Response:
    await read_body(request, 1 << 20)
    return Response(CONSTANT, media_type="application/json")


async def _bare(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(CONSTANT))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": CONSTANT})


def _tenantgate_app() -> App:
    """tenantgate's ``App`` serving only ``/floor``. Its handler is instrumented as every
    route is (timing and metrics), which the Starlette side does not pay."""
    settings = Settings(
        # Never opened: nothing here reaches the controller.
        controller=ControllerSettings(connection_string="Driver=SQLite3;Database=/nonexistent"),
        tokens=(TokenSettings(name="bench", sha256=hash_token("bench-token")),),
    )
    service = build(settings, registry=CollectorRegistry())
    return App(service, compile_routes((("POST", "/floor", "floor", _tenantgate_floor),)))


def _asgi_us(app: Callable[..., Awaitable[None]], n: int) -> float:
    async def run() -> float:
        for _ in range(1000):
            await app(dict(SCOPE), _receive, _send)
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(SCOPE), _receive, _send)
        return (time.perf_counter() - start) / n * 1e6

    return uvloop.run(run())


def _calls_us(fn: Callable[[], object], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _prometheus_recorder() -> Callable[[], None]:
    registry = CollectorRegistry()
    requests = Counter("r", "r", ["endpoint", "outcome", "code"], registry=registry)
    seconds = Histogram("s", "s", ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry)
    phases = Histogram("p", "p", ["b", "c", "phase"], buckets=LATENCY_BUCKETS, registry=registry)
    rows = Counter("rows", "rows", ["backend"], registry=registry)
    # Children resolved once, as tenantgate did before: the cheapest use of the library.
    req_child, sec_child = requests.labels("query", "ok", ""), seconds.labels("query")
    phase_children = {p: phases.labels("postgresql", "read", p) for p in PHASES}
    rows_child = rows.labels("postgresql")

    def record() -> None:
        for phase, child in phase_children.items():
            child.observe(_PHASE_SECONDS[phase])
        rows_child.inc(1)
        req_child.inc()
        sec_child.observe(2e-4)

    return record


_PHASE_SECONDS = {"resolve": 1e-6, "metadata": 2e-6, "rewrite": 3e-6, "execute": 1e-4,
                  "serialize": 5e-6}  # fmt: skip


def _tenantgate_recorder() -> Callable[[], None]:
    metrics = Metrics(CollectorRegistry())

    def record() -> None:
        metrics.observe_query("postgresql", "read", _PHASE_SECONDS, rows=1, truncated=False)
        metrics.observe_request("query", None, 2e-4)

    return record


@dataclasses.dataclass(frozen=True, slots=True)
class _Slotted:
    name: str
    type: str


@dataclasses.dataclass(frozen=True)
class _Plain:
    name: str
    type: str


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    starlette = Starlette(routes=[Route("/floor", _starlette_floor, methods=["POST"])])
    ours = _tenantgate_app()
    record_prometheus, record_ours = _prometheus_recorder(), _tenantgate_recorder()
    columns = {
        (cls.__name__, count): [cls(f"c{i}", "string") for i in range(count)]
        for cls in (_Slotted, _Plain)
        for count in (1, 818)
    }
    runs: dict[str, Callable[[], float]] = {
        "dispatch: Starlette application": lambda: _asgi_us(starlette, args.n),
        "dispatch: tenantgate App": lambda: _asgi_us(ours, args.n),
        "dispatch: bare ASGI callable": lambda: _asgi_us(_bare, args.n),
        "metrics: prometheus_client children": lambda: _calls_us(record_prometheus, args.n),
        "metrics: proxy.metrics.Metrics": lambda: _calls_us(record_ours, args.n),
    }
    for (name, count), value in columns.items():
        reps = args.n if count == 1 else max(50, args.n // 400)
        runs[f"orjson: {count} columns, {name.strip('_').lower()} dataclass"] = (
            lambda value=value, reps=reps: _calls_us(lambda: orjson.dumps(value), reps)
        )
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            results[name].append(run())
    print(f"medians of {args.rounds} rounds, µs per call")
    for name, values in results.items():
        print(f"  {name:48}{statistics.median(values):9.2f}")


if __name__ == "__main__":
    main()
