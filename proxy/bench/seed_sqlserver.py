"""Fleets on SQL Server (or a T-SQL engine such as Babelfish): a database per tenant.

Reached through pyodbc with the ODBC string of ``--server`` (its ``Database`` is
replaced per tenant; tenants' connection strings are that string too, so tenantgate
uses the same driver and login). A tenant is ``CREATE DATABASE``, then
``proxy.demo.seed.seed_tenant`` in it (DDL, ``executemany``; parameter arrays with
Microsoft's driver), then the marker table ``tenantgate_fleet(fleet_id, role,
customer_id)``. Markers are read from ``master`` with three-part names, one query per
database that exists under a planned name.

There is no template to copy: SQL Server's ``CREATE DATABASE`` copies ``model``, and
``model`` is shared by every database of the server, not the fleet's to change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from typing import Any

import pyodbc

from proxy.bench.seed_store import (
    MARKER_TABLE,
    Obj,
    Owner,
    Role,
    SeedFailed,
    StoreConfig,
    TenantPlan,
    crash_point,
)
from proxy.demo.seed import seed_tenant
from tenancy import connstr
from tenancy.errors import InvalidConnectionString

__all__ = ["SqlServerStore", "server_label"]


def _base(config: StoreConfig) -> connstr.ConnectionString:
    try:
        cs = connstr.parse(config.server)
    except InvalidConnectionString:
        raise SeedFailed(
            "--server is not an ODBC connection string (Driver=...;Server=...;UID=...)"
        ) from None
    if config.password is not None:
        cs = cs.without("Password").replace("PWD", config.password)
    return cs


def server_label(config: StoreConfig) -> str:
    cs = _base(config)
    server = cs.get("Server") or cs.get("Address") or "?"
    port = cs.get("Port")
    return f"{cs.get('UID') or cs.get('User') or ''}@{server}{f':{port}' if port else ''}"


def _bracket(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def _first_line(exc: BaseException) -> str:
    # pyodbc errors are (sqlstate, message)
    args: tuple[object, ...] = exc.args
    text = str(args[1] if len(args) > 1 else exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


class _Registry:
    def __init__(self, store: SqlServerStore, database: str) -> None:
        self._store = store
        self._database = database
        self._conn: Any = None

    @property
    def connection_string(self) -> str:
        return self._store.odbc(self._database)

    def register(self, rows: Sequence[tuple[int, str, str]]) -> None:
        if self._conn is None:
            self._conn = self._store.connect(self._database, autocommit=False)
        cur = self._conn.cursor()
        try:
            for cid, domain, cs in rows:
                cur.execute("DELETE FROM dbo.Customer WHERE customer_id = ?", cid)
                cur.execute("INSERT INTO dbo.Customer VALUES (?, ?, ?)", cid, domain, cs)
            self._conn.commit()
        finally:
            cur.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pyodbc.Error):
                self._conn.close()
            self._conn = None


class SqlServerStore:
    def __init__(self, config: StoreConfig) -> None:
        if config.layout != "database":
            raise SeedFailed("SQL Server fleets have a database per tenant (--layout database)")
        self.config = config
        self._cs = _base(config)
        self._admin_conn: Any = None
        self._registry: _Registry | None = None

    def odbc(self, database: str) -> str:
        return self._cs.replace("Database", database).to_odbc()

    def connect(self, database: str, *, autocommit: bool = True) -> Any:
        try:
            return pyodbc.connect(self.odbc(database), autocommit=autocommit, timeout=10)
        except pyodbc.Error as exc:
            raise SeedFailed(
                f"cannot connect to SQL Server {server_label(self.config)} "
                f"(database {database}): {_first_line(exc)}"
            ) from None

    def _admin(self) -> Any:
        if self._admin_conn is None:
            self._admin_conn = self.connect("master")
        return self._admin_conn

    @property
    def _controller(self) -> str:
        return f"{self.config.prefix}_controller"

    def tenant_obj(self, tenant: TenantPlan) -> Obj:
        return Obj("database", f"{self.config.prefix}_{tenant.stem}")

    def helpers(self) -> list[tuple[Obj, Role]]:
        if self.config.controller_on_server:
            return [(Obj("database", self._controller), "controller")]
        return []

    def connection_string(self, tenant: TenantPlan) -> str:
        return self.odbc(self.tenant_obj(tenant).name)

    def batch_size(self) -> int:
        return 1

    def _owner(self, database: str) -> Owner:
        table = f"{_bracket(database)}.dbo.{MARKER_TABLE}"
        cur = self._admin().cursor()
        try:
            if cur.execute("SELECT OBJECT_ID(?)", table).fetchone()[0] is None:
                return Owner(None)
            row = cur.execute(f"SELECT fleet_id, role, customer_id FROM {table}").fetchone()
        finally:
            cur.close()
        if row is None:
            return Owner(None)
        return Owner(str(row[0]), str(row[1]), None if row[2] is None else int(row[2]))  # type: ignore[arg-type]

    def _databases(self) -> set[str]:
        rows = self._admin().execute("SELECT name FROM sys.databases").fetchall()
        return {str(r[0]) for r in rows}

    def inventory(self, planned: Collection[Obj]) -> dict[Obj, Owner]:
        existing = self._databases()
        return {o: self._owner(o.name) for o in planned if o.name in existing}

    def _create(self, database: str) -> Any:
        self._admin().execute(f"CREATE DATABASE {_bracket(database)}")
        return self.connect(database, autocommit=False)

    def _mark(self, conn: Any, role: Role, customer_id: int | None) -> None:
        cur = conn.cursor()
        try:
            cur.execute(
                f"CREATE TABLE dbo.{MARKER_TABLE} (fleet_id varchar(32) NOT NULL, "
                "role varchar(16) NOT NULL, customer_id int NULL)"
            )
            cur.execute(
                f"INSERT INTO dbo.{MARKER_TABLE} VALUES (?, ?, ?)",
                self.config.fleet_id,
                role,
                customer_id,
            )
            conn.commit()
        finally:
            cur.close()

    def prepare(self) -> None:
        existing = self._databases()
        for obj, role in self.helpers():
            if obj.name in existing:
                continue
            with contextlib.closing(self._create(obj.name)) as conn:
                conn.execute(
                    "CREATE TABLE dbo.Customer (customer_id bigint NOT NULL PRIMARY KEY, "
                    "domainname nvarchar(255) NOT NULL UNIQUE, "
                    "sqlconnectstring nvarchar(4000) NOT NULL)"
                )
                conn.commit()
                self._mark(conn, role, None)

    def registry(self) -> _Registry | None:
        if not self.config.controller_on_server:
            return None
        if self._registry is None:
            self._registry = _Registry(self, self._controller)
        return self._registry

    def build(self, tenants: Sequence[TenantPlan]) -> None:
        for tenant in tenants:
            name = self.tenant_obj(tenant).name
            with contextlib.closing(self._create(name)) as conn:
                crash_point(tenant.customer_id)
                seed_tenant(
                    conn,
                    "sqlserver",
                    contacts=self.config.contacts,
                    custom_columns=tenant.columns(),
                    seed=self.config.seed,
                )
                self._mark(conn, "tenant", tenant.customer_id)

    def discard(self, obj: Obj) -> None:
        if obj.name == self._controller and self._registry is not None:
            self._registry.close()
        conn = self._admin()
        spids = conn.execute(
            "SELECT spid FROM sys.sysprocesses WHERE dbid = DB_ID(?) AND spid <> @@SPID", obj.name
        ).fetchall()
        for (spid,) in spids:
            with contextlib.suppress(pyodbc.Error):
                conn.execute(f"KILL {int(spid)}")
        if obj.name in self._databases():
            conn.execute(f"DROP DATABASE {_bracket(obj.name)}")

    def drop_fleet(self) -> list[Obj]:
        dropped = []
        for name in sorted(self._databases()):
            if not name.startswith(f"{self.config.prefix}_"):
                continue
            if self._owner(name).fleet_id == self.config.fleet_id:
                self.discard(Obj("database", name))
                dropped.append(Obj("database", name))
        return dropped

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
        if self._admin_conn is not None:
            with contextlib.suppress(pyodbc.Error):
                self._admin_conn.close()
            self._admin_conn = None
