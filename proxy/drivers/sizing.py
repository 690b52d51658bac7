"""Checks of pool and timeout options, shared by every driver's pool (pure, no I/O).

Settings come from a configuration file: every kind of nonsense is one ``ValueError``
with the option's name, raised when a pool is built, never at first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PoolOptions", "check_count", "check_seconds"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolOptions:
    """How every driver sizes and ages its pools; checked once, here.

    ``max_size`` bounds one pool (a PostgreSQL database, a SQLite file, a SQL Server
    server and login); ``max_per_server`` bounds the pools of one server together.
    """

    max_size: int = 10
    min_size: int = 0
    acquire_timeout: float = 2.0
    login_timeout: float = 5.0
    max_idle: float = 300.0
    max_lifetime: float = 3600.0
    max_per_server: int = 50
    validate_idle: float = 1.0
    """An idle connection unused for this long is checked before it is lent (PostgreSQL:
    a poll of its socket; ODBC: a ``SELECT 1`` round trip)."""
    max_waiting: int = 20
    """Requests that may queue for one pool (and for one server's cap); more are refused
    at once with ``PoolSaturated``. A queue is only worth what it drains within the
    requests' timeouts: a longer one makes callers wait to be refused."""
    label_requests: bool = True
    """Name the request behind each statement on its database session, where the
    backend has a place for it (``logging.request_id_to_database``; see
    ``proxy.drivers``)."""

    def __post_init__(self) -> None:
        check_count("max_size", self.max_size, 1)
        check_count("min_size", self.min_size, 0)
        if self.min_size > self.max_size:
            raise ValueError(
                f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})"
            )
        check_seconds("acquire_timeout", self.acquire_timeout, allow_zero=True)
        check_seconds("login_timeout", self.login_timeout)
        check_seconds("max_idle", self.max_idle)
        check_seconds("max_lifetime", self.max_lifetime)
        check_count("max_per_server", self.max_per_server, 1)
        check_count("max_waiting", self.max_waiting, 0)
        check_seconds("validate_idle", self.validate_idle, allow_zero=True)
