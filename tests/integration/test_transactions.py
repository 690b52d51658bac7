"""Batches and interactive transactions through ``proxy.pipeline.transactions`` on real
SQLite and PostgreSQL tenants, each outcome checked by reading the tenant's database
directly, not through tenantgate.

Statements meant to wait are made to wait by construction: a row lock (PostgreSQL) or
the database's write lock (SQLite) held by a connection of the test's own.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.config import TransactionSettings
from proxy.drivers.odbc.driver import OdbcDriver
from proxy.drivers.sizing import PoolOptions
from proxy.errors import (
    ConstraintViolation,
    StatementTimeout,
    TooManyTransactions,
    TransactionAborted,
    TransactionBusy,
    TransactionNotFound,
)
from proxy.pipeline.request import QueryRequest
from proxy.pipeline.transactions import BatchRequest
from rewriter.errors import UnknownColumn
from tenancy import connstr
from tenancy.location import locate
from tests.support.pg import PgServer
from tests.support.tds import TdsServer
from tests.support.tenants import READER, WRITER, Tenants, seeded_service, token

BACKENDS = pytest.mark.parametrize("tenant", ["lite.example", "pg.example"])
TOKENS = (token("writer", WRITER, "read", "write"), token("reader", READER, "read"))
SETTINGS = TransactionSettings(
    idle_timeout_ms=1500, max_lifetime_ms=6000, max_per_token=3, max_per_server=3
)
INSERT = (
    "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
    "VALUES (?, ?, 1, CAST('2024-05-01 10:00:00' AS DATETIME))"
)


@pytest.fixture(scope="module")
def tenants(
    tmp_path_factory: pytest.TempPathFactory, pg: PgServer, module_pg_database: str
) -> Iterator[Tenants]:
    with seeded_service(
        tmp_path_factory.mktemp("tx"),
        pg,
        module_pg_database,
        contacts=5,
        pool_max_size=3,
        backend_templates={"postgresql": "BoolsAsChar=0", "sqlite": "Timeout=3000"},
        tokens=TOKENS,
        transactions=SETTINGS,
    ) as t:
        yield t


@pytest.fixture
def tx(tenants: Tenants) -> Any:
    return tenants.service.transactions()


def writer(t: Tenants) -> Any:
    return t.principal(WRITER)


def mark() -> str:
    return f"tx-{uuid.uuid4().hex[:10]}"


def stored(t: Tenants, tenant: str, last: str) -> int:
    return t.count(tenant, '"LastName" = ?', last)


def statement(tenant: str, sql: str, params: Any = (), **options: Any) -> QueryRequest:
    return QueryRequest(tenant=tenant, sql=sql, params=params, **options)


def in_use(t: Tenants) -> int:
    return sum(s.get("pool_size", 0) - s.get("pool_available", 0)
               for s in t.service.drivers.get_stats().values())  # fmt: skip


# -- batches ------------------------------------------------------------------------------


@BACKENDS
def test_a_batch_commits_every_statement_and_answers_each(
    tenants: Tenants, tx: Any, tenant: str
) -> None:
    last = mark()
    results = tx.batch(
        writer(tenants),
        BatchRequest(
            tenant,
            (
                statement(tenant, INSERT, ["a", last]),
                statement(tenant, INSERT, ["b", last]),
                statement(tenant, "SELECT COUNT(*) AS n FROM Contacts WHERE LastName = ?", [last]),
            ),
        ),
    )
    assert [r.row_count for r in results] == [1, 1, 1]
    assert results[2].rows == [[2]]  # the batch's own writes, seen inside it
    assert stored(tenants, tenant, last) == 2


@BACKENDS
def test_a_failing_statement_rolls_back_the_whole_batch(
    tenants: Tenants, tx: Any, tenant: str
) -> None:
    last = mark()
    with pytest.raises(ConstraintViolation) as caught:
        tx.batch(
            writer(tenants),
            BatchRequest(
                tenant,
                (
                    statement(tenant, INSERT, ["a", last]),
                    statement(tenant, INSERT, [None, last]),  # FirstName is NOT NULL
                    statement(tenant, INSERT, ["c", last]),
                ),
            ),
        )
    assert caught.value.details["index"] == 1
    assert stored(tenants, tenant, last) == 0
    assert in_use(tenants) == 0


@BACKENDS
def test_a_refused_statement_stops_the_batch_before_anything_runs(
    tenants: Tenants, tx: Any, tenant: str
) -> None:
    last = mark()
    with pytest.raises(UnknownColumn) as caught:
        tx.batch(
            writer(tenants),
            BatchRequest(
                tenant,
                (
                    statement(tenant, INSERT, ["a", last]),
                    statement(tenant, "SELECT NoSuchColumn FROM Contacts"),
                ),
            ),
        )
    assert caught.value.details["index"] == 1
    assert stored(tenants, tenant, last) == 0


def test_the_batch_deadline_covers_every_statement(tenants: Tenants, tx: Any) -> None:
    last = mark()
    with contextlib.closing(tenants.pg.connect(tenants.pg_database)) as lock:
        lock.autocommit = False
        lock.execute('UPDATE "Contacts" SET "Title" = "Title" WHERE "ContactID" = 1')
        started = time.monotonic()
        with pytest.raises(StatementTimeout) as caught:
            tx.batch(
                writer(tenants),
                BatchRequest(
                    "pg.example",
                    (
                        statement("pg.example", INSERT, ["a", last]),
                        # Waits for the test's row lock until the batch's deadline.
                        statement(
                            "pg.example", "UPDATE Contacts SET Title = 'x' WHERE ContactID = 1"
                        ),
                    ),
                    timeout_ms=800,
                ),
            )
        waited = time.monotonic() - started
        lock.rollback()
    assert caught.value.details["index"] == 1
    assert 0.7 < waited < 10
    assert stored(tenants, "pg.example", last) == 0


def test_a_reader_token_cannot_slip_a_write_into_a_batch(tenants: Tenants, tx: Any) -> None:
    last = mark()
    with pytest.raises(Exception) as caught:
        tx.batch(
            tenants.principal(READER),
            BatchRequest(
                "lite.example",
                (
                    statement("lite.example", "SELECT 1 AS one"),
                    statement("lite.example", INSERT, ["a", last]),
                ),
            ),
        )
    assert getattr(caught.value, "code", None) == "forbidden"
    assert caught.value.details["index"] == 1  # type: ignore[attr-defined]
    assert stored(tenants, "lite.example", last) == 0


# -- interactive transactions ----------------------------------------------------------------


@BACKENDS
def test_commit_makes_the_writes_visible_and_not_before(
    tenants: Tenants, tx: Any, tenant: str
) -> None:
    last = mark()
    opened = tx.begin(writer(tenants), tenant)
    tx.query(writer(tenants), opened.id, statement(tenant, INSERT, ["a", last]))
    seen = tx.query(
        writer(tenants),
        opened.id,
        statement(tenant, "SELECT COUNT(*) AS n FROM Contacts WHERE LastName = ?", [last]),
    )
    assert seen.result.rows == [[1]]
    if tenant == "pg.example":  # SQLite's reader would wait for the writer's lock
        assert stored(tenants, tenant, last) == 0
    tx.commit(writer(tenants), opened.id)
    assert stored(tenants, tenant, last) == 1
    assert in_use(tenants) == 0
    with pytest.raises(TransactionNotFound):
        tx.commit(writer(tenants), opened.id)


@BACKENDS
def test_rollback_discards_the_writes(tenants: Tenants, tx: Any, tenant: str) -> None:
    last = mark()
    opened = tx.begin(writer(tenants), tenant)
    tx.batch_in(
        writer(tenants),
        opened.id,
        [statement(tenant, INSERT, ["a", last]), statement(tenant, INSERT, ["b", last])],
        5000,
    )
    tx.rollback(writer(tenants), opened.id)
    assert stored(tenants, tenant, last) == 0
    assert in_use(tenants) == 0


@BACKENDS
def test_a_database_error_aborts_the_transaction_and_frees_its_connection(
    tenants: Tenants, tx: Any, tenant: str
) -> None:
    last = mark()
    opened = tx.begin(writer(tenants), tenant)
    tx.query(writer(tenants), opened.id, statement(tenant, INSERT, ["a", last]))
    with pytest.raises(ConstraintViolation):
        tx.query(writer(tenants), opened.id, statement(tenant, INSERT, [None, last]))
    assert in_use(tenants) == 0
    with pytest.raises(TransactionAborted) as caught:
        tx.query(writer(tenants), opened.id, statement(tenant, "SELECT 1 AS one"))
    assert caught.value.details == {"reason": "statement_failed", "cause": "constraint_violation"}
    with pytest.raises(TransactionAborted):
        tx.commit(writer(tenants), opened.id)
    tx.rollback(writer(tenants), opened.id)  # acknowledged
    with pytest.raises(TransactionNotFound):
        tx.rollback(writer(tenants), opened.id)
    assert stored(tenants, tenant, last) == 0


@BACKENDS
def test_a_refused_statement_leaves_the_transaction_as_it_was(
    tenants: Tenants, tx: Any, tenant: str
) -> None:
    last = mark()
    opened = tx.begin(writer(tenants), tenant)
    tx.query(writer(tenants), opened.id, statement(tenant, INSERT, ["a", last]))
    with pytest.raises(UnknownColumn):
        tx.query(writer(tenants), opened.id, statement(tenant, "SELECT Nope FROM Contacts"))
    tx.commit(writer(tenants), opened.id)
    assert stored(tenants, tenant, last) == 1


def test_another_tokens_id_is_not_found(tenants: Tenants, tx: Any) -> None:
    opened = tx.begin(writer(tenants), "lite.example")
    try:
        with pytest.raises(TransactionNotFound):
            tx.query(
                tenants.principal(READER), opened.id, statement("lite.example", "SELECT 1 AS a")
            )
        with pytest.raises(TransactionNotFound):
            tx.rollback(tenants.principal(READER), opened.id)
    finally:
        tx.rollback(writer(tenants), opened.id)


def test_an_idle_transaction_is_rolled_back_and_says_so(tenants: Tenants, tx: Any) -> None:
    last = mark()
    opened = tx.begin(writer(tenants), "pg.example")
    tx.query(writer(tenants), opened.id, statement("pg.example", INSERT, ["a", last]))
    deadline = time.monotonic() + 10
    while tx.open_count() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert in_use(tenants) == 0
    with pytest.raises(TransactionAborted) as caught:
        tx.query(writer(tenants), opened.id, statement("pg.example", "SELECT 1 AS one"))
    assert caught.value.details["reason"] == "idle_timeout"
    assert stored(tenants, "pg.example", last) == 0


def test_a_busy_transaction_reaches_its_lifetime(tenants: Tenants, tx: Any) -> None:
    opened = tx.begin(writer(tenants), "lite.example")
    started = time.monotonic()
    with pytest.raises(TransactionAborted) as caught:
        while time.monotonic() - started < 30:
            tx.query(writer(tenants), opened.id, statement("lite.example", "SELECT 1 AS one"))
            time.sleep(0.3)  # well within the idle timeout
    assert caught.value.details["reason"] == "max_lifetime"
    assert time.monotonic() - started >= SETTINGS.max_lifetime_ms / 1000


def test_caps_per_token_and_per_database(tenants: Tenants, tx: Any) -> None:
    # The pool holds 3 connections: 2 may be pinned, one stays free for other requests.
    opened = [tx.begin(writer(tenants), t) for t in ("pg.example", "pg.example", "lite.example")]
    try:
        with pytest.raises(TooManyTransactions) as caught:
            tx.begin(writer(tenants), "pg.example")
        assert caught.value.details["limit"] == "token"
        with pytest.raises(TooManyTransactions) as caught:
            tx.begin(tenants.principal(READER), "pg.example")  # within its token's cap
        assert caught.value.details["limit"] == "database"
        # The free connection still serves everyone else.
        query = statement("pg.example", "SELECT COUNT(*) AS n FROM Contacts")
        assert tenants.service.query(tenants.principal(READER), query).result.rows
    finally:
        for o in opened:
            tx.rollback(writer(tenants), o.id)
    tx.rollback(writer(tenants), tx.begin(writer(tenants), "pg.example").id)


def test_sqlite_transactions_take_turns_on_the_write_lock(tenants: Tenants, tx: Any) -> None:
    first = tx.begin(writer(tenants), "lite.example")
    released = threading.Timer(0.5, tx.commit, (writer(tenants), first.id))
    released.start()
    started = time.monotonic()
    second = tx.begin(writer(tenants), "lite.example")  # waits for the first to end
    assert time.monotonic() - started >= 0.4
    released.join()
    tx.rollback(writer(tenants), second.id)


def test_one_request_at_a_time(tenants: Tenants, tx: Any) -> None:
    opened = tx.begin(writer(tenants), "pg.example")
    errors: list[BaseException] = []
    with contextlib.closing(tenants.pg.connect(tenants.pg_database)) as lock:
        lock.autocommit = False
        lock.execute('UPDATE "Contacts" SET "Title" = "Title" WHERE "ContactID" = 2')

        def blocked() -> None:
            try:
                tx.query(
                    writer(tenants),
                    opened.id,
                    statement("pg.example", "UPDATE Contacts SET Title = 'y' WHERE ContactID = 2"),
                )
            except BaseException as exc:
                errors.append(exc)

        first = threading.Thread(target=blocked)
        first.start()
        deadline = time.monotonic() + 10
        while not tx.target._open[opened.id].busy and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(TransactionBusy):
            tx.query(writer(tenants), opened.id, statement("pg.example", "SELECT 1 AS one"))
        lock.rollback()
        first.join(10)
    assert errors == []
    tx.rollback(writer(tenants), opened.id)


@pytest.mark.parametrize(
    ("isolation", "sees_new_rows"), [("serializable", False), ("read_committed", True)]
)
def test_the_isolation_level_is_the_one_asked_for(
    tenants: Tenants, tx: Any, isolation: str, sees_new_rows: bool
) -> None:
    last = mark()
    count = statement("pg.example", "SELECT COUNT(*) AS n FROM Contacts WHERE LastName = ?", [last])
    opened = tx.begin(writer(tenants), "pg.example", isolation=isolation)
    try:
        assert tx.query(writer(tenants), opened.id, count).result.rows == [[0]]
        tenants.alter(
            "pg.example",
            'INSERT INTO "Contacts" ("FirstName", "LastName", "IsActive", "CreatedAt") '
            f"VALUES ('x', '{last}', true, now())",
        )
        again = tx.query(writer(tenants), opened.id, count).result.rows
        assert again == ([[1]] if sees_new_rows else [[0]])
    finally:
        tx.rollback(writer(tenants), opened.id)


def test_stopping_rolls_back_what_is_open(tmp_path: Path, pg: PgServer, pg_database: str) -> None:
    last = mark()
    with seeded_service(tmp_path, pg, pg_database, contacts=2, tokens=TOKENS) as t:
        tx = t.service.transactions()
        opened = tx.begin(writer(t), "lite.example")
        tx.query(writer(t), opened.id, statement("lite.example", INSERT, ["a", last]))
        t.service.stop_transactions()
        assert tx.open_count() == 0
        with contextlib.closing(sqlite3.connect(t.sqlite_file, timeout=5)) as conn:
            # The write lock is free again, and the row was never committed.
            conn.execute("BEGIN IMMEDIATE")
            (n,) = conn.execute(
                'SELECT COUNT(*) FROM "Contacts" WHERE "LastName" = ?', (last,)
            ).fetchone()
            conn.rollback()
        assert n == 0


# -- SQL Server: the level is the session's, and the next borrower gets the default back ---

_LEVEL = (
    "SELECT transaction_isolation_level AS level FROM sys.dm_exec_sessions"
    " WHERE session_id = @@SPID"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.sqlserver
async def test_sql_server_restores_the_default_level(
    tds_server: TdsServer, tds_driver: str
) -> None:
    driver = OdbcDriver(PoolOptions(max_size=1), maintenance_interval=None)
    location = locate(connstr.parse(tds_server.odbc(tds_driver, "master")), {})
    try:
        async with driver.connection(location) as session:
            async with session.transaction(isolation="read_uncommitted"):
                inside = await session.execute(_LEVEL, timeout_s=5, max_rows=1)
            after = await session.execute(_LEVEL, timeout_s=5, max_rows=1)
        async with driver.connection(location) as session:  # the same pooled connection
            again = await session.execute(_LEVEL, timeout_s=5, max_rows=1)
    finally:
        await driver.aclose()
    # 1 READ UNCOMMITTED, 2 READ COMMITTED (sys.dm_exec_sessions).
    assert (inside.rows, after.rows, again.rows) == ([[1]], [[2]], [[2]])
