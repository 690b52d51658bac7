"""Fleets of SQLite files: ``DIR/tenants/t00001.db``..., one file per tenant.

A tenant is written with the standard library's ``sqlite3`` (the service reads it
through its own driver, native or ODBC) into ``t00001.db.part`` with journaling and
syncing off, and renamed into place when complete: a file under its final name is
always whole, and carries the marker table ``tenantgate_fleet(fleet_id, role,
customer_id)``. Leftover ``.part`` files of a killed run are the fleet's own staging
files in the fleet's own folder and are simply removed.

Rows: the shared base rows (``seed_store.sqlite3_base_rows``, converted once to what
``sqlite3`` stores) and each tenant's custom values, with ``executemany``: tens of
milliseconds a tenant of 1,000 contacts, so there is no template to copy.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path

from proxy.bench.seed_store import (
    MARKER_TABLE,
    Obj,
    Owner,
    Role,
    SeedFailed,
    StoreConfig,
    TenantPlan,
    contact_rows,
    crash_point,
    sqlite3_base_rows,
)
from proxy.demo.layout import odbc_sqlite
from proxy.demo.seed import TABLE_ORDER, insert_sql, schema_ddl, table_columns

__all__ = ["SqliteStore"]

TENANTS = "tenants"


def _owner(path: Path) -> Owner:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute(f"SELECT fleet_id, role, customer_id FROM {MARKER_TABLE}").fetchone()
    except sqlite3.Error:
        return Owner(None)
    if row is None:
        return Owner(None)
    return Owner(str(row[0]), str(row[1]), int(row[2]) if row[2] is not None else None)  # type: ignore[arg-type]


class SqliteStore:
    def __init__(self, config: StoreConfig) -> None:
        if config.layout != "file":
            raise SeedFailed("SQLite fleets have one file per tenant (--layout file)")
        if config.controller_on_server:
            raise SeedFailed("a SQLite fleet has no server for its controller")
        self.config = config
        self.folder = Path(config.directory) / TENANTS

    def _path(self, obj: Obj) -> Path:
        return self.folder / obj.name

    def tenant_obj(self, tenant: TenantPlan) -> Obj:
        return Obj("file", f"{tenant.stem}.db")

    def helpers(self) -> list[tuple[Obj, Role]]:
        return []

    def connection_string(self, tenant: TenantPlan) -> str:
        return odbc_sqlite(self._path(self.tenant_obj(tenant)).resolve())

    def batch_size(self) -> int:
        return 10

    def inventory(self, planned: Collection[Obj]) -> dict[Obj, Owner]:
        return {obj: _owner(self._path(obj)) for obj in planned if self._path(obj).exists()}

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("t*.db.part"):
            stale.unlink(missing_ok=True)

    def registry(self) -> None:
        return None

    def build(self, tenants: Sequence[TenantPlan]) -> None:
        rows = sqlite3_base_rows(self.config.contacts, self.config.seed)
        for tenant in tenants:
            final = self._path(self.tenant_obj(tenant))
            part = final.with_name(final.name + ".part")
            part.unlink(missing_ok=True)
            custom = tenant.columns()
            conn = sqlite3.connect(part)
            try:
                # Published by rename once complete: no journal needed.
                conn.execute("PRAGMA journal_mode=OFF")
                conn.execute("PRAGMA synchronous=OFF")
                for statement in schema_ddl("sqlite", custom_columns=custom):
                    conn.execute(statement)
                conn.commit()
                crash_point(tenant.customer_id)
                for table in TABLE_ORDER:
                    cols = table_columns(table, custom if table == "Contacts" else ())
                    data = (
                        contact_rows(
                            self.config.contacts, self.config.seed, custom, for_sqlite3=True
                        )
                        if table == "Contacts"
                        else rows[table]
                    )
                    conn.executemany(insert_sql(table, cols, "sqlite"), data)
                conn.execute(
                    f"CREATE TABLE {MARKER_TABLE} (fleet_id TEXT NOT NULL, role TEXT NOT NULL, "
                    "customer_id INTEGER)"
                )
                conn.execute(
                    f"INSERT INTO {MARKER_TABLE} VALUES (?, 'tenant', ?)",
                    (self.config.fleet_id, tenant.customer_id),
                )
                conn.commit()
            finally:
                conn.close()
            os.replace(part, final)

    def discard(self, obj: Obj) -> None:
        self._path(obj).unlink(missing_ok=True)

    def drop_fleet(self) -> list[Obj]:
        dropped: list[Obj] = []
        if not self.folder.is_dir():
            return dropped
        for path in sorted(self.folder.glob("t*.db")):
            if _owner(path).fleet_id == self.config.fleet_id:
                path.unlink()
                dropped.append(Obj("file", path.name))
        for stale in self.folder.glob("t*.db.part"):
            stale.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only if nothing else is left in it
        return dropped

    def close(self) -> None:
        pass
