"""``proxy.pipeline.describe`` through a real service, on real PostgreSQL and SQLite.

What a statement is described as must be what running it gives: a driver that
prepares decodes every column by its described type. So for statements of plain
columns the described types are checked against the types of the executed result.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.auth import Principal
from proxy.demo.seed import BASE_MODEL, custom_columns
from proxy.errors import ProxyError
from proxy.pipeline.describe import Description, describe
from proxy.pipeline.request import QueryRequest
from rewriter.errors import RewriteError
from tests.support.blocking import BlockingService
from tests.support.pg import PgServer
from tests.support.tenants import Tenants, seeded_service, token

CUSTOM = custom_columns(4)
WRITER = "describe-writer"
READER = "describe-reader"
BACKENDS = pytest.mark.parametrize("tenant", ["lite.example", "pg.example"])


def _notes(conn: Any, backend: str) -> None:
    conn.execute('CREATE TABLE "Notes" ("NoteID" INTEGER PRIMARY KEY, "Body" TEXT)')


@pytest.fixture(scope="module")
def tenants(
    tmp_path_factory: pytest.TempPathFactory, pg: PgServer, module_pg_database: str
) -> Iterator[Tenants]:
    with seeded_service(
        tmp_path_factory.mktemp("describe"),
        pg,
        module_pg_database,
        CUSTOM,
        contacts=10,
        pool_max_size=1,
        tokens=(token("w", WRITER, "read", "write", "admin"), token("r", READER, "read")),
        seed_more=_notes,
    ) as t:
        yield t


@pytest.fixture(scope="module")
def service(tenants: Tenants) -> BlockingService:
    return tenants.service


def _principal(service: BlockingService, secret: str = WRITER) -> Principal:
    principal: Principal = service.auth.authenticate(f"Bearer {secret}")
    return principal


def _describe(
    service: BlockingService, tenant: str, sql: str, principal: Principal | None = None
) -> Description:
    req = QueryRequest(tenant, sql, dialect="postgres")
    call = functools.partial(describe, service.target, principal or _principal(service), req)
    result: Description = service.portal.call(call)
    return result


def _executed(service: BlockingService, tenant: str, sql: str, params: list[object]) -> list[str]:
    outcome = service.query(_principal(service), QueryRequest(tenant, sql, params, "postgres"))
    return [f"{c.name}:{c.type}" for c in outcome.result.columns]


def _described(description: Description) -> list[str]:
    assert description.columns is not None
    return [f"{c.name}:{c.type}" for c in description.columns]


@BACKENDS
def test_star_and_custom_fields_as_they_run(service: BlockingService, tenant: str) -> None:
    sql = "SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID = ?"
    description = _describe(service, tenant, sql)
    assert description.params == ("integer",)
    names = [c.name for c in description.columns or ()]
    assert names == list(BASE_MODEL["Contacts"]) + [c.name for c in CUSTOM]
    # Contact 1's nullable columns may be NULL, which SQLite cannot type: compare the
    # columns its row types.
    ran = _executed(service, tenant, sql, [1])
    typed = [i for i, c in enumerate(ran) if not c.endswith(":unknown")]
    assert len(typed) > len(ran) // 2
    assert [_described(description)[i] for i in typed] == [ran[i] for i in typed]


@BACKENDS
def test_parameters_where_they_stand(service: BlockingService, tenant: str) -> None:
    sql = (
        "SELECT c.ContactID, c.Email, c.Revenue, c.BirthDate, c.IsActive, a.CreatedAt "
        "FROM Contacts c JOIN Accounts a ON a.AccountID = c.AccountID "
        "WHERE c.LastName LIKE ? AND a.CreatedAt > ? AND c.ContactID IN (?, ?) "
        "AND c.Revenue BETWEEN ? AND ? AND ? = c.IsActive ORDER BY 1 LIMIT ? OFFSET ?"
    )
    description = _describe(service, tenant, sql)
    number = "number" if tenant == "lite.example" else "decimal"  # SQLite's NUMERIC: a float
    assert description.params == (
        "string", "datetime", "integer", "integer", number, number, "boolean", "integer", "integer",
    )  # fmt: skip
    assert _described(description) == [
        "ContactID:integer", "Email:string", f"Revenue:{number}", "BirthDate:date",
        "IsActive:boolean", "CreatedAt:datetime",
    ]  # fmt: skip
    ran = _executed(
        service, tenant, sql, ["%", "2000-01-01", 1, 2, -1e12, 1e12, True, 10, 0]
    )  # ContactIDs 1 and 2 have every column filled (seed 1)
    assert ran == _described(description)


@BACKENDS
def test_expressions(service: BlockingService, tenant: str) -> None:
    sql = (
        "SELECT COUNT(*) AS n, MAX(LeadScore) AS top, AVG(LeadScore) AS mean, 'x' AS label, "
        "CAST(? AS integer) AS asked, UPPER(FirstName) AS upper_name "
        "FROM Contacts GROUP BY FirstName"
    )
    description = _describe(service, tenant, sql)
    assert description.params == ("integer",)
    assert _described(description) == [
        "n:integer", "top:integer", "mean:unknown", "label:string", "asked:integer",
        "upper_name:string",
    ]  # fmt: skip


@BACKENDS
def test_writes_are_described_not_run(tenants: Tenants, tenant: str) -> None:
    service = tenants.service
    update = _describe(
        service, tenant, "UPDATE Contacts SET Email = ?, LeadScore = ? WHERE ContactID = ?"
    )
    assert update == Description(("string", "integer", "integer"), None)
    before = tenants.read(tenant, 'SELECT COUNT(*) FROM "Accounts"')
    insert = _describe(
        service,
        tenant,
        "INSERT INTO Accounts (Name, IsCustomer, CreatedAt, AnnualRevenue) VALUES (?, ?, ?, ?) "
        "RETURNING AccountID, Name AS account_name",
    )
    number = "number" if tenant == "lite.example" else "decimal"
    assert insert.params == ("string", "boolean", "datetime", number)
    assert _described(insert) == ["AccountID:integer", "account_name:string"]
    assert tenants.read(tenant, 'SELECT COUNT(*) FROM "Accounts"') == before


@BACKENDS
def test_refusals_as_a_query_would_refuse(service: BlockingService, tenant: str) -> None:
    with pytest.raises(RewriteError) as unknown:
        _describe(service, tenant, "SELECT Nope FROM Contacts WHERE ContactID = ?")
    assert unknown.value.code == "unknown_column"
    with pytest.raises(ProxyError) as refused:
        _describe(
            service,
            tenant,
            "DELETE FROM Contacts WHERE ContactID = ?",
            _principal(service, READER),
        )
    assert refused.value.code == "forbidden"


@BACKENDS
def test_a_changed_table_is_described_afresh(tenants: Tenants, tenant: str) -> None:
    service = tenants.service
    sql = "SELECT * FROM Notes WHERE NoteID = ?"
    assert _described(_describe(service, tenant, sql)) == ["NoteID:integer", "Body:string"]
    tenants.alter(tenant, 'ALTER TABLE "Notes" ADD COLUMN "Stamp" DATE')
    service.refresh(_principal(service), tenant)
    assert _described(_describe(service, tenant, sql)) == [
        "NoteID:integer", "Body:string", "Stamp:date",
    ]  # fmt: skip
