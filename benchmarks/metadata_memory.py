"""Memory the metadata cache holds per tenant: a report, not a timed test.

Three scenarios, each filling a fresh ``tenancy.MetadataCache`` through its real API
(``MetadataCache.get`` for every table of every tenant), with a ``source_for`` that
opens real connections (stdlib ``sqlite3``, or the SQLite3 ODBC driver with
``--driver odbc``) to real SQLite files built with ``proxy.demo.seed``:

* ``default``: ``--tenants`` tenants (10,000) of the default shape (``Accounts``,
  ``Contacts``, ``Opportunities``): identical shapes, so one interned
  ``TableMetadata`` per table;
* ``wide-same``: ``--wide-tenants`` tenants (200) whose ``Contacts`` has ``--custom``
  (800) custom columns, the same ones for every tenant (interned);
* ``wide-distinct``: the same number of tenants with 800 custom columns each, every
  tenant's names distinct from every other's (the worst case: nothing is shared).

What is measured is what production holds after those loads: the cache entries and
their keys (``location.key`` strings, folded table names), the per-location index,
the interned ``TableMetadata`` objects with their columns, lookup tables and
fingerprints, and the intern table. Not counted: the ``TenantLocation`` objects
themselves (the tenant resolver owns them, and they exist whether or not metadata is
cached) and the SQLite files.

Tenants of one shape share one SQLite file by default (``--files shared``): the
cache keys by ``location.key``, not by file, so every tenant still gets its own
entries and its own load; ``--files per-tenant`` builds one file per tenant (slower
to set up, same figures). Per repetition: ``tracemalloc`` bytes held after the loads
(``gc.collect()`` first) and the RSS delta of a fill without ``tracemalloc`` (RSS
falls on later repetitions as the allocator reuses freed arenas: the first is the
honest one). The report gives medians and the top allocation sites of the last run.

    .venv/bin/python benchmarks/metadata_memory.py [--tenants 10000] [--wide-tenants 200]
        [--custom 800] [--reps 3] [--files shared|per-tenant] [--driver sqlite3|odbc]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.demo.seed import BASE_MODEL, Column, custom_columns, schema_ddl  # noqa: E402
from tenancy import connstr  # noqa: E402
from tenancy.location import TenantLocation, locate  # noqa: E402
from tenancy.metadata import BaseModel, MetadataCache, interned_count  # noqa: E402
from tenancy.sources import ConnectionSource, odbc_source  # noqa: E402

TABLES = tuple(BASE_MODEL)
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def build_file(path: Path, custom: Sequence[Column]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        for ddl in schema_ddl("sqlite", custom_columns=custom):
            db.execute(ddl)
        db.commit()


def distinct_custom(count: int, tenant: int) -> list[Column]:
    """``count`` custom columns whose names no other tenant has."""
    return [
        Column(f"t{tenant:05d}_{c.name}", c.type, hint=c.hint)
        for c in custom_columns(count, seed=tenant + 1)
    ]


@dataclass
class Scenario:
    name: str
    tenants: int
    files: list[Path]  # one per tenant (some may be the same file)


def locations_for(files: Sequence[Path]) -> list[TenantLocation]:
    # Distinct tenants even on a shared file: the Database= spelling differs (a
    # ``./`` per tenant would not be canonical, so use a query-free alias per tenant).
    out = []
    for i, path in enumerate(files):
        cs = connstr.parse(f"Driver=SQLite3;Database={path};Timeout={1000 + i}")
        out.append(locate(cs, {}))
    return out


def make_source_for(driver: str) -> Callable[[TenantLocation], ConnectionSource]:
    def source_for(location: TenantLocation) -> ConnectionSource:
        if driver == "odbc":
            return odbc_source(location.connect.to_odbc())

        @contextlib.contextmanager
        def connection() -> Iterator[Any]:
            conn = sqlite3.connect(str(location.database))
            try:
                yield conn
            finally:
                conn.close()

        return connection

    return source_for


def fill(locations: Sequence[TenantLocation], driver: str) -> MetadataCache:
    cache = MetadataCache(
        source_for=make_source_for(driver),
        base_model=BaseModel(BASE_MODEL),
        ttl=3600,
        negative_ttl=10,
        maxsize=max(200_000, 4 * len(locations)),
    )
    for location in locations:
        for table in TABLES:
            if cache.get(location, table) is None:
                raise RuntimeError(f"{table} missing in {location.database}")
    return cache


@dataclass
class Result:
    traced: list[int]
    rss: list[int]
    seconds: list[float]
    shapes: int
    entries: int
    top: list[str]


def measure(locations: Sequence[TenantLocation], reps: int, driver: str) -> Result:
    traced: list[int] = []
    rsses: list[int] = []
    seconds: list[float] = []
    top: list[str] = []
    shapes = entries = 0
    for rep in range(reps):
        gc.collect()
        before = rss()
        cache = fill(locations, driver)
        gc.collect()
        rsses.append(rss() - before)
        del cache
        gc.collect()

        tracemalloc.start(1)
        gc.collect()
        base_snap = tracemalloc.take_snapshot() if rep == reps - 1 else None
        base, _ = tracemalloc.get_traced_memory()
        t0 = time.perf_counter()
        cache = fill(locations, driver)
        seconds.append(time.perf_counter() - t0)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
        traced.append(held - base)
        if base_snap is not None:
            snap = tracemalloc.take_snapshot()
            filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
            stats = snap.filter_traces(filters).compare_to(
                base_snap.filter_traces(filters), "lineno"
            )
            for stat in stats[:8]:
                frame = stat.traceback[0]
                where = f"{Path(frame.filename).name}:{frame.lineno}"
                top.append(f"{stat.size_diff / len(locations):9.0f} B/tenant  {where}")
        tracemalloc.stop()
        stats_now = cache.get_stats()
        shapes, entries = stats_now["shapes"], stats_now["size"]
        del cache
        gc.collect()
    return Result(traced, rsses, seconds, shapes, entries, top)


def report(name: str, tenants: int, r: Result) -> None:
    per = statistics.median(r.traced) / tenants
    print(f"\n== {name}: {tenants} tenants, {r.entries} cache entries, {r.shapes} shapes alive")
    print(
        f"  tracemalloc: {per:,.0f} B/tenant (median of {len(r.traced)}; "
        f"runs: {', '.join(f'{t / tenants:,.0f}' for t in r.traced)}); "
        f"total {statistics.median(r.traced) / 2**20:,.1f} MiB"
    )
    print(
        f"  RSS delta:   {r.rss[0] / tenants:,.0f} B/tenant first run, "
        f"median {statistics.median(r.rss) / tenants:,.0f} "
        f"(runs: {', '.join(f'{x / tenants:,.0f}' for x in r.rss)})"
    )
    print(f"  fill time:   {statistics.median(r.seconds):.2f} s (under tracemalloc)")
    print("  top allocation sites (last run):")
    for line in r.top:
        print("   ", line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tenants", type=int, default=10_000)
    ap.add_argument("--wide-tenants", type=int, default=200)
    ap.add_argument("--custom", type=int, default=800)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--files", choices=("shared", "per-tenant"), default="shared")
    ap.add_argument("--driver", choices=("sqlite3", "odbc"), default="sqlite3")
    ap.add_argument("--only", choices=("default", "wide-same", "wide-distinct"), action="append")
    args = ap.parse_args()
    only = set(args.only or ("default", "wide-same", "wide-distinct"))
    print(
        f"metadata memory: driver {args.driver}, files {args.files}, {args.reps} repetitions, "
        f"Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="tg-metamem-") as tmp:
        root = Path(tmp)

        def files(
            tag: str, n: int, custom: Callable[[int], Sequence[Column]], shared: bool
        ) -> list[Path]:
            if shared:
                path = root / f"{tag}.db"
                build_file(path, custom(0))
                return [path] * n
            paths = [root / f"{tag}-{i}.db" for i in range(n)]
            for i, path in enumerate(paths):
                build_file(path, custom(i))
            return paths

        shared = args.files == "shared"
        scenarios: list[tuple[str, list[Path]]] = []
        if "default" in only:
            scenarios.append(("default", files("default", args.tenants, lambda _: (), shared)))
        if "wide-same" in only:
            same = custom_columns(args.custom)
            scenarios.append(
                ("wide-same", files("wide", args.wide_tenants, lambda _: same, shared))
            )
        if "wide-distinct" in only:
            # Distinct columns cannot share a file.
            scenarios.append(
                (
                    "wide-distinct",
                    files(
                        "distinct",
                        args.wide_tenants,
                        lambda i: distinct_custom(args.custom, i),
                        False,
                    ),
                )
            )
        for name, paths in scenarios:
            locations = locations_for(paths)
            result = measure(locations, args.reps, args.driver)
            report(name, len(locations), result)
            del locations
    print(f"\nshapes alive at exit: {interned_count()}")


if __name__ == "__main__":
    main()
