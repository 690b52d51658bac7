"""End to end: asyncpg, unchanged, through the wire front end to a SQLite and a
PostgreSQL tenant.

asyncpg prepares every statement: Parse, then Describe of the *statement*, before it
binds anything. It encodes each parameter by the type ParameterDescription announces
(an ``int8`` parameter takes an ``int``, a ``timestamp`` a ``datetime``) and asks for
every column in binary by the type RowDescription announces, so both must be real
types, from the tenant's metadata (``proxy.pipeline.describe``), before anything runs.

The service is the one of ``test_pgwire`` (its fixture, a process of this module's own).
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from tests.e2e.test_pgwire import SECRET, TENANTS, USER, Wire, mark, wire

__all__ = ["wire"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.e2e


def _run(wire: Wire, tenant: str, body: Callable[[Any], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        conn = await asyncpg.connect(
            host=wire.host, port=wire.port, user=USER, password=SECRET, database=tenant,
            ssl=False, timeout=10,
        )  # fmt: skip
        try:
            return await asyncio.wait_for(body(conn), 30)
        finally:
            await conn.close(timeout=5)

    return asyncio.run(main())


@pytest.mark.parametrize("tenant", TENANTS)
def test_asyncpg_reads_typed_rows(wire: Wire, tenant: str) -> None:
    async def body(conn: Any) -> Any:
        return await conn.fetch(
            "SELECT ContactID, FirstName, Revenue, IsActive, CreatedAt FROM Contacts "
            "WHERE ContactID IN ($1, $2) AND CreatedAt > $3 ORDER BY ContactID",
            2, 3, datetime.datetime(2000, 1, 1),
        )  # fmt: skip

    rows = _run(wire, tenant, body)
    assert [r["ContactID"] for r in rows] == [2, 3]
    first = rows[0]
    assert isinstance(first["FirstName"], str)
    assert isinstance(first["IsActive"], bool)
    assert isinstance(first["CreatedAt"], datetime.datetime)
    revenue = first["Revenue"]
    assert revenue is None or isinstance(revenue, decimal.Decimal | float)


@pytest.mark.parametrize("tenant", TENANTS)
def test_asyncpg_describes_a_prepared_statement(wire: Wire, tenant: str) -> None:
    async def body(conn: Any) -> Any:
        stmt = await conn.prepare(
            "SELECT COUNT(*) AS n, MAX(LastName) AS last FROM Contacts "
            "WHERE IsActive = $1 AND LeadScore >= $2 LIMIT $3"
        )
        params = [t.name for t in stmt.get_parameters()]
        columns = [(a.name, a.type.name) for a in stmt.get_attributes()]
        return params, columns, await stmt.fetchrow(True, 0, 5)

    params, columns, row = _run(wire, tenant, body)
    assert params == ["bool", "int8", "int8"]
    assert columns == [("n", "int8"), ("last", "text")]
    assert isinstance(row["n"], int)


@pytest.mark.parametrize("tenant", TENANTS)
def test_asyncpg_writes_in_a_transaction(wire: Wire, tenant: str) -> None:
    last = mark()

    async def body(conn: Any) -> Any:
        insert = (
            "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
            "VALUES ($1, $2, $3, $4) RETURNING ContactID"
        )
        async with conn.transaction():
            first = await conn.fetchval(insert, "A", last, True, datetime.datetime(2024, 5, 1))
            await conn.executemany(
                "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
                "VALUES ($1, $2, $3, $4)",
                [("B", last, False, datetime.datetime(2024, 5, 2))] * 2,
            )
        count = await conn.fetchval("SELECT COUNT(*) FROM Contacts WHERE LastName = $1", last)
        return first, count

    first, count = _run(wire, tenant, body)
    assert isinstance(first, int)
    assert count == 3
    assert wire.stored(tenant, last) == 3


def test_asyncpg_sees_a_refusal_when_it_prepares(wire: Wire) -> None:
    async def body(conn: Any) -> Any:
        with pytest.raises(asyncpg.UndefinedColumnError):
            await conn.prepare("SELECT Nope FROM Contacts WHERE ContactID = $1")
        return await conn.fetchval("SELECT COUNT(*) FROM Contacts WHERE ContactID = $1", 1)

    assert _run(wire, "lite.example", body) == 1


def test_asyncpg_session_commands(wire: Wire) -> None:
    async def body(conn: Any) -> Any:
        return await conn.fetchval("SHOW server_version"), await conn.fetchval("SELECT version()")

    shown, version = _run(wire, "pg.example", body)
    assert shown and "tenantgate" in version
