"""The harness of the schema-churn workload (``proxy.demo.churn``): the servers' tenant
databases seeded, a controller, the real service process, and the ``ChurnTarget`` the
workload runs against. Used by ``tests/integration/test_churn.py`` and
``benchmarks/churn.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyodbc

from proxy.auth import hash_token
from proxy.demo.churn import (
    CONTACTS,
    POSTGRESQL,
    SEEDED_CUSTOM_COLUMNS,
    SQLSERVER,
    ChurnTarget,
    ChurnTenant,
)
from proxy.demo.seed import custom_columns, seed_tenant
from tests.support.pg import PgServer
from tests.support.stack import serve
from tests.support.tds import TdsServer
from tests.support.tenants import base_model_toml, write_controller

TOKEN = "churn-token-7c1e"


@dataclass(frozen=True)
class ChurnStack:
    target: ChurnTarget
    log_path: Path
    """The service's log."""


def _connector(pg: PgServer, tds: TdsServer | None) -> Callable[[ChurnTenant], pyodbc.Connection]:
    def connect(tenant: ChurnTenant) -> pyodbc.Connection:
        """A direct connection (autocommit) whose current database is the tenant's."""
        if tenant.backend == SQLSERVER:
            assert tds is not None
            return tds.connect(tenant.driver, tenant.database)
        return pg.connect(tenant.database)

    return connect


def _config(controller: Path, ttl_s: float, workers: int) -> str:
    base_model = base_model_toml()
    return f"""
[server]
workers = {workers}

[controller]
connection_string = "Driver=SQLite3;Database={controller}"
changes_table = "TenantgateChanges"

[backends.postgresql]
template = "BoolsAsChar=0"

[pool]
max_size = 4
acquire_timeout_ms = 3000

[metadata]
ttl_s = {ttl_s}

[query]
max_timeout_ms = 20000

[base_model]
{base_model}

[[tokens]]
name = "churn"
sha256 = "{hash_token(TOKEN)}"
tenants = ["*"]
classes = ["read", "write", "admin"]
"""


@contextlib.contextmanager
def churn_stack(
    root: Path,
    pg: PgServer,
    *,
    tenants: int = 6,
    ttl_s: float = 300.0,
    tds: TdsServer | None = None,
    sqlserver: tuple[str, ...] = (),
    workers: int = 1,
) -> Iterator[ChurnStack]:
    """``tenants`` PostgreSQL tenants (ids 1..n), then one SQL Server tenant on ``tds``
    per driver label in ``sqlserver`` (ids n+1...), served by ``workers`` processes."""
    churn: dict[int, ChurnTenant] = {}
    rows: list[tuple[int, str, str]] = []
    with contextlib.ExitStack() as cleanup:
        for customer_id in range(1, tenants + 1):
            name = pg.create_database(f"tg_churn_{customer_id}")
            cleanup.callback(pg.drop_database, name)
            churn[customer_id] = ChurnTenant(customer_id, POSTGRESQL, name)
            rows.append((customer_id, f"churn{customer_id}.example", pg.odbc(name)))
        for customer_id, driver in enumerate(sqlserver, start=tenants + 1):
            assert tds is not None, "SQL Server tenants need a T-SQL engine"
            name = tds.create_database(f"tg_churn_{customer_id}")
            cleanup.callback(tds.drop_database, name)
            churn[customer_id] = ChurnTenant(customer_id, SQLSERVER, name, driver)
            rows.append((customer_id, f"churn{customer_id}.example", tds.odbc(driver, name)))
        connect = _connector(pg, tds)
        for tenant in churn.values():
            with contextlib.closing(connect(tenant)) as conn:
                seed_tenant(
                    conn, tenant.backend, contacts=CONTACTS,
                    custom_columns=custom_columns(SEEDED_CUSTOM_COLUMNS), seed=tenant.customer_id,
                )  # fmt: skip
        controller = root / "controller.db"
        write_controller(controller, rows)
        config = root / "tenantgate.toml"
        config.write_text(_config(controller, ttl_s, workers), encoding="utf-8")
        log_path = root / "service.log"
        with serve(config, log_path) as (url, _pid):
            yield ChurnStack(ChurnTarget(url, TOKEN, churn, connect, pyodbc.Error), log_path)
