"""Side by side, in one run with interleaved rounds (issue #8, item 8): the same
PostgreSQL point select through

* tenantgate (the real service process, ``tests/support/stack.py``);
* the naive passthrough: bare Starlette + uvicorn + ``anyio.to_thread`` + pyodbc on a
  pool of 4 (``baseline_app.py``, ``POST /v1/query``), running the backend SQL that
  tenantgate generates (from ``/v1/explain``) with the same binds;
* the HTTP floor: the same server stack returning constant JSON (``POST /floor``);
* pgbench directly against the tenant's database (``-M prepared``, a custom script with
  the same SQL and binds);
* pgbench through PgBouncer (Debian ``pgbouncer``, started here as the ``postgres``
  user on a free loopback port, transaction pooling, a pool of 4 server connections
  like tenantgate's ``pool.max_size``, an md5 auth file written here). PgBouncer 1.18
  cannot keep protocol-level prepared statements in transaction pooling (that came in
  1.21), so pgbench runs ``-M extended`` through it.

HTTP targets are loaded by ``wrk -t1`` with a Lua script that POSTs the JSON body with a
key varying over the tenant's contacts; pgbench varies it with ``random()``. For each
target and concurrency: requests/s, p50, p99 and the CPU µs per request of the server
process (utime + stime from /proc/PID/stat over the run, divided by the requests
served); for pgbench, the PgBouncer process's CPU. PostgreSQL backends' CPU is in none
of them, nor is the load generator's. Figures are medians across rounds.

Then one 818-column row (a tenant seeded with 800 custom columns): 1 row and 1,000
rows through tenantgate (p50 under ``wrk -c1``, a C client: httpx alone spends several
ms on a 48 KB answer, which is not tenantgate's cost) versus the same backend SQL on a
direct psycopg 3 connection (prepared, in-process), or pyodbc when psycopg is not
installed (the report says which). Then 10
against 10,000 tenants (``many_tenants.py``): p50, RSS per tenant, backend connections.

Last (issue #13), pgbench through tenantgate's PostgreSQL wire front end next to
pgbench through PgBouncer and directly: ``pgbench_compare.py``'s comparison (its own
service with ``[pgwire]`` on, its own seeded tenant, -c 16 and -c 1, all three pgbench
modes) on the same PostgreSQL server, with this run's ``--rounds`` and ``--seconds``.
``--no-pgwire`` leaves it out; ``pgbench_compare.py`` still runs it alone.

    .venv/bin/python benchmarks/compare.py [--rounds 3] [--seconds 4] \\
        [--concurrency 1,16,64] [--no-pgwire] [--tiny]

Needs ``wrk``, ``pgbouncer`` (Debian packages; ``make bench`` installs them) and
``pgbench`` (PostgreSQL's server package). ``--tiny`` is the smoke test's size.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import many_tenants  # noqa: E402
from procstat import cpu_s  # noqa: E402

from proxy.demo.seed import custom_columns, seed_tenant  # noqa: E402
from tests.support.pg import PgServer, pg_server  # noqa: E402
from tests.support.stack import FULL_TOKEN, PG_CONTACTS, Stack, running_stack  # noqa: E402

SQL = "SELECT FirstName FROM Contacts WHERE ContactID = ?"
TENANT = 12  # pg12.example: PostgreSQL, 20 custom columns
SQLITE_TENANT = 2  # beta.example: the demo's SQLite tenant, 20 custom columns
WIDE_TENANT, WIDE_DOMAIN, WIDE_CUSTOM = 99, "pgwide.example", 800
SENTINEL = 987_654_321  # the key given to /v1/explain, to find its place among the binds
PGBOUNCER_PASSWORD = "bench-Pgbouncer-secret"
POOL = 4  # tenantgate's pool.max_size in the stack; the passthrough and PgBouncer match it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pgbench_path() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pgbench"), key=lambda p: int(p.split("/")[4])
    )
    return found[-1] if found else shutil.which("pgbench")


def missing_tools() -> list[str]:
    missing = [tool for tool in ("wrk", "pgbouncer") if shutil.which(tool) is None]
    return missing + ([] if pgbench_path() else ["pgbench"])


@dataclass(frozen=True)
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None
    """CPU µs per request of the server process, or ``None`` where there is none."""


# -- the load generators ---------------------------------------------------------------


def wrk_script(directory: Path, tenant: int = TENANT) -> Path:
    """POST the point select with a key varying over the tenant's contacts."""
    body = json.dumps({"tenant": tenant, "sql": SQL, "params": [0]}).replace("[0]", "[%d]")
    path = directory / f"compare-{tenant}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "Bearer {FULL_TOKEN}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "local n = 0\n"
        f"local body = [[{body}]]\n"
        "request = function()\n"
        "  n = n + 1\n"
        f"  return wrk.format(nil, nil, nil, string.format(body, n % {PG_CONTACTS} + 1))\n"
        "end\n"
    )
    return path


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(url: str, script: Path, seconds: int, connections: int, pid: int) -> Sample:
    c0 = cpu_s(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         "-s", str(script), url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    cpu = cpu_s(pid) - c0
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors under load at {url}:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    return Sample(
        rps,
        _ms(*p50.groups()),  # type: ignore[union-attr]
        _ms(*p99.groups()),  # type: ignore[union-attr]
        cpu / max(requests, 1) * 1e6,
    )


def pgbench_script(directory: Path, backend_sql: str, binds: list[Any]) -> Path:
    """The backend SQL with pgbench variables for its binds (the key varying)."""
    pieces = backend_sql.split("?")
    if len(pieces) != len(binds) + 1:
        raise RuntimeError(f"cannot map {binds} onto the markers of {backend_sql}")
    lines = [f"\\set key random(1, {PG_CONTACTS})"]
    sql = pieces[0]
    for i, (bind, piece) in enumerate(zip(binds, pieces[1:], strict=True)):
        if bind == SENTINEL:
            sql += ":key" + piece
        else:
            lines.append(f"\\set b{i} {int(bind)}")
            sql += f":b{i}" + piece
    path = directory / "compare.pgbench.sql"
    path.write_text("\n".join([*lines, sql + ";"]) + "\n")
    return path


def run_pgbench(
    pg: PgServer, port: int, database: str, script: Path, *, seconds: int, clients: int,
    mode: str, logdir: Path, pid: int | None,
) -> Sample:  # fmt: skip
    for old in logdir.glob("pgb.*"):
        old.unlink()
    c0 = cpu_s(pid) if pid else 0.0
    done = subprocess.run(
        [pgbench_path() or "pgbench", "-n", "-M", mode, "-c", str(clients), "-j", "1",
         "-T", str(seconds), "-f", str(script), "-l", "--log-prefix", str(logdir / "pgb"),
         "-h", pg.host, "-p", str(port), "-U", pg.user, database],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PGPASSWORD": PGBOUNCER_PASSWORD},
    )  # fmt: skip
    cpu = cpu_s(pid) - c0 if pid else 0.0
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
    processed = int(re.search(r"actually processed: (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    tps = float(re.search(r"tps = ([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    latencies: list[int] = []
    for log in logdir.glob("pgb.*"):
        with open(log, encoding="ascii") as f:
            latencies.extend(int(line.split()[2]) for line in f)
    latencies.sort()
    # pgbench's per-transaction log is stamped with a lazily read clock: under load most
    # transactions show 0 µs, so its median means nothing. The "p50" given is pgbench's
    # own latency average instead (clients x duration / transactions), and the p99 from
    # the log is a lower bound.
    mean_ms = float(re.search(r"latency average = ([\d.]+) ms", done.stdout).group(1))  # type: ignore[union-attr]
    return Sample(
        tps,
        mean_ms,
        latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] / 1e3,
        cpu / max(processed, 1) * 1e6 if pid else None,
    )


# -- the servers -----------------------------------------------------------------------


@contextlib.contextmanager
def baseline(dsn: str, backend_sql: str, extra: list[Any]) -> Iterator[tuple[str, int]]:
    """``baseline_app.py`` as its own process: its base URL and pid."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "baseline_app.py"), "--port", str(port),
         "--dsn", dsn, "--sql", backend_sql, "--extra", json.dumps(extra), "--pool", str(POOL)]
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                httpx.post(f"{url}/floor", content=b"{}", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError("baseline_app.py exited early") from None
                time.sleep(0.1)
        else:
            raise RuntimeError("baseline_app.py did not start")
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def pgbouncer(pg: PgServer, database: str) -> Iterator[tuple[int, int]]:
    """PgBouncer in front of ``database``, transaction pooling: its port and pid.

    It refuses to run as root: as root, it runs as ``postgres`` from a directory that
    user owns."""
    directory = Path(tempfile.mkdtemp(prefix="tenantgate-pgbouncer-"))
    port = free_port()
    (directory / "userlist.txt").write_text(f'"{pg.user}" "{PGBOUNCER_PASSWORD}"\n')
    (directory / "pgbouncer.ini").write_text(
        f"[databases]\n"
        f"{database} = host={pg.host} port={pg.port} dbname={database} user={pg.user}\n"
        f"[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = md5\nauth_file = {directory / 'userlist.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {POOL}\nmax_client_conn = 500\n"
        f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
    )
    command = ["pgbouncer", str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (directory, *directory.iterdir()):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        command = ["runuser", "-u", "postgres", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = 0
    try:
        deadline = time.monotonic() + 15
        while True:
            pidfile = directory / "pgbouncer.pid"
            if pidfile.exists() and pidfile.read_text().strip():
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    pid = int(pidfile.read_text())
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = directory / "pgbouncer.log"
                raise RuntimeError(
                    f"pgbouncer did not start:\n{log.read_text() if log.exists() else ''}"
                )
            time.sleep(0.1)
        yield port, pid
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


# -- the point select ------------------------------------------------------------------

TARGETS = (
    ("tenantgate", "tenantgate /v1/query"),
    ("tenantgate_sqlite", "tenantgate, SQLite tenant (sqlite3)"),
    ("naive", "naive Starlette+thread+pyodbc"),
    ("floor", "HTTP floor (constant JSON)"),
    ("pgbench", "pgbench direct, prepared"),
    ("pgbouncer", "pgbench via PgBouncer, extended"),
)


def point_select(stack: Stack, args: argparse.Namespace, tmp: Path) -> None:
    with stack.client() as http:
        plan = http.post(
            "/v1/explain", json={"tenant": TENANT, "sql": SQL, "params": [SENTINEL]}
        ).json()
        check = http.post("/v1/query", json={"tenant": TENANT, "sql": SQL, "params": [7]})
        assert check.status_code == 200 and len(check.json()["rows"]) == 1, check.text
    backend_sql, binds = plan["sql"], list(plan["params"])
    if binds.index(SENTINEL) != 0:
        raise RuntimeError(f"the passthrough appends binds after the key: {binds}")
    database = stack.pg_databases[TENANT]
    script = wrk_script(tmp)
    sqlite_script = wrk_script(tmp, SQLITE_TENANT)
    bench_sql = pgbench_script(tmp, backend_sql, binds)
    logdir = tmp / "pgbench-logs"
    logdir.mkdir()
    dsn = stack.pg.odbc(database, BoolsAsChar="0")
    results: dict[tuple[str, int], list[Sample]] = {}
    with (
        baseline(dsn, backend_sql, binds[1:]) as (base_url, base_pid),
        pgbouncer(stack.pg, database) as (bouncer_port, bouncer_pid),
    ):
        answer = httpx.post(f"{base_url}/v1/query", json={"params": [7]}).json()
        assert answer["rows"] == check.json()["rows"], (answer, check.text)
        runs: dict[str, Callable[[int], Sample]] = {
            "tenantgate": lambda c: run_wrk(
                f"{stack.url}/v1/query", script, args.seconds, c, stack.pid
            ),
            # The same point select on the demo's SQLite tenant (beta.example, 1,000
            # contacts, more than PG_CONTACTS): the native SQLite driver's target.
            "tenantgate_sqlite": lambda c: run_wrk(
                f"{stack.url}/v1/query", sqlite_script, args.seconds, c, stack.pid
            ),
            "naive": lambda c: run_wrk(f"{base_url}/v1/query", script, args.seconds, c, base_pid),
            "floor": lambda c: run_wrk(f"{base_url}/floor", script, args.seconds, c, base_pid),
            "pgbench": lambda c: run_pgbench(
                stack.pg,
                stack.pg.port,
                database,
                bench_sql,
                seconds=args.seconds,
                clients=c,
                mode="prepared",
                logdir=logdir,
                pid=None,
            ),
            "pgbouncer": lambda c: run_pgbench(
                stack.pg,
                bouncer_port,
                database,
                bench_sql,
                seconds=args.seconds,
                clients=c,
                mode="extended",
                logdir=logdir,
                pid=bouncer_pid,
            ),
        }
        # Warm every path (pools, plan caches, PgBouncer's server connections).
        for run in runs.values():
            run(max(args.concurrency))
        for r in range(args.rounds):
            for c in args.concurrency:
                names = list(runs)
                names = names[r % len(names) :] + names[: r % len(names)]  # rotate the order
                for name in names:
                    results.setdefault((name, c), []).append(runs[name](c))
    print(f"\nPostgreSQL point select, tenant pg{TENANT}.example: {SQL}")
    print(f"  keys 1..{PG_CONTACTS}; backend SQL: {backend_sql}  binds: key, {binds[1:]}")
    print(
        f"  medians of {args.rounds} interleaved round(s) of {args.seconds} s per target "
        f"and concurrency; wrk -t1 / pgbench -j1; pool of {POOL} backend connections "
        "for tenantgate, the passthrough and PgBouncer"
    )
    print(f"\n  {'conc':>4}  {'path':34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}")
    med: dict[tuple[str, int], Sample] = {}
    for c in args.concurrency:
        for name, label in TARGETS:
            samples = results[(name, c)]
            cpus = [s.cpu_us for s in samples if s.cpu_us is not None]
            m = med[(name, c)] = Sample(
                statistics.median(s.rps for s in samples),
                statistics.median(s.p50_ms for s in samples),
                statistics.median(s.p99_ms for s in samples),
                statistics.median(cpus) if cpus else None,
            )
            cpu = f"{m.cpu_us:12.0f}" if m.cpu_us is not None else f"{'-':>12}"
            mark = "*" if name.startswith("pgb") else " "
            print(
                f"  {c:>4}  {label:34}{m.rps:9.0f}{m.p50_ms:8.2f}{mark}{m.p99_ms:8.2f}{mark}{cpu}"
            )
    print(
        "  CPU µs/req: the server process (tenantgate; baseline_app.py for the passthrough "
        "and the floor; PgBouncer for pgbench via PgBouncer). PostgreSQL backends' CPU is "
        "in none of them; pgbench direct has no server process of its own."
    )
    print(
        "  * pgbench: p50 is pgbench's latency average (its per-transaction log uses a lazy "
        "clock that records most transactions as 0 µs under load), p99 from that log is a "
        "lower bound."
    )
    print("\n  ratios (issue #8 targets at c16: CPU ≤ 3.5x floor, ≤ 7x PgBouncer;")
    print("          req/s ≥ 2x naive; p99 ≤ naive)")
    print(
        f"  {'conc':>4}{'CPU/floor':>11}{'CPU/PgBouncer':>15}"
        f"{'req/s / naive':>15}{'p99 / naive':>13}"
    )
    for c in args.concurrency:
        tg, naive = med[("tenantgate", c)], med[("naive", c)]
        floor, bouncer = med[("floor", c)], med[("pgbouncer", c)]
        assert tg.cpu_us is not None and floor.cpu_us and bouncer.cpu_us
        print(
            f"  {c:>4}{tg.cpu_us / floor.cpu_us:10.1f}x{tg.cpu_us / bouncer.cpu_us:14.1f}x"
            f"{tg.rps / naive.rps:14.2f}x{tg.p99_ms / naive.p99_ms:12.2f}x"
        )
    print("\n  SQLite point select (native driver), target at c16: CPU ≤ 3x floor")
    for c in args.concurrency:
        lite, floor = med[("tenantgate_sqlite", c)], med[("floor", c)]
        assert lite.cpu_us is not None and floor.cpu_us
        print(f"  {c:>4}  CPU/floor {lite.cpu_us / floor.cpu_us:5.1f}x")


# -- the 818-column row ----------------------------------------------------------------


def _direct_runner(pg: PgServer, database: str) -> tuple[str, Callable[[str, list[Any]], int]]:
    try:
        import psycopg  # noqa: PLC0415
    except ImportError:
        import pyodbc  # noqa: PLC0415

        conn = pyodbc.connect(pg.odbc(database, BoolsAsChar="0"), autocommit=True)

        def run_odbc(sql: str, binds: list[Any]) -> int:
            return len(conn.cursor().execute(sql, binds).fetchall())

        return "pyodbc + psqlODBC direct (psycopg not installed)", run_odbc

    pconn = psycopg.connect(
        host=pg.host, port=pg.port, dbname=database, user=pg.user,
        password=pg.password or None, autocommit=True,
    )  # fmt: skip

    def run_psycopg(sql: str, binds: list[Any]) -> int:
        # tenantgate's '?' markers as psycopg's; prepared, as a driver would for a
        # repeated plan.
        with pconn.cursor() as cur:
            cur.execute(sql.replace("%", "%%").replace("?", "%s"), binds, prepare=True)
            return len(cur.fetchall())

    return f"psycopg {psycopg.__version__} direct, prepared", run_psycopg


def wide_row(stack: Stack, args: argparse.Namespace, tmp: Path) -> None:
    database = stack.pg.create_database("tg_bench_wide")
    try:
        t0 = time.perf_counter()
        with contextlib.closing(stack.pg.connect(database)) as conn:
            seed_tenant(
                conn, "postgresql", contacts=args.wide_rows,
                custom_columns=custom_columns(WIDE_CUSTOM), seed=WIDE_TENANT,
            )  # fmt: skip
        seeded = time.perf_counter() - t0
        with contextlib.closing(sqlite3.connect(tmp / "controller.db")) as controller:
            controller.execute(
                "INSERT INTO Customer VALUES (?, ?, ?)",
                (WIDE_TENANT, WIDE_DOMAIN, stack.pg.odbc(database)),
            )
            controller.commit()
        label, direct = _direct_runner(stack.pg, database)
        wide = "SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID "
        cases = (
            ("1 row", wide + "= ?", 5, 1, args.wide_reps),
            (f"{args.wide_rows:,} rows", wide + "<= ?", args.wide_rows, args.wide_rows,
             max(3, args.wide_reps // 10)),
        )  # fmt: skip
        print(f"\n818-column row: tenant {WIDE_DOMAIN}, Contacts with {WIDE_CUSTOM} custom columns")
        print(f"  (seeded {args.wide_rows:,} contacts in {seeded:.1f} s); direct side: {label}")
        print(
            "  tenantgate: p50 of wrk -t1 -c1 (a C client: a Python HTTP client's own cost"
            " for a 48 KB answer is several ms); direct: median of in-process calls"
        )
        print(f"  {'':12}{'tenantgate ms':>15}{'direct ms':>11}{'ratio':>8}{'columns':>9}")
        with stack.client() as http:
            for name, sql, key, rows, reps in cases:
                body = {"tenant": WIDE_TENANT, "sql": sql, "params": [key], "max_rows": rows}
                plan = http.post("/v1/explain", json={**body, "params": [SENTINEL]}).json()
                binds = [key if b == SENTINEL else b for b in plan["params"]]
                answer = http.post("/v1/query", json=body)
                assert answer.status_code == 200, answer.text[:500]
                assert len(answer.json()["rows"]) == rows, answer.text[:200]
                columns = len(answer.json()["columns"])
                script = tmp / "wide.lua"
                script.write_text(
                    'wrk.method = "POST"\n'
                    f'wrk.headers["Authorization"] = "Bearer {FULL_TOKEN}"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = [[{json.dumps(body)}]]\n"
                )
                tg: list[float] = []
                dr: list[float] = []
                for _ in range(max(1, args.rounds)):  # interleaved: wrk, then direct
                    sample = run_wrk(f"{stack.url}/v1/query", script, args.seconds, 1, stack.pid)
                    tg.append(sample.p50_ms)
                    for i in range(reps + 2):
                        t0 = time.perf_counter()
                        got = direct(plan["sql"], binds)
                        if i >= 2:  # two warm-ups
                            dr.append(time.perf_counter() - t0)
                        assert got == rows, (got, rows)
                t_ms, d_ms = statistics.median(tg), statistics.median(dr) * 1e3
                print(f"  {name:12}{t_ms:15.2f}{d_ms:11.2f}{t_ms / d_ms:7.1f}x{columns:9}")
                if rows > 1:
                    print(
                        f"  {'':12}throughput tenantgate / direct: {d_ms / t_ms:.2f}x"
                        " (target ≥ 0.5x)"
                    )
                else:
                    print(f"  {'':12}(target ≤ 3x direct)")
    finally:
        stack.pg.drop_database(database)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated, e.g. 1,16,64")
    parser.add_argument("--wide-rows", type=int, default=1000)
    parser.add_argument("--wide-reps", type=int, default=30)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--tenant-samples", type=int, default=2000)
    parser.add_argument(
        "--no-pgwire",
        dest="pgwire",
        action="store_false",
        help="leave out pgbench through tenantgate's wire front end (pgbench_compare.py)",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="the smoke test's size: seconds, not minutes"
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in str(args.concurrency).split(",")]
    if args.tiny:
        args.rounds, args.seconds, args.concurrency = 1, 1, [16]
        args.wide_rows, args.wide_reps = 20, 3
        args.tenants, args.tenant_samples = 60, 100
    missing = missing_tools()
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (`make bench` installs wrk and pgbouncer)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, pg_server() as pg:
        with running_stack(Path(tmp), pg) as stack:
            point_select(stack, args, Path(tmp))
            wide_row(stack, args, Path(tmp))
            many_tenants.run(pg, tenants=args.tenants, samples=args.tenant_samples, driver="native")
        if args.pgwire:
            # After the stack has stopped: its idle service is not on the CPUs the
            # pgbench rounds share.
            pgwire(pg, args, Path(tmp) / "pgwire")
    print(f"\ncompare.py done in {time.monotonic() - started:.0f} s")


def pgwire(pg: PgServer, args: argparse.Namespace, root: Path) -> None:
    """pgbench through tenantgate's wire front end, through PgBouncer and directly:
    ``pgbench_compare.run`` with this run's rounds and seconds and its own client counts."""
    # Imported here: pgbench_compare imports this module, which would otherwise find
    # itself half initialised when pgbench_compare.py is the script being run.
    import pgbench_compare  # noqa: PLC0415

    root.mkdir()
    clients = [int(c) for c in pgbench_compare.CLIENTS.split(",")]
    options = argparse.Namespace(
        rounds=args.rounds, seconds=args.seconds, tiny=args.tiny,
        workers=1, profile=False, top=0,
    )  # fmt: skip
    pgbench_compare.run(pg, root, options, pgbench_compare.TINY_CLIENTS if args.tiny else clients)


if __name__ == "__main__":
    main()
