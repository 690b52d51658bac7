"""A running tenantgate process with real tenants on SQLite and PostgreSQL.

Used by the end-to-end tests (as a fixture) and by the benchmarks.

The controller is a SQLite file holding five customers: the three demo tenants
(SQLite files, 0 / 20 / 800 custom columns) and two PostgreSQL tenants on the test
server (0 and 20 custom columns), whose connection strings carry a password that
must never show up in any response, metric or log line (the test server trusts
local logins, so the password is not checked, only carried).
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
from dataclasses import dataclass
from pathlib import Path

import httpx

from proxy.auth import hash_token
from proxy.demo import DemoLayout, create_demo
from proxy.schema_seed import BASE_MODEL, custom_columns, seed_tenant
from tests.support.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]
FULL_TOKEN = "e2e-full-token-5d1c"
BETA_READ_TOKEN = "e2e-beta-read-token-93aa"
PG_PASSWORD = "Pg-Secret-Do-Not-Leak-4711"
PG_CONTACTS = 200


@dataclass(frozen=True)
class Stack:
    url: str
    demo: DemoLayout
    pg: PgServer
    pg_databases: dict[int, str]
    log_path: Path

    def client(self, token: str | None = FULL_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(controller: Path) -> str:
    base_model = "\n".join(
        f"{table} = [{', '.join(repr(c) for c in cols)}]" for table, cols in BASE_MODEL.items()
    )
    return f"""
[server]
max_body_bytes = 65536

[controller]
connection_string = "Driver=SQLite3;Database={controller}"
cache_ttl_s = 30
negative_ttl_s = 2

[backends.sqlite]
template = "Timeout=5000"

[backends.postgresql]
template = "BoolsAsChar=0"

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


@contextlib.contextmanager
def running_stack(root: Path, pg: PgServer) -> Iterator[Stack]:
    demo = create_demo(root / "demo")

    pg_databases: dict[int, str] = {}
    for customer_id, n_custom in ((11, 0), (12, 20)):
        name = pg.create_database(f"tg_e2e_{customer_id}")
        with contextlib.closing(pg.connect(name)) as conn:
            seed_tenant(
                conn, "postgresql", contacts=PG_CONTACTS,
                custom_columns=custom_columns(n_custom), seed=customer_id,
            )  # fmt: skip
        pg_databases[customer_id] = name

    controller = root / "controller.db"
    with contextlib.closing(sqlite3.connect(demo.controller_path)) as src:
        rows = src.execute(
            "SELECT customer_id, domainname, sqlconnectstring FROM Customer"
        ).fetchall()
    with contextlib.closing(sqlite3.connect(controller)) as db:
        db.execute(
            "CREATE TABLE Customer (customer_id INTEGER PRIMARY KEY, domainname TEXT UNIQUE,"
            " sqlconnectstring TEXT)"
        )
        db.executemany("INSERT INTO Customer VALUES (?, ?, ?)", rows)
        for customer_id, name in pg_databases.items():
            db.execute(
                "INSERT INTO Customer VALUES (?, ?, ?)",
                (
                    customer_id,
                    f"pg{customer_id}.example",
                    f"Driver={{PostgreSQL Unicode}};Server={pg.host};Port={pg.port};"
                    f"Database={name};Uid={pg.user};Pwd={{{PG_PASSWORD}}}",
                ),
            )
        db.commit()

    config = root / "tenantgate.toml"
    config.write_text(_config(controller), encoding="utf-8")
    log_path = root / "service.log"
    try:
        with serve(config, log_path) as url:
            yield Stack(url, demo, pg, pg_databases, log_path)
    finally:
        for name in pg_databases.values():
            pg.drop_database(name)


@contextlib.contextmanager
def serve(config: Path, log_path: Path) -> Iterator[str]:
    """The service process on ``config``, on a free loopback port: its base URL."""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve", "--config", str(config), "--port", str(port)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
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
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
