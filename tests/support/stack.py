"""A running tenantgate process with real tenants on SQLite, PostgreSQL and SQL Server.

Used by the end-to-end tests (as a fixture) and by the benchmarks.

The controller is a SQLite file holding the three demo tenants (SQLite files, 0 / 20 /
800 custom columns), two PostgreSQL tenants on the test server (0 and 20 custom
columns) and, when a T-SQL engine is at hand, SQL Server tenants on it
(``SQLSERVER_TENANTS``: both shapes on each ODBC driver that is installed). Every
connection string carries a password that must never show up in any response, metric
or log line: for PostgreSQL an invented one (the test server trusts local logins, so it
is carried, not checked), for SQL Server the engine login's real one (the engine checks
it, so it cannot be invented).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from proxy.auth import hash_token
from proxy.demo.layout import DemoLayout, create_demo
from proxy.demo.seed import custom_columns, seed_tenant
from tests.support.pg import PgServer
from tests.support.tds import FREETDS, MSODBC18, TdsServer
from tests.support.tenants import backends_toml, base_model_toml, write_controller

ROOT = Path(__file__).resolve().parents[2]
FULL_TOKEN = "e2e-full-token-5d1c"
BETA_READ_TOKEN = "e2e-beta-read-token-93aa"
PG_PASSWORD = "Pg-Secret-Do-Not-Leak-4711"
PG_CONTACTS = 200
SQLSERVER_CONTACTS = 200


@dataclass(frozen=True)
class SqlServerTenant:
    customer_id: int
    driver: str
    """The ODBC driver label of ``tests.support.tds`` its connection string names."""
    custom_columns: int
    database: str = ""

    @property
    def domain(self) -> str:
        return f"mssql{self.customer_id}.example"


# Two tenants per driver, one per shape, so that each driver's pool serves two
# databases (the qualification, not the connection, must keep them apart) and every
# SQL Server scenario can run on each driver with the same shape.
SQLSERVER_TENANTS = (
    SqlServerTenant(21, MSODBC18, 0),
    SqlServerTenant(22, FREETDS, 20),
    SqlServerTenant(23, MSODBC18, 20),
    SqlServerTenant(24, FREETDS, 0),
)


def sqlserver_tenant_id(driver: str, custom_columns: int = 20) -> int:
    """The customer id of the SQL Server tenant on ``driver`` with that many custom columns."""
    return next(
        t.customer_id
        for t in SQLSERVER_TENANTS
        if t.driver == driver and t.custom_columns == custom_columns
    )


@dataclass(frozen=True)
class Stack:
    url: str
    demo: DemoLayout
    pg: PgServer
    pg_databases: dict[int, str]
    log_path: Path
    tds: TdsServer | None = None
    """The T-SQL engine, or ``None`` when there is none here (no SQL Server tenants)."""
    sqlserver: dict[int, SqlServerTenant] = field(default_factory=dict)
    pid: int = 0
    """The service process (for its CPU time in /proc/PID/stat)."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every password a tenant's connection string carries."""
        return (PG_PASSWORD,) + ((self.tds.password,) if self.tds and self.sqlserver else ())

    def client(self, token: str | None = FULL_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    """A loopback TCP port free now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(controller: Path, *, workers: int = 1) -> str:
    base_model = base_model_toml()
    return f"""
[server]
max_body_bytes = 65536
workers = {workers}

[logging]
format = "json"
access_log = true

[controller]
connection_string = "Driver=SQLite3;Database={controller}"
cache_ttl_s = 30
negative_ttl_s = 2
changes_table = "TenantgateChanges"

{backends_toml()}

[pool]
max_size = 4
acquire_timeout_ms = 3000
login_timeout_s = 5

[query]
max_rows_cap = 5000
max_timeout_ms = 20000

[base_model]
{base_model}

[[tokens]]
name = "full"
sha256 = "{hash_token(FULL_TOKEN)}"
tenants = ["*"]
classes = ["read", "write", "admin"]

[[tokens]]
name = "beta-reader"
sha256 = "{hash_token(BETA_READ_TOKEN)}"
tenants = ["beta.example"]
classes = ["read"]
"""


def _seed_sqlserver(tds: TdsServer, cleanup: contextlib.ExitStack) -> dict[int, SqlServerTenant]:
    tenants: dict[int, SqlServerTenant] = {}
    for spec in SQLSERVER_TENANTS:
        if spec.driver not in tds.drivers:
            continue
        database = tds.create_database(f"tg_e2e_{spec.customer_id}")
        cleanup.callback(tds.drop_database, database)
        tenant = SqlServerTenant(spec.customer_id, spec.driver, spec.custom_columns, database)
        # DDL on this engine must run in the tenant's own database (three-part CREATE
        # TABLE from master is refused), hence Database= rather than master.
        with contextlib.closing(tds.connect(tenant.driver, database)) as conn:
            seed_tenant(
                conn, "sqlserver", contacts=SQLSERVER_CONTACTS,
                custom_columns=custom_columns(tenant.custom_columns), seed=tenant.customer_id,
            )  # fmt: skip
        tenants[tenant.customer_id] = tenant
    return tenants


def _seed_postgresql(pg: PgServer, cleanup: contextlib.ExitStack) -> dict[int, str]:
    databases: dict[int, str] = {}
    for customer_id, n_custom in ((11, 0), (12, 20)):
        name = pg.create_database(f"tg_e2e_{customer_id}")
        cleanup.callback(pg.drop_database, name)
        with contextlib.closing(pg.connect(name)) as conn:
            seed_tenant(
                conn, "postgresql", contacts=PG_CONTACTS,
                custom_columns=custom_columns(n_custom), seed=customer_id,
            )  # fmt: skip
        databases[customer_id] = name
    return databases


@contextlib.contextmanager
def running_stack(
    root: Path, pg: PgServer, tds: TdsServer | None = None, *, workers: int = 1
) -> Iterator[Stack]:
    """The service over the demo, PostgreSQL and (with ``tds``) SQL Server tenants."""
    with contextlib.ExitStack() as cleanup:
        demo = create_demo(root / "demo")
        pg_databases = _seed_postgresql(pg, cleanup)
        sqlserver = _seed_sqlserver(tds, cleanup) if tds is not None else {}

        controller = root / "controller.db"
        with contextlib.closing(sqlite3.connect(demo.controller_path)) as src:
            rows = src.execute(
                "SELECT customer_id, domainname, sqlconnectstring FROM Customer"
            ).fetchall()
        for customer_id, name in pg_databases.items():
            rows.append(
                (
                    customer_id,
                    f"pg{customer_id}.example",
                    f"Driver={{PostgreSQL Unicode}};Server={pg.host};Port={pg.port};"
                    f"Database={name};Uid={pg.user};Pwd={{{PG_PASSWORD}}}",
                )
            )
        if tds is not None:
            for tenant in sqlserver.values():
                connect = tds.odbc(tenant.driver, tenant.database)
                rows.append((tenant.customer_id, tenant.domain, connect))
        write_controller(controller, rows)

        config = root / "tenantgate.toml"
        config.write_text(_config(controller, workers=workers), encoding="utf-8")
        log_path = root / "service.log"
        with serve(config, log_path) as (url, pid):
            yield Stack(url, demo, pg, pg_databases, log_path, tds, sqlserver, pid)


@contextlib.contextmanager
def serve(config: Path, log_path: Path, *, code: Path = ROOT) -> Iterator[tuple[str, int]]:
    """The service process on ``config``, on a free loopback port: its base URL and pid.

    ``code``: the checkout whose ``proxy`` runs (a benchmark's other version)."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve", "--config", str(config), "--port", str(port)],
            cwd=code, stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tenantgate exited early:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tenantgate did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
