"""Point-select latency: through the tenantgate service versus pyodbc directly.

The HTTP floor is a /healthz round trip with the same client: it shows how much of
the overhead is HTTP itself (client, server, loopback) rather than tenantgate's work.

Starts the real service process (SQLite demo tenants, PostgreSQL tenants on a private
cluster and, when a T-SQL engine is at hand, SQL Server tenants on it), then, per
tenant, alternates blocks of requests to the service with blocks of the same backend
SQL and binds (taken from /v1/explain) run directly on a pyodbc connection, so machine
noise hits both sides alike. Prints medians and percentiles.

SQL Server: one tenant per ODBC driver installed (Microsoft ODBC Driver 18 and
FreeTDS), measured against a direct connection through the same driver. The engine is
``TENANTGATE_TEST_TDS_DSN`` when set, otherwise a private Babelfish started from
``../shared/babelfish`` (``tests/support/tds.py``); without either, SQL Server is
skipped with a line saying why.

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

from procstat import cpu_s  # noqa: E402

from tests.support import tds  # noqa: E402
from tests.support.pg import pg_server  # noqa: E402
from tests.support.stack import (  # noqa: E402
    FULL_TOKEN,
    SQLSERVER_TENANTS,
    Stack,
    running_stack,
    sqlserver_tenant_id,
)

SQL = "SELECT ContactID, FirstName, LastName, Email FROM Contacts WHERE ContactID = ?"
SENTINEL = 987_654_321  # the key given to /v1/explain, to find its place among the binds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(stack: Stack, tenant: Any, connection: pyodbc.Connection, n: int) -> dict[str, Any]:
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {FULL_TOKEN}"}
    ) as http:
        plan = http.post(
            "/v1/explain", json={"tenant": tenant, "sql": SQL, "params": [SENTINEL]}
        ).json()
        backend_sql = plan["sql"]
        # Bind exactly what tenantgate binds: the key where the plan has it, and the row
        # cap it adds (after the key in LIMIT ?, before it in SQL Server's TOP (?)).
        binds: list[Any] = list(plan["params"])
        at = binds.index(SENTINEL)
        binds[at] = 1
        answer = http.post("/v1/query", json={"tenant": tenant, "sql": SQL, "params": [1]})
        same = connection.cursor().execute(backend_sql, *binds).fetchall()
        # Both sides must be doing the same work: one row, the same key.
        assert [r[0] for r in same] == [r[0] for r in answer.json()["rows"]] == [1], answer.text
        cursor = connection.cursor()
        service: list[float] = []
        direct: list[float] = []
        floor: list[float] = []
        block = 100
        service_cpu = direct_cpu = 0.0
        for i in range(0, n, block):
            c0 = cpu_s(stack.pid)
            for j in range(block):
                key = 1 + (i + j) % 150
                t0 = time.perf_counter()
                r = http.post("/v1/query", json={"tenant": tenant, "sql": SQL, "params": [key]})
                service.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            service_cpu += cpu_s(stack.pid) - c0
            for _ in range(block // 4):
                t0 = time.perf_counter()
                http.get("/healthz")
                floor.append(time.perf_counter() - t0)
            c0 = time.process_time()
            for j in range(block):
                key = 1 + (i + j) % 150
                t0 = time.perf_counter()
                binds[at] = key
                cursor.execute(backend_sql, *binds)
                cursor.fetchall()
                direct.append(time.perf_counter() - t0)
            direct_cpu += time.process_time() - c0
    return {
        # CPU per request: of the service process, and of this process for the direct
        # side (the driver's client work; the database server's own CPU is in neither).
        "service_cpu_us": service_cpu / len(service) * 1e6,
        "direct_cpu_us": direct_cpu / len(direct) * 1e6,
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
    print(
        f"  CPU per request: tenantgate process {r['service_cpu_us']:.0f} µs; "
        f"direct (client process) {r['direct_cpu_us']:.0f} µs"
    )
    print(f"  overhead: {s_med - d_med:.0f} µs per request; ratio {s_med / d_med:.1f}x")
    print(f"  of which HTTP round trip with this Python client: {f_med:.0f} µs;")
    print(f"  tenantgate's own work beyond HTTP and the database: {s_med - d_med - f_med:.0f} µs")


def summary(results: list[tuple[str, dict[str, Any]]]) -> None:
    print("\nsummary (medians, µs)")
    print(
        f"  {'tenant':44}{'tenantgate':>12}{'direct':>10}{'overhead':>10}"
        f"{'tg CPU':>10}{'direct CPU':>12}"
    )
    for name, r in results:
        s_med = statistics.median(r["service"]) * 1e6
        d_med = statistics.median(r["direct"]) * 1e6
        print(
            f"  {name:44}{s_med:12.0f}{d_med:10.0f}{s_med - d_med:10.0f}"
            f"{r['service_cpu_us']:10.0f}{r['direct_cpu_us']:12.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    # Before this process's first ODBC connection: unixODBC reads ODBCSYSINI once, and
    # the service process inherits it.
    msodbc18_missing = tds.register_msodbc18()
    results: list[tuple[str, dict[str, Any]]] = []
    with contextlib.ExitStack() as resources:
        tmp = resources.enter_context(tempfile.TemporaryDirectory())
        pg = resources.enter_context(pg_server())
        engine: tds.TdsServer | None = None
        try:
            engine = resources.enter_context(tds.tds_server())
        except tds.TdsUnavailable as exc:
            print(f"SQL Server: skipped, no T-SQL engine over TDS: {exc}")
        stack = resources.enter_context(running_stack(Path(tmp), pg, engine))

        tenant_2 = next(t for t in stack.demo.tenants if t.customer_id == 2)
        with contextlib.closing(pyodbc.connect(tenant_2.connection_string, autocommit=True)) as c:
            name = "SQLite tenant beta.example"
            results.append((name, measure(stack, 2, c, args.requests)))
            report(*results[-1])
        with contextlib.closing(stack.pg.connect(stack.pg_databases[12])) as c:
            name = "PostgreSQL tenant pg12.example"
            results.append((name, measure(stack, 12, c, args.requests)))
            report(*results[-1])
        for driver in dict.fromkeys(t.driver for t in SQLSERVER_TENANTS):
            tenant = stack.sqlserver.get(sqlserver_tenant_id(driver))
            if engine is None or tenant is None:
                if engine is not None:
                    why = msodbc18_missing if driver == tds.MSODBC18 else None
                    why = why or f"the {tds.DRIVER_NAMES[driver]} ODBC driver is not installed"
                    print(f"SQL Server via {driver}: skipped, {why}")
                continue
            # tenantgate's pool connects without a database (to the login's default) and
            # names the tenant's in the SQL: the direct side does the same, same driver.
            with contextlib.closing(engine.connect(driver)) as c:
                name = f"SQL Server tenant {tenant.domain} via {driver}"
                results.append((name, measure(stack, tenant.customer_id, c, args.requests)))
                report(*results[-1])
    summary(results)


if __name__ == "__main__":
    main()
