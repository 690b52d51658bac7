"""Custom-field administration through ``proxy.tables.custom_fields`` on real PostgreSQL and SQLite,
checked against the tenant's catalog directly and through queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.demo.seed import custom_columns
from proxy.errors import (
    BaseColumnProtected,
    ColumnExists,
    ColumnLimitReached,
    CustomFieldNotFound,
    Forbidden,
    InvalidCustomField,
)
from proxy.pipeline.request import QueryRequest
from proxy.tables.custom_fields import CustomFields
from rewriter.errors import UnknownColumn, UnknownTable
from tenancy import ddl
from tests.support.pg import PgServer
from tests.support.tenants import ADMIN, TENANTS, WRITER, Tenants, seeded_service

BACKENDS = pytest.mark.parametrize("tenant", TENANTS)


@pytest.fixture
def tenants(tmp_path: Path, pg: PgServer, pg_database: str) -> Iterator[Tenants]:
    with seeded_service(tmp_path, pg, pg_database, custom_columns(3)) as t:
        yield t


@pytest.fixture(scope="module")
def unchanged_tenants(
    tmp_path_factory: pytest.TempPathFactory, pg: PgServer, module_pg_database: str
) -> Iterator[Tenants]:
    """``tenants`` seeded once for the tests whose every request is refused: each checks
    that the columns are as they were, so none can hand the next one a changed table."""
    with seeded_service(
        tmp_path_factory.mktemp("admin"), pg, module_pg_database, custom_columns(3)
    ) as t:
        yield t


def admin(t: Tenants) -> CustomFields:
    return t.service.custom_fields()


def add(t: Tenants, tenant: str, **body: Any) -> dict[str, Any]:
    return admin(t).add(t.principal(ADMIN), tenant, "Contacts", body)


def query(t: Tenants, tenant: str, sql: str, params: Any = ()) -> list[list[Any]]:
    outcome = t.service.query(
        t.principal(ADMIN), QueryRequest(tenant=tenant, sql=sql, params=params)
    )
    return outcome.result.rows


@BACKENDS
def test_list_reports_custom_fields_with_types(tenants: Tenants, tenant: str) -> None:
    listed = admin(tenants).list_fields(tenants.principal(ADMIN), tenant, "contacts")
    assert listed["table"] == "Contacts"
    names = [f["name"] for f in listed["custom_fields"]]
    assert names == [c.name for c in custom_columns(3)]
    assert all(f["type"] in ddl.CREATABLE_KINDS for f in listed["custom_fields"])
    assert listed["column_limit"] in (1600, 2000)


@BACKENDS
@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [
        ({"type": "text", "length": 40}, "Ünïcode 'quoted'", "Ünïcode 'quoted'"),
        ({"type": "integer"}, 42, 42),
        ({"type": "decimal", "precision": 10, "scale": 2}, "12.50", "12.50"),
        ({"type": "boolean"}, True, True),
        ({"type": "date"}, "2024-02-29", "2024-02-29"),
        ({"type": "datetime"}, "2024-02-29 13:14:15", "2024-02-29 13:14:15"),
    ],
    ids=["text", "integer", "decimal", "boolean", "date", "datetime"],
)
def test_add_each_type_then_write_and_read_it(
    tenants: Tenants, tenant: str, body: dict[str, Any], value: Any, expected: Any
) -> None:
    created = add(tenants, tenant, name="Select", **body)  # a reserved word, quoted
    assert created["name"] == "Select" and created["type"] == body["type"]
    assert "Select" in tenants.columns(tenant)
    # The cache saw the change at once: a query names the new column without a refresh.
    query(tenants, tenant, "UPDATE Contacts SET [Select] = ? WHERE ContactID = 1", [value])
    rows = query(tenants, tenant, "SELECT [Select] FROM Contacts WHERE ContactID = 1")
    got = rows[0][0]
    if body["type"] == "decimal":
        got = f"{float(got):.2f}"
    elif body["type"] in ("date", "datetime"):
        got = str(got)
    elif body["type"] == "boolean":
        got = bool(got)
    assert got == expected


@BACKENDS
def test_not_null_with_default_fills_existing_rows(tenants: Tenants, tenant: str) -> None:
    add(tenants, tenant, name="Tier", type="text", length=10, nullable=False, default="gold")
    rows = query(tenants, tenant, "SELECT DISTINCT Tier FROM Contacts")
    assert rows == [["gold"]]
    listed = admin(tenants).list_fields(tenants.principal(ADMIN), tenant, "Contacts")
    tier = next(f for f in listed["custom_fields"] if f["name"] == "Tier")
    assert tier == {**tier, "type": "text", "length": 10, "nullable": False}


@BACKENDS
def test_default_with_quotes_is_a_literal_not_sql(tenants: Tenants, tenant: str) -> None:
    nasty = "x'); DROP TABLE Contacts; --"
    add(tenants, tenant, name="Note", type="text", length=60, default=nasty)
    assert query(tenants, tenant, "SELECT Note FROM Contacts WHERE ContactID = 1") == [[nasty]]
    assert "ContactID" in tenants.columns(tenant)


@BACKENDS
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"name": "FirstName", "type": "integer"}, ColumnExists),
        ({"name": "firstname", "type": "integer"}, ColumnExists),
        ({"name": "custom_region", "type": "integer"}, ColumnExists),
        ({"name": "1abc", "type": "integer"}, InvalidCustomField),
        ({"name": "a b", "type": "integer"}, InvalidCustomField),
        ({"name": "x" * 129, "type": "integer"}, InvalidCustomField),
        ({"name": "ok", "type": "money"}, InvalidCustomField),
        ({"name": "ok", "type": "text"}, InvalidCustomField),
        ({"name": "ok", "type": "integer", "nullable": False}, InvalidCustomField),
        ({"name": "ok", "type": "integer", "default": "1; DROP"}, InvalidCustomField),
        ({"name": "ok", "type": "date", "default": "yesterday"}, InvalidCustomField),
    ],
)
def test_add_refusals(
    unchanged_tenants: Tenants, tenant: str, body: dict[str, Any], error: type[Exception]
) -> None:
    before = unchanged_tenants.columns(tenant)
    with pytest.raises(error):
        add(unchanged_tenants, tenant, **body)
    assert unchanged_tenants.columns(tenant) == before


@BACKENDS
def test_drop_custom_field_and_refuse_base_or_unknown(tenants: Tenants, tenant: str) -> None:
    add(tenants, tenant, name="Temp", type="integer")
    query(tenants, tenant, "SELECT Temp FROM Contacts WHERE ContactID = 1")
    done = admin(tenants).drop(tenants.principal(ADMIN), tenant, "Contacts", "temp")
    assert done == {"table": "Contacts", "name": "Temp", "dropped": True}
    assert "Temp" not in tenants.columns(tenant)
    with pytest.raises(UnknownColumn):  # the cache forgot it at once
        query(tenants, tenant, "SELECT Temp FROM Contacts WHERE ContactID = 1")
    with pytest.raises(BaseColumnProtected):
        admin(tenants).drop(tenants.principal(ADMIN), tenant, "Contacts", "FirstName")
    with pytest.raises(CustomFieldNotFound):
        admin(tenants).drop(tenants.principal(ADMIN), tenant, "Contacts", "Nope")
    assert "FirstName" in tenants.columns(tenant)


@BACKENDS
def test_admin_class_required_and_unknown_table(tenants: Tenants, tenant: str) -> None:
    with pytest.raises(Forbidden):
        admin(tenants).add(tenants.principal(WRITER), tenant, "Contacts", {"name": "x"})
    with pytest.raises(Forbidden):
        admin(tenants).list_fields(tenants.principal(WRITER), tenant, "Contacts")
    with pytest.raises(UnknownTable):
        add_to = admin(tenants).add
        add_to(tenants.principal(ADMIN), tenant, "Nope", {"name": "x", "type": "integer"})


@BACKENDS
def test_column_added_outside_tenantgate_cannot_be_added_twice(
    tenants: Tenants, tenant: str
) -> None:
    admin(tenants).list_fields(tenants.principal(ADMIN), tenant, "Contacts")  # cached now
    tenants.alter(tenant, 'ALTER TABLE "Contacts" ADD COLUMN "Outside" INTEGER')
    with pytest.raises(ColumnExists):
        add(tenants, tenant, name="outside", type="integer")


def test_column_limit_is_checked_before_the_backend(
    tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = len(tenants.columns("lite.example"))
    monkeypatch.setitem(ddl.COLUMN_LIMITS, ddl.BackendKind.SQLITE, count)
    with pytest.raises(ColumnLimitReached) as caught:
        add(tenants, "lite.example", name="OneTooMany", type="integer")
    assert caught.value.details["limit"] == count
    assert "OneTooMany" not in tenants.columns("lite.example")
