"""Memory under a flood of distinct large statements (issue #9, item 5).

Starts the real service process (``tests/support/stack.py`` ``serve``) on the SQLite
demo tenants, or with ``--backend postgresql`` on one PostgreSQL tenant of the same
schema (a private cluster, or ``TENANTGATE_TEST_PG_DSN``), warms it with small
statements, then sends ``--statements`` distinct large statements, each under the
statement limits and the body limit, in turn to the tenants, four kinds in rotation:

* an IN list of ``--in-items`` integer literals;
* the same list of ``?`` parameters (sent with ``--in-items`` values);
* a string literal that makes the text ``--long-chars`` characters long;
* a select list of ``--in-items // 2`` aliased columns.

Prints the service's resident set size (``VmRSS`` of ``/proc/PID/status``) after the
warm-up and after each quarter of the flood, the answers by status, and the growth
against the target: 1,000 distinct large statements raise RSS by at most 64 MB. A
second flood of as many new statements shows whether memory keeps growing or stays
bounded (the caches evict by size, so it should stay flat). Last, in this process,
the plan cache's estimate of each kind against what tracemalloc measures it holds.

    .venv/bin/python benchmarks/memory.py [--statements 1000] [--in-items 2000]
        [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procstat import rss_kib  # noqa: E402

from proxy.auth import hash_token  # noqa: E402
from proxy.demo.layout import create_demo  # noqa: E402
from proxy.demo.seed import custom_columns, seed_tenant  # noqa: E402
from rewriter.plan_cache import PlanCache  # noqa: E402
from tests.support.pg import pg_server  # noqa: E402
from tests.support.stack import FULL_TOKEN, serve  # noqa: E402
from tests.support.tenants import base_model_toml, write_controller  # noqa: E402
from tests.unit.rewriter.shapes import SCHEMA  # noqa: E402

TARGET_MB = 64
SQLITE_TENANTS = ("alpha.example", "beta.example", "gamma.example")
PG_TENANTS = ("pg.example",)


def config(controller: Path) -> str:
    base_model = base_model_toml()
    return f"""
[controller]
connection_string = "Driver=SQLite3;Database={controller}"

[backends.sqlite]
driver = "native"

[base_model]
{base_model}

[[tokens]]
name = "full"
sha256 = "{hash_token(FULL_TOKEN)}"
tenants = ["*"]
classes = ["read"]
"""


def statements(
    count: int, start: int, in_items: int, long_chars: int, tenants: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    """``count`` distinct request bodies, numbered from ``start``."""
    for i in range(start, start + count):
        tenant = tenants[i % len(tenants)]
        kind = i % 4
        params: list[int] = []
        if kind == 0:
            values = ", ".join(str(i * in_items + k) for k in range(in_items))
            sql = f"SELECT ContactID, FirstName FROM Contacts WHERE ContactID IN ({values})"
        elif kind == 1:
            markers = ", ".join("?" * in_items)
            sql = (
                f"SELECT ContactID FROM Contacts WHERE ContactID IN ({markers}) "
                f"AND LastName <> 'n{i}'"
            )
            params = list(range(in_items))
        elif kind == 2:
            head = "SELECT ContactID FROM Contacts WHERE FirstName = '"
            pad = long_chars - len(head) - len(str(i)) - 1
            sql = f"{head}{i}{'x' * pad}'"
        else:
            items = ", ".join(f"FirstName AS c{i}_{k}" for k in range(in_items // 2))
            sql = f"SELECT TOP 1 {items} FROM Contacts"
        yield {"tenant": tenant, "sql": sql, "params": params, "max_rows": 10}


def flood(
    client: httpx.Client, pid: int, bodies: Iterator[dict[str, Any]], count: int
) -> tuple[collections.Counter[str], list[int], float]:
    """Send the bodies; the answers by status and code, RSS (KiB) after each quarter."""
    answers: collections.Counter[str] = collections.Counter()
    marks: list[int] = []
    quarter = max(1, count // 4)
    started = time.perf_counter()
    for n, body in enumerate(bodies, start=1):
        response = client.post("/v1/query", json=body)
        code = "" if response.status_code == 200 else response.json()["error"]["code"]
        answers[f"{response.status_code} {code}".strip()] += 1
        if n % quarter == 0 or n == count:
            marks.append(rss_kib(pid))
    return answers, marks, time.perf_counter() - started


def estimates(in_items: int, long_chars: int) -> list[tuple[str, int, int]]:
    """(kind, the parse cache's estimate, tracemalloc's measure) of each kind's tree."""
    names = ("IN literals", "IN parameters", "long text", "select list")
    found = []
    for kind, body in enumerate(statements(4, 4 * 10**6, in_items, long_chars, ("t",))):
        cache = PlanCache()
        gc.collect()
        tracemalloc.start()
        cache.parse(body["sql"], dialect="tsql")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        found.append((names[kind], cache.get_stats()["parsed_bytes"], held))
        cache.plan(cache.parse(body["sql"], dialect="tsql"), tables=SCHEMA, backend="sqlite")
    return found


@contextlib.contextmanager
def controller(root: Path, backend: str, contacts: int) -> Iterator[Path]:
    """The controller of the run's tenants: the SQLite demo's, or one PostgreSQL tenant."""
    if backend == "sqlite":
        yield create_demo(root / "demo", contacts=contacts).controller_path
        return
    with pg_server() as pg, pg.fresh_database() as database:
        with contextlib.closing(pg.connect(database)) as conn:
            seed_tenant(conn, "postgresql", contacts=contacts, custom_columns=custom_columns(20))
        path = root / "controller.db"
        write_controller(path, [(1, PG_TENANTS[0], pg.odbc(database))])
        yield path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--statements", type=int, default=1000)
    parser.add_argument("--in-items", type=int, default=2000)
    parser.add_argument("--long-chars", type=int, default=90_000)
    parser.add_argument("--contacts", type=int, default=200, help="contacts per tenant")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    tenants = SQLITE_TENANTS if args.backend == "sqlite" else PG_TENANTS
    sizes = (args.in_items, args.long_chars, tenants)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config_path = root / "tenantgate.toml"
        with controller(root, args.backend, args.contacts) as controller_path:
            config_path.write_text(config(controller_path), encoding="utf-8")
            with (
                serve(config_path, root / "service.log") as (url, pid),
                httpx.Client(
                    base_url=url, headers={"Authorization": f"Bearer {FULL_TOKEN}"}, timeout=60
                ) as client,
            ):
                # Warm every path: each tenant's metadata, pools, pipelines, a large one.
                for body in statements(8, 10**6, min(args.in_items, 50), 1000, tenants):
                    client.post("/v1/query", json=body).raise_for_status()
                before = rss_kib(pid)
                n = args.statements
                first = flood(client, pid, statements(n, 0, *sizes), n)
                second = flood(client, pid, statements(n, n, *sizes), n)
            log = (root / "service.log").read_text(encoding="utf-8", errors="replace")

    def mb(kib: float) -> str:
        return f"{kib / 1024:7.1f}"

    print(
        f"\n{args.statements:,} distinct large statements per flood (IN lists of "
        f"{args.in_items:,} literals or parameters, {args.long_chars:,}-character texts, "
        f"{args.in_items // 2:,}-column select lists), {args.backend} tenants {', '.join(tenants)}"
    )
    print(f"  RSS after warm-up          {mb(before)} MB")
    for label, (answers, marks, seconds) in (("1st", first), ("2nd", second)):
        quarters = "  ".join(mb(m).strip() for m in marks)
        print(f"  {label} flood, each quarter   {quarters} MB   ({seconds:.0f} s)")
        print(f"  {label} flood answers         {dict(answers)}")
    growth = (first[1][-1] - before) / 1024
    total = (second[1][-1] - before) / 1024
    verdict = "ok" if growth <= TARGET_MB else "OVER"
    print(f"  RSS growth, 1st flood      {growth:7.1f} MB   target <= {TARGET_MB} MB: {verdict}")
    print(f"  RSS growth, both floods    {total:7.1f} MB")
    errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    print(f"  service log: {len(log.splitlines())} lines, {len(errors)} errors")
    print("\n  parse cache entry per kind: estimate / held (tracemalloc)")
    for name, estimate, held in estimates(args.in_items, args.long_chars):
        print(f"    {name:14} {estimate / 1024:8.0f} / {held / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
