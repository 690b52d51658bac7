"""A ``BlockingService`` over several SQL Server tenant databases on ONE T-SQL server.

The SQL Server counterpart of ``tests/support/tenants.py``: each tenant is a database of
the engine ``tests/support/tds.py`` provides (Babelfish here, or the server of
``TENANTGATE_TEST_TDS_DSN``), seeded with ``proxy.demo.seed.seed_tenant``, and listed in
a SQLite controller with the connection string of the driver under test
(``TdsServer.odbc(driver, database)``). tenantgate strips ``Database=`` from those
strings, so every tenant of one server, login and driver shares one pool and is reached
by ``[db].[dbo].[table]``.

Direct reads (``read``) go through a separate pyodbc connection whose ``Database=`` is the
tenant's database, and unqualified names, so they check tenantgate's qualification
rather than repeat it. That connection is opened on the first read of the tenant and
kept until the service closes: a login and a new engine session cost Babelfish more
than most reads. ``alter`` runs DDL behind tenantgate's back after ``USE [db]``
(the engine refuses three-part ``ALTER TABLE`` from another database, see
``docs/drivers.md``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyodbc

from proxy.auth import Principal
from proxy.config import PoolSettings, TokenSettings
from proxy.demo.seed import Column, seed_tenant
from proxy.drivers.odbc.pool import ConnectionPool
from proxy.pipeline.request import QueryRequest
from proxy.pipeline.service import QueryOutcome
from tenancy.location import TenantLocation
from tests.support.blocking import BlockingService
from tests.support.tds import TdsServer
from tests.support.tenants import ADMIN, TOKENS, service_for

__all__ = ["TdsTenants", "bracket", "is_babelfish", "seed_databases", "tds_service"]


def bracket(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def is_babelfish(server: TdsServer, driver: str) -> bool:
    """Whether the engine is Babelfish for PostgreSQL rather than Microsoft SQL Server.

    ``SERVERPROPERTY('Babelfish')`` is 1 on Babelfish and NULL on SQL Server. Tests use
    this only where the two engines are known to differ, to assert what each one does.
    """
    with contextlib.closing(server.connect(driver)) as conn:
        value = conn.execute("SELECT CAST(SERVERPROPERTY('Babelfish') AS INT)").fetchone()[0]
    return bool(value == 1)


def seed_databases(
    server: TdsServer,
    driver: str,
    tenants: Mapping[str, Sequence[Column]],
    *,
    contacts: int = 10,
    seed: int = 1,
) -> dict[str, str]:
    """A fresh database per tenant domain, seeded with ``contacts`` contacts and that
    tenant's custom columns: ``{domain: database}``. The caller drops them."""
    databases: dict[str, str] = {}
    try:
        for domain, custom in tenants.items():
            database = server.create_database(prefix="tgsvc")
            databases[domain] = database
            with contextlib.closing(server.connect(driver, database)) as conn:
                seed_tenant(conn, "sqlserver", contacts=contacts, custom_columns=custom, seed=seed)
    except BaseException:
        for database in databases.values():
            server.drop_database(database)
        raise
    return databases


@dataclass
class TdsTenants:
    service: BlockingService
    server: TdsServer
    driver: str
    databases: dict[str, str]
    """Tenant domain -> its database on the server."""
    babelfish: bool
    customer_ids: dict[str, int] = field(default_factory=dict)
    _direct: dict[str, pyodbc.Connection] = field(default_factory=dict, repr=False)

    def principal(self, token: str = ADMIN) -> Principal:
        return self.service.auth.authenticate(f"Bearer {token}")

    def query(
        self,
        tenant: str,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] = (),
        *,
        token: str = ADMIN,
        **options: Any,
    ) -> QueryOutcome:
        """``sql`` through tenantgate (``BlockingService.query``), as ``tenant``."""
        request = QueryRequest(tenant=tenant, sql=sql, params=params, **options)
        return self.service.query(self.principal(token), request)

    @contextlib.contextmanager
    def direct(self, tenant: str) -> Iterator[pyodbc.Cursor]:
        """A cursor on a connection of the driver under test straight into ``tenant``'s
        database (autocommit; the tenant's one, see above), closed afterwards. After an
        error the connection is closed too, and the next read opens a new one."""
        conn = self._direct.get(tenant)
        if conn is None:
            conn = self.server.connect(self.driver, self.databases[tenant])
            self._direct[tenant] = conn
        cursor = conn.cursor()
        try:
            yield cursor
        except pyodbc.Error:
            del self._direct[tenant]
            with contextlib.suppress(pyodbc.Error):
                conn.close()
            raise
        finally:
            with contextlib.suppress(pyodbc.Error):
                cursor.close()

    def close_direct(self) -> None:
        for conn in self._direct.values():
            with contextlib.suppress(pyodbc.Error):
                conn.close()
        self._direct.clear()

    def read(self, tenant: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows read straight from the tenant's database, not through tenantgate."""
        with self.direct(tenant) as cursor:
            return [tuple(r) for r in cursor.execute(sql, *params).fetchall()]

    def read_with_names(self, tenant: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self.direct(tenant) as cursor:
            cursor.execute(sql)
            names = [str(d[0]) for d in cursor.description]
            return names, [tuple(r) for r in cursor.fetchall()]

    def alter(self, tenant: str, sql: str) -> None:
        """DDL or a write straight on the tenant's database, behind tenantgate's back:
        from a connection on ``master`` after ``USE [db]``, as an operator would."""
        with contextlib.closing(self.server.connect(self.driver, "master")) as conn:
            conn.execute(f"USE {bracket(self.databases[tenant])}")
            conn.execute(sql)

    def columns(self, tenant: str, table: str = "Contacts") -> list[str]:
        rows = self.read(
            tenant,
            "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_SCHEMA = 'dbo' AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            [table],
        )
        return [str(r[0]) for r in rows]

    def location(self, tenant: str) -> TenantLocation:
        return self.service.resolver.resolve(tenant).location

    def pool(self, tenant: str) -> ConnectionPool:
        return self.service.drivers.odbc.pools.pool_for(self.location(tenant))


@contextlib.contextmanager
def tds_service(
    tmp_path: Path,
    server: TdsServer,
    driver: str,
    databases: Mapping[str, str],
    *,
    pool_max_size: int = 2,
    tokens: Sequence[TokenSettings] = TOKENS,
    extra_tenants: Mapping[str, str] | None = None,
) -> Iterator[TdsTenants]:
    """A ``BlockingService`` whose controller lists ``databases`` (domain -> database, already
    seeded) as SQL Server tenants reached through ``driver``; closed afterwards.

    ``extra_tenants`` adds domain -> raw connection string rows (a tenant on another
    login or a database that does not exist). Dropping the databases is the caller's.
    """
    customers = {d: server.odbc(driver, name) for d, name in databases.items()}
    customers.update(extra_tenants or {})
    customer_ids = {domain: number for number, domain in enumerate(customers, start=1)}
    service = service_for(
        tmp_path / f"controller-{driver}.db",
        customers,
        pool=PoolSettings(max_size=pool_max_size),
        tokens=tokens,
    )
    tenants: TdsTenants | None = None
    try:
        tenants = TdsTenants(
            service,
            server,
            driver,
            dict(databases),
            babelfish=is_babelfish(server, driver),
            customer_ids=customer_ids,
        )
        yield tenants
    finally:
        if tenants is not None:
            tenants.close_direct()
        service.close()
