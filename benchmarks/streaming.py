"""A million rows streamed through tenantgate, beside the same rows fetched directly.

Seeds a PostgreSQL tenant (a private cluster, or ``TENANTGATE_TEST_PG_DSN``) with a
``Numbers`` table of ``--rows`` rows (an integer, a text, a numeric), generated on the
server, starts the real service process on it (``tests/support/stack.py`` ``serve``)
and, in alternating rounds, reads every row:

* ``psycopg named``: psycopg 3 in this process, a server-side cursor (``itersize``
  1000): what a client does that streams from PostgreSQL itself;
* ``psycopg fetchall``: the same with a client-side cursor, the whole result at once
  (what a stream avoids);
* ``tenantgate ndjson`` / ``tenantgate csv``: ``POST /v1/query`` with ``Accept:
  application/x-ndjson`` or ``text/csv``, read with httpx (lines counted, not parsed).

For each: wall time, rows/s, CPU µs per 1,000 rows (this process for psycopg, the
service process from ``/proc/PID/stat`` for tenantgate), and memory: the growth of
the reading process's high-water mark (``VmHWM``) for psycopg, the service's
``VmHWM`` growth and its ``VmRSS`` after the round for tenantgate. The service's
``VmHWM`` is read before its first stream too, so the first round shows what the
stream adds to a warm process.

    .venv/bin/python benchmarks/streaming.py [--rows 1000000] [--rounds 3] [--driver native|odbc]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.procstat import cpu_s  # noqa: E402
from proxy.auth import hash_token  # noqa: E402
from proxy.demo.seed import seed_tenant  # noqa: E402
from tests.support.pg import PgServer, pg_server  # noqa: E402
from tests.support.stack import serve  # noqa: E402
from tests.support.tenants import base_model_toml, write_controller  # noqa: E402

TOKEN = "bench-stream-token"
SQL = "SELECT N, Label, Amount FROM Numbers"
DIRECT_SQL = 'SELECT "N", "Label", "Amount" FROM "Numbers"'


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def _connect(pg: PgServer, database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=pg.user,
        password=pg.password,
        dbname=database,
        autocommit=True,
    )


def _seed(pg: PgServer, database: str, rows: int) -> None:
    with contextlib.closing(pg.connect(database)) as conn:
        seed_tenant(conn, "postgresql", contacts=10, seed=1)
    with contextlib.closing(_connect(pg, database)) as conn:
        conn.execute(
            'CREATE TABLE "Numbers" ("N" integer PRIMARY KEY, "Label" text, "Amount" numeric)'
        )
        conn.execute(
            "INSERT INTO \"Numbers\" SELECT n, 'row ' || n, n / 4.0 FROM generate_series(1, %s) n",
            (rows,),
        )
        conn.execute('VACUUM ANALYZE "Numbers"')


def _config(controller: Path, driver: str) -> str:
    return f"""
[controller]
connection_string = "Driver=SQLite3;Database={controller}"

[backends.postgresql]
template = "BoolsAsChar=0"
driver = "{driver}"

[query]
max_timeout_ms = 60000

[base_model]
{base_model_toml()}

[[tokens]]
name = "bench"
sha256 = "{hash_token(TOKEN)}"
tenants = ["*"]
classes = ["read"]
"""


def _direct(pg: PgServer, database: str, *, named: bool) -> tuple[int, float, int]:
    """rows, CPU seconds of this process, VmHWM growth (KiB)."""
    me = os.getpid()
    before = _status_kib(me, "VmHWM")
    cpu = time.process_time()
    count = 0
    with contextlib.closing(_connect(pg, database)) as conn:
        if named:
            with conn.transaction(), conn.cursor(name="bench") as cur:
                cur.itersize = 1000
                cur.execute(DIRECT_SQL)
                for _ in cur:
                    count += 1
        else:
            with conn.cursor() as cur:
                cur.execute(DIRECT_SQL)
                count = len(cur.fetchall())
    return count, time.process_time() - cpu, _status_kib(me, "VmHWM") - before


def _through(client: httpx.Client, pid: int, accept: str) -> tuple[int, float, int]:
    """lines, CPU seconds of the service, service VmHWM growth (KiB)."""
    before = _status_kib(pid, "VmHWM")
    cpu = cpu_s(pid)
    lines = 0
    body = {"tenant": "bench.example", "sql": SQL, "timeout_ms": 60000}
    with client.stream("POST", "/v1/query", json=body, headers={"Accept": accept}) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            lines += chunk.count(b"\n")
    return lines, cpu_s(pid) - cpu, _status_kib(pid, "VmHWM") - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--driver", choices=("native", "odbc"), default="native")
    args = parser.parse_args()
    with pg_server() as pg, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        database = pg.create_database("tg_bench_stream")
        try:
            started = time.monotonic()
            _seed(pg, database, args.rows)
            print(f"seeded {args.rows:,} rows in {time.monotonic() - started:.1f} s")
            controller = root / "controller.db"
            write_controller(controller, [(1, "bench.example", pg.odbc(database))])
            config = root / "tenantgate.toml"
            config.write_text(_config(controller, args.driver), encoding="utf-8")
            with serve(config, root / "service.log") as (url, pid):
                headers = {"Authorization": f"Bearer {TOKEN}"}
                with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                    _rounds(args, pg, database, client, pid)
        finally:
            pg.drop_database(database)
    return 0


def _rounds(
    args: argparse.Namespace, pg: PgServer, database: str, client: httpx.Client, pid: int
) -> None:
    client.post("/v1/query", json={"tenant": "bench.example", "sql": SQL, "max_rows": 10})
    print(f"service before streaming: VmRSS {_status_kib(pid, 'VmRSS') / 1024:.0f} MiB,"
          f" VmHWM {_status_kib(pid, 'VmHWM') / 1024:.0f} MiB")  # fmt: skip
    print(f"{'round':>5}  {'reader':<18} {'s':>6} {'rows/s':>10} {'CPU µs/1k rows':>15}"
          f" {'HWM +MiB':>9} {'svc RSS MiB':>12}")  # fmt: skip
    ways: list[tuple[str, Callable[[], tuple[int, float, int]]]] = [
        ("psycopg named", lambda: _direct(pg, database, named=True)),
        ("tenantgate ndjson", lambda: _through(client, pid, "application/x-ndjson")),
        ("tenantgate csv", lambda: _through(client, pid, "text/csv")),
        ("psycopg fetchall", lambda: _direct(pg, database, named=False)),
    ]
    for n in range(1, args.rounds + 1):
        for name, way in ways:
            started = time.perf_counter()
            count, cpu, hwm = way()
            wall = time.perf_counter() - started
            rows = args.rows
            rss = f"{_status_kib(pid, 'VmRSS') / 1024:12.0f}" if "tenantgate" in name else " " * 12
            print(f"{n:>5}  {name:<18} {wall:6.2f} {rows / wall:10,.0f} {cpu / rows * 1e9:15,.0f}"
                  f" {hwm / 1024:9.1f} {rss}")  # fmt: skip
            if count < rows:
                raise RuntimeError(f"{name}: {count} rows/lines, expected {rows}")


if __name__ == "__main__":
    sys.exit(main())
