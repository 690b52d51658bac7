"""Point-select latency: through the tenantgate service versus pyodbc directly.

The HTTP floor is a /healthz round trip with the same client: it shows how much of
the overhead is HTTP itself (client, server, loopback) rather than tenantgate's work.

Starts the real service process (SQLite demo tenants plus one PostgreSQL tenant on a
private cluster), then alternates blocks of requests to the service with blocks of
the same backend SQL (taken from /v1/explain) run directly on a pyodbc connection,
so machine noise hits both sides alike. Prints medians and percentiles.

    .venv/bin/python benchmarks/point_select.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pyodbc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pg import pg_server  # noqa: E402
from tests.support.stack import FULL_TOKEN, Stack, running_stack  # noqa: E402

SQL = "SELECT ContactID, FirstName, LastName, Email FROM Contacts WHERE ContactID = ?"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(stack: Stack, tenant: Any, connection: pyodbc.Connection, n: int) -> dict[str, Any]:
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {FULL_TOKEN}"}
    ) as http:
        plan = http.post("/v1/explain", json={"tenant": tenant, "sql": SQL, "params": [1]}).json()
        backend_sql = plan["sql"]
        # Bind exactly what tenantgate binds: the key, then the row cap it appends.
        extra = plan["params"][1:]
        cursor = connection.cursor()
        service: list[float] = []
        direct: list[float] = []
        floor: list[float] = []
        block = 100
        for i in range(0, n, block):
            for j in range(block):
                key = 1 + (i + j) % 150
                t0 = time.perf_counter()
                r = http.post("/v1/query", json={"tenant": tenant, "sql": SQL, "params": [key]})
                service.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            for _ in range(block // 4):
                t0 = time.perf_counter()
                http.get("/healthz")
                floor.append(time.perf_counter() - t0)
            for j in range(block):
                key = 1 + (i + j) % 150
                t0 = time.perf_counter()
                cursor.execute(backend_sql, key, *extra)
                cursor.fetchall()
                direct.append(time.perf_counter() - t0)
    return {
        "backend": plan["backend"],
        "service": service,
        "direct": direct,
        "floor": floor,
        "sql": backend_sql,
    }


def report(name: str, r: dict[str, Any]) -> None:
    s_med = statistics.median(r["service"]) * 1e6
    d_med = statistics.median(r["direct"]) * 1e6
    print(f"\n{name} ({r['backend']}), {len(r['service'])} requests each side, interleaved")
    print(f"  backend SQL: {r['sql']}")
    print(f"  {'':24}{'median µs':>12}{'p90 µs':>12}{'p99 µs':>12}")
    rows = (
        ("through tenantgate", r["service"]),
        ("pyodbc direct", r["direct"]),
        ("HTTP floor (/healthz)", r["floor"]),
    )
    for label, values in rows:
        print(
            f"  {label:24}{statistics.median(values) * 1e6:12.0f}"
            f"{percentile(values, 0.9) * 1e6:12.0f}{percentile(values, 0.99) * 1e6:12.0f}"
        )
    f_med = statistics.median(r["floor"]) * 1e6
    print(f"  overhead: {s_med - d_med:.0f} µs per request; ratio {s_med / d_med:.1f}x")
    print(f"  of which HTTP round trip with this Python client: {f_med:.0f} µs;")
    print(f"  tenantgate's own work beyond HTTP and the database: {s_med - d_med - f_med:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        pg_server() as pg,
        running_stack(Path(tmp), pg) as stack,
    ):
        tenant_2 = next(t for t in stack.demo.tenants if t.customer_id == 2)
        with contextlib.closing(pyodbc.connect(tenant_2.connection_string, autocommit=True)) as c:
            report("SQLite tenant beta.example", measure(stack, 2, c, args.requests))
        with contextlib.closing(stack.pg.connect(stack.pg_databases[12])) as c:
            report("PostgreSQL tenant pg12.example", measure(stack, 12, c, args.requests))


if __name__ == "__main__":
    main()
