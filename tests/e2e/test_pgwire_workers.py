"""The wire front end with ``server.workers = 2``: a CancelRequest reaches whichever
worker the kernel gives its connection to, and still stops the statement of a session
that lives in the other one (``proxy.frontends.pgwire.server``: the key names the
session's worker, and the cancel is passed to that worker's socket)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from proxy.auth import hash_token
from proxy.demo.seed import seed_tenant
from proxy.frontends.pgwire.auth import make_verifier
from tests.support.pg import PgServer
from tests.support.stack import free_port, serve
from tests.support.tenants import backends_toml, base_model_toml, write_controller

pytestmark = pytest.mark.e2e

USER, SECRET = "app", "wire-Workers-3"
TENANT = "pg.example"
CANCELS = 8
"""Sessions cancelled, each by a CancelRequest on a fresh connection: the kernel puts
about half of them on the other worker (all on the same one: 1 in 2**8)."""


@dataclass(frozen=True)
class Workers:
    port: int
    pid: int
    pg: PgServer
    database: str

    def dsn(self, **extra: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.port), "dbname": TENANT, "user": USER,
                 "password": SECRET, "sslmode": "disable", **extra}  # fmt: skip
        return " ".join(f"{k}={v}" for k, v in parts.items())


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, pg: PgServer) -> Iterator[Workers]:
    root = tmp_path_factory.mktemp("pgwire-workers")
    database = pg.create_database("tg_wire_workers")
    try:
        with contextlib.closing(pg.connect(database)) as conn:
            seed_tenant(conn, "postgresql", contacts=CANCELS + 2, seed=9)
        controller = root / "controller.db"
        write_controller(controller, [(1, TENANT, pg.odbc(database))])
        port = free_port()
        config = root / "tenantgate.toml"
        config.write_text(
            f"""
[server]
workers = 2

[controller]
connection_string = "Driver=SQLite3;Database={controller}"
changes_table = "TenantgateChanges"

{backends_toml()}

[pgwire]
enabled = true
port = {port}

[[pgwire.users]]
name = "{USER}"
token = "full"
scram_sha256 = "{make_verifier(SECRET)}"

[base_model]
{base_model_toml()}

[[tokens]]
name = "full"
sha256 = "{hash_token("e2e-pgwire-workers-1f3a")}"
classes = ["read", "write"]
""",
            encoding="utf-8",
        )
        with serve(config, root / "service.log") as (_, pid):
            yield Workers(port, pid, pg, database)
    finally:
        pg.drop_database(database)


def _waiting_on_a_lock(workers: Workers) -> bool:
    with contextlib.closing(workers.pg.connect(workers.database)) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ? AND wait_event_type = 'Lock'",
            workers.database,
        ).fetchval()
    return bool(count)


def _cancel_when_waiting(workers: Workers, waiter: psycopg.Connection[Any]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _waiting_on_a_lock(workers):
        time.sleep(0.05)
    waiter.cancel()  # a CancelRequest on a connection of its own


def test_a_cancel_request_reaches_the_sessions_worker(workers: Workers) -> None:
    seen_pids = set()
    for key in range(1, CANCELS + 1):
        update = "UPDATE Contacts SET Title = %s WHERE ContactID = %s"
        with psycopg.connect(workers.dsn()) as holder:
            holder.execute(update, ["held", key])  # the row's lock, until rollback
            with psycopg.connect(workers.dsn(), autocommit=True) as waiter:
                seen_pids.add(waiter.info.backend_pid)
                timer = threading.Thread(target=_cancel_when_waiting, args=(workers, waiter))
                timer.start()
                with pytest.raises(psycopg.errors.QueryCanceled, match="user request"):
                    waiter.execute(update, ["waiting", key])
                timer.join()
                assert waiter.execute("SELECT 1 AS one").fetchone() == (1,)
            holder.rollback()
    # The key's process id is the session's worker's: a child of the service.
    children = {int(p) for p in Path(f"/proc/{workers.pid}/task/{workers.pid}/children")
                .read_text().split()}  # fmt: skip
    assert seen_pids <= children, (seen_pids, children)
