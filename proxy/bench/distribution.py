"""How many custom columns each tenant of a seeded fleet gets on ``Contacts``.

Real fleets are skewed: most tenants carry a few dozen custom fields, a long tail
carries hundreds. ``tenantgate seed --custom-columns SPEC`` describes that as weighted
ranges, each drawn uniformly::

    0-50:90%,51-800:10%     nine tenants in ten get 0..50 columns, one in ten 51..800
    20                      every tenant gets exactly 20
    0-50                    uniformly 0..50

The grammar is ``RANGE[:PERCENT%]`` items separated by commas, ``RANGE`` being ``N`` or
``LOW-HIGH`` (inclusive). Either one item without a weight, or every item with one,
the weights adding up to 100 %. Counts stop at ``MAX_CUSTOM_COLUMNS``.

A tenant's count depends only on the fleet's seed and its customer id (a generator
seeded with both), never on the fleet's size or the order tenants are built in: a
resumed or grown fleet draws the same counts again.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = ["MAX_CUSTOM_COLUMNS", "Bucket", "CustomColumnDistribution", "DistributionError"]

MAX_CUSTOM_COLUMNS = 1000
"""SQL Server allows 1,024 columns per table and ``Contacts`` has 18 base columns; the
other backends allow more (PostgreSQL 1,600, SQLite 2,000), one cap keeps a spec valid
on every backend."""

_ITEM = re.compile(r"(\d+)(?:\s*-\s*(\d+))?(?:\s*:\s*(\d+(?:\.\d+)?)\s*%)?")


class DistributionError(ValueError):
    """A ``--custom-columns`` spec that does not parse or does not add up."""


@dataclass(frozen=True, slots=True)
class Bucket:
    low: int
    high: int
    percent: float

    def __str__(self) -> str:
        span = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return f"{span}:{self.percent:g}%"


@dataclass(frozen=True, slots=True)
class CustomColumnDistribution:
    buckets: tuple[Bucket, ...]

    @classmethod
    def parse(cls, spec: str) -> CustomColumnDistribution:
        """``"0-50:90%,51-800:10%"`` to a distribution; ``DistributionError`` says why not."""
        items = [part.strip() for part in spec.split(",")]
        if not spec.strip() or any(not part for part in items):
            raise DistributionError(
                f"empty item in custom-column spec {spec!r} (expected e.g. '0-50:90%,51-800:10%')"
            )
        parsed: list[tuple[int, int, float | None]] = []
        for part in items:
            m = _ITEM.fullmatch(part)
            if m is None:
                raise DistributionError(
                    f"cannot read {part!r} in custom-column spec {spec!r}: write RANGE or "
                    "RANGE:PERCENT%, RANGE being N or LOW-HIGH (e.g. '0-50:90%,51-800:10%')"
                )
            low = int(m.group(1))
            high = int(m.group(2)) if m.group(2) is not None else low
            if low > high:
                raise DistributionError(f"range {part!r} runs backwards ({low} > {high})")
            if high > MAX_CUSTOM_COLUMNS:
                raise DistributionError(
                    f"range {part!r} goes past {MAX_CUSTOM_COLUMNS} custom columns "
                    "(SQL Server's 1,024 columns per table, less the 18 base columns)"
                )
            parsed.append((low, high, float(m.group(3)) if m.group(3) is not None else None))
        weights = [w for _, _, w in parsed]
        if len(parsed) == 1 and weights[0] is None:
            return cls((Bucket(parsed[0][0], parsed[0][1], 100.0),))
        if any(w is None for w in weights):
            raise DistributionError(
                f"custom-column spec {spec!r}: with several ranges, give each a weight "
                "(e.g. '0-50:90%,51-800:10%')"
            )
        total = sum(w for w in weights if w is not None)
        if abs(total - 100.0) > 1e-6:
            raise DistributionError(
                f"custom-column spec {spec!r}: the weights add up to {total:g}%, not 100%"
            )
        if any(w == 0 for w in weights):
            raise DistributionError(f"custom-column spec {spec!r}: a range weighs 0%")
        return cls(tuple(Bucket(lo, hi, w) for lo, hi, w in parsed if w is not None))

    def __str__(self) -> str:
        """The canonical spec (what ``parse`` reads back to an equal distribution)."""
        return ",".join(str(b) for b in self.buckets)

    @property
    def mean(self) -> float:
        """The expected count: what a tenant costs on average."""
        return sum((b.low + b.high) / 2 * b.percent / 100 for b in self.buckets)

    def count_for(self, customer_id: int, *, seed: int) -> int:
        """The custom-column count of ``customer_id`` in a fleet seeded with ``seed``."""
        rng = random.Random(f"tenantgate-seed:{seed}:{customer_id}:custom-count")  # noqa: S311
        x = rng.random() * 100.0
        acc = 0.0
        chosen = self.buckets[-1]
        for bucket in self.buckets:
            acc += bucket.percent
            if x < acc:
                chosen = bucket
                break
        return rng.randint(chosen.low, chosen.high)
