"""Which statements a PostgreSQL connection keeps prepared: the driver's rule
(``proxy.drivers.postgres.statements.PreparedSet``, TinyLFU's admission) next to
psycopg's (every second sight evicts the least recently used statement once the room
is full), driven with the same sequences of statement texts, without a server.

For each workload: the share of statements that ran prepared (hits) and the share that
dropped a prepared statement to prepare another (evictions; each is a Parse and a
DEALLOCATE on the server, on the CPUs it shares). Workloads:

* uniform over 150, 200 and 400 texts: a working set a little or much larger than the
  room of 100 (``pgbench -M simple`` with its 200 keys is the middle one);
* Zipf 1.0 over 1,000 texts and 0.8 over 400: a few hot statements and a long tail;
* a shift: 100 texts, then 100 others (how fast a new working set takes over: the
  hit rate over the first 5,000 statements after the shift).

    .venv/bin/python benchmarks/prepared_admission.py [--statements 200000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.drivers.postgres.statements import PREPARED_MAX, PreparedSet

Key = tuple[str, tuple[int, ...]]
Workload = Callable[[random.Random, int], list[int]]


def uniform(texts: int) -> Workload:
    return lambda rng, n: [rng.randrange(texts) for _ in range(n)]


def zipf(texts: int, s: float) -> Workload:
    weights = [1 / (rank + 1) ** s for rank in range(texts)]
    return lambda rng, n: rng.choices(range(texts), weights, k=n)


def shift(texts: int) -> Workload:
    """``texts`` texts for the first half, ``texts`` others for the second."""
    return lambda rng, n: [rng.randrange(texts) + (texts if i >= n // 2 else 0) for i in range(n)]


WORKLOADS: tuple[tuple[str, Workload], ...] = (
    ("uniform, 150 texts", uniform(150)),
    ("uniform, 200 texts", uniform(200)),
    ("uniform, 400 texts", uniform(400)),
    ("Zipf 1.0, 1,000 texts", zipf(1000, 1.0)),
    ("Zipf 0.8, 400 texts", zipf(400, 0.8)),
    ("shift, 100 then 100 others", shift(100)),
)


def drive(order: list[int], *, admission: bool) -> tuple[float, float, float]:
    """Hits and evictions per statement over ``order``, and the hit rate over the
    5,000 statements after its middle (a shift's first)."""
    kept = PreparedSet(admission=admission)
    keys: dict[int, Key] = {}
    hits = after = 0
    middle = len(order) // 2
    for i, n in enumerate(order):
        key = keys.get(n)
        if key is None:
            key = keys[n] = (f"SELECT * FROM t WHERE id = {n}", ())
        prepared, name, _, sights = kept.choose(key)
        if name is not None:
            kept.add(key, name, sights)  # as if the server prepared it
        if prepared is not None:
            hits += 1
            if middle <= i < middle + 5000:
                after += 1
    evictions = kept.get_stats()["evictions"]
    return hits / len(order), evictions / len(order), after / min(5000, len(order) - middle)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--statements", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    print(
        f"{args.statements:,} statements per workload on one connection, room "
        f"{PREPARED_MAX}; hits and evictions per 100 statements"
    )
    print(f"\n  {'workload':28}{'rule':>10}{'hits':>8}{'evictions':>11}{'hits after middle':>19}")
    for name, workload in WORKLOADS:
        order = workload(random.Random(args.seed), args.statements)
        for label, admission in (("psycopg", False), ("TinyLFU", True)):
            hits, evictions, after = drive(order, admission=admission)
            print(
                f"  {name:28}{label:>10}{hits * 100:8.1f}{evictions * 100:11.2f}{after * 100:19.1f}"
            )
    print(f"\nprepared_admission.py done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
