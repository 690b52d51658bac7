"""What ``tenantgate seed`` asks of a backend (a *store*), and what the stores share.

A store creates, recognises and removes the objects of one fleet on one backend: the
tenants' databases, schemas or files, and the helpers it needs (a template database,
the schema layout's database, a controller database on the server). The seeder
(``proxy.bench.seed``) decides what to build; stores only carry it out:

* ``inventory(planned)``: which of the planned objects exist, and whose they are. An
  object is the fleet's when it carries the fleet's **marker**: a ``COMMENT`` on
  PostgreSQL databases and schemas, a one-row table ``tenantgate_fleet(fleet_id, role,
  customer_id)`` in SQLite files and SQL Server databases. The marker is written as the
  last step of building an object, so a marked tenant is a complete one.
* ``prepare()`` creates the helpers, ``build(tenants)`` a batch of tenants (in a worker
  process when the seeder runs several), ``discard(obj)`` drops one object.
* ``drop_fleet()`` drops whatever carries this fleet's marker, and nothing else.

A tenant's data: the default schema of ``proxy.demo.seed`` with ``custom_columns(n,
seed=column_seed)`` on ``Contacts``. Base rows come from ``generate_rows(seed=fleet
seed)``, generated once per process (``base_rows``) and shared by every tenant (as
``seed_tenant`` would load them); the custom columns' values from
``sampled_custom_values``, which builds them column by column from 100 distinct values
each: per-row generation took 70 % of a tenant's build time.

``TENANTGATE_SEED_CRASH_AT=<customer id>`` (tests only) kills the process with SIGKILL
right after that tenant's database, schema or file was created and before it is
complete: a real crash at the worst moment, for the resume tests.
"""

from __future__ import annotations

import functools
import os
import re
import signal
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from proxy.demo.seed import (
    TABLE_ORDER,
    Column,
    SeedCounts,
    Value,
    custom_columns,
    generate_rows,
    sampled_custom_values,
    sqlite3_row,
    sqlite3_value,
)

__all__ = [
    "CRASH_ENV",
    "MARKER_TABLE",
    "Obj",
    "Owner",
    "Registry",
    "Role",
    "SeedFailed",
    "Store",
    "StoreConfig",
    "TenantPlan",
    "base_rows",
    "contact_rows",
    "crash_point",
    "marker_text",
    "parse_marker",
    "sqlite3_base_rows",
]

CRASH_ENV = "TENANTGATE_SEED_CRASH_AT"
MARKER_TABLE = "tenantgate_fleet"
Role = Literal["tenant", "template", "database", "controller"]


class SeedFailed(Exception):
    """Seeding cannot go on; the message is for the operator (no secrets). ``code`` is
    the exit status: 2 for what the operator asked wrongly (a refusal), 1 otherwise."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[SeedFailed], tuple[str, int]]:
        return (type(self), (str(self), self.code))  # across worker processes


@dataclass(frozen=True, slots=True)
class Obj:
    """A database, a schema (in the fleet's database) or a file."""

    kind: Literal["database", "schema", "file"]
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose an existing object is, from its marker."""

    fleet_id: str | None
    """``None``: no marker (not made by ``tenantgate seed``, or not finished)."""
    role: Role | None = None
    customer_id: int | None = None


@dataclass(frozen=True, slots=True)
class TenantPlan:
    customer_id: int
    custom_columns: int
    column_seed: int

    @property
    def domain(self) -> str:
        return f"t{self.customer_id:05d}.fleet.example"

    @property
    def stem(self) -> str:
        """The tenant's part of its database, schema or file name."""
        return f"t{self.customer_id:05d}"

    def columns(self) -> list[Column]:
        return custom_columns(self.custom_columns, seed=self.column_seed)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Everything a store needs, picklable (worker processes rebuild the store from it)."""

    backend: str
    layout: str
    fleet_id: str
    directory: str
    contacts: int
    seed: int
    prefix: str = "tgfleet"
    database: str = ""
    """The schema layout's database."""
    server: str = ""
    """PostgreSQL: a ``postgresql://`` URL; SQL Server: an ODBC string. May hold the password."""
    password: str | None = None
    controller_on_server: bool = False

    def __repr__(self) -> str:  # the server address may hold a password
        return f"StoreConfig({self.backend}/{self.layout}, fleet {self.fleet_id})"


def marker_text(fleet_id: str, role: Role, customer_id: int | None = None) -> str:
    """A PostgreSQL ``COMMENT``'s text: ``tenantgate fleet <id> tenant 17``."""
    tail = f" {customer_id}" if customer_id is not None else ""
    return f"tenantgate fleet {fleet_id} {role}{tail}"


_MARKER = re.compile(
    r"tenantgate fleet ([0-9a-f]{32}) (tenant|template|database|controller)(?: (\d+))?"
)


def parse_marker(text: str | None) -> Owner:
    m = _MARKER.fullmatch(text or "")
    if m is None:
        return Owner(None)
    cid = int(m.group(3)) if m.group(3) else None
    return Owner(m.group(1), m.group(2), cid)  # type: ignore[arg-type]


def crash_point(customer_id: int) -> None:
    """The tests' crash hook (see the module docstring)."""
    if os.environ.get(CRASH_ENV) == str(customer_id):
        os.kill(os.getpid(), signal.SIGKILL)


@functools.cache
def base_rows(contacts: int, seed: int) -> dict[str, tuple[tuple[Value, ...], ...]]:
    """Every tenant's base rows (table -> rows), generated once per process."""
    counts = SeedCounts.for_contacts(contacts)
    return {t: tuple(generate_rows(t, counts, seed=seed)) for t in TABLE_ORDER}


@functools.cache
def sqlite3_base_rows(contacts: int, seed: int) -> dict[str, tuple[tuple[Value, ...], ...]]:
    """``base_rows`` as the stdlib ``sqlite3`` module stores them (``sqlite3_row``)."""
    return {t: tuple(map(sqlite3_row, r)) for t, r in base_rows(contacts, seed).items()}


def contact_rows(
    contacts: int, seed: int, custom: Sequence[Column], *, for_sqlite3: bool = False
) -> Sequence[tuple[Value, ...]]:
    """``Contacts`` rows with ``custom`` columns: the shared base rows plus their tails."""
    shared = sqlite3_base_rows if for_sqlite3 else base_rows
    base = shared(contacts, seed)["Contacts"]
    if not custom:
        return base
    tails = sampled_custom_values(
        "Contacts",
        len(base),
        seed=seed,
        custom=custom,
        adapt=sqlite3_value if for_sqlite3 else None,
    )
    return [row + tail for row, tail in zip(base, tails, strict=True)]


class Registry(Protocol):
    """The fleet's controller table ``Customer(customer_id, domainname, sqlconnectstring)``."""

    @property
    def connection_string(self) -> str:
        """The ODBC string tenantgate reaches it with (may hold a password)."""
        ...

    def register(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Insert or replace (customer id, domain, connection string) rows."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    config: StoreConfig

    def tenant_obj(self, tenant: TenantPlan) -> Obj: ...

    def helpers(self) -> list[tuple[Obj, Role]]:
        """The objects ``prepare`` creates (template, fleet database, controller)."""
        ...

    def inventory(self, planned: Collection[Obj]) -> dict[Obj, Owner]:
        """The planned objects that exist, with their owners (others may be included)."""
        ...

    def prepare(self) -> None:
        """Create the missing helpers (the seeder discarded half-made ones)."""
        ...

    def build(self, tenants: Sequence[TenantPlan]) -> None:
        """Create, seed and mark ``tenants`` (none of them exists)."""
        ...

    def discard(self, obj: Obj) -> None: ...

    def connection_string(self, tenant: TenantPlan) -> str:
        """The ODBC string tenantgate reaches the tenant with (may hold a password)."""
        ...

    def registry(self) -> Registry | None:
        """The controller on the server (``controller_on_server``), else ``None``."""
        ...

    def drop_fleet(self) -> list[Obj]:
        """Drop every object carrying this fleet's marker; what was dropped."""
        ...

    def batch_size(self) -> int: ...

    def close(self) -> None: ...
