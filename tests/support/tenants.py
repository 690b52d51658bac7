"""A ``Service`` over two freshly seeded tenants: ``lite.example`` (a SQLite file) and
``pg.example`` (a PostgreSQL database), for integration tests of the admin and records
APIs. Each tenant's ``Contacts`` carries ``custom`` custom columns."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.auth import Principal, hash_token
from proxy.config import ControllerSettings, PoolSettings, Settings, TokenSettings
from proxy.schema_seed import BASE_MODEL, Column, seed_tenant
from proxy.service import Service
from tests.support.pg import PgServer

ADMIN = "integration-admin"
WRITER = "integration-writer"
READER = "integration-reader"
TENANTS = ("lite.example", "pg.example")


@dataclass
class Tenants:
    service: Service
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
    tmp_path: Path, pg: PgServer, pg_database: str, custom: Sequence[Column] = ()
) -> Iterator[Tenants]:
    with contextlib.closing(pg.connect(pg_database)) as conn:
        seed_tenant(conn, "postgresql", contacts=10, custom_columns=custom, seed=1)
    sqlite_file = tmp_path / "tenant.db"
    with contextlib.closing(sqlite3.connect(sqlite_file)) as conn:
        seed_tenant(conn, "sqlite", contacts=10, custom_columns=custom, seed=1)
    controller = tmp_path / "controller.db"
    with contextlib.closing(sqlite3.connect(controller)) as db:
        db.execute(
            "CREATE TABLE Customer (customer_id INTEGER PRIMARY KEY, domainname TEXT,"
            " sqlconnectstring TEXT)"
        )
        db.execute(
            "INSERT INTO Customer VALUES (1, 'lite.example', ?)",
            (f"Driver=SQLite3;Database={sqlite_file}",),
        )
        db.execute("INSERT INTO Customer VALUES (2, 'pg.example', ?)", (pg.odbc(pg_database),))
        db.commit()
    settings = Settings(
        controller=ControllerSettings(connection_string=f"Driver=SQLite3;Database={controller}"),
        pool=PoolSettings(max_size=2),
        backend_templates={"postgresql": "BoolsAsChar=0", "sqlite": "Timeout=5000"},
        base_model={t: tuple(c) for t, c in BASE_MODEL.items()},
        tokens=(
            TokenSettings(
                name="admin", sha256=hash_token(ADMIN), classes=("read", "write", "admin")
            ),
            TokenSettings(name="writer", sha256=hash_token(WRITER), classes=("read", "write")),
            TokenSettings(name="reader", sha256=hash_token(READER), classes=("read",)),
        ),
    )
    svc = Service(settings, registry=CollectorRegistry())
    try:
        yield Tenants(svc, sqlite_file, pg, pg_database)
    finally:
        svc.close()
