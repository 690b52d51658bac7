"""10 tenants against 10,000 (issue #8, item 6): what each tenant costs the process.

One PostgreSQL database holds a schema per tenant (``t1`` .. ``tN``), each with the
default ``Contacts`` table (no custom columns, 5 rows); the controller lists every
tenant with ``Schema=tN``. The real service process serves them (native driver unless
``--driver odbc``). Measured, in one run:

* p50 of a point select (sequential, one keep-alive client) cycling over 10 warm
  tenants, over the last 10 of the N (the same work, with all N cached), and over all
  N in random order: ``--rounds`` interleaved blocks of each, so that the box's drift
  hits them alike, and the service's CPU per request (``/proc/PID/stat``) over each;
* the service process's RSS (``VmRSS``) after 10 tenants were used and after all N
  were (each used once), and the growth per tenant between the two;
* the backend connections the service holds (``pg_stat_activity``) against its cap.

    .venv/bin/python benchmarks/many_tenants.py [--tenants 10000] [--samples 2000] \\
        [--rounds 4]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procstat import cpu_s, rss_kib  # noqa: E402

from proxy.auth import hash_token  # noqa: E402
from proxy.demo.seed import seed_tenant  # noqa: E402
from tests.support.pg import PgServer, pg_server  # noqa: E402
from tests.support.stack import serve  # noqa: E402
from tests.support.tenants import base_model_toml  # noqa: E402

TOKEN = "many-tenants-bench-token"
SQL = "SELECT FirstName FROM Contacts WHERE ContactID = ?"
POOL = 4
BATCH = 250  # schemas per transaction: each CREATE TABLE holds a lock until commit


def seed(pg: PgServer, tenants: int) -> str:
    database = pg.create_database("tg_many")
    with contextlib.closing(pg.connect(database)) as conn:
        conn.execute("CREATE SCHEMA tpl")
        conn.execute("SET search_path TO tpl")
        seed_tenant(conn, "postgresql", contacts=5, seed=1)
        conn.execute("SET search_path TO public")
        for start in range(1, tenants + 1, BATCH):
            stop = min(start + BATCH - 1, tenants)
            conn.execute(
                "DO $$ BEGIN FOR i IN " + f"{start}..{stop}" + " LOOP "
                "EXECUTE format('CREATE SCHEMA t%s', i); "
                'EXECUTE format(\'CREATE TABLE t%s."Contacts" '
                '(LIKE tpl."Contacts" INCLUDING ALL)\', i); '
                'EXECUTE format(\'INSERT INTO t%s."Contacts" SELECT * FROM tpl."Contacts"\', i); '
                "END LOOP; END $$"
            )
    return database


def config(root: Path, pg: PgServer, database: str, tenants: int, driver: str) -> Path:
    controller = root / "controller.db"
    with contextlib.closing(sqlite3.connect(controller)) as conn:
        conn.execute(
            "CREATE TABLE Customer (customer_id INTEGER PRIMARY KEY, domainname TEXT, "
            "sqlconnectstring TEXT)"
        )
        conn.executemany(
            "INSERT INTO Customer VALUES (?, ?, ?)",
            (
                (
                    i,
                    f"t{i}.example",
                    f"Driver={{PostgreSQL Unicode}};Server={pg.host};Port={pg.port};"
                    f"Database={database};Uid={pg.user};Pwd={{{pg.password}}};Schema=t{i}",
                )
                for i in range(1, tenants + 1)
            ),
        )
        conn.commit()
    base_model = base_model_toml()
    path = root / "tenantgate.toml"
    path.write_text(
        f"""
[controller]
connection_string = "Driver=SQLite3;Database={controller}"
cache_ttl_s = 3600

[metadata]
ttl_s = 3600

[backends.postgresql]
driver = "{driver}"

[pool]
max_size = {POOL}
max_per_server = {POOL}

[base_model]
{base_model}

[[tokens]]
name = "bench"
sha256 = "{hash_token(TOKEN)}"
tenants = ["*"]
classes = ["read"]
""",
        encoding="utf-8",
    )
    return path


def latencies(client: httpx.Client, tenants: Iterator[int], samples: int) -> list[float]:
    """Seconds per request of ``samples`` sequential point selects."""
    times = []
    for _ in range(samples):
        tenant = next(tenants)
        body = {"tenant": tenant, "sql": SQL, "params": [random.randint(1, 5)]}
        started = time.perf_counter()
        r = client.post("/v1/query", json=body)
        times.append(time.perf_counter() - started)
        if r.status_code != 200:
            raise RuntimeError(r.text)
    return times


def backend_connections(pg: PgServer, database: str) -> int:
    with contextlib.closing(pg.connect()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ?", database
        ).fetchone()
    return int(row[0])


def run(
    pg: PgServer, *, tenants: int, samples: int, driver: str, rounds: int = 4
) -> dict[str, float]:
    started = time.monotonic()
    database = seed(pg, tenants)
    print(f"  seeded {tenants} schemas in {time.monotonic() - started:.0f} s", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            path = config(root, pg, database, tenants, driver)
            with (
                serve(path, root / "service.log") as (url, pid),
                httpx.Client(
                    base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
                ) as client,
            ):
                few = itertools.cycle(range(1, 11))
                latencies(client, few, 200)  # warm: 10 tenants cached, plans, pool
                rss_few = rss_kib(pid)
                latencies(client, iter(range(1, tenants + 1)), tenants)  # every tenant once
                rss_many = rss_kib(pid)
                order = list(range(1, tenants + 1))
                random.shuffle(order)
                # "last": 10 tenants again, but the last 10 ids, cached among all N:
                # what the N tenants' cached state costs, apart from their statements.
                phases = {
                    "few": few,
                    "last": itertools.cycle(range(tenants - 9, tenants + 1)),
                    "many": itertools.cycle(order),
                }
                times: dict[str, list[float]] = {phase: [] for phase in phases}
                cpu = dict.fromkeys(phases, 0.0)
                block = max(1, samples // rounds)
                for _ in range(rounds):
                    for phase, cycle in phases.items():
                        before = cpu_s(pid)
                        times[phase] += latencies(client, cycle, block)
                        cpu[phase] += cpu_s(pid) - before
                p50 = {p: statistics.median(times[p]) * 1e6 for p in phases}
                cpu_us = {p: cpu[p] / len(times[p]) * 1e6 for p in phases}
                p50_few, p50_many = p50["few"], p50["many"]
                connections = backend_connections(pg, database)
    finally:
        pg.drop_database(database)
    per_tenant = (rss_many - rss_few) * 1024 / (tenants - 10)
    result = {
        "p50_10_us": p50_few,
        "p50_many_us": p50_many,
        "p50_ratio": p50_many / p50_few,
        "p50_last_10_us": p50["last"],
        "cpu_10_us": cpu_us["few"],
        "cpu_last_10_us": cpu_us["last"],
        "cpu_many_us": cpu_us["many"],
        "rss_10_kib": rss_few,
        "rss_many_kib": rss_many,
        "rss_per_tenant_bytes": per_tenant,
        "backend_connections": connections,
    }
    print(f"\n10 vs {tenants:,} tenants ({driver} driver, schema per tenant, PostgreSQL):")
    print(f"  p50 point select: {p50_few:.0f} µs vs {p50_many:.0f} µs ({p50_many / p50_few:.2f}x;"
          " target ≤ 1.2x)")  # fmt: skip
    print(f"  the last 10 of the {tenants:,} cached tenants: p50 {p50['last']:.0f} µs "
          f"({p50['last'] / p50_few:.2f}x the first 10)")  # fmt: skip
    print(f"  service CPU per request: {cpu_us['few']:.0f} µs (10), {cpu_us['last']:.0f} µs "
          f"(last 10), {cpu_us['many']:.0f} µs (all)")  # fmt: skip
    print(
        "  (cycling over all of them, each request's statement is a text its connection "
        "has not prepared: the server parses and plans it)"
    )
    print(f"  RSS: {rss_few / 1024:.1f} MiB vs {rss_many / 1024:.1f} MiB, "
          f"{per_tenant / 1024:.2f} KiB per tenant (target ≤ 2 KB)")  # fmt: skip
    print(f"  backend connections: {connections} (cap {POOL})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=2000, help="per phase, over the rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--driver", choices=("native", "odbc"), default="native")
    args = parser.parse_args()
    with pg_server() as pg:
        run(pg, tenants=args.tenants, samples=args.samples, driver=args.driver, rounds=args.rounds)


if __name__ == "__main__":
    main()
