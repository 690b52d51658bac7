"""The Python client (``proxy.client``) against the real service: every error path.

One service process for the whole session (the ``stack`` fixture shared by the e2e
tests). SQLite tenants (beta.example, 2) for most paths, the PostgreSQL tenant
pg12.example (12) for transactions and for statements slow by construction (a view
over ``pg_sleep(3600)``, tests/support/slow.py). The async client runs the same calls
under ``asyncio.run``: no plugin, one event loop per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.client import (
    AsyncClient,
    Client,
    ClientTimeout,
    ConnectError,
    ConstraintViolation,
    Forbidden,
    InvalidFieldValue,
    ParseError,
    PoolSaturated,
    PreconditionFailed,
    RecordChanged,
    RecordNotFound,
    RequestTooLarge,
    Result,
    Statement,
    StatementTimeout,
    TenantgateError,
    TooManyTransactions,
    TransactionAborted,
    TransactionBusy,
    TransactionNotFound,
    Unauthenticated,
    UnknownColumn,
    UnknownTenant,
)
from proxy.client.protocol import commit
from tests.support.slow import SLOW_VIEW
from tests.support.stack import BETA_READ_TOKEN, FULL_TOKEN, Stack

pytestmark = pytest.mark.e2e

SLOW = "ClientSlowRows"
"""Its own name: tests/e2e/test_service.py creates and drops ``SlowRows``."""
PG = 12


@pytest.fixture(scope="module")
def tg(stack: Stack) -> Iterator[Client]:
    with Client(stack.url, FULL_TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def slow_view(stack: Stack) -> Iterator[str]:
    with contextlib.closing(stack.pg.connect(stack.pg_databases[PG])) as conn:
        conn.execute(SLOW_VIEW["postgresql"].replace('"SlowRows"', f'"{SLOW}"'))
        conn.commit()
        try:
            # The tenant's metadata may be cached from an earlier test: learn the view.
            with stack.client() as http:
                http.post(f"/v1/tenants/{PG}/schema/refresh").raise_for_status()
            yield f"SELECT n FROM {SLOW}"
        finally:
            conn.execute(f'DROP VIEW "{SLOW}"')
            conn.commit()
            with stack.client() as http:  # forget it for the tests that list tables
                http.post(f"/v1/tenants/{PG}/schema/refresh")


def _name() -> str:
    return f"cl-{uuid.uuid4().hex[:8]}"


def _new_contact(tg: Client, tenant: int | str = 2, **fields: Any) -> Any:
    body = {"FirstName": _name(), "LastName": "Client", "IsActive": True,
            "CreatedAt": "2024-05-01 10:00:00", **fields}  # fmt: skip
    return tg.records(tenant, "Contacts").insert(body)


# -- queries and their errors ---------------------------------------------------------


def test_query_returns_a_result(tg: Client) -> None:
    result = tg.query(
        "beta.example", "SELECT ContactID, FirstName FROM Contacts WHERE ContactID <= ? "
        "ORDER BY ContactID", [3], max_rows=2,
    )  # fmt: skip
    assert [c.name for c in result.columns] == ["ContactID", "FirstName"]
    assert result.columns[0].type == "integer"
    assert len(result.rows) == 2 and result.truncated
    assert result.records()[0]["ContactID"] == 1
    missing = tg.query(2, "SELECT Shoe_Size FROM Contacts WHERE ContactID = 1",
                       missing_columns="null")  # fmt: skip
    assert missing.rows == [[None]]


def test_every_request_error_is_its_class(stack: Stack, tg: Client) -> None:
    cases: list[tuple[Client, Any, Any, type[TenantgateError], int]] = [
        (tg, 2, "SELEC 1", ParseError, 400),
        (tg, 2, "SELECT Shoe_Size FROM Contacts", UnknownColumn, 400),
        (tg, "nobody.example", "SELECT 1 AS x", UnknownTenant, 404),
    ]
    with (
        Client(stack.url, "not-a-token") as stranger,
        Client(stack.url, BETA_READ_TOKEN) as reader,
    ):
        cases += [
            (stranger, 2, "SELECT 1 AS x", Unauthenticated, 401),
            (reader, "gamma.example", "SELECT 1 AS x", Forbidden, 403),
            (reader, 2, "DELETE FROM Contacts WHERE ContactID = -1", Forbidden, 403),
        ]
        for client, tenant, sql, cls, status in cases:
            with pytest.raises(cls) as caught:
                client.query(tenant, sql)
            error = caught.value
            assert (type(error), error.status) == (cls, status), sql
            assert error.message and error.request_id, sql
    with pytest.raises(UnknownColumn) as unknown:
        tg.query(2, "SELECT Shoe_Size FROM Contacts")
    assert unknown.value.details["column"] == "Shoe_Size"
    assert "Shoe_Size" in unknown.value.message


def test_a_body_past_the_limit_is_413(tg: Client) -> None:
    with pytest.raises(RequestTooLarge) as caught:
        tg.query(2, "SELECT 1 AS x WHERE 1 = 1" + " AND 1 = 1" * 7000)
    assert caught.value.status == 413 and caught.value.code == "request_too_large"


def test_a_constraint_violation_is_409(tg: Client) -> None:
    key = _new_contact(tg)
    with pytest.raises(ConstraintViolation) as caught:
        tg.query(
            2, "INSERT INTO Contacts (ContactID, FirstName, LastName, IsActive, CreatedAt) "
            "VALUES (?, 'a', 'b', 1, '2024-01-01 00:00:00')", [key],
        )  # fmt: skip
    assert caught.value.status == 409


def test_a_slow_statement_is_504_and_a_full_pool_503(
    stack: Stack, tg: Client, slow_view: str
) -> None:
    with pytest.raises(StatementTimeout) as caught:
        tg.query(PG, slow_view, timeout_ms=1000)
    assert caught.value.status == 504

    async def five_at_once() -> list[BaseException]:
        # The tenant's pool has 4 connections (tests/support/stack.py): four of these
        # hold them until their timeout; the fifth waits pool.acquire_timeout_ms (3 s),
        # whichever it is, and is refused.
        async with AsyncClient(stack.url, FULL_TOKEN) as atg:
            calls = [atg.query(PG, slow_view, timeout_ms=6000) for _ in range(5)]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        return [o for o in outcomes if isinstance(o, BaseException)]

    errors = asyncio.run(five_at_once())
    assert sorted(type(e).__name__ for e in errors) == ["PoolSaturated"] + ["StatementTimeout"] * 4
    saturated = next(e for e in errors if isinstance(e, PoolSaturated))
    assert saturated.status == 503 and saturated.retry_after is not None
    assert saturated.retry_after >= 1


def test_transport_errors(stack: Stack) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on a port just freed: refused.
    with Client(f"http://127.0.0.1:{port}", FULL_TOKEN) as client, pytest.raises(ConnectError):
        client.query(2, "SELECT 1 AS x")
    # A socket that listens and never answers: the client's own timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Client(url, FULL_TOKEN, timeout=0.3) as client, pytest.raises(ClientTimeout):
            client.query(2, "SELECT 1 AS x")

        async def async_timeout() -> None:
            async with AsyncClient(url, FULL_TOKEN, timeout=0.3) as client:
                await client.query(2, "SELECT 1 AS x")

        with pytest.raises(ClientTimeout):
            asyncio.run(async_timeout())


def test_async_client_maps_the_same_errors(stack: Stack) -> None:
    async def run() -> Result:
        async with AsyncClient(stack.url, FULL_TOKEN) as atg:
            with pytest.raises(UnknownColumn) as caught:
                await atg.query(2, "SELECT Shoe_Size FROM Contacts")
            assert caught.value.status == 400 and caught.value.request_id
            with pytest.raises(UnknownTenant):
                await atg.query("nobody.example", "SELECT 1 AS x")
            return await atg.query(2, "SELECT COUNT(*) AS n FROM Contacts")

    assert asyncio.run(run()).scalar() > 0


# -- records ---------------------------------------------------------------------------


def test_record_loads_custom_fields_lazily_and_saves_only_changes(tg: Client) -> None:
    contacts = tg.records(2, "Contacts")
    key = _new_contact(tg)
    rec = contacts.get(key)
    assert rec["ContactID"] == key and not rec.custom_loaded
    assert rec.etag.startswith('"b')
    assert rec["Custom_Region"] is None and rec.custom_loaded  # fetched on first use
    assert rec.etag.startswith('"c')
    assert rec.lastname == "Client"  # by attribute, ignoring case as the service does
    rec["LastName"] = "Saved"
    rec.Custom_Region = "Mars"
    assert rec.changes == {"LastName": "Saved", "Custom_Region": "Mars"}
    rec.save()
    assert rec.changes == {} and rec["Custom_Region"] == "Mars"
    row = tg.query(2, "SELECT LastName, Custom_Region, FirstName FROM Contacts "
                   "WHERE ContactID = ?", [key]).rows[0]  # fmt: skip
    assert row[:2] == ["Saved", "Mars"] and row[2] == rec["FirstName"]
    with pytest.raises(KeyError):
        rec["Shoe_Size"]
    assert "Shoe_Size" not in rec and "custom_region" in rec


def test_record_conflicts(tg: Client) -> None:
    contacts = tg.records(2, "Contacts")
    key = _new_contact(tg)
    mine, theirs = contacts.get(key), contacts.get(key)
    theirs["Title"] = "Theirs"
    theirs.save()
    mine["Title"] = "Mine"
    with pytest.raises(PreconditionFailed) as caught:
        mine.save()
    assert caught.value.status == 412 and caught.value.code == "precondition_failed"
    assert mine.changes == {"Title": "Mine"}  # kept: nothing was written
    mine.reload()
    assert mine["Title"] == "Theirs" and mine.changes == {}
    mine["Title"] = "Mine"
    mine.save()

    # Base fields read, the row changed, then the custom fields fetched: two versions.
    stale = contacts.get(key)
    tg.query(2, "UPDATE Contacts SET Title = 'Other' WHERE ContactID = ?", [key])
    with pytest.raises(RecordChanged):
        stale["Custom_Region"]


def test_record_errors(tg: Client, stack: Stack) -> None:
    with pytest.raises(RecordNotFound) as caught:
        tg.records(2, "Contacts").get(2_000_000_000)
    assert caught.value.status == 404
    rec = tg.records(2, "Contacts").get(_new_contact(tg))
    rec["LeadScore"] = "not a number"
    with pytest.raises(InvalidFieldValue) as bad:
        rec.save()
    assert bad.value.details.get("column") == "LeadScore"
    with Client(stack.url, BETA_READ_TOKEN) as reader, pytest.raises(Forbidden):
        reader.records(2, "Contacts").insert(FirstName="x")


# -- batches and transactions ----------------------------------------------------------


def _count(tg: Client, tenant: int, name: str) -> int:
    sql = "SELECT COUNT(*) AS n FROM Contacts WHERE FirstName = ?"
    return int(tg.query(tenant, sql, [name]).scalar())


_INSERT = ("INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
           "VALUES (?, 'Batch', 1, '2024-01-01 00:00:00')")  # fmt: skip


def test_batch_is_all_or_nothing(tg: Client) -> None:
    name = _name()
    results = tg.batch(
        2,
        [
            (_INSERT, [name]),
            Statement(_INSERT, [name]),
            Statement("SELECT FirstName FROM Contacts WHERE FirstName = ?", [name], max_rows=1),
        ],
        isolation="serializable",
    )
    assert [r.row_count for r in results[:2]] == [1, 1]
    assert results[2].rows == [[name]] and results[2].truncated
    other = _name()
    with pytest.raises(UnknownColumn) as refused:
        tg.batch(2, [(_INSERT, [other]), "SELECT Shoe_Size FROM Contacts"])
    assert refused.value.index == 1
    with pytest.raises(ConstraintViolation) as failed:
        tg.batch(2, [(_INSERT, [other]), ("UPDATE Contacts SET FirstName = NULL "
                                          "WHERE FirstName = ?", [other])])  # fmt: skip
    assert failed.value.index == 1 and failed.value.status == 409
    assert _count(tg, 2, other) == 0  # the first statement was rolled back too


def test_transaction_commits_or_rolls_back(tg: Client) -> None:
    kept, dropped = _name(), _name()
    with tg.transaction(PG, isolation="repeatable_read") as tx:
        assert tx.id and tx.info["tenant"]["id"] == PG
        tx.query(_INSERT, [kept])
        assert tx.batch([("SELECT COUNT(*) AS n FROM Contacts WHERE FirstName = ?",
                          [kept])])[0].scalar() == 1  # fmt: skip
        assert _count(tg, PG, kept) == 0  # not visible outside before the commit
    assert tx.state == "committed" and _count(tg, PG, kept) == 1

    with pytest.raises(RuntimeError, match="boom"), tg.transaction(PG) as tx:
        tx.query(_INSERT, [dropped])
        raise RuntimeError("boom")
    assert tx.state == "rolled_back" and _count(tg, PG, dropped) == 0


def test_a_failed_statement_aborts_the_transaction(tg: Client) -> None:
    name = _name()
    with tg.transaction(PG) as tx:
        tx.query(_INSERT, [name])
        with pytest.raises(UnknownColumn):  # refused before the database: no harm done
            tx.query("SELECT Shoe_Size FROM Contacts")
        tx.query(_INSERT, [name])
        with pytest.raises(ConstraintViolation):
            tx.query("UPDATE Contacts SET FirstName = NULL WHERE FirstName = ?", [name])
        with pytest.raises(TransactionAborted) as aborted:
            tx.query("SELECT 1 AS x")
        assert aborted.value.status == 409
        assert aborted.value.details.get("reason") == "statement_failed"
        assert aborted.value.details.get("cause") == "constraint_violation"
        with pytest.raises(TransactionAborted):
            tx.commit()
        tx.rollback()
    assert _count(tg, PG, name) == 0


def test_transaction_not_found(stack: Stack, tg: Client) -> None:
    with pytest.raises(TransactionNotFound) as caught:
        tg.send(commit("0.no-such-transaction"))
    assert caught.value.status == 404
    # Bound to the token that opened it: another token cannot even see it.
    with (
        tg.transaction(PG) as tx,
        Client(stack.url, BETA_READ_TOKEN) as reader,
        pytest.raises(TransactionNotFound),
    ):
        reader.send(commit(tx.id))


def test_too_many_transactions(tg: Client) -> None:
    # A database's pool keeps one of its 4 connections free (docs/transactions.md):
    # the fourth transaction on one tenant is refused, whichever cap the server has.
    with contextlib.ExitStack() as opened:
        for _ in range(3):
            opened.enter_context(tg.transaction(11))
        with pytest.raises(TooManyTransactions) as caught:
            tg.begin(11)
        error = caught.value
        assert error.status == 429 and error.details.get("limit") == "database"
        assert error.retry_after is not None and error.retry_after >= 1


def _running_on(stack: Stack, name: str) -> bool:
    """A statement naming ``name`` runs on the PostgreSQL tenant's server now."""
    with contextlib.closing(stack.pg.connect()) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND datname = ?"
            " AND query LIKE ? AND pid <> pg_backend_pid()",
            stack.pg_databases[PG],
            f"%{name}%",
        ).fetchval()
    return bool(count)


def test_one_request_at_a_time_per_transaction(stack: Stack, slow_view: str) -> None:
    async def run() -> list[BaseException]:
        async with AsyncClient(stack.url, FULL_TOKEN) as atg:
            tx = await atg.begin(PG)

            async def second() -> None:
                # Once the slow statement runs on the server, not at a set time.
                deadline = time.monotonic() + 30
                while not await asyncio.to_thread(_running_on, stack, SLOW):
                    assert time.monotonic() < deadline, "the slow statement never started"
                    await asyncio.sleep(0.05)
                await tx.query("SELECT 1 AS x")

            outcomes = await asyncio.gather(
                tx.query(slow_view, timeout_ms=5000), second(), return_exceptions=True
            )
            await tx.rollback()
        return [o for o in outcomes if isinstance(o, BaseException)]

    slow, busy = asyncio.run(run())
    assert isinstance(slow, StatementTimeout)
    assert isinstance(busy, TransactionBusy) and busy.status == 409


def test_async_batch_and_transaction(stack: Stack, tg: Client) -> None:
    name = _name()

    async def run() -> None:
        async with AsyncClient(stack.url, FULL_TOKEN) as atg:
            async with atg.transaction(PG) as tx:
                await tx.query(_INSERT, [name])
                results = await tx.batch([(_INSERT, [name])])
                assert results[0].row_count == 1
            assert tx.state == "committed"
            with pytest.raises(UnknownColumn) as refused:
                await atg.batch(2, ["SELECT 1 AS x", "SELECT Shoe_Size FROM Contacts"])
            assert refused.value.index == 1
            with pytest.raises(ConstraintViolation):
                async with atg.transaction(PG) as failing:
                    await failing.query("UPDATE Contacts SET FirstName = NULL "
                                        "WHERE FirstName = ?", [name])  # fmt: skip
            assert failing.state == "rolled_back"

    asyncio.run(run())
    assert _count(tg, PG, name) == 2


# -- streaming -------------------------------------------------------------------------


def test_stream_iterates_rows_as_they_arrive(tg: Client) -> None:
    total = int(tg.query(2, "SELECT COUNT(*) AS n FROM Contacts").scalar())
    with tg.stream(2, "SELECT ContactID, FirstName FROM Contacts ORDER BY ContactID") as rows:
        assert [c.name for c in rows.columns] == ["ContactID", "FirstName"]
        assert rows.row_count is None  # known at the end
        seen = [row[0] for row in rows]
    assert len(seen) == total == rows.row_count and rows.truncated is False
    assert seen == sorted(seen)
    with tg.stream(2, "SELECT ContactID FROM Contacts", max_rows=5) as rows:
        assert len(list(rows)) == 5 and rows.truncated is True
    # A write is answered whole, as JSON: the same object reads it.
    with tg.stream(2, "UPDATE Contacts SET Title = Title WHERE ContactID = -1") as rows:
        assert list(rows) == [] and rows.row_count == 0


def test_stream_errors(tg: Client, slow_view: str) -> None:
    # Before the first line: the usual error answer.
    with pytest.raises(UnknownColumn), tg.stream(2, "SELECT Shoe_Size FROM Contacts"):
        pytest.fail("the stream opened")
    # After it: the first batches (1,000 rows each) arrive, then the view sleeps past
    # the statement's timeout and the trailer carries the error.
    sql = (f"SELECT a.ContactID FROM Contacts a CROSS JOIN Contacts b "
           f"UNION ALL SELECT n FROM {SLOW}")  # fmt: skip
    seen = 0
    with pytest.raises(StatementTimeout) as caught, tg.stream(PG, sql, timeout_ms=1500) as rows:
        for _ in rows:
            seen += 1
    assert seen >= 1000 and caught.value.details["row_count"] == seen
    assert rows.row_count is None


def test_async_stream(stack: Stack) -> None:
    async def run() -> tuple[int, int | None]:
        async with AsyncClient(stack.url, FULL_TOKEN) as atg:
            async with atg.stream(2, "SELECT ContactID FROM Contacts", max_rows=50) as rows:
                assert rows.columns[0].name == "ContactID"
                seen = [row async for row in rows]
            with pytest.raises(UnknownColumn):
                async with atg.stream(2, "SELECT Shoe_Size FROM Contacts"):
                    pass
        return len(seen), rows.row_count

    assert asyncio.run(run()) == (50, 50)
