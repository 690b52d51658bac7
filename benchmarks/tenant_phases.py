"""Where a request's time goes, in process, at 10 tenants against N (issue #8).

The same schema-per-tenant PostgreSQL layout as ``many_tenants.py``, but the service
runs in this process (``tests/support/blocking.py``: the real service on one event
loop) and each request reports its phases (``QueryOutcome.phases``: resolve, metadata,
rewrite, execute). Prints the median of each phase and of the whole call, cycling over
10 warm tenants, then over all N warm tenants in random order, twice.

    .venv/bin/python benchmarks/tenant_phases.py [--tenants 3000] [--requests 1000]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import many_tenants as mt  # noqa: E402

from proxy.config import load  # noqa: E402
from proxy.pipeline.request import QueryRequest  # noqa: E402
from tests.support.blocking import BlockingService  # noqa: E402
from tests.support.pg import pg_server  # noqa: E402


def measure(
    service: BlockingService, tenants: Iterator[int], requests: int
) -> tuple[float, dict[str, int]]:
    principal = service.auth.authenticate(f"Bearer {mt.TOKEN}")
    phases: dict[str, list[float]] = {}
    totals = []
    for _ in range(requests):
        req = QueryRequest(tenant=next(tenants), sql=mt.SQL, params=[1])
        started = time.perf_counter()
        outcome = service.query(principal, req)
        totals.append(time.perf_counter() - started)
        for name, seconds in outcome.phases.items():
            phases.setdefault(name, []).append(seconds)
    medians = {name: round(statistics.median(v) * 1e6) for name, v in phases.items()}
    return statistics.median(totals) * 1e6, medians


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    with pg_server() as pg, tempfile.TemporaryDirectory() as tmp:
        database = mt.seed(pg, args.tenants)
        service = BlockingService(load(mt.config(Path(tmp), pg, database, args.tenants, "native")))
        try:
            few = itertools.cycle(range(1, 11))
            measure(service, few, 200)  # warm
            rows = [("10 tenants", *measure(service, few, args.requests))]
            measure(service, iter(range(1, args.tenants + 1)), args.tenants)  # each once
            order = list(range(1, args.tenants + 1))
            random.shuffle(order)
            for label in ("all, 1st", "all, 2nd"):
                rows.append((label, *measure(service, itertools.cycle(order), args.requests)))
        finally:
            service.close()
            pg.drop_database(database)
    print(f"\nmedian µs per request (wall, in process), {args.tenants:,} tenants")
    for label, total, phases in rows:
        parts = "  ".join(f"{k} {v}" for k, v in phases.items())
        print(f"  {label:10}  total {total:6.0f}   {parts}")


if __name__ == "__main__":
    main()
