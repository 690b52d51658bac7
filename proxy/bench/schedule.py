"""When requests are due and which tenant each one is for: pure, seeded, testable.

Open loop (``--rate``): arrivals are a Poisson process, as pgbench ``-R`` schedules
them: exponential gaps of mean ``1/rate``, so bursts happen as they do in real traffic.
Every request has its scheduled time before anything is sent, and latency is measured
from it (wrk2's and k6's cure for coordinated omission: a slow response does not delay
the requests due behind it, it makes them late, and late counts).

Tenants: uniform, or Zipf with exponent ``s`` (rank ``k`` drawn with weight ``k**-s``).
Ranks go to the fleet's tenants in a seeded shuffle, so the busiest tenant is not
always customer 1 (and not always the one with the fewest custom columns), yet the
same seed gives the same busy tenants in every run and on every target.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Skew", "SkewError", "TenantPicker", "arrivals", "parse_skew", "zipf_weights"]


class SkewError(ValueError):
    """A ``--skew`` the generator cannot use."""


@dataclass(frozen=True, slots=True)
class Skew:
    kind: str
    """``"uniform"`` or ``"zipf"``."""
    s: float = 0.0
    """The Zipf exponent (``kind == "zipf"``)."""

    def __str__(self) -> str:
        return "uniform" if self.kind == "uniform" else f"zipf:{self.s:g}"


def parse_skew(text: str) -> Skew:
    """``uniform`` or ``zipf:S`` (``S > 0``; ``zipf`` alone means ``zipf:1``)."""
    kind, _, value = text.strip().partition(":")
    kind = kind.casefold()
    if kind == "uniform" and not value:
        return Skew("uniform")
    if kind == "zipf":
        try:
            s = float(value) if value else 1.0
        except ValueError:
            raise SkewError(f"--skew {text!r}: the Zipf exponent must be a number") from None
        if not s > 0 or s > 10:
            raise SkewError(f"--skew {text!r}: the Zipf exponent must be in (0, 10]")
        return Skew("zipf", s)
    raise SkewError(f"--skew {text!r}: expected 'uniform' or 'zipf:S' (e.g. zipf:1.1)")


def zipf_weights(n: int, s: float) -> list[float]:
    """Weights of ranks 1..n, normalised to sum to 1."""
    raw = [k**-s for k in range(1, n + 1)]
    total = sum(raw)
    return [w / total for w in raw]


class TenantPicker:
    """Draws tenant indexes (into the fleet's list) under a skew."""

    def __init__(self, n: int, skew: Skew, seed: int) -> None:
        if n < 1:
            raise SkewError("the fleet has no tenants")
        self.n = n
        order = list(range(n))
        random.Random(f"tenant-order:{seed}").shuffle(order)  # noqa: S311 - not secrets
        self.order: tuple[int, ...] = tuple(order)
        """``order[rank - 1]`` is the tenant of that rank."""
        weights = [1.0 / n] * n if skew.kind == "uniform" else zipf_weights(n, skew.s)
        self.share: dict[int, float] = {order[i]: weights[i] for i in range(n)}
        """The expected share of requests of each tenant index."""
        self._cum = list(itertools.accumulate(weights))
        self._uniform = skew.kind == "uniform"

    def pick(self, rng: random.Random) -> int:
        if self._uniform:
            return rng.randrange(self.n)
        rank = bisect.bisect_right(self._cum, rng.random() * self._cum[-1])
        return self.order[min(rank, self.n - 1)]


def arrivals(rate: float, rng: random.Random, start: float = 0.0) -> Iterator[float]:
    """Scheduled times (seconds, from ``start``) of a Poisson process of ``rate``/s."""
    if not rate > 0:
        raise ValueError("rate must be > 0")
    t = start
    while True:
        t += rng.expovariate(rate)
        yield t
