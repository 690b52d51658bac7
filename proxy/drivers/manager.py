"""Which driver serves a tenant: the backend's kind and its configured client library.

=============  ==============================  ====================================
backend        ``driver = "native"`` (default)  ``driver = "odbc"``
=============  ==============================  ====================================
postgresql     psycopg 3, async, on the loop   pyodbc + psqlODBC in worker threads
sqlite         sqlite3, inline on the loop     pyodbc + sqliteodbc in worker threads
sqlserver      (none: always ODBC)             pyodbc + Microsoft ODBC 18 / FreeTDS
=============  ==============================  ====================================

A driver object opens nothing until a tenant needs it. The ODBC driver always exists:
the controller is an ODBC source.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from proxy.drivers.base import Driver
from proxy.drivers.odbc.driver import OdbcDriver
from proxy.drivers.sizing import PoolOptions
from tenancy.backends import BackendKind

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

__all__ = ["CHOICES", "Drivers"]

_NATIVE: dict[BackendKind, tuple[str, str]] = {
    BackendKind.POSTGRESQL: ("proxy.drivers.postgres", "PostgresDriver"),
    BackendKind.SQLITE: ("proxy.drivers.sqlite", "SqliteDriver"),
}
CHOICES: dict[BackendKind, tuple[str, ...]] = {
    BackendKind.POSTGRESQL: ("native", "odbc"),
    BackendKind.SQLITE: ("native", "odbc"),
    BackendKind.SQLSERVER: ("odbc",),
}
"""The client libraries each backend may be served by; the first is the default."""


class Drivers:
    """The process's drivers, one per (backend kind, choice)."""

    def __init__(
        self,
        options: PoolOptions,
        *,
        choices: Mapping[BackendKind, str] | None = None,
        threads: int = 32,
    ) -> None:
        self.options = options
        self.odbc = OdbcDriver(options, threads=threads)
        chosen_by_kind: dict[BackendKind, str] = {}
        for kind, allowed in CHOICES.items():
            chosen = (choices or {}).get(kind, allowed[0])
            if chosen not in allowed:
                raise ValueError(f"backend {kind.value}: driver must be one of {allowed}")
            chosen_by_kind[kind] = chosen
        self._by_kind: dict[BackendKind, Driver] = {}
        for kind, chosen in chosen_by_kind.items():
            if chosen == "odbc":
                self._by_kind[kind] = self.odbc
            else:
                module, name = _NATIVE[kind]
                self._by_kind[kind] = getattr(importlib.import_module(module), name)(options)

    def for_location(self, location: TenantLocation) -> Driver:
        return self._by_kind[location.kind]

    def all(self) -> list[Driver]:
        return list({id(d): d for d in (self.odbc, *self._by_kind.values())}.values())

    @property
    def db_errors(self) -> tuple[type[BaseException], ...]:
        """Every library error class a driver's blocking source may raise."""
        return tuple(dict.fromkeys(e for d in self.all() for e in d.db_errors))

    def get_stats(self) -> dict[str, dict[str, int]]:
        """Pool statistics of every driver, per server label."""
        totals: dict[str, dict[str, int]] = {}
        for driver in self.all():
            for server, stats in driver.get_stats().items():
                total = totals.setdefault(server, {})
                for key, value in stats.items():
                    total[key] = total.get(key, 0) + value
        return totals

    async def aclose(self) -> None:
        for driver in self.all():
            await driver.aclose()
