"""End to end: PostgreSQL clients, unchanged, through the wire front end of a real
service process, to a SQLite tenant (lite.example) and a PostgreSQL tenant (pg.example).

One service of the module's own, with ``[pgwire]`` on a free port and a user whose
SCRAM verifier is in the configuration. Each client is the real one: ``psql`` and
``pgbench`` (Debian's), psycopg 3. Outcomes are checked in the tenants' databases.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from scramp import ScramClient

from proxy.auth import hash_token
from proxy.demo.seed import custom_columns, seed_tenant
from proxy.frontends.pgwire.auth import make_verifier
from tests.support.pg import PgServer
from tests.support.stack import free_port, serve
from tests.support.tenants import backends_toml, base_model_toml, write_controller

pytestmark = pytest.mark.e2e

TOKEN = "e2e-pgwire-token-3c1d"
READ_TOKEN = "e2e-pgwire-read-77aa"
USER, SECRET = "app", "wire-Secret-1"
READER, READER_SECRET = "reader", "wire-Reader-2"
TENANTS = ("lite.example", "pg.example")
CUSTOM = custom_columns(3)  # Custom_Region, Custom_ShoeSize, ...


@dataclass(frozen=True)
class Wire:
    host: str
    port: int
    pg: PgServer
    pg_database: str
    lite: Path
    url: str
    """The same service's HTTP front end."""

    def dsn(self, tenant: str, user: str = USER, password: str = SECRET, **extra: str) -> str:
        parts = {"host": self.host, "port": str(self.port), "dbname": tenant, "user": user,
                 "password": password, "sslmode": "disable", **extra}  # fmt: skip
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def stored(self, tenant: str, last: str) -> int:
        sql = 'SELECT COUNT(*) FROM "Contacts" WHERE "LastName" = ?'
        if tenant == "lite.example":
            with contextlib.closing(sqlite3.connect(self.lite)) as db:
                return int(db.execute(sql, (last,)).fetchone()[0])
        with contextlib.closing(self.pg.connect(self.pg_database)) as conn:
            return int(conn.execute(sql, last).fetchone()[0])


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory, pg: PgServer) -> Iterator[Wire]:
    root = tmp_path_factory.mktemp("pgwire")
    database = pg.create_database("tg_wire")
    try:
        with contextlib.closing(pg.connect(database)) as conn:
            seed_tenant(conn, "postgresql", contacts=20, seed=5, custom_columns=CUSTOM)
        lite = root / "lite.db"
        with contextlib.closing(sqlite3.connect(lite)) as db:
            seed_tenant(db, "sqlite", contacts=20, seed=5, custom_columns=CUSTOM)
            db.commit()
        controller = root / "controller.db"
        write_controller(
            controller,
            [(1, "lite.example", f"Driver=SQLite3;Database={lite}"),
             (2, "pg.example", pg.odbc(database))],
        )  # fmt: skip
        port = free_port()
        # A self-signed certificate: SSLRequest is answered with TLS.
        cert, key = root / "tls.crt", root / "tls.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        config = root / "tenantgate.toml"
        config.write_text(
            f"""
[controller]
connection_string = "Driver=SQLite3;Database={controller}"

{backends_toml()}

[pool]
max_size = 4

[pgwire]
enabled = true
port = {port}
auth_failure_delay_ms = 50
tls_cert_file = "{cert}"
tls_key_file = "{key}"

[[pgwire.users]]
name = "{USER}"
token = "full"
scram_sha256 = "{make_verifier(SECRET)}"

[[pgwire.users]]
name = "{READER}"
token = "reader"
scram_sha256 = "{make_verifier(READER_SECRET)}"

[[pgwire.users]]
name = "slow"
token = "slow"
scram_sha256 = "{make_verifier(SECRET)}"

[base_model]
{base_model_toml()}

[[tokens]]
name = "full"
sha256 = "{hash_token(TOKEN)}"
tenants = ["*"]
classes = ["read", "write"]

[[tokens]]
name = "slow"
sha256 = "{hash_token("e2e-pgwire-slow-5e0b")}"
rate_per_s = 0.01

[[tokens]]
name = "reader"
sha256 = "{hash_token(READ_TOKEN)}"
tenants = ["lite.example"]
classes = ["read"]
""",
            encoding="utf-8",
        )
        with serve(config, root / "service.log") as (url, _):
            yield Wire("127.0.0.1", port, pg, database, lite, url)
    finally:
        pg.drop_database(database)


def mark() -> str:
    return f"wire-{uuid.uuid4().hex[:10]}"


INSERT = (
    "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
    "VALUES (%s, %s, true, CAST('2024-05-01 10:00:00' AS TIMESTAMP))"
)


# -- psql --------------------------------------------------------------------------------------


def _psql(wire: Wire, tenant: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSWORD": SECRET, "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run(
        ["psql", "-X", "-h", wire.host, "-p", str(wire.port), "-U", USER, "-d", tenant,
         "-v", "ON_ERROR_STOP=1", *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("tenant", TENANTS)
def test_psql_runs_a_query(wire: Wire, tenant: str) -> None:
    done = _psql(
        wire,
        tenant,
        "-At",
        "-c",
        "SELECT ContactID, FirstName FROM Contacts ORDER BY ContactID LIMIT 3",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("1|")


@pytest.mark.parametrize("tenant", TENANTS)
def test_psql_expanded_display(wire: Wire, tenant: str) -> None:
    done = _psql(
        wire,
        tenant,
        "-c",
        "\\x",
        "-c",
        "SELECT ContactID, FirstName FROM Contacts WHERE ContactID = 1",
    )
    assert done.returncode == 0, done.stderr
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    assert "Expanded display is on." in lines
    records = [line for line in lines if line.startswith("-[ RECORD ")]
    assert len(records) == 1 and records[0].startswith("-[ RECORD 1 ]-")
    assert "ContactID | 1" in lines
    assert any(line.startswith("FirstName | ") and len(line) > 12 for line in lines)


def test_psql_shows_a_refusal_with_its_sqlstate(wire: Wire) -> None:
    done = _psql(
        wire, "lite.example", "-c", "\\set VERBOSITY verbose", "-c", "SELECT Nope FROM Contacts"
    )
    assert done.returncode != 0
    assert "42703" in done.stderr  # undefined_column


# -- psycopg -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", TENANTS)
def test_psycopg_reads_with_parameters(wire: Wire, tenant: str) -> None:
    with psycopg.connect(wire.dsn(tenant), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT ContactID, FirstName FROM Contacts WHERE ContactID <= %s ORDER BY ContactID",
            [3],
        ).fetchall()
        assert [r[0] for r in rows] == [1, 2, 3]
        assert isinstance(rows[0][1], str)
        (version,) = conn.execute("SELECT version()").fetchone()  # type: ignore[misc]
        assert "tenantgate" in version


@pytest.mark.parametrize("tenant", TENANTS)
def test_psycopg_transaction_commits_and_rolls_back(wire: Wire, tenant: str) -> None:
    kept, dropped = mark(), mark()
    with psycopg.connect(wire.dsn(tenant)) as conn:
        with conn.transaction():
            conn.execute(INSERT, ["a", kept])
            conn.execute(INSERT, ["b", kept])
        with pytest.raises(psycopg.IntegrityError), conn.transaction():
            conn.execute(INSERT, ["c", dropped])
            conn.execute(INSERT, [None, dropped])
    assert wire.stored(tenant, kept) == 2
    assert wire.stored(tenant, dropped) == 0


@pytest.mark.parametrize("tenant", TENANTS)
def test_psycopg_prepared_statements(wire: Wire, tenant: str, tmp_path: Path) -> None:
    """``prepare=True`` and ``prepare_threshold=0``: psycopg parses each statement once
    under a name of its own (``_pg3_N``), then only binds and executes that name. libpq's
    own trace of the messages it sent shows it did."""
    select = "SELECT ContactID, FirstName FROM Contacts WHERE ContactID = %s"
    trace = tmp_path / "libpq.trace"
    with psycopg.connect(wire.dsn(tenant), autocommit=True) as conn:
        expected = {i: conn.execute(select, [i], prepare=False).fetchone() for i in (1, 2, 3, 7)}
        assert [row[0] for row in expected.values() if row] == [1, 2, 3, 7]
        with trace.open("w") as out:
            conn.pgconn.trace(out.fileno())
            try:
                for i in (1, 2, 3, 7, 2):
                    assert conn.execute(select, [i], prepare=True).fetchone() == expected[i]
                assert conn.execute(select, [999], prepare=True).fetchone() is None
            finally:
                conn.pgconn.untrace()
    sent = [line for line in trace.read_text().splitlines() if "\tF\t" in line]
    parses = [line for line in sent if "\tParse\t" in line]
    binds = [line for line in sent if "\tBind\t" in line]
    assert len(parses) == 1 and '"_pg3_' in parses[0], parses
    name = parses[0].split('"')[1]
    assert len(binds) == 6 and all(f'"{name}"' in line for line in binds), binds

    count = "SELECT COUNT(*) FROM Contacts WHERE ContactID <= %s"
    with psycopg.connect(wire.dsn(tenant), autocommit=True, prepare_threshold=0) as conn:
        assert [conn.execute(count, [n]).fetchone() for n in (3, 5, 0, 3)] == [
            (3,), (5,), (0,), (3,)
        ]  # fmt: skip
        for i in (7, 1, 7):
            assert conn.execute(select, [i]).fetchone() == expected[i]


@pytest.mark.parametrize("tenant", TENANTS)
def test_psycopg_client_side_binding(wire: Wire, tenant: str) -> None:
    """A ``ClientCursor`` inlines its parameters as literals: one simple query each."""
    with psycopg.connect(wire.dsn(tenant), autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute(
            "SELECT ContactID, FirstName FROM Contacts WHERE ContactID IN (%s, %s) "
            "AND FirstName <> %s ORDER BY ContactID",
            [2, 4, "it's nobody"],
        )
        rows = cur.fetchall()
    assert [r[0] for r in rows] == [2, 4]
    assert all(isinstance(r[1], str) for r in rows)


def test_psycopg_error_inside_a_block_fails_it_until_rollback(wire: Wire) -> None:
    with psycopg.connect(wire.dsn("pg.example")) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT Nope FROM Contacts")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 1 AS one").fetchone() == (1,)


def test_a_wrong_password_and_an_unknown_user_look_the_same(wire: Wire) -> None:
    messages = []
    for user, password in ((USER, "nope"), ("nobody", "nope")):
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as caught:
            psycopg.connect(wire.dsn("lite.example", user=user, password=password))
        assert time.monotonic() - started >= 0.05  # auth_failure_delay_ms
        messages.append(str(caught.value).replace(user, "USER"))
    assert messages[0] == messages[1]
    assert "password authentication failed" in messages[0]


def test_a_token_limited_to_some_tenants_learns_nothing_of_the_others(wire: Wire) -> None:
    errors = []
    for tenant in ("pg.example", "nobody.example"):
        with pytest.raises(psycopg.OperationalError) as caught:
            psycopg.connect(wire.dsn(tenant, user=READER, password=READER_SECRET))
        errors.append(str(caught.value).replace(tenant, "T"))
    assert errors[0] == errors[1]
    reader = wire.dsn("lite.example", user=READER, password=READER_SECRET)
    with psycopg.connect(reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(INSERT, ["x", mark()])


def test_tls_and_a_token_as_the_password(wire: Wire) -> None:
    with psycopg.connect(wire.dsn("lite.example", sslmode="require")) as conn:
        assert conn.info.pgconn.ssl_in_use
        assert conn.execute("SELECT 1 AS one").fetchone() == (1,)
    # Over TLS, any user name with a [[tokens]] token as its password: that token's scope.
    token = wire.dsn("lite.example", user="svc", password=READ_TOKEN, sslmode="require")
    with psycopg.connect(token) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(INSERT, ["x", mark()])
    # Without TLS a token is never asked for in clear: the user is not a wire user.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wire.dsn("lite.example", user="svc", password=READ_TOKEN))


# -- pgbench -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_runs_a_custom_script(wire: Wire, tmp_path: Path, mode: str) -> None:
    script = tmp_path / "select.sql"
    script.write_text(
        "\\set id random(1, 20)\nSELECT ContactID, FirstName FROM Contacts WHERE ContactID = :id;\n"
    )
    env = {**os.environ, "PGPASSWORD": SECRET}
    done = subprocess.run(
        ["pgbench", "-n", "-h", wire.host, "-p", str(wire.port), "-U", USER, "-M", mode,
         "-c", "2", "-t", "25", "-f", str(script), "pg.example"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "number of transactions actually processed: 50/50" in done.stdout
    assert "number of failed transactions: 0" in done.stdout


def test_wire_statements_are_counted_like_requests(wire: Wire) -> None:
    def counted(outcome: str) -> float:
        text = httpx.get(f"{wire.url}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tenantgate_requests_total{")
            and 'endpoint="pgwire_statement"' in line
            and f'outcome="{outcome}"' in line
        )

    ok, errors = counted("ok"), counted("error")
    with psycopg.connect(wire.dsn("lite.example"), autocommit=True) as conn:
        conn.execute("SELECT 1 AS one")
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT Nope FROM Contacts")
    assert (counted("ok"), counted("error")) == (ok + 1, errors + 1)


# -- bad input ----------------------------------------------------------------------------------


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _startup(params: dict[str, str]) -> bytes:
    body = (
        struct.pack("!I", 196608)
        + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items())
        + b"\0"
    )
    return struct.pack("!I", len(body) + 4) + body


class _Raw:
    """A hand-driven wire client: frames in, frames out, nothing interpreted for us."""

    def __init__(self, wire: Wire) -> None:
        self.sock = socket.create_connection((wire.host, wire.port), timeout=10)
        self.buffer = b""
        self.key = b""
        """BackendKeyData's payload once logged in: what a CancelRequest sends."""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> tuple[bytes, bytes] | None:
        """The next backend message, or None when the server closed the connection."""
        while True:
            if len(self.buffer) >= 5:
                (length,) = struct.unpack("!I", self.buffer[1:5])
                if len(self.buffer) >= 1 + length:
                    kind, payload = self.buffer[:1], self.buffer[5 : 1 + length]
                    self.buffer = self.buffer[1 + length :]
                    return kind, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def until(self, kind: bytes) -> list[tuple[bytes, bytes]]:
        seen = []
        while (message := self.read()) is not None:
            seen.append(message)
            if message[0] == kind:
                break
        return seen

    def login(self, tenant: str = "lite.example") -> None:
        self.send(_startup({"user": USER, "database": tenant}))
        client = ScramClient(["SCRAM-SHA-256"], USER, SECRET)
        assert self.read() is not None  # AuthenticationSASL
        first = client.get_client_first().encode()
        self.send(_message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
        kind, payload = self.read() or (b"", b"")
        assert kind == b"R", payload
        client.set_server_first(payload[4:].decode())
        self.send(_message(b"p", client.get_client_final().encode()))
        seen = self.until(b"Z")
        assert seen[-1][0] == b"Z"
        self.key = next(payload for kind, payload in seen if kind == b"K")

    def close(self) -> None:
        self.sock.close()


def _sqlstate(payload: bytes) -> str:
    fields = dict((f[:1], f[1:]) for f in payload.split(b"\0") if f)
    return fields[b"C"].decode()


@pytest.mark.parametrize(
    ("data", "sqlstate"),
    [
        (struct.pack("!I", 3), "08P01"),  # a startup length below its own size
        (struct.pack("!II", 8, 0x00020000), "0A000"),  # protocol 2.0
        (_startup({"database": "lite.example"}), "28000"),  # no user
    ],
)
def test_a_bad_startup_ends_in_a_fatal_error(wire: Wire, data: bytes, sqlstate: str) -> None:
    raw = _Raw(wire)
    try:
        raw.send(data)
        kind, payload = raw.read() or (b"", b"")
        assert kind == b"E" and _sqlstate(payload) == sqlstate
        assert raw.read() is None  # closed
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("data", "sqlstate"),
    [
        (_message(b"Q", b"SELECT 1"), "08P01"),  # no terminating NUL
        (_message(b"z", b""), "08P01"),  # no such message type
        (b"Q" + struct.pack("!I", 1 << 30), "54000"),  # a 1 GB message announced
    ],
)
def test_a_malformed_message_ends_the_session_cleanly(
    wire: Wire, data: bytes, sqlstate: str
) -> None:
    raw = _Raw(wire)
    try:
        raw.login()
        raw.send(data)
        kind, payload = raw.read() or (b"", b"")
        assert kind == b"E" and _sqlstate(payload) == sqlstate
        assert raw.read() is None
    finally:
        raw.close()


def test_an_out_of_order_message_is_an_error_until_sync(wire: Wire) -> None:
    raw = _Raw(wire)
    try:
        raw.login()
        raw.send(_message(b"E", b"nope\0" + struct.pack("!I", 0)))  # Execute, no such portal
        raw.send(_message(b"D", b"Pnope\0"))  # skipped: after an error, until Sync
        raw.send(_message(b"S", b""))
        seen = raw.until(b"Z")
        assert [k for k, _ in seen] == [b"E", b"Z"]
        assert _sqlstate(seen[0][1]) == "34000"
        raw.send(_message(b"Q", b"SELECT 1 AS one\0"))
        assert [k for k, _ in raw.until(b"Z")] == [b"T", b"D", b"C", b"Z"]
    finally:
        raw.close()


def test_a_client_that_vanishes_in_a_transaction_leaves_nothing_pinned(wire: Wire) -> None:
    last = mark()
    raw = _Raw(wire)
    try:
        raw.login("pg.example")
        raw.send(_message(b"Q", b"BEGIN\0"))
        assert raw.until(b"Z")[-1] == (b"Z", b"T")
        sql = INSERT.replace("%s", "'x'", 1).replace("%s", f"'{last}'")
        raw.send(_message(b"Q", sql.encode() + b"\0"))
        assert raw.until(b"Z")[-1] == (b"Z", b"T")
    finally:
        raw.close()  # no COMMIT, no Terminate

    def ended() -> bool:
        text = httpx.get(f"{wire.url}/metrics", timeout=10).text
        counts = {
            line.split('outcome="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tenantgate_transactions_total{")
        }
        begun = counts.pop("begun", 0.0)
        return begun > 0 and begun == sum(counts.values())

    deadline = time.monotonic() + 10
    while not ended() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ended()
    assert wire.stored("pg.example", last) == 0


# -- catalog queries ------------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", TENANTS)
def test_psql_describes_a_table_with_its_custom_columns(wire: Wire, tenant: str) -> None:
    done = _psql(wire, tenant, "-c", "\\d Contacts")
    assert done.returncode == 0, done.stderr
    assert 'Table "public.Contacts"' in done.stdout
    for column in ("ContactID", "FirstName", "LastName", "CreatedAt"):
        assert column in done.stdout
    listed = _psql(wire, tenant, "-c", "\\dt")
    assert listed.returncode == 0, listed.stderr
    assert "Contacts" in listed.stdout and "Accounts" in listed.stdout


@pytest.mark.parametrize("tenant", TENANTS)
def test_sqlalchemy_connects_reflects_and_queries(wire: Wire, tenant: str) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://{USER}:{SECRET}@{wire.host}:{wire.port}/{tenant}?sslmode=disable"
    )
    try:
        inspector = sqlalchemy.inspect(engine)
        assert "Contacts" in inspector.get_table_names()
        columns = {c["name"]: c for c in inspector.get_columns("Contacts")}
        assert {"ContactID", "FirstName", "LastName"} <= columns.keys()
        assert inspector.get_pk_constraint("Contacts")["constrained_columns"] == ["ContactID"]
        contacts = sqlalchemy.Table("Contacts", sqlalchemy.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.select(contacts.c.ContactID, contacts.c.FirstName)
                .where(contacts.c.ContactID <= 2)
                .order_by(contacts.c.ContactID)
            ).all()
        assert [r.ContactID for r in rows] == [1, 2]
    finally:
        engine.dispose()


def test_a_portal_with_a_row_limit_is_suspended_and_resumed(wire: Wire) -> None:
    raw = _Raw(wire)
    try:
        raw.login()
        sql = b"SELECT ContactID FROM Contacts WHERE ContactID <= 5 ORDER BY ContactID\0"
        raw.send(_message(b"P", b"\0" + sql + struct.pack("!H", 0)))
        raw.send(_message(b"B", b"cur\0\0" + struct.pack("!HHH", 0, 0, 0)))
        for _ in range(3):
            raw.send(_message(b"E", b"cur\0" + struct.pack("!I", 2)))
        raw.send(_message(b"S", b""))
        kinds = [k for k, _ in raw.until(b"Z")]
        # Parse, Bind; 2 rows, suspended; 2 rows, suspended; the last row, complete.
        assert kinds == [b"1", b"2", b"D", b"D", b"s", b"D", b"D", b"s", b"D", b"C", b"Z"]
    finally:
        raw.close()


def test_several_statements_in_one_query_are_refused(wire: Wire) -> None:
    raw = _Raw(wire)
    try:
        raw.login()
        raw.send(_message(b"Q", b"SELECT 1 AS a; SELECT 2 AS b\0"))
        seen = raw.until(b"Z")
        assert [k for k, _ in seen] == [b"E", b"Z"]
        assert _sqlstate(seen[0][1]) == "42601"
    finally:
        raw.close()


def _cancel_when_waiting(wire: Wire, waiter: psycopg.Connection[Any]) -> None:
    """Cancel ``waiter`` once its statement waits for the lock on the server."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.closing(wire.pg.connect(wire.pg_database)) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ?"
                " AND wait_event_type = 'Lock'",
                wire.pg_database,
            ).fetchval()
        if waiting:
            break
        time.sleep(0.05)
    waiter.cancel()


def test_a_cancel_request_stops_the_running_statement(wire: Wire) -> None:
    """A statement waiting on a row lock (held by another session, so slow by
    construction) is stopped by the client's CancelRequest: 57014, and the session
    goes on."""
    update = "UPDATE Contacts SET Title = %s WHERE ContactID = 3"
    with psycopg.connect(wire.dsn("pg.example")) as holder:
        holder.execute(update, ["held"])  # BEGIN, and the row's lock, until rollback
        with psycopg.connect(wire.dsn("pg.example"), autocommit=True) as waiter:
            timer = threading.Thread(target=_cancel_when_waiting, args=(wire, waiter))
            timer.start()
            with pytest.raises(psycopg.errors.QueryCanceled, match="user request"):
                waiter.execute(update, ["waiting"])  # not its timeout: the cancel ended it
            timer.join()
            assert waiter.execute("SELECT 1 AS one").fetchone() == (1,)
        holder.rollback()


def test_a_tokens_rate_applies_to_each_statement(wire: Wire) -> None:
    # rate_per_s = 0.01: a burst of one statement, the next in 100 s.
    with psycopg.connect(wire.dsn("lite.example", user="slow"), autocommit=True) as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == (1,)
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded):
            conn.execute("SELECT 2 AS two")


# -- the extended protocol's implicit transaction ------------------------------------------------


def _begun(wire: Wire) -> float:
    text = httpx.get(f"{wire.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith('tenantgate_transactions_total{outcome="begun"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("tenant", TENANTS)
def test_statements_up_to_a_sync_are_all_or_nothing(wire: Wire, tenant: str) -> None:
    """A psycopg pipeline in autocommit sends several statements before one Sync: as
    on PostgreSQL (checked there too, directly), a failing one undoes the others."""
    kept, dropped = mark(), mark()
    with psycopg.connect(wire.dsn(tenant), autocommit=True) as conn:
        with conn.pipeline():
            conn.execute(INSERT, ["a", kept])
            conn.execute(INSERT, ["b", kept])
        with pytest.raises(psycopg.IntegrityError), conn.pipeline():
            conn.execute(INSERT, ["c", dropped])
            conn.execute(INSERT, [None, dropped])
        # Idle again, not in a failed block: the next statement runs.
        assert conn.execute("SELECT 1 AS one").fetchone() == (1,)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert wire.stored(tenant, kept) == 2
    assert wire.stored(tenant, dropped) == 0


def test_one_statement_up_to_a_sync_begins_no_transaction(wire: Wire) -> None:
    """The usual run (Parse, Bind, Describe, Execute, Sync in one packet) is its own
    transaction: no interactive transaction is begun for it."""
    before = _begun(wire)
    last = mark()
    with psycopg.connect(wire.dsn("pg.example"), autocommit=True) as conn:
        for _ in range(3):
            conn.execute(INSERT, ["a", last])
            conn.execute("SELECT ContactID FROM Contacts WHERE ContactID = %s", [1])
    assert wire.stored("pg.example", last) == 3
    assert _begun(wire) == before


def test_a_failed_run_up_to_a_sync_leaves_the_session_idle(wire: Wire) -> None:
    last = mark()
    raw = _Raw(wire)
    try:
        raw.login("pg.example")
        ok = INSERT.replace("%s", "'x'", 1).replace("%s", f"'{last}'")
        bad = INSERT.replace("%s", "NULL", 1).replace("%s", f"'{last}'")
        for sql in (ok, bad):
            raw.send(_message(b"P", b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0)))
            raw.send(_message(b"B", b"\0\0" + struct.pack("!HHH", 0, 0, 0)))
            raw.send(_message(b"E", b"\0" + struct.pack("!I", 0)))
        raw.send(_message(b"S", b""))
        seen = raw.until(b"Z")
        kinds = [k for k, _ in seen]
        # The first ran (1, 2, C); the second failed (1, 2, E); ReadyForQuery idle.
        assert kinds == [b"1", b"2", b"C", b"1", b"2", b"E", b"Z"], kinds
        assert _sqlstate(seen[5][1]) == "23502"
        assert seen[-1] == (b"Z", b"I")
    finally:
        raw.close()
    assert wire.stored("pg.example", last) == 0


def test_an_error_at_bind_undoes_the_run_up_to_the_sync(wire: Wire) -> None:
    """Not only a statement's own failure: any error before the Sync (here a binary
    integer of three bytes) rolls back the run's implicit transaction."""
    last = mark()
    raw = _Raw(wire)
    try:
        raw.login("pg.example")
        ok = INSERT.replace("%s", "'x'", 1).replace("%s", f"'{last}'")
        raw.send(_message(b"P", b"\0" + ok.encode() + b"\0" + struct.pack("!H", 0)))
        raw.send(_message(b"B", b"\0\0" + struct.pack("!HHH", 0, 0, 0)))
        raw.send(_message(b"E", b"\0" + struct.pack("!I", 0)))
        read = b"SELECT ContactID FROM Contacts WHERE ContactID = $1\0"
        raw.send(_message(b"P", b"\0" + read + struct.pack("!HI", 1, 23)))  # int4
        bad = struct.pack("!HHHI", 1, 1, 1, 3) + b"\0\0\1" + struct.pack("!H", 0)
        raw.send(_message(b"B", b"\0\0" + bad))
        raw.send(_message(b"E", b"\0" + struct.pack("!I", 0)))
        raw.send(_message(b"S", b""))
        seen = raw.until(b"Z")
        assert [k for k, _ in seen] == [b"1", b"2", b"C", b"1", b"E", b"Z"], seen
        assert seen[-1] == (b"Z", b"I")
    finally:
        raw.close()
    assert wire.stored("pg.example", last) == 0


def test_any_error_in_a_block_fails_it(wire: Wire) -> None:
    """As in PostgreSQL: a refused SET inside a block fails the block too."""
    raw = _Raw(wire)
    try:
        raw.login("pg.example")
        raw.send(_message(b"Q", b"BEGIN\0"))
        assert raw.until(b"Z")[-1] == (b"Z", b"T")
        raw.send(_message(b"Q", b"SET work_mem = '1GB'\0"))
        seen = raw.until(b"Z")
        assert _sqlstate(seen[0][1]) == "0A000"
        assert seen[-1] == (b"Z", b"E")
        raw.send(_message(b"Q", b"ROLLBACK\0"))
        assert raw.until(b"Z")[-1] == (b"Z", b"I")
    finally:
        raw.close()
