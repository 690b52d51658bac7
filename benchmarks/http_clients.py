"""Which HTTP client should ``tenantgate bench`` drive load with? (docs/decisions.md)

The same closed-loop workload through httpx, aiohttp and the bench's own minimal
keep-alive client (``proxy.bench.httpclient``), on uvloop: ``--concurrency`` tasks
sharing ``--connections`` keep-alive connections, each POSTing a point select to a
running tenantgate's ``/v1/query``. Reported per client: requests/s and the client
process's own CPU µs per request (``time.process_time``), which is what limits a load
generator sharing two cores with the proxy.

    tenantgate demo --port 18041 &   # with TENANTGATE_DEMO_TOKEN=benchtok
    .venv/bin/python benchmarks/http_clients.py --url http://127.0.0.1:18041 \\
        --token benchtok [--requests 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.bench.httpclient import Pool, split_base

SQL = "SELECT ContactID, FirstName, LastName, Email FROM Contacts WHERE ContactID = ?"


def body(i: int) -> bytes:
    return orjson.dumps({"tenant": "beta.example", "sql": SQL, "params": [i % 1000 + 1]})


async def drive(call: Callable[[int], Awaitable[None]], requests: int, concurrency: int) -> None:
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            await call(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def with_httpx(url: str, token: str, n: int, c: int, conns: int) -> None:
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers) as client:

        async def call(i: int) -> None:
            r = await client.post("/v1/query", content=body(i))
            assert r.status_code == 200, r.text

        await drive(call, n, c)


async def with_aiohttp(url: str, token: str, n: int, c: int, conns: int) -> None:
    import aiohttp  # noqa: PLC0415 - not a dependency: pip install aiohttp to compare

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:

        async def call(i: int) -> None:
            async with session.post("/v1/query", data=body(i)) as r:
                await r.read()
                assert r.status == 200

        await drive(call, n, c)


async def with_minimal(url: str, token: str, n: int, c: int, conns: int) -> None:
    host, port, prefix = split_base(url)
    pool = Pool(host, port, conns)
    headers = f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n".encode()

    async def call(i: int) -> None:
        async with pool.connection() as conn:
            r = await conn.request("POST", prefix + "/v1/query", headers, body(i))
        assert r.status == 200, r.body

    await drive(call, n, c)
    pool.close()


CLIENTS = {"httpx": with_httpx, "aiohttp": with_aiohttp, "minimal": with_minimal}
if importlib.util.find_spec("aiohttp") is None:  # not a dependency: pip install aiohttp
    del CLIENTS["aiohttp"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
    for _ in range(args.rounds):
        for name, client in CLIENTS.items():  # interleaved: drift hits each alike
            cpu0, t0 = time.process_time(), time.perf_counter()
            uvloop.run(client(args.url, args.token, args.requests, args.concurrency,
                              args.connections))  # fmt: skip
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
            results[name].append((args.requests / wall, cpu / args.requests * 1e6))
    print(f"{'client':<8} {'req/s':>8} {'client CPU µs/req':>18}   (medians of {args.rounds})")
    for name, samples in results.items():
        rps = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(f"{name:<8} {rps:>8.0f} {cpu:>18.0f}")


if __name__ == "__main__":
    main()
