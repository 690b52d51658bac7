"""Measurements behind the inline-or-thread decision of the native SQLite driver.

Run ``python -m proxy.drivers.sqlite.bench [--calls 20000] [--runs 5] [--uvloop]``.
It builds a 100,000-row table in a temporary file and prints, per path, the median
over ``runs`` of CPU µs (the whole process, worker threads included:
``time.process_time``) and wall µs per call:

* ``bare inline``: ``cursor.execute`` + ``fetchmany`` + ``close`` on the loop thread;
* ``bare thread``: the same in ``anyio.to_thread.run_sync`` (the hop alone);
* ``driver inline``: ``SqliteDriver.run`` (pool, classification, progress handler);
* ``driver thread``: ``SqliteDriver.run`` with ``inline_budget_s=0`` (hop + timer);
* ``write inline`` / ``driver write``: one-row INSERT committed on the loop
  (never done by the driver: shown for what a commit costs) and through the driver.

and the figures the executor's constants come from: VM instructions per µs (progress
handler calls over a recursive CTE), the cost of ``PRAGMA busy_timeout`` and of
``set_progress_handler``. Every point select reads a different key.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from proxy.drivers.sizing import PoolOptions
from proxy.drivers.sqlite.driver import SqliteDriver
from tenancy.connstr import parse
from tenancy.location import TenantLocation, locate

ROWS = 100_000
POINT = "SELECT id, name, v FROM t WHERE id = ?"
CTE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000) "
    "SELECT count(*) FROM c"
)


def _prepare(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v REAL)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?)", ((i, f"name {i}", i * 0.5) for i in range(ROWS))
    )
    conn.execute("COMMIT")
    conn.execute("CREATE TABLE w (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()


def _point(raw: sqlite3.Connection, key: int) -> list[Any]:
    cursor = raw.cursor()
    try:
        cursor.execute(POINT, (key,))
        return cursor.fetchmany(1001)
    finally:
        cursor.close()


def _write(raw: sqlite3.Connection, key: int) -> None:
    raw.execute("INSERT INTO w (name) VALUES (?)", (f"w{key}",)).close()


def _per_call(
    make: Callable[[int], Coroutine[Any, Any, None]], calls: int, runs: int, use_uvloop: bool
) -> tuple[float, float]:
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(runs):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if use_uvloop:
            import uvloop  # noqa: PLC0415 - optional, only for --uvloop

            uvloop.run(make(calls))
        else:
            asyncio.run(make(calls))
        cpu.append((time.process_time() - cpu0) / calls * 1e6)
        wall.append((time.perf_counter() - wall0) / calls * 1e6)
    return statistics.median(cpu), statistics.median(wall)


def _paths(
    path: Path, loc: TenantLocation
) -> dict[str, Callable[[int], Coroutine[Any, Any, None]]]:
    def raw() -> sqlite3.Connection:
        return sqlite3.connect(
            f"file://{path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
        )

    async def bare_inline(n: int) -> None:
        conn = raw()
        for i in range(n):
            _point(conn, i % ROWS)
        conn.close()

    async def bare_thread(n: int) -> None:
        conn = raw()
        limiter = anyio.CapacityLimiter(32)
        for i in range(n):
            await anyio.to_thread.run_sync(_point, conn, i % ROWS, limiter=limiter)
        conn.close()

    def through(
        budget: float, sql: str, param: Callable[[int], object]
    ) -> Callable[[int], Coroutine[Any, Any, None]]:
        async def run(n: int) -> None:
            driver = SqliteDriver(
                PoolOptions(max_size=4), inline_budget_s=budget, maintenance_interval=None
            )
            for i in range(n):
                await driver.run(loc, sql, [param(i)], timeout_s=5, max_rows=1000)
            await driver.aclose()

        return run

    def key(i: int) -> object:
        return i % ROWS

    def name(i: int) -> object:
        return f"w{i}"

    async def write_inline(n: int) -> None:
        conn = raw()
        for i in range(n):
            _write(conn, i)
        conn.close()

    return {
        "bare inline": bare_inline,
        "bare thread": bare_thread,
        "driver inline": through(0.002, POINT, key),
        "driver thread": through(0.0, POINT, key),
        "write inline": write_inline,
        "driver write": through(0.002, "INSERT INTO w (name) VALUES (?)", name),
    }


def _calibrate(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    calls = 0

    def handler() -> int:
        nonlocal calls
        calls += 1
        return 0

    conn.set_progress_handler(handler, 1000)
    start = time.perf_counter()
    conn.execute(CTE).fetchone()
    elapsed = time.perf_counter() - start
    print(
        f"progress handler every 1000 instructions: {calls} calls in {elapsed * 1000:.0f} ms, "
        f"{calls * 1000 / elapsed / 1e6:.1f} instructions/µs, "
        f"{elapsed / calls * 1e6:.1f} µs between calls"
    )
    n = 20_000
    start = time.perf_counter()
    for i in range(n):
        conn.execute(f"PRAGMA busy_timeout = {i % 2 * 1000}").close()
    print(f"PRAGMA busy_timeout: {(time.perf_counter() - start) / n * 1e6:.1f} µs")
    start = time.perf_counter()
    for _ in range(n):
        conn.set_progress_handler(handler, 1000)
    print(f"set_progress_handler: {(time.perf_counter() - start) / n * 1e6:.2f} µs")
    conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        _prepare(path)
        loc = locate(parse(f"Driver=SQLite3;Database={path}"), {})
        print(f"sqlite {sqlite3.sqlite_version}, {args.calls} calls x {args.runs} runs, medians")
        _calibrate(path)
        for name, make in _paths(path, loc).items():
            calls = args.calls if "write" not in name else max(1, args.calls // 20)
            cpu, wall = _per_call(make, calls, args.runs, args.uvloop)
            print(f"{name:14} {cpu:8.1f} µs CPU {wall:8.1f} µs wall  ({calls} calls)")


if __name__ == "__main__":
    main()
