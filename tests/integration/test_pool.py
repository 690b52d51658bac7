"""The connection pool against a real PostgreSQL server and real SQLite files."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pyodbc
import pytest

from proxy.drivers.odbc.execute import execute
from proxy.drivers.odbc.pool import ConnectionPool, ServerLimiter
from proxy.drivers.odbc.pools import PoolManager
from proxy.drivers.odbc.watchdog import Watchdog
from proxy.drivers.sizing import PoolOptions
from proxy.errors import BackendUnavailable, ConnectionLost, PoolSaturated
from tenancy.backends import BackendKind
from tenancy.connstr import parse
from tests.support.pg import PgServer

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

# It never reads TENANTGATE_TEST_DRIVERS (ODBC pools on pyodbc connections it opens
# itself): the ODBC pass of `make test` would repeat it unchanged, so it runs in the
# native pass only (pyproject.toml).
pytestmark = [pytest.mark.integration, pytest.mark.driver_independent]


def connector(odbc: str, login_timeout: int = 5) -> Callable[[], pyodbc.Connection]:
    return lambda: pyodbc.connect(odbc, autocommit=True, timeout=login_timeout)


@pytest.fixture
def pools() -> Iterator[list[ConnectionPool]]:
    made: list[ConnectionPool] = []
    yield made
    for pool in made:
        pool.close()


@pytest.fixture
def watchdog() -> Iterator[Watchdog]:
    dog = Watchdog()
    yield dog
    dog.close()


def until(check: Callable[[], bool], *, within: float = 10.0) -> None:
    """Poll ``check`` until it holds: a server ends a closed or terminated session in
    its own time, and a thread reaches a queue in its own."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        time.sleep(0.02)


def make_pool(
    made: list[ConnectionPool], connect: Callable[[], pyodbc.Connection], **kw: Any
) -> ConnectionPool:
    settings: dict[str, Any] = {"name": "test", "max_size": 2, "acquire_timeout": 5.0}
    settings.update(kw)
    pool = ConnectionPool(connect, **settings)
    made.append(pool)
    return pool


def backend_pid(raw: pyodbc.Connection) -> int:
    return int(raw.execute("SELECT pg_backend_pid()").fetchval())


def sessions_on(pg: PgServer, database: str) -> int:
    with contextlib.closing(pg.connect()) as admin:
        return int(
            admin.execute(
                # Client sessions only: an autovacuum worker visiting the new
                # database shows up there too (CI saw a peak of 4 once).
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ?"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                database,
            ).fetchval()
        )


def test_bound_respected_under_concurrency(
    pg: PgServer, pg_database: str, pools: list[ConnectionPool]
) -> None:
    pool = make_pool(pools, connector(pg.odbc(pg_database)), max_size=3)
    lock = threading.Lock()
    active = 0
    peak = 0
    server_peak = 0
    errors: list[BaseException] = []

    def worker() -> None:
        nonlocal active, peak, server_peak
        try:
            for _ in range(3):
                with pool.connection() as conn:
                    with lock:
                        active += 1
                        peak = max(peak, active)
                    conn.raw.execute("SELECT pg_sleep(0.02)").fetchall()
                    with lock:
                        server_peak = max(server_peak, sessions_on(pg, pg_database))
                        active -= 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert peak == 3
    assert server_peak <= 3
    stats = pool.get_stats()
    assert stats["connections_num"] == 3
    assert stats["pool_size"] == 3
    assert stats["pool_available"] == 3
    assert stats["requests_num"] == 36
    assert stats["requests_waiting"] == 0
    assert stats["requests_wait_ms"] > 0


def test_acquire_timeout_raises_pool_saturated(
    pg: PgServer, pg_database: str, pools: list[ConnectionPool]
) -> None:
    pool = make_pool(pools, connector(pg.odbc(pg_database)), max_size=1, acquire_timeout=0.2)
    with pool.connection():
        start = time.monotonic()
        with pytest.raises(PoolSaturated) as info, pool.connection():
            pass
        elapsed = time.monotonic() - start
    assert 0.18 <= elapsed < 1.0
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert "test" in info.value.message
    with pytest.raises(PoolSaturated), pool.connection(), pool.connection(timeout=0):
        pass
    stats = pool.get_stats()
    assert stats["requests_timeouts"] == 2
    # A waiter is served as soon as a connection comes back.
    with pool.connection() as held:
        got: list[object] = []

        def waiter() -> None:
            with pool.connection(timeout=10) as conn:
                got.append(conn)

        t = threading.Thread(target=waiter)
        t.start()
        until(lambda: pool.get_stats()["requests_waiting"] == 1)
    t.join(10)
    assert got == [held]


def test_server_limiter_caps_two_pools(pg: PgServer, pools: list[ConnectionPool]) -> None:
    db_a, db_b = pg.create_database(), pg.create_database()
    try:
        limiter = ServerLimiter(2, name="postgresql://test")
        a = make_pool(pools, connector(pg.odbc(db_a)), name="a", limiter=limiter, max_size=2)
        b = make_pool(
            pools,
            connector(pg.odbc(db_b)),
            name="b",
            limiter=limiter,
            max_size=2,
            acquire_timeout=0.3,
        )
        with a.connection(), a.connection():
            assert limiter.in_use == 2
            start = time.monotonic()
            with pytest.raises(PoolSaturated, match="connection cap"), b.connection():
                pass
            assert time.monotonic() - start >= 0.25
        # a's two connections are idle now; b gets one by making a close an idle one.
        assert a.get_stats()["pool_available"] == 2
        with b.connection() as conn:
            assert conn.raw.execute("SELECT current_database()").fetchval() == db_b
            assert limiter.in_use == 2
            assert a.get_stats()["pool_size"] == 1
        assert sessions_on(pg, db_a) + sessions_on(pg, db_b) <= 2
        assert b.get_stats()["requests_timeouts"] == 1
    finally:
        for pool in pools:
            pool.close()
        pg.drop_database(db_a)
        pg.drop_database(db_b)


def test_broken_connection_is_discarded(
    pg: PgServer, pg_database: str, pools: list[ConnectionPool], watchdog: Watchdog
) -> None:
    pool = make_pool(pools, connector(pg.odbc(pg_database)), max_size=1)
    with pool.connection() as conn:
        pid = backend_pid(conn.raw)
    with contextlib.closing(pg.connect()) as admin:
        assert admin.execute("SELECT pg_terminate_backend(?)", pid).fetchval()
    until(lambda: sessions_on(pg, pg_database) == 0)  # the signal is sent, then obeyed
    with pytest.raises(ConnectionLost) as info, pool.connection() as conn:
        execute(
            conn,
            backend="postgresql",
            sql="SELECT 1",
            params=[],
            timeout_s=5,
            max_rows=10,
            watchdog=watchdog,
        )
    assert info.value.details.get("sqlstate") == "57P01"
    stats = pool.get_stats()
    assert stats["connections_lost"] == 1
    assert stats["pool_size"] == 0
    with pool.connection() as conn:
        assert backend_pid(conn.raw) != pid
    assert pool.get_stats()["connections_num"] == 2


def test_raw_pyodbc_error_also_discards(
    pg: PgServer, pg_database: str, pools: list[ConnectionPool]
) -> None:
    pool = make_pool(pools, connector(pg.odbc(pg_database)), max_size=1)
    with pool.connection() as conn:
        pid = backend_pid(conn.raw)
    with contextlib.closing(pg.connect()) as admin:
        admin.execute("SELECT pg_terminate_backend(?)", pid)
    until(lambda: sessions_on(pg, pg_database) == 0)
    with pytest.raises(pyodbc.Error), pool.connection() as conn:
        conn.raw.execute("SELECT 1")
    # A statement error is not a broken connection: it goes back to the pool.
    with pytest.raises(pyodbc.Error), pool.connection() as conn:
        conn.raw.execute("SELECT 1/0")
    stats = pool.get_stats()
    assert stats["connections_lost"] == 1
    assert stats["pool_available"] == 1


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A socket that completes the TCP handshake (backlog) and then never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_a_full_queue_refuses_at_once(
    pg: PgServer, pg_database: str, pools: list[ConnectionPool]
) -> None:
    pool = make_pool(pools, connector(pg.odbc(pg_database)), max_size=1, max_waiting=1)

    def wait_in_queue() -> None:
        with contextlib.suppress(PoolSaturated), pool.connection(timeout=2.0):
            pass

    with pool.connection():
        waiter = threading.Thread(target=wait_in_queue)
        waiter.start()
        deadline = time.monotonic() + 1.5
        while pool.get_stats()["requests_waiting"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        with pytest.raises(PoolSaturated) as info, pool.connection():
            pass
        # Refused without waiting its 5 s acquire_timeout: the queue is full.
        assert time.monotonic() - start < 1.0
        assert "queued" in info.value.message
        waiter.join()


def test_idle_connections_are_checked_before_reuse(
    pg: PgServer, pg_database: str, pools: list[ConnectionPool]
) -> None:
    """A terminated idle connection (a server restart does that to all of them) is
    replaced before a request meets it: after validate_idle, checked; and once one
    connection came back lost, its idle siblings are closed, however recent."""
    pool = make_pool(pools, connector(pg.odbc(pg_database)), validate_idle=3600.0)
    with pool.connection() as one, pool.connection() as two:
        pids = [backend_pid(one.raw), backend_pid(two.raw)]
    with contextlib.closing(pg.connect()) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(?)", pid)
    deadline = time.monotonic() + 10
    while sessions_on(pg, pg_database) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Used a moment ago: lent without a check; the request meets the dead session.
    with pytest.raises(ConnectionLost), pool.connection() as conn:
        execute(conn, backend="postgresql", sql="SELECT 1", params=[], timeout_s=5,
                max_rows=1, watchdog=Watchdog())  # fmt: skip
    # Its sibling was closed with it: the next request gets a fresh connection.
    assert pool.get_stats()["pool_available"] == 0
    with pool.connection() as conn:
        assert backend_pid(conn.raw) not in pids
    stats = pool.get_stats()
    assert stats["connections_lost"] == 1
    assert stats["connections_num"] == 3
    # After validate_idle, an idle connection is checked with a round trip first.
    checked = make_pool(pools, connector(pg.odbc(pg_database)), validate_idle=0.0)
    with checked.connection() as conn:
        pid = backend_pid(conn.raw)
    with contextlib.closing(pg.connect()) as admin:
        admin.execute("SELECT pg_terminate_backend(?)", pid)
    deadline = time.monotonic() + 10
    while sessions_on(pg, pg_database) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    with checked.connection() as conn:
        assert backend_pid(conn.raw) != pid
    assert checked.get_stats()["connections_lost"] == 1


def test_login_timeout_against_silent_server(silent_listener: int) -> None:
    manager = PoolManager(
        PoolOptions(max_size=2, acquire_timeout=5, login_timeout=1, max_per_server=5),
        maintenance_interval=None,
    )
    odbc = (
        f"Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port={silent_listener};"
        "Database=x;Uid=someone;Pwd={s3cret}"
    )
    pool = manager.pool_for_dsn("silent", odbc, server_key="postgresql://127.0.0.1:silent")
    try:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable) as info, pool.connection():
            pass
        elapsed = time.monotonic() - start
        assert 0.9 <= elapsed < 3.0  # libpq turns a 1 s connect_timeout into 2 s
        assert "s3cret" not in info.value.message and "Pwd" not in info.value.message
        assert info.value.message == "cannot connect to silent: timeout expired"
        assert info.value.retry_after
        stats = manager.get_stats()["postgresql://127.0.0.1:silent"]
        assert stats["connections_errors"] == 1
        assert stats["pool_size"] == 0
    finally:
        manager.close()


def test_idle_and_lifetime_expiry(
    pg: PgServer, pg_database: str, pools: list[ConnectionPool]
) -> None:
    pool = make_pool(pools, connector(pg.odbc(pg_database)), max_idle=0.2)
    with pool.connection() as conn:
        first = backend_pid(conn.raw)
    with pool.connection() as conn:
        assert backend_pid(conn.raw) == first  # reused while fresh
    time.sleep(0.3)
    with pool.connection() as conn:
        second = backend_pid(conn.raw)
    assert second != first
    until(lambda: sessions_on(pg, pg_database) == 1)  # the expired one closed, not leaked

    aging = make_pool(pools, connector(pg.odbc(pg_database)), max_lifetime=0.3)
    with aging.connection() as conn:
        first = backend_pid(conn.raw)
        time.sleep(0.35)
    # Returned past its lifetime: closed on return.
    assert aging.get_stats()["pool_size"] == 0
    with aging.connection() as conn:
        assert backend_pid(conn.raw) != first


def test_maintain_prefills_and_expires(
    pg: PgServer, pg_database: str, pools: list[ConnectionPool]
) -> None:
    pool = make_pool(pools, connector(pg.odbc(pg_database)), max_size=3, min_size=2, max_idle=0.2)
    pool.maintain()
    assert pool.get_stats()["pool_available"] == 2
    with pool.connection(), pool.connection(), pool.connection():
        pass
    assert pool.get_stats()["pool_size"] == 3
    time.sleep(0.3)
    pool.maintain()  # idle ones past max_idle go, down to min_size
    assert pool.get_stats()["pool_size"] == 2
    until(lambda: sessions_on(pg, pg_database) == 2)


def test_close(pg: PgServer, pg_database: str, pools: list[ConnectionPool]) -> None:
    pool = make_pool(pools, connector(pg.odbc(pg_database)))
    with pool.connection() as conn:
        pool.close()
        conn.raw.execute("SELECT 1")  # a loaned connection keeps working until returned
    assert pool.get_stats()["pool_size"] == 0
    with pytest.raises(BackendUnavailable, match="closed"), pool.connection():
        pass
    until(lambda: sessions_on(pg, pg_database) == 0)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_size": 0},
        {"max_size": 2, "min_size": 3},
        {"min_size": -1},
        {"acquire_timeout": -1},
        {"acquire_timeout": float("nan")},
        {"max_idle": 0},
        {"max_lifetime": float("inf")},
        {"max_size": True},
        {"max_size": 2.5},
        {"name": ""},
        {"validate_idle": -1},
        {"max_waiting": -1},
    ],
)
def test_settings_are_validated(settings: dict[str, Any]) -> None:
    kw: dict[str, Any] = {"name": "x", "max_size": 2, "acquire_timeout": 1.0}
    kw.update(settings)
    with pytest.raises(ValueError):
        ConnectionPool(lambda: cast(pyodbc.Connection, None), **kw)
    with pytest.raises(ValueError):
        ServerLimiter(0, name="x")


def test_sqlite_pool_reuses_and_keeps_session(tmp_path: Path, pools: list[ConnectionPool]) -> None:
    odbc = f"Driver=SQLite3;Database={tmp_path / 'tenant.db'}"
    pool = make_pool(pools, connector(odbc), max_size=2)
    with pool.connection() as first:
        first.session["marker"] = 1
        first.raw.execute("CREATE TABLE t (i INTEGER)")
    with pool.connection() as again:
        assert again is first and again.session == {"marker": 1}
        assert again.cursor().execute("SELECT count(*) FROM t").fetchval() == 0
    # A failed statement does not discard a SQLite connection.
    with pytest.raises(pyodbc.Error), pool.connection() as conn:
        conn.raw.execute("SELECT nope FROM t")
    assert pool.get_stats()["connections_lost"] == 0


def test_pool_manager_pools_and_stats(pg: PgServer, pg_database: str, tmp_path: Path) -> None:
    manager = PoolManager(
        PoolOptions(max_size=2, acquire_timeout=2, login_timeout=5, max_per_server=3),
        maintenance_interval=None,
    )
    server_key = f"postgresql://{pg.host}:{pg.port}"

    def location(kind: BackendKind, odbc: str, pool_key: str, server: str) -> TenantLocation:
        # A stand-in with the attributes pool_for reads: tenancy.locate is not under test.
        return cast(
            "TenantLocation",
            SimpleNamespace(kind=kind, connect=parse(odbc), pool_key=pool_key, server_key=server),
        )

    try:
        pg_a = location(BackendKind.POSTGRESQL, pg.odbc(pg_database), "pg/a", server_key)
        pg_admin = location(BackendKind.POSTGRESQL, pg.odbc(), "pg/admin", server_key)
        lite = location(
            BackendKind.SQLITE, f"Driver=SQLite3;Database={tmp_path / 'x.db'}", "sqlite/x", "sqlite"
        )
        pool_a = manager.pool_for(pg_a)
        assert manager.pool_for(pg_a) is pool_a
        assert pool_a.limiter is not None and pool_a.limiter.max_size == 3
        assert manager.pool_for(pg_admin).limiter is pool_a.limiter
        assert manager.pool_for(lite).limiter is None
        controller = manager.pool_for_dsn("controller", pg.odbc(), server_key="controller")
        assert manager.pool_for_dsn("controller", pg.odbc(), server_key="controller") is controller

        with manager.pool_for(pg_a).connection() as a, manager.pool_for(pg_admin).connection():
            assert a.raw.autocommit
            with manager.pool_for(lite).connection():
                stats = manager.get_stats()
        assert set(stats) == {server_key, "sqlite", "controller"}
        assert stats[server_key]["pool_size"] == 2
        assert stats[server_key]["pool_max"] == 4
        assert stats[server_key]["server_max"] == 3
        assert stats[server_key]["requests_num"] == 2
        assert stats["sqlite"]["pool_size"] == 1 and stats["sqlite"]["server_max"] == 0

        # A new connection string under the same pool key (rotated password) is used
        # for new connections of the same pool.
        rotated = location(
            BackendKind.POSTGRESQL,
            pg.odbc(pg_database, pqopt="{application_name=v2}"),
            "pg/a",
            server_key,
        )
        assert manager.pool_for(rotated) is pool_a
        with pool_a.connection() as c1, pool_a.connection() as c2:
            names = {
                c.raw.execute("SELECT current_setting('application_name')").fetchval()
                for c in (c1, c2)
            }
        assert "v2" in names
    finally:
        manager.close()
