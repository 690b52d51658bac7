"""Wire results larger than ``query.max_rows_cap``: outside a transaction, a read that
has more rows is run again as a stream and its rows sent as they are fetched
(``Connection._stream``); inside one, or asked for a page at a time, it is refused.

A service of the module's own with small caps (100 rows held, 50,000 streamed), so that
a cross join of the seeded contacts is "large" without a large table. The clients are
real (``psql``, psycopg 3) or hand-driven frames (``_Raw``) where a client would never
misbehave on purpose.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import struct
import time
from collections.abc import Iterator

import psycopg
import pytest

from proxy.auth import hash_token
from proxy.demo.seed import custom_columns, seed_tenant
from proxy.frontends.pgwire.auth import make_verifier
from tests.e2e.test_pgwire import SECRET, TENANTS, USER, Wire, _message, _psql, _Raw, _sqlstate
from tests.support.pg import PgServer
from tests.support.stack import free_port, serve
from tests.support.tenants import backends_toml, base_model_toml, write_controller

pytestmark = pytest.mark.e2e

TOKEN = "e2e-pgwire-large-91f0"
CONTACTS = 40
CAP = 100
STREAM_CAP = 50_000
WRITE_TIMEOUT_MS = 3000
PAIRS = "SELECT a.ContactID, b.ContactID FROM Contacts a CROSS JOIN Contacts b"
"""1,600 rows: 16 times the cap, well within the stream's."""
TRIPLES = PAIRS + " CROSS JOIN Contacts c"
"""64,000 rows: more than a stream sends."""


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory, pg: PgServer) -> Iterator[Wire]:
    root = tmp_path_factory.mktemp("pgwire_large")
    database = pg.create_database("tg_wire_large")
    try:
        with contextlib.closing(pg.connect(database)) as conn:
            seed_tenant(
                conn, "postgresql", contacts=CONTACTS, seed=5, custom_columns=custom_columns(3)
            )
        lite = root / "lite.db"
        with contextlib.closing(sqlite3.connect(lite)) as db:
            seed_tenant(db, "sqlite", contacts=CONTACTS, seed=5, custom_columns=custom_columns(3))
            db.commit()
        controller = root / "controller.db"
        write_controller(
            controller,
            [(1, "lite.example", f"Driver=SQLite3;Database={lite}"),
             (2, "pg.example", pg.odbc(database))],
        )  # fmt: skip
        port = free_port()
        config = root / "tenantgate.toml"
        config.write_text(
            f"""
[controller]
connection_string = "Driver=SQLite3;Database={controller}"

{backends_toml()}

[pool]
max_size = 4

[query]
default_max_rows = {CAP}
max_rows_cap = {CAP}
stream_max_rows = {STREAM_CAP}
stream_write_timeout_ms = {WRITE_TIMEOUT_MS}

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
sha256 = "{hash_token(TOKEN)}"
tenants = ["*"]
classes = ["read", "write"]
""",
            encoding="utf-8",
        )
        with serve(config, root / "service.log") as (url, _):
            yield Wire("127.0.0.1", port, pg, database, lite, url)
    finally:
        pg.drop_database(database)


def _pairs() -> list[tuple[int, int]]:
    return sorted((a, b) for a in range(1, CONTACTS + 1) for b in range(1, CONTACTS + 1))


@pytest.mark.parametrize("tenant", TENANTS)
def test_psql_reads_a_result_larger_than_the_cap(wire: Wire, tenant: str) -> None:
    done = _psql(wire, tenant, "-At", "-c", PAIRS)
    assert done.returncode == 0, done.stderr
    rows = sorted(tuple(int(v) for v in line.split("|")) for line in done.stdout.splitlines())
    assert rows == _pairs()


@pytest.mark.parametrize("tenant", TENANTS)
def test_psycopg_reads_it_whole_with_parameters(wire: Wire, tenant: str) -> None:
    with psycopg.connect(wire.dsn(tenant), autocommit=True) as conn:
        rows = conn.execute(PAIRS + " WHERE a.ContactID > %s", (10,)).fetchall()
        assert sorted(rows) == [(a, b) for a, b in _pairs() if a > 10]
        # The session goes on as usual: a small result, held and sent whole.
        assert conn.execute("SELECT COUNT(*) FROM Contacts").fetchone() == (CONTACTS,)


@pytest.mark.parametrize("tenant", TENANTS)
def test_more_than_a_stream_sends_is_an_error_after_its_rows(wire: Wire, tenant: str) -> None:
    with psycopg.connect(wire.dsn(tenant), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ProgramLimitExceeded) as caught:
            conn.execute(TRIPLES).fetchall()
        assert "query.stream_max_rows" in str(caught.value)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_in_a_transaction_a_large_result_is_refused(wire: Wire) -> None:
    # A stream would hold the transaction's connection between statements.
    with psycopg.connect(wire.dsn("pg.example")) as conn:
        with pytest.raises(psycopg.errors.ProgramLimitExceeded) as caught:
            conn.execute(PAIRS).fetchall()
        assert "query.max_rows_cap" in str(caught.value)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR


def test_a_page_of_a_large_result_is_refused(wire: Wire) -> None:
    raw = _Raw(wire)
    try:
        raw.login("pg.example")
        raw.send(_message(b"P", b"\0" + PAIRS.encode() + b"\0" + struct.pack("!H", 0)))
        raw.send(_message(b"B", b"page\0\0" + struct.pack("!HHH", 0, 0, 0)))
        raw.send(_message(b"E", b"page\0" + struct.pack("!I", 10)))
        raw.send(_message(b"S", b""))
        seen = raw.until(b"Z")
        errors = [payload for kind, payload in seen if kind == b"E"]
        assert [_sqlstate(e) for e in errors] == ["54000"]
        assert not [kind for kind, _ in seen if kind == b"D"]
        assert seen[-1] == (b"Z", b"I")
    finally:
        raw.close()


def _fetching(wire: Wire) -> list[str]:
    """The states of the service's sessions on the PostgreSQL tenant whose last
    statement is a stream's FETCH."""
    with contextlib.closing(wire.pg.connect(wire.pg_database)) as conn:
        rows = conn.execute(
            "SELECT state, query FROM pg_stat_activity WHERE datname = ?"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            wire.pg_database,
        ).fetchall()
    return [str(state) for state, query in rows if "FETCH" in str(query)]


WIDE = "SELECT a.*, b.*, c.* FROM Contacts a CROSS JOIN Contacts b CROSS JOIN Contacts c"
"""Wide rows: far more bytes than the sockets buffer before the stream's cap."""


def _until_waiting(wire: Wire) -> None:
    """Until the stream's cursor waits, its transaction open, for the client to read."""
    deadline = time.monotonic() + 30
    while "idle in transaction" not in _fetching(wire):
        assert time.monotonic() < deadline, "the stream never waited for the client"
        time.sleep(0.05)


def test_a_client_that_stops_reading_is_cut_off(wire: Wire) -> None:
    """Wide rows, far more bytes than the sockets buffer; the client reads nothing. The
    stream waits, with its cursor's transaction open, then is ended after the write
    timeout: the statement stops, and the connection is closed without completing."""
    raw = _Raw(wire)
    try:
        raw.login("pg.example")
        raw.send(_message(b"Q", WIDE.encode() + b"\0"))
        _until_waiting(wire)
        deadline = time.monotonic() + 30
        while _fetching(wire) and set(_fetching(wire)) != {"idle"}:  # then ended
            assert time.monotonic() < deadline, "the stream was not ended"
            time.sleep(0.05)
        raw.sock.settimeout(30)
        kinds = []
        while (message := raw.read()) is not None:  # what was sent, then the close
            kinds.append(message[0])
        assert kinds[0] == b"T" and set(kinds[1:]) == {b"D"}
        assert len(kinds) - 1 < STREAM_CAP  # cut off before the end
    finally:
        raw.close()


def test_a_cancel_request_stops_a_stream(wire: Wire) -> None:
    """A stream waiting on a client that does not read, cancelled (well within the write
    timeout): the statement stops, and once the client reads, the rows sent so far are
    followed by 57014 and the session goes on."""
    raw = _Raw(wire)
    try:
        raw.login("pg.example")
        raw.send(_message(b"Q", WIDE.encode() + b"\0"))
        _until_waiting(wire)
        with socket.create_connection((wire.host, wire.port), timeout=10) as cancel:
            cancel.sendall(struct.pack("!II", 16, 80877102) + raw.key)
        seen = raw.until(b"Z")
        kinds = [kind for kind, _ in seen]
        assert kinds[0] == b"T" and set(kinds[1:-2]) == {b"D"}
        assert kinds[-2:] == [b"E", b"Z"] and _sqlstate(seen[-2][1]) == "57014"
        assert set(_fetching(wire)) <= {"idle"}
        raw.send(_message(b"Q", b"SELECT 1\0"))
        assert [kind for kind, _ in raw.until(b"Z")] == [b"T", b"D", b"C", b"Z"]
    finally:
        raw.close()
