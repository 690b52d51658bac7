"""Checks of pool and timeout options, shared by every driver's pool (pure, no I/O).

Settings come from a configuration file: every kind of nonsense is one ``ValueError``
with the option's name, raised when a pool is built, never at first use.
"""

from __future__ import annotations

import math

__all__ = ["check_count", "check_seconds"]


def check_seconds(name: str, value: float, *, allow_zero: bool = False) -> None:
    # ``not (x > 0)`` also rejects NaN, which compares false with everything.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")  # noqa: TRY004
    if math.isinf(value) or not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")


def check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
