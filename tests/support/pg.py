"""A real PostgreSQL server for the tests.

Either the server named by ``TENANTGATE_TEST_PG_DSN`` (a ``postgresql://user:pw@host:port/db``
URI; the user must be allowed to create databases), or a private cluster that this
module creates with the installed server binaries in a temporary folder, on a free
loopback port, and removes afterwards. Nothing here mocks the database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pyodbc

ODBC_DRIVER = "PostgreSQL Unicode"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str
    admin_database: str

    def odbc(self, database: str | None = None, **extra: str) -> str:
        parts = {
            "Driver": "{" + ODBC_DRIVER + "}",
            "Server": self.host,
            "Port": str(self.port),
            "Database": database or self.admin_database,
            "Uid": self.user,
            "Pwd": "{" + self.password.replace("}", "}}") + "}",
        }
        parts.update(extra)
        return ";".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, database: str | None = None) -> pyodbc.Connection:
        return pyodbc.connect(self.odbc(database), autocommit=True, timeout=10)

    def create_database(self, prefix: str = "tg") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with contextlib.closing(self.connect()) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.closing(self.connect()) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A new, empty database, dropped afterwards."""
        name = self.create_database()
        try:
            yield name
        finally:
            self.drop_database(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindir() -> str:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]),
    )
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb) found: run `make test`, which installs them"
    )


def _as_server_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@dataclass
class Cluster:
    """A private cluster this process controls: stop it, start it, restart it.

    For the fault-injection suite (tests/faults), which restarts and stops servers
    under load; the port stays the same across restarts.
    """

    server: PgServer
    bindir: str
    data: str
    options: str
    log: str

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(
            _as_server_user([f"{self.bindir}/pg_ctl", "-D", self.data, *args]),
            check=check,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast``: sessions are terminated and the server shuts down cleanly;
        ``immediate``: every server process exits at once, as in a crash."""
        self._ctl("-m", mode, "-w", "-t", "60", "stop")

    def start(self) -> None:
        self._ctl("-o", self.options, "-l", self.log, "-w", "-t", "60", "start")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()


@contextlib.contextmanager
def managed_cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """A private cluster; ``durable`` keeps every acknowledged commit through a crash
    of the server's processes (``synchronous_commit`` on; ``fsync`` stays off, which
    only matters when the machine itself goes down)."""
    bindir = _bindir()
    base = tempfile.mkdtemp(prefix="tenantgate-pg-")
    data, sockets = os.path.join(base, "data"), os.path.join(base, "run")
    os.makedirs(sockets)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (base, sockets):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    subprocess.run(
        _as_server_user(
            [
                f"{bindir}/initdb",
                "-D",
                data,
                "-U",
                "tenantgate",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c full_page_writes=off -c max_connections=300"
        + ("" if durable else " -c synchronous_commit=off")
    )
    cluster = Cluster(
        PgServer("127.0.0.1", port, "tenantgate", "", "postgres"),
        bindir,
        data,
        options,
        os.path.join(base, "server.log"),
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster._ctl("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def private_cluster() -> Iterator[PgServer]:
    with managed_cluster() as cluster:
        yield cluster.server


def from_dsn(dsn: str) -> PgServer:
    url = urlsplit(dsn)
    return PgServer(
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=unquote(url.username or "postgres"),
        password=unquote(url.password or ""),
        admin_database=(url.path.lstrip("/") or "postgres"),
    )


@contextlib.contextmanager
def pg_server() -> Iterator[PgServer]:
    dsn = os.environ.get("TENANTGATE_TEST_PG_DSN")
    if dsn:
        yield from_dsn(dsn)
        return
    with private_cluster() as server:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.connect().close()
                break
            except pyodbc.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
