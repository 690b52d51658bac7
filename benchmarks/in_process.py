"""tenantgate's own CPU per request, without the HTTP server or sockets on its side.

The test stack (``tests/support/stack.py``: the demo's SQLite tenants and PostgreSQL
tenants on a private cluster) is seeded and its configuration loaded into an app built
in this process (``proxy.compose.build`` + ``create_app``, as ``tenantgate serve`` does).
The app is then driven with ASGI messages, a point select at a time or ``--concurrency``
at once, and the process CPU time (``time.process_time``) per request is printed:
what the dispatch, authentication, body, pipeline, driver, serialisation and metrics
cost together. Set beside the HTTP floor of ``compare.py`` (uvicorn and the kernel for a
constant answer), it shows where a request's CPU goes. For a PostgreSQL tenant the
figure includes libpq's socket calls to the server; for SQLite, the statement itself.

    .venv/bin/python benchmarks/in_process.py [--tenant 2] [--requests 20000] [--rounds 3]
        [--concurrency 1] [--profile] [--labels]

``--labels`` measures what naming each statement's request on its database session
costs (``logging.request_id_to_database``): two apps, with and without, in alternating
rounds; besides CPU it prints wall-clock µs per request, which at concurrency 1 carries
the extra work of the server (PostgreSQL's ``set_config``, SQL Server's batch prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.compose import build  # noqa: E402
from proxy.config import load  # noqa: E402
from proxy.frontends.http.app import App, create_app  # noqa: E402
from tests.support.pg import pg_server  # noqa: E402
from tests.support.stack import FULL_TOKEN, running_stack  # noqa: E402

SQL = "SELECT FirstName FROM Contacts WHERE ContactID = ?"
KEYS = 50


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/query",
        "raw_path": b"/v1/query",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"tenantgate"),
            (b"authorization", f"Bearer {FULL_TOKEN}".encode()),
            (b"content-type", b"application/json"),
        ],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }


async def _requests(app: App, bodies: list[bytes], count: int, concurrency: int) -> None:
    statuses: list[int] = []

    async def one(i: int) -> None:
        message = {"type": "http.request", "body": bodies[i % len(bodies)], "more_body": False}

        async def receive() -> dict[str, Any]:
            return message

        async def send(sent: dict[str, Any]) -> None:
            if sent["type"] == "http.response.start":
                statuses.append(sent["status"])

        await app(_scope(), receive, send)

    if concurrency == 1:
        for i in range(count):
            await one(i)
    else:
        limit = asyncio.Semaphore(concurrency)

        async def limited(i: int) -> None:
            async with limit:
                await one(i)

        await asyncio.gather(*(limited(i) for i in range(count)))
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"a request failed: statuses {sorted(set(statuses))}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenant", type=int, default=2, help="2: SQLite (demo), 12: PostgreSQL")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile one more round")
    parser.add_argument("--labels", action="store_true", help="with against without labels")
    args = parser.parse_args()
    bodies = [
        orjson.dumps({"tenant": args.tenant, "sql": SQL, "params": [key]})
        for key in range(1, KEYS + 1)
    ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        pg_server() as pg,
        running_stack(Path(tmp), pg),  # seeds the tenants; its own process stays idle
    ):
        settings = load(Path(tmp) / "tenantgate.toml")
        app = create_app(build(settings))
        if args.labels:
            off = dataclasses.replace(
                settings,
                logging=dataclasses.replace(settings.logging, request_id_to_database=False),
            )
            bare = create_app(build(off))
            apps = {"labelled": app, "unlabelled": bare}

            async def compare() -> dict[str, list[tuple[float, float]]]:
                figures: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}
                for each in apps.values():
                    await _requests(each, bodies, 2000, args.concurrency)
                for _ in range(args.rounds):
                    for name, each in apps.items():
                        cpu, wall = time.process_time(), time.perf_counter()
                        await _requests(each, bodies, args.requests, args.concurrency)
                        figures[name].append(
                            (
                                (time.process_time() - cpu) / args.requests * 1e6,
                                (time.perf_counter() - wall) / args.requests * 1e6,
                            )
                        )
                return figures

            for name, rows in uvloop.run(compare()).items():
                print(
                    f"tenant {args.tenant}, concurrency {args.concurrency}, {name}: "
                    f"median of {args.rounds} rounds of {args.requests}: "
                    f"CPU {statistics.median(r[0] for r in rows):.1f} µs, "
                    f"wall {statistics.median(r[1] for r in rows):.1f} µs per request"
                )
            return

        async def measure() -> list[float]:
            await _requests(app, bodies, 2000, args.concurrency)  # warm caches and pools
            per_request = []
            for _ in range(args.rounds):
                started = time.process_time()
                await _requests(app, bodies, args.requests, args.concurrency)
                per_request.append((time.process_time() - started) / args.requests * 1e6)
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                await _requests(app, bodies, args.requests, args.concurrency)
                profile.disable()
                pstats.Stats(profile).sort_stats("tottime").print_stats(30)
            return per_request

        rounds = uvloop.run(measure())
    print(
        f"tenant {args.tenant}, concurrency {args.concurrency}: CPU µs per request, "
        f"median of {args.rounds} rounds of {args.requests}: {statistics.median(rounds):.1f} "
        f"(rounds: {', '.join(f'{r:.1f}' for r in rounds)})"
    )


if __name__ == "__main__":
    main()
