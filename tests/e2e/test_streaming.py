"""Streamed ``/v1/query`` through the real service process (docs/transactions.md,
"Streaming results"): the lines, CSV, errors before and after the first line, a client
that stops reading or goes away, and a million rows in bounded memory.

One service of its own for the module (its memory is measured, so no other test's
requests may raise its high-water mark), over a PostgreSQL tenant with a
``Numbers`` table of a million rows, seeded on the server with ``generate_series``,
and a ``SlowRows`` view whose rows past the 1,000th each sleep: slow by construction.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from proxy.auth import hash_token
from proxy.demo.seed import seed_tenant
from tests.support.pg import PgServer
from tests.support.stack import serve
from tests.support.tenants import backends_toml, base_model_toml, write_controller

pytestmark = pytest.mark.e2e

TOKEN = "e2e-stream-token-9a4f"
NDJSON = {"Accept": "application/x-ndjson"}
MILLION = 1_000_000
RSS_GROWTH_MAX_KB = 80 * 1024
"""Far above what a bounded stream needs (a few MB), far below a buffered result: a
million rows of three columns held as Python lists cost about 200 MB, their JSON 40."""


def _admin(pg: PgServer, database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password,
        dbname=database, autocommit=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, pg: PgServer
) -> Iterator[tuple[httpx.Client, int, str]]:
    """(client, service pid, PostgreSQL database) of a service of the module's own."""
    root = tmp_path_factory.mktemp("streaming")
    database = pg.create_database("tg_stream")
    try:
        with contextlib.closing(pg.connect(database)) as conn:
            seed_tenant(conn, "postgresql", contacts=20, seed=3)
        with contextlib.closing(_admin(pg, database)) as conn:
            conn.execute(
                'CREATE TABLE "Numbers" ("N" integer PRIMARY KEY, "Label" text, "Amount" numeric)'
            )
            conn.execute(
                "INSERT INTO \"Numbers\" SELECT n, 'row ' || n, n / 4.0"
                " FROM generate_series(1, %s) n",
                (MILLION,),
            )
            # A small table of its own: scanned in the order it was written (a table past
            # a quarter of shared_buffers may be scanned from where another scan was).
            conn.execute('CREATE TABLE "SlowBase" ("N" integer)')
            conn.execute('INSERT INTO "SlowBase" SELECT generate_series(1, 5000)')
            conn.execute(
                'CREATE VIEW "SlowRows" AS SELECT "N", CASE WHEN "N" > 1000'
                ' THEN pg_sleep(30)::text END AS "Pause" FROM "SlowBase"'
            )
        lite = root / "lite.db"
        with contextlib.closing(sqlite3.connect(lite)) as db:
            seed_tenant(db, "sqlite", contacts=20, seed=3)
        controller = root / "controller.db"
        write_controller(
            controller,
            [
                (1, "pg.example", pg.odbc(database)),
                (2, "lite.example", f"Driver=SQLite3;Database={lite}"),
            ],
        )
        config = root / "tenantgate.toml"
        config.write_text(_config(controller), encoding="utf-8")
        with serve(config, root / "service.log") as (url, pid):
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                yield client, pid, database
    finally:
        pg.drop_database(database)


def _config(controller: Path) -> str:
    return f"""
[controller]
connection_string = "Driver=SQLite3;Database={controller}"

{backends_toml()}

[pool]
max_size = 2

[query]
max_timeout_ms = 40000
stream_write_timeout_ms = 6000

[base_model]
{base_model_toml()}

[[tokens]]
name = "full"
sha256 = "{hash_token(TOKEN)}"
tenants = ["*"]
classes = ["read", "write", "admin"]
"""


def _lines(response: httpx.Response) -> list[Any]:
    return [json.loads(line) for line in response.text.splitlines()]


def _vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _backends(pg: PgServer, database: str) -> list[tuple[str, str]]:
    """(state, query) of the service's sessions on ``database``."""
    with contextlib.closing(_admin(pg, database)) as conn:
        rows = conn.execute(
            "SELECT state, query FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            (database,),
        ).fetchall()
    return [(str(state), str(query)) for state, query in rows]


def _fetches(pg: PgServer, database: str) -> list[str]:
    """The states of the service's sessions whose last statement is a stream's FETCH."""
    return [state for state, query in _backends(pg, database) if "FETCH" in query]


def _wait_until(check: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _settles(check: Any, hold: float, seconds: float = 5.0) -> bool:
    """Whether ``check`` comes to hold for ``hold`` seconds on end within ``seconds``: a
    state seen once may be a moment between two steps (a stream's fetch loop is idle
    for a moment between two FETCHes, longer on a loaded machine)."""
    deadline = time.monotonic() + seconds
    since: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        if not check():
            since = None
        elif since is None:
            since = now
        elif now - since >= hold:
            return True
        time.sleep(0.05)
    return False


# -- the format ----------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["pg.example", "lite.example"])
def test_lines_carry_what_the_json_answer_carries(
    service: tuple[httpx.Client, int, str], tenant: str
) -> None:
    client, _, _ = service
    body = {
        "tenant": tenant,
        "sql": "SELECT ContactID, FirstName, Email, CreatedAt FROM Contacts ORDER BY ContactID",
        "max_rows": 15,
    }
    whole = client.post("/v1/query", json=body).json()
    streamed = client.post("/v1/query", json=body, headers=NDJSON)
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    lines = _lines(streamed)
    assert lines[0] == {"columns": whole["columns"]}
    assert lines[1:-1] == whole["rows"]
    assert lines[-1] == {"row_count": 15, "truncated": True}


def test_csv(service: tuple[httpx.Client, int, str]) -> None:
    client, _, _ = service
    body = {"tenant": "pg.example", "sql": "SELECT N, Label FROM Numbers ORDER BY N", "max_rows": 3}
    response = client.post("/v1/query", json=body, headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text == "N,Label\r\n1,row 1\r\n2,row 2\r\n3,row 3\r\n#truncated,3\r\n"


def test_a_write_is_answered_as_json(service: tuple[httpx.Client, int, str]) -> None:
    client, _, _ = service
    body = {
        "tenant": "lite.example",
        "sql": "UPDATE Contacts SET Email = Email WHERE ContactID = 1",
    }
    response = client.post("/v1/query", json=body, headers=NDJSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["row_count"] == 1


def test_an_error_before_the_first_line_is_the_usual_error(
    service: tuple[httpx.Client, int, str],
) -> None:
    client, _, _ = service
    body = {"tenant": "pg.example", "sql": "SELECT Nope FROM Numbers"}
    response = client.post("/v1/query", json=body, headers=NDJSON)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_column"


def test_a_timeout_mid_stream_ends_it_with_an_error_trailer(
    service: tuple[httpx.Client, int, str],
) -> None:
    client, _, _ = service
    body = {"tenant": "pg.example", "sql": "SELECT N, Pause FROM SlowRows", "timeout_ms": 1000}
    started = time.monotonic()
    response = client.post("/v1/query", json=body, headers=NDJSON)
    assert time.monotonic() - started < 10
    lines = _lines(response)
    assert response.status_code == 200
    assert len(lines) == 1 + 1000 + 1
    assert lines[-1]["row_count"] == 1000
    assert lines[-1]["error"]["code"] == "statement_timeout"


# -- clients that stop reading or go away -------------------------------------------------


def _raw_request(url: str, body: dict[str, Any]) -> socket.socket:
    """A stream requested on a socket of our own: reading it is up to the test."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    payload = json.dumps(body).encode()
    sock.sendall(
        b"POST /v1/query HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Accept: application/x-ndjson\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )
    return sock


def test_a_disconnect_cancels_the_statement(
    service: tuple[httpx.Client, int, str], pg: PgServer
) -> None:
    client, _, database = service
    body = {"tenant": "pg.example", "sql": "SELECT N, Pause FROM SlowRows", "timeout_ms": 40000}
    sock = _raw_request(str(client.base_url), body)
    try:
        received = b""
        while received.count(b"\n") < 1000:  # the headers, the header line, most rows
            received += sock.recv(65536)
        assert _wait_until(lambda: _fetches(pg, database) == ["active"])
    finally:
        sock.close()
    # Cancelled on the server at once, not at the 40 s timeout; the pool serves on.
    assert _wait_until(lambda: "active" not in _fetches(pg, database))
    again = client.post("/v1/query", json={"tenant": "pg.example", "sql": "SELECT 1 AS one"})
    assert again.json()["rows"] == [[1]]


def test_a_client_that_stops_reading_holds_up_the_fetching_then_is_cut_off(
    service: tuple[httpx.Client, int, str], pg: PgServer
) -> None:
    client, pid, database = service
    body = {"tenant": "pg.example", "sql": "SELECT N, Label, Amount FROM Numbers"}
    sock = _raw_request(str(client.base_url), body)
    try:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        # Not reading: the socket buffers fill, then the service stops fetching and waits
        # with its transaction idle. 1,000,000 rows are far more than the buffers hold.
        waiting = ["idle in transaction"]
        assert _settles(lambda: _fetches(pg, database) == waiting, hold=0.3)
        rss = _vm_kb(pid, "VmRSS")
        time.sleep(0.5)
        assert _fetches(pg, database) == waiting
        assert _vm_kb(pid, "VmRSS") - rss < 10 * 1024
        # Past stream_write_timeout_ms (6 s: the checks above must fit in it on a busy
        # machine) without taking a byte, the stream is ended and its transaction
        # rolled back: its session idle in the pool, or closed.
        assert _wait_until(
            lambda: not [s for s in _fetches(pg, database) if s != "idle"], seconds=20
        )
    finally:
        sock.close()
    again = client.post("/v1/query", json={"tenant": "pg.example", "sql": "SELECT 2 AS two"})
    assert again.json()["rows"] == [[2]]


# -- a million rows ---------------------------------------------------------------------------


def test_a_million_rows_in_bounded_memory(service: tuple[httpx.Client, int, str]) -> None:
    client, pid, _ = service
    body = {"tenant": "pg.example", "sql": "SELECT N, Label, Amount FROM Numbers"}
    # Warm: the plan, the pool, the first allocations of every code path.
    with client.stream("POST", "/v1/query", json={**body, "max_rows": 5000}, headers=NDJSON) as r:
        for _ in r.iter_bytes():
            pass
    before = _vm_kb(pid, "VmHWM")
    rows = 0
    last = b""
    started = time.monotonic()
    with client.stream("POST", "/v1/query", json=body, headers=NDJSON) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            rows += 1
            last = line.encode()
    elapsed = time.monotonic() - started
    growth = _vm_kb(pid, "VmHWM") - before
    print(f"1,000,000 rows streamed in {elapsed:.1f} s; the service's VmHWM grew {growth} kB")
    assert rows == 1 + MILLION + 1
    assert json.loads(last) == {"row_count": MILLION, "truncated": False}
    assert growth < RSS_GROWTH_MAX_KB


# -- the whole stream's bound -------------------------------------------------------------

STREAM_MAX_MS = 1500
ROWS_PAST_THE_BUFFERS = 200_000
"""Rows whose NDJSON (~6 MB) is far more than the sockets' buffers hold: a client that
does not read holds up the stream."""


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a service whose streams end after ``STREAM_MAX_MS``, over one SQLite
    tenant with a ``Numbers`` table of ``ROWS_PAST_THE_BUFFERS`` rows."""
    root = tmp_path_factory.mktemp("bounded")
    lite = root / "lite.db"
    with contextlib.closing(sqlite3.connect(lite)) as db:
        seed_tenant(db, "sqlite", contacts=5, seed=3)
        db.execute('CREATE TABLE "Numbers" ("N" INTEGER PRIMARY KEY, "Label" TEXT)')
        db.execute(
            'INSERT INTO "Numbers" WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1'
            " FROM n WHERE i < ?) SELECT i, 'row ' || i FROM n",
            (ROWS_PAST_THE_BUFFERS,),
        )
        db.commit()
    controller = root / "controller.db"
    write_controller(controller, [(2, "lite.example", f"Driver=SQLite3;Database={lite}")])
    config = root / "tenantgate.toml"
    text = _config(controller).replace(
        "stream_write_timeout_ms = 6000", f"stream_max_ms = {STREAM_MAX_MS}"
    )
    config.write_text(text, encoding="utf-8")
    with serve(config, root / "service.log") as (url, _):
        yield url


def _dechunk(body: bytes) -> bytes:
    """An HTTP/1.1 chunked body's content."""
    out, rest = [], body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(rest[:size])
        rest = rest[size + 2 :]


def _errors(url: str, code: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    prefix = f'tenantgate_requests_total{{code="{code}",endpoint="query",outcome="error"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_a_stream_ends_at_its_bound_however_slowly_its_client_reads(bounded: str) -> None:
    before = _errors(bounded, "statement_timeout")
    sock = _raw_request(bounded, {"tenant": 2, "sql": "SELECT N, Label FROM Numbers"})
    try:
        received = sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
        # Reads nothing for longer than the bound: the service waits on its writes.
        time.sleep(STREAM_MAX_MS / 1000 + 1)
        sock.settimeout(30)
        while not received.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of the body
            chunk = sock.recv(1 << 20)
            assert chunk, "the connection closed before the body ended"
            received += chunk
    finally:
        sock.close()
    trailer = json.loads(_dechunk(received.partition(b"\r\n\r\n")[2]).splitlines()[-1])
    assert trailer["error"]["code"] == "statement_timeout"
    assert 0 < trailer["row_count"] < ROWS_PAST_THE_BUFFERS
    # Counted with the code that ended it, once it ended.
    assert _wait_until(lambda: _errors(bounded, "statement_timeout") == before + 1)
