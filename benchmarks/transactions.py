"""What a statement costs inside a batch or an interactive transaction, next to alone.

Starts the real service process (SQLite demo tenants, PostgreSQL tenants on a private
cluster or ``TENANTGATE_TEST_PG_DSN``) and, per tenant, alternates blocks of the same
point select sent four ways, so machine noise hits every way alike:

* ``query``: ``POST /v1/query``, each statement committing on its own;
* ``tx query``: ``POST /v1/transactions/{id}/query`` in one open transaction per block
  (begin and commit are outside the timing);
* ``batch x1``: ``POST /v1/batch`` with the one statement (its BEGIN and COMMIT included);
* ``batch x10``: ``POST /v1/batch`` with ten, reported per statement.

Prints the median latency and the service's CPU µs (``/proc/PID/stat``) per statement.

    .venv/bin/python benchmarks/transactions.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procstat import cpu_s  # noqa: E402

from tests.support.pg import pg_server  # noqa: E402
from tests.support.stack import FULL_TOKEN, running_stack  # noqa: E402

SQL = "SELECT ContactID, FirstName, LastName, Email FROM Contacts WHERE ContactID = ?"
BLOCK = 100
TENANTS = {"sqlite": 2, "postgresql": 12}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="statements per way and tenant")
    args = parser.parse_args()
    with (
        pg_server() as pg,
        tempfile.TemporaryDirectory() as root,
        running_stack(Path(root), pg) as stack,
        httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {FULL_TOKEN}"}, timeout=30
        ) as client,
    ):
        print(f"{'tenant':<11} {'way':<10} {'median µs':>10} {'p99 µs':>8} {'CPU µs/stmt':>12}")
        for backend, tenant in TENANTS.items():
            report(backend, ways(client, tenant), stack.pid, args.requests)


Way = Callable[[int], float]
"""Runs ``n`` statements; returns seconds of the timed part per statement, summed."""


def ways(client: httpx.Client, tenant: int) -> dict[str, Way]:
    query = {"tenant": tenant, "sql": SQL, "params": [5]}

    def alone(n: int) -> list[float]:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.post("/v1/query", json=query)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
        return times

    def in_transaction(n: int) -> list[float]:
        tx = client.post("/v1/transactions", json={"tenant": tenant}).json()["id"]
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.post(f"/v1/transactions/{tx}/query", json={"sql": SQL, "params": [5]})
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
        assert client.post(f"/v1/transactions/{tx}/commit").status_code == 200
        return times

    def batched(size: int) -> Callable[[int], list[float]]:
        body = {"tenant": tenant, "statements": [{"sql": SQL, "params": [5]}] * size}

        def run(n: int) -> list[float]:
            times = []
            for _ in range(max(1, n // size)):
                t0 = time.perf_counter()
                r = client.post("/v1/batch", json=body)
                times.append((time.perf_counter() - t0) / size)
                assert r.status_code == 200, r.text
            return times

        return run

    return {"query": alone, "tx query": in_transaction, "batch x1": batched(1),
            "batch x10": batched(10)}  # fmt: skip


def report(backend: str, ways: dict[str, Callable[[int], list[float]]], pid: int, n: int) -> None:
    for way in ways.values():  # warm: plans, metadata, connections
        way(BLOCK)
    times: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, float] = dict.fromkeys(ways, 0.0)
    statements: dict[str, int] = dict.fromkeys(ways, 0)
    for _ in range(max(1, n // BLOCK)):
        for name, way in ways.items():
            before = cpu_s(pid)
            block = way(BLOCK)
            cpu[name] += cpu_s(pid) - before
            times[name] += block
            statements[name] += BLOCK
    for name in ways:
        values = sorted(times[name])
        print(
            f"{backend:<11} {name:<10} {statistics.median(values) * 1e6:>10.0f} "
            f"{values[int(0.99 * (len(values) - 1))] * 1e6:>8.0f} "
            f"{cpu[name] / statements[name] * 1e6:>12.0f}"
        )


if __name__ == "__main__":
    main()
