"""A ``Service`` over two freshly seeded tenants: ``lite.example`` (a SQLite file) and
``pg.example`` (a PostgreSQL database), for integration tests of the service, the admin
and the records APIs. Each tenant's ``Contacts`` carries ``custom`` custom columns."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.auth import Principal, hash_token
from proxy.config import (
    ControllerSettings,
    PoolSettings,
    QuerySettings,
    Settings,
    TokenSettings,
    TransactionSettings,
)
from proxy.demo.seed import BASE_MODEL, Column, seed_tenant
from tests.support.blocking import BlockingService
from tests.support.pg import PgServer

ADMIN = "integration-admin"
WRITER = "integration-writer"
READER = "integration-reader"
TENANTS = ("lite.example", "pg.example")


def token(name: str, secret: str, *classes: str) -> TokenSettings:
    """A bearer token ``secret``, allowed the statement ``classes``."""
    return TokenSettings(name=name, sha256=hash_token(secret), classes=classes)


TOKENS = (
    token("admin", ADMIN, "read", "write", "admin"),
    token("writer", WRITER, "read", "write"),
    token("reader", READER, "read"),
)
TEMPLATES = {"postgresql": "BoolsAsChar=0", "sqlite": "Timeout=5000"}


def base_model_toml() -> str:
    """The demo's base model as the lines of a ``[base_model]`` section."""
    return "\n".join(
        f"{table} = [{', '.join(repr(c) for c in cols)}]" for table, cols in BASE_MODEL.items()
    )


def write_controller(path: Path, customers: Iterable[tuple[int, str, str]]) -> str:
    """A SQLite controller at ``path`` listing ``customers`` (id, domain, connection
    string); its connection string."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE Customer (customer_id INTEGER PRIMARY KEY, domainname TEXT UNIQUE,"
            " sqlconnectstring TEXT)"
        )
        db.executemany("INSERT INTO Customer VALUES (?, ?, ?)", list(customers))
        db.commit()
    return f"Driver=SQLite3;Database={path}"


def service_for(
    controller: Path,
    customers: Mapping[str, str],
    *,
    pool: PoolSettings | None = None,
    backend_templates: Mapping[str, str] | None = None,
    tokens: Sequence[TokenSettings] = TOKENS,
    backend_drivers: Mapping[str, str] | None = None,
    changes_table: str = "",
    run_dir: str | None = None,
    transactions: TransactionSettings | None = None,
    query: QuerySettings | None = None,
) -> BlockingService:
    """A ``Service`` over a new controller at ``controller`` listing ``customers``
    (domain -> connection string, ids from 1 in order), with the default base model;
    the caller closes it."""
    rows = [(i, domain, cs) for i, (domain, cs) in enumerate(customers.items(), start=1)]
    settings = Settings(
        controller=ControllerSettings(
            connection_string=write_controller(controller, rows), changes_table=changes_table
        ),
        pool=pool or PoolSettings(),
        backend_templates=dict(backend_templates or {}),
        backend_drivers=dict(backend_drivers if backend_drivers is not None else suite_drivers()),
        base_model={t: tuple(c) for t, c in BASE_MODEL.items()},
        tokens=tuple(tokens),
        transactions=transactions or TransactionSettings(),
        query=query or QuerySettings(),
    )
    return BlockingService(settings, registry=CollectorRegistry(), run_dir=run_dir)


def suite_drivers() -> dict[str, str]:
    """The client libraries the suite runs PostgreSQL and SQLite tenants on.

    ``TENANTGATE_TEST_DRIVERS=odbc`` runs them through pyodbc (psqlODBC, sqliteodbc);
    the default is the native drivers (psycopg, sqlite3). ``make test`` runs both.
    """
    choice = os.environ.get("TENANTGATE_TEST_DRIVERS", "native")
    if choice not in ("native", "odbc"):
        raise ValueError(f"TENANTGATE_TEST_DRIVERS must be native or odbc, not {choice!r}")
    return {"postgresql": choice, "sqlite": choice}


def backends_toml() -> str:
    """The ``[backends.sqlite]`` and ``[backends.postgresql]`` sections the suite's
    service processes run with: the drivers of ``suite_drivers``."""
    drivers = suite_drivers()
    return f"""[backends.sqlite]
template = "Timeout=5000"
driver = "{drivers["sqlite"]}"

[backends.postgresql]
template = "BoolsAsChar=0"
driver = "{drivers["postgresql"]}"
"""


@dataclass
class Tenants:
    service: BlockingService
    sqlite_file: Path
    pg: PgServer
    pg_database: str

    def principal(self, token: str) -> Principal:
        return self.service.auth.authenticate(f"Bearer {token}")

    def read(self, tenant: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows read straight from the tenant's database, not through tenantgate."""
        if tenant == "lite.example":
            with contextlib.closing(sqlite3.connect(self.sqlite_file)) as conn:
                return [tuple(r) for r in conn.execute(sql, tuple(params)).fetchall()]
        with contextlib.closing(self.pg.connect(self.pg_database)) as conn:
            return [tuple(r) for r in conn.execute(sql, tuple(params)).fetchall()]

    def alter(self, tenant: str, sql: str) -> None:
        """DDL or a write straight on the tenant's database (behind tenantgate's back)."""
        if tenant == "lite.example":
            with contextlib.closing(sqlite3.connect(self.sqlite_file)) as conn:
                conn.execute(sql)
                conn.commit()
            return
        with contextlib.closing(self.pg.connect(self.pg_database)) as conn:
            conn.execute(sql)
            conn.commit()

    def count(self, tenant: str, where: str, *params: Any) -> int:
        """How many ``Contacts`` rows match ``where`` (``?`` binds, quoted names)."""
        rows = self.read(tenant, f'SELECT COUNT(*) FROM "Contacts" WHERE {where}', params)
        return int(rows[0][0])

    def columns(self, tenant: str) -> list[str]:
        if tenant == "lite.example":
            return [r[1] for r in self.read(tenant, "PRAGMA table_info('Contacts')")]
        return [
            r[0]
            for r in self.read(
                tenant,
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'Contacts' ORDER BY ordinal_position",
            )
        ]


@contextlib.contextmanager
def seeded_service(
    tmp_path: Path,
    pg: PgServer,
    pg_database: str,
    custom: Sequence[Column] = (),
    *,
    contacts: int = 10,
    pool_max_size: int = 2,
    backend_templates: Mapping[str, str] = TEMPLATES,
    tokens: Sequence[TokenSettings] = TOKENS,
    seed_more: Callable[[Any, str], None] | None = None,
    transactions: TransactionSettings | None = None,
    query: QuerySettings | None = None,
) -> Iterator[Tenants]:
    """Seed both tenants with ``contacts`` contacts, then start the service on them.

    ``seed_more(conn, backend)``, if given, runs on each tenant's seeding connection
    (``backend`` is ``"postgresql"`` or ``"sqlite"``) before the service starts."""
    with contextlib.closing(pg.connect(pg_database)) as conn:
        seed_tenant(conn, "postgresql", contacts=contacts, custom_columns=custom, seed=1)
        if seed_more is not None:
            seed_more(conn, "postgresql")
    sqlite_file = tmp_path / "tenant.db"
    with contextlib.closing(sqlite3.connect(sqlite_file)) as conn:
        seed_tenant(conn, "sqlite", contacts=contacts, custom_columns=custom, seed=1)
        if seed_more is not None:
            seed_more(conn, "sqlite")
            conn.commit()
    svc = service_for(
        tmp_path / "controller.db",
        {
            "lite.example": f"Driver=SQLite3;Database={sqlite_file}",
            "pg.example": pg.odbc(pg_database),
        },
        pool=PoolSettings(max_size=pool_max_size),
        backend_templates=backend_templates,
        tokens=tokens,
        transactions=transactions,
        query=query,
    )
    try:
        yield Tenants(svc, sqlite_file, pg, pg_database)
    finally:
        svc.close()


@contextlib.contextmanager
def sqlite_service(
    tmp_path: Path, *, contacts: int, seed_more: Callable[[sqlite3.Connection], None] | None = None
) -> Iterator[BlockingService]:
    """The service over one SQLite tenant, ``lite.example``, seeded with ``contacts``
    contacts (then ``seed_more(conn)``, if given, before the service starts)."""
    tenant_file = tmp_path / "tenant.db"
    with contextlib.closing(sqlite3.connect(tenant_file)) as conn:
        seed_tenant(conn, "sqlite", contacts=contacts, seed=1)
        if seed_more is not None:
            seed_more(conn)
        conn.commit()
    svc = service_for(
        tmp_path / "controller.db", {"lite.example": f"Driver=SQLite3;Database={tenant_file}"}
    )
    try:
        yield svc
    finally:
        svc.close()
