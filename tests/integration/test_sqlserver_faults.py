"""SQL Server faults over real TDS, once per driver: timeouts, killed sessions, a
restarted engine, bad logins, a missing database, a server that is down or silent.

Statements meant to be slow are slow by construction: ``SlowRows`` is a view over a
four-way cross join of ``sys.all_columns`` (about 10^13 rows on Babelfish, more on SQL
Server), which no machine finishes within any test's lifetime. Deadlines are asserted
with wide margins against that, never against how fast this machine is.

Babelfish differs from SQL Server here, and the tests say so where it matters: it acts
on a TDS attention (``SQLCancel``) only when the statement ends, so a timeout there is
enforced by tenantgate's ``KILL`` backstop and the connection is replaced; on SQL Server
the attention stops the statement (HY008) and the connection is kept.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.auth import Principal
from proxy.config import PoolSettings
from proxy.demo.seed import seed_tenant
from proxy.errors import (
    BackendUnavailable,
    ProxyError,
    StatementTimeout,
)
from proxy.frontends.http.statuses import status_for
from proxy.pipeline.request import QueryRequest
from tenancy.errors import TenancyError
from tests.support.blocking import BlockingService
from tests.support.tds import FREETDS, TdsServer
from tests.support.tenants import READER, service_for

SLOW_VIEW = (
    "CREATE VIEW dbo.SlowRows AS SELECT COUNT_BIG(*) AS n FROM sys.all_columns a "
    "CROSS JOIN sys.all_columns b CROSS JOIN sys.all_columns c CROSS JOIN sys.all_columns d"
)
COUNT = "SELECT COUNT(*) AS n FROM Contacts"
SLOW = "SELECT n FROM SlowRows"
LOGIN_TIMEOUT_S = 2


@dataclass
class Faults:
    service: BlockingService
    principal: Principal
    tds: TdsServer
    database: str
    driver: str

    def query(self, tenant: str, sql: str, timeout_ms: int = 5000) -> list[list[object]]:
        request = QueryRequest(tenant, sql, timeout_ms=timeout_ms)
        return self.service.query(self.principal, request).result.rows

    def pool_stats(self) -> dict[str, int]:
        stats = self.service.drivers.odbc.pools.get_stats()
        return next(v for k, v in stats.items() if k.startswith("sqlserver://"))

    def session_ids(self) -> set[int]:
        with contextlib.closing(self.tds.connect(self.driver)) as conn:
            rows = conn.execute(
                "SELECT session_id FROM sys.dm_exec_sessions "
                "WHERE session_id IS NOT NULL AND session_id <> @@SPID"
            ).fetchall()
        return {int(r[0]) for r in rows}

    def pooled_session_id(self) -> int:
        location = self.service.resolver.resolve("ok.example").location
        with self.service.drivers.odbc.pools.pool_for(location).connection() as conn:
            return int(conn.raw.execute("SELECT @@SPID").fetchone()[0])


def _is_babelfish(tds: TdsServer) -> bool:
    with contextlib.closing(tds.connect()) as conn:
        return "Babelfish" in str(conn.execute("SELECT @@VERSION").fetchone()[0])


def _silent_server() -> tuple[socket.socket, int]:
    """A listener that accepts TCP connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, int(listener.getsockname()[1])


@pytest.fixture(scope="module")
def faults_database(tds_server: TdsServer) -> Iterator[str]:
    """The module's one tenant database, seeded once for both drivers (seeding is
    driver-neutral): the tests only read it (``COUNT`` and ``SlowRows``), each through a
    service of its own, and what they break (sessions, the engine) is not in it."""
    name = tds_server.create_database()
    try:
        driver = FREETDS if FREETDS in tds_server.drivers else tds_server.drivers[0]
        with contextlib.closing(tds_server.connect(driver, name)) as conn:
            seed_tenant(conn, "sqlserver", contacts=5, seed=3)
            conn.execute(SLOW_VIEW)
        yield name
    finally:
        tds_server.drop_database(name)


@pytest.fixture
def faults(
    tmp_path: Path, tds_server: TdsServer, tds_driver: str, faults_database: str
) -> Iterator[Faults]:
    silent, silent_port = _silent_server()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = int(s.getsockname()[1])  # nothing listens there once closed
    down = TdsServer("127.0.0.1", closed_port, tds_server.user, tds_server.password,
                     tds_server.encrypt, tds_server.drivers)  # fmt: skip
    mute = TdsServer("127.0.0.1", silent_port, tds_server.user, tds_server.password,
                     tds_server.encrypt, tds_server.drivers)  # fmt: skip
    tenants = {
        "ok.example": tds_server.odbc(tds_driver, faults_database),
        "badlogin.example": tds_server.odbc(tds_driver, faults_database, password="Wrong-4711"),
        "nodb.example": tds_server.odbc(tds_driver, "tg_no_such_database"),
        "down.example": down.odbc(tds_driver, faults_database),
        "silent.example": mute.odbc(tds_driver, faults_database),
    }
    service = service_for(
        tmp_path / "controller.db",
        tenants,
        pool=PoolSettings(max_size=8, login_timeout_s=LOGIN_TIMEOUT_S, acquire_timeout_ms=20_000),
    )
    principal = service.auth.authenticate(f"Bearer {READER}")
    try:
        yield Faults(service, principal, tds_server, faults_database, tds_driver)
    finally:
        service.close()
        silent.close()


def _timed(fn: object) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        fn()  # type: ignore[operator]
    except Exception as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def test_a_timeout_stops_the_statement_and_the_pool_goes_on(faults: Faults) -> None:
    assert faults.query("ok.example", COUNT) == [[5]]
    session = faults.pooled_session_id()
    before = faults.pool_stats()
    error, elapsed = _timed(lambda: faults.query("ok.example", SLOW, timeout_ms=500))
    assert isinstance(error, StatementTimeout), error
    assert status_for(error) == (504, "statement_timeout")
    # The statement needs hours; the answer came at the deadline plus the backstop, or
    # at the deadline plus ODBC's abandon time (0.75 s), whichever came first.
    assert elapsed < 20, elapsed
    if _is_babelfish(faults.tds):
        # Babelfish: the attention waits for the statement to end, so tenantgate KILLed
        # the session: the statement is gone from the server, the connection retired.
        # The request may have been answered before its thread saw the KILL (it was
        # abandoned): the retirement follows when the thread returns.
        deadline = time.monotonic() + 15
        while faults.pool_stats()["connections_lost"] == before["connections_lost"]:
            assert time.monotonic() < deadline, "the KILLed connection was never retired"
            time.sleep(0.05)
        assert session not in faults.session_ids()
        assert faults.pool_stats()["connections_lost"] == before["connections_lost"] + 1
    else:
        # SQL Server acknowledges the attention (HY008): the session stays, idle.
        assert session in faults.session_ids()
        assert faults.pool_stats()["connections_lost"] == before["connections_lost"]
    assert faults.query("ok.example", COUNT) == [[5]]


def test_concurrent_timeouts_all_end_at_their_deadline(faults: Faults) -> None:
    # More stuck statements than the watchdog has shared workers: a cancel that blocks
    # until the server acknowledges must not hold up the KILLs of the others.
    n = 6
    start = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        outcomes = list(
            pool.map(
                lambda _: _timed(lambda: faults.query("ok.example", SLOW, timeout_ms=700)),
                range(n),
            )
        )
    assert all(isinstance(e, StatementTimeout) for e, _ in outcomes), outcomes
    assert time.monotonic() - start < 30
    # Requests whose threads did not return in time were abandoned: their threads give
    # their connections back once the KILLs end the statements (Babelfish may take a
    # while to notice a KILL in a cross join, on a busy machine).
    deadline = time.monotonic() + 30
    while (stats := faults.pool_stats())["pool_size"] > stats["pool_available"]:
        assert time.monotonic() < deadline, stats
        time.sleep(0.1)
    assert faults.query("ok.example", COUNT) == [[5]]


def test_a_killed_session_is_discarded_and_the_next_request_works(faults: Faults) -> None:
    assert faults.query("ok.example", COUNT) == [[5]]
    session = faults.pooled_session_id()
    with contextlib.closing(faults.tds.connect(faults.driver)) as admin:
        admin.execute(f"KILL {session}")
    before = faults.pool_stats()
    # The pooled connection was dead: it is retired, and the read, which changed
    # nothing, runs once more on a fresh connection. The caller sees no error.
    assert faults.query("ok.example", COUNT) == [[5]]
    assert faults.pool_stats()["connections_lost"] == before["connections_lost"] + 1
    assert faults.query("ok.example", COUNT) == [[5]]


def test_an_engine_restart_costs_at_most_one_failed_request_per_connection(
    faults: Faults,
) -> None:
    if faults.tds.control is None:
        pytest.skip("the engine was not started by this run (TENANTGATE_TEST_TDS_DSN)")
    assert faults.query("ok.example", COUNT) == [[5]]
    faults.tds.control("stop")
    try:
        error, elapsed = _timed(lambda: faults.query("ok.example", COUNT))
        assert isinstance(error, BackendUnavailable), error
        assert elapsed < LOGIN_TIMEOUT_S + 10
    finally:
        faults.tds.control("start")
    results: list[object] = []
    for _ in range(3):
        error, _ = _timed(lambda: results.append(faults.query("ok.example", COUNT)))
        if error is None:
            break
        assert isinstance(error, BackendUnavailable), error
    assert results == [[[5]]]


@pytest.mark.parametrize(
    ("tenant", "says"),
    [
        ("badlogin.example", "Login failed"),
        ("nodb.example", "could not be read"),
        ("down.example", None),
        ("silent.example", None),
    ],
)
def test_unreachable_tenants_get_a_clear_503_within_the_login_timeout(
    faults: Faults, tenant: str, says: str | None
) -> None:
    results: list[tuple[BaseException | None, float]] = []
    thread = threading.Thread(
        target=lambda: results.append(_timed(lambda: faults.query(tenant, COUNT)))
    )
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), f"{tenant}: the request hung"
    ((error, elapsed),) = results
    assert isinstance(error, ProxyError | TenancyError), error
    assert status_for(error) == (503, "backend_unavailable"), error
    assert elapsed < LOGIN_TIMEOUT_S * 3 + 5, elapsed
    assert faults.tds.password not in error.message and "Wrong-4711" not in error.message
    if says is not None:
        assert says in error.message
