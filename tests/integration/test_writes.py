"""Writes through ``proxy.pipeline.service.Service`` on real PostgreSQL (psqlODBC) and SQLite
(sqliteodbc), each checked by reading the data back directly, not through tenantgate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.auth import Principal
from proxy.demo.seed import custom_columns
from proxy.errors import ConstraintViolation, Forbidden
from proxy.pipeline.request import QueryRequest
from proxy.pipeline.service import QueryOutcome
from rewriter.errors import UnfilteredWrite, UnknownColumn
from tests.support.pg import PgServer
from tests.support.tenants import READER, WRITER, Tenants, seeded_service, token

CUSTOM = custom_columns(5)
# Every row these tests insert has a FirstName of this prefix and an id above the seed's.
MARK = "WriteTest"
NEW = "CAST(? AS DATETIME)"  # CreatedAt: typed, so psqlODBC's text bind is not a type error


@pytest.fixture
def tenants(tmp_path: Path, pg: PgServer, pg_database: str) -> Iterator[Tenants]:
    with seeded_service(
        tmp_path,
        pg,
        pg_database,
        CUSTOM,
        contacts=20,
        pool_max_size=1,
        backend_templates={"postgresql": "BoolsAsChar=0"},
        tokens=(token("writer", WRITER, "read", "write"), token("reader", READER, "read")),
    ) as t:
        yield t


BACKENDS = pytest.mark.parametrize("tenant", ["lite.example", "pg.example"])


def run(t: Tenants, tenant: str, sql: str, params: Any = (), **options: Any) -> QueryOutcome:
    principal = t.service.auth.authenticate(f"Bearer {options.pop('token', WRITER)}")
    assert isinstance(principal, Principal)
    return t.service.query(
        principal, QueryRequest(tenant=tenant, sql=sql, params=params, **options)
    )


def insert(t: Tenants, tenant: str, *names: str) -> list[int]:
    """Insert contacts named ``MARK + name``; return their generated ids."""
    rows = ", ".join(f"(?, ?, ?, {NEW})" for _ in names)
    params: list[Any] = []
    for name in names:
        params += [MARK + name, "Tester", True, "2024-05-01 10:00:00"]
    outcome = run(
        t,
        tenant,
        "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
        f"OUTPUT INSERTED.ContactID VALUES {rows}",
        params,
    )
    assert outcome.statement_class == "write"
    assert [c.name for c in outcome.result.columns] == ["ContactID"]
    assert outcome.result.row_count == len(names)
    return [int(r[0]) for r in outcome.result.rows]  # type: ignore[call-overload]


@BACKENDS
def test_insert_several_rows_returns_generated_keys(tenants: Tenants, tenant: str) -> None:
    ids = insert(tenants, tenant, "A", "B")
    assert len(ids) == 2 and min(ids) > 20
    stored = tenants.read(
        tenant,
        'SELECT "ContactID", "FirstName", "LastName" FROM "Contacts" WHERE "FirstName" LIKE ? '
        'ORDER BY "ContactID"',
        (MARK + "%",),
    )
    assert stored == [(ids[0], MARK + "A", "Tester"), (ids[1], MARK + "B", "Tester")]


@BACKENDS
def test_insert_without_output_reports_rows_affected(tenants: Tenants, tenant: str) -> None:
    outcome = run(
        tenants,
        tenant,
        "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt, Custom_Region) "
        "SELECT @first, LastName, IsActive, CreatedAt, @region FROM Contacts "
        "WHERE ContactID <= 3",
        {"first": MARK + "Copy", "region": "Mars"},
    )
    assert outcome.result.columns == [] and outcome.result.row_count == 3
    stored = tenants.read(
        tenant, 'SELECT COUNT(*) FROM "Contacts" WHERE "FirstName" = ? AND "Custom_Region" = ?',
        (MARK + "Copy", "Mars"),
    )  # fmt: skip
    assert stored == [(3,)]


@BACKENDS
def test_update_with_where_and_custom_column(tenants: Tenants, tenant: str) -> None:
    ids = insert(tenants, tenant, "U1", "U2", "U3")
    outcome = run(
        tenants,
        tenant,
        "UPDATE Contacts SET custom_region = ?, LeadScore = ContactID * 10 "
        "WHERE ContactID IN (?, ?)",
        ["Atlantis", ids[0], ids[2]],
    )
    assert outcome.result.row_count == 2
    stored = tenants.read(
        tenant,
        'SELECT "ContactID", "Custom_Region", "LeadScore" FROM "Contacts" WHERE "ContactID" >= ? '
        'ORDER BY "ContactID"',
        (ids[0],),
    )
    assert stored == [
        (ids[0], "Atlantis", ids[0] * 10),
        (ids[1], None, None),
        (ids[2], "Atlantis", ids[2] * 10),
    ]


@BACKENDS
def test_update_output_new_values_and_correlated_subquery(tenants: Tenants, tenant: str) -> None:
    ids = insert(tenants, tenant, "C1")
    outcome = run(
        tenants,
        tenant,
        "UPDATE Contacts SET LastName = @last OUTPUT INSERTED.ContactID, INSERTED.LastName "
        "WHERE ContactID = @id AND NOT EXISTS (SELECT 1 FROM Opportunities o "
        "WHERE o.ContactID = Contacts.ContactID)",
        {"id": ids[0], "last": "Renamed"},
    )
    assert outcome.result.rows == [[ids[0], "Renamed"]]
    assert outcome.result.row_count == 1


@BACKENDS
def test_delete_with_where_and_output(tenants: Tenants, tenant: str) -> None:
    ids = insert(tenants, tenant, "D1", "D2")
    outcome = run(
        tenants,
        tenant,
        "DELETE FROM Contacts OUTPUT DELETED.ContactID, DELETED.FirstName WHERE ContactID = ?",
        [ids[0]],
    )
    assert outcome.result.rows == [[ids[0], MARK + "D1"]]
    outcome = run(tenants, tenant, "DELETE Contacts WHERE ContactID = ?", [ids[1]])
    assert outcome.result.row_count == 1 and outcome.result.columns == []
    assert tenants.count(tenant, '"ContactID" >= ?', ids[0]) == 0


@BACKENDS
def test_output_rows_beyond_max_rows_still_count(tenants: Tenants, tenant: str) -> None:
    ids = insert(tenants, tenant, "M1", "M2", "M3")
    outcome = run(
        tenants,
        tenant,
        "UPDATE Contacts SET Title = 'x' OUTPUT INSERTED.ContactID WHERE ContactID >= ?",
        [ids[0]],
        max_rows=1,
    )
    assert len(outcome.result.rows) == 1 and outcome.result.truncated
    assert outcome.result.row_count == 3
    assert tenants.count(tenant, '"Title" = ?', "x") == 3


@BACKENDS
def test_unfiltered_delete_is_refused_unless_allowed(tenants: Tenants, tenant: str) -> None:
    before = tenants.read(tenant, 'SELECT COUNT(*) FROM "Opportunities"')[0][0]
    assert before > 0
    with pytest.raises(UnfilteredWrite):
        run(tenants, tenant, "DELETE FROM Opportunities")
    assert tenants.read(tenant, 'SELECT COUNT(*) FROM "Opportunities"') == [(before,)]
    outcome = run(tenants, tenant, "DELETE FROM Opportunities", allow_unfiltered=True)
    assert outcome.result.row_count == before
    assert tenants.read(tenant, 'SELECT COUNT(*) FROM "Opportunities"') == [(0,)]


@BACKENDS
def test_read_token_may_not_write(tenants: Tenants, tenant: str) -> None:
    with pytest.raises(Forbidden):
        run(tenants, tenant, "DELETE FROM Contacts WHERE ContactID = 1", token=READER)
    assert tenants.count(tenant, '"ContactID" = 1') == 1


@BACKENDS
def test_constraint_violation(tenants: Tenants, tenant: str) -> None:
    with pytest.raises(ConstraintViolation):  # FirstName is NOT NULL
        run(
            tenants,
            tenant,
            "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
            f"VALUES (?, ?, ?, {NEW})",
            [None, "Tester", True, "2024-05-01 10:00:00"],
        )
    with pytest.raises(ConstraintViolation):  # the primary key exists
        run(
            tenants,
            tenant,
            "INSERT INTO Contacts (ContactID, FirstName, LastName, IsActive, CreatedAt) "
            f"VALUES (1, 'x', 'y', ?, {NEW})",
            [True, "2024-05-01 10:00:00"],
        )


@BACKENDS
def test_missing_write_column_is_refused_under_null_policy(tenants: Tenants, tenant: str) -> None:
    ids = insert(tenants, tenant, "N1")
    with pytest.raises(UnknownColumn):
        run(
            tenants,
            tenant,
            "UPDATE Contacts SET NoSuchField = 'x' WHERE ContactID = ?",
            [ids[0]],
            missing_columns="null",
        )
    with pytest.raises(UnknownColumn):  # read as NULL, IS NULL would match every row
        run(
            tenants,
            tenant,
            "DELETE FROM Contacts WHERE NoSuchField IS NULL",
            missing_columns="null",
        )
    assert tenants.count(tenant, '"ContactID" = ?', ids[0]) == 1


@BACKENDS
def test_bit_columns_take_integers_as_t_sql_does(tenants: Tenants, tenant: str) -> None:
    """``IsActive`` is a boolean on PostgreSQL, which has no integer-to-boolean assignment
    or comparison: 0 and 1 (and any other integer) must still write and filter."""
    run(tenants, tenant,
        "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
        f"VALUES (?, 'Bits', 1, {NEW}), (?, 'Bits', 0, {NEW})",
        [MARK + "On", "2024-05-01 10:00:00", MARK + "Off", "2024-05-01 10:00:00"])  # fmt: skip
    run(tenants, tenant, "UPDATE Contacts SET IsActive = 0 WHERE FirstName = ?", [MARK + "On"])
    run(tenants, tenant, "UPDATE Contacts SET IsActive = 1 WHERE FirstName = ?", [MARK + "Off"])
    outcome = run(tenants, tenant,
                  "SELECT FirstName, IIF(IsActive = 1, 'on', 'off') AS state FROM Contacts "
                  "WHERE LastName = 'Bits' AND IsActive IN (0, 1) AND IsActive < 2 "
                  "ORDER BY FirstName")  # fmt: skip
    assert outcome.result.rows == [[MARK + "Off", "on"], [MARK + "On", "off"]]
    sql = "SELECT COUNT(*) FROM Contacts WHERE LastName = 'Bits' AND IsActive <> 0"
    active = run(tenants, tenant, sql)
    assert active.result.rows == [[1]]
