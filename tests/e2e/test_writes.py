"""End to end: writes over HTTP on a SQLite tenant (beta.example, 2), a PostgreSQL
tenant (pg12.example, 12) and a SQL Server tenant per ODBC driver (the ``tenant``
fixture of tests/e2e/conftest.py). The stack is shared by the whole session, so these
tests only update and delete contacts they inserted themselves."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.test_service import direct_rows, query
from tests.support.stack import BETA_READ_TOKEN, Stack

pytestmark = pytest.mark.e2e

INSERT = (
    "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt) "
    "OUTPUT INSERTED.ContactID, INSERTED.FirstName "
    "VALUES (@first, @last, @active, CAST(@created AS DATETIME))"
)


def new_contact(stack: Stack, tenant: int, last: str) -> int:
    first = f"e2e-{uuid.uuid4().hex[:8]}"
    status, body = query(
        stack,
        {
            "tenant": tenant,
            "sql": INSERT,
            "params": {"first": first, "last": last, "active": True, "created": "2024-05-01"},
        },
    )
    assert status == 200, body
    # The spelling is test_output_columns_keep_their_physical_spelling's business.
    assert [c["name"].casefold() for c in body["columns"]] == ["contactid", "firstname"]
    assert body["row_count"] == 1 and body["truncated"] is False
    [[contact_id, returned_first]] = body["rows"]
    assert returned_first == first
    return int(contact_id)


def test_output_columns_keep_their_physical_spelling(stack: Stack, tenant: int) -> None:
    # Written in lower case, answered in the catalog's spelling on every backend. On
    # Babelfish this needs the rewriter's alias: it names an unaliased OUTPUT column in
    # lower case in the result's description, where SQL Server keeps the spelling written.
    status, body = query(
        stack,
        {
            "tenant": tenant,
            "sql": INSERT.replace("INSERTED.FirstName", "inserted.firstname"),
            "params": {"first": "Spelling", "last": "x", "active": True, "created": "2024-05-01"},
        },
    )
    assert status == 200, body
    assert [c["name"] for c in body["columns"]] == ["ContactID", "FirstName"]


def stored(stack: Stack, tenant: int, contact_id: int) -> list[list[Any]]:
    return direct_rows(
        stack,
        tenant,
        'SELECT "ContactID", "LastName", "Title" FROM "Contacts" WHERE "ContactID" = ?',
        contact_id,
    )


def test_insert_with_returning(stack: Stack, tenant: int) -> None:
    contact_id = new_contact(stack, tenant, "Inserted")
    assert stored(stack, tenant, contact_id) == [[contact_id, "Inserted", None]]


def test_update_with_where(stack: Stack, tenant: int) -> None:
    contact_id = new_contact(stack, tenant, "ToUpdate")
    status, body = query(
        stack,
        {
            "tenant": tenant,
            "sql": "UPDATE Contacts SET Title = ?, LastName = UPPER(LastName) WHERE ContactID = ?",
            "params": ["Engineer", contact_id],
        },
    )
    assert status == 200, body
    assert body["row_count"] == 1 and body["rows"] == []
    assert stored(stack, tenant, contact_id) == [[contact_id, "TOUPDATE", "Engineer"]]


def test_delete_with_where(stack: Stack, tenant: int) -> None:
    contact_id = new_contact(stack, tenant, "ToDelete")
    status, body = query(
        stack,
        {
            "tenant": tenant,
            "sql": "DELETE FROM Contacts WHERE ContactID = ?",
            "params": [contact_id],
        },
    )
    assert status == 200, body
    assert body["row_count"] == 1
    assert stored(stack, tenant, contact_id) == []


def test_unfiltered_delete_is_refused(stack: Stack, tenant: int) -> None:
    before = direct_rows(stack, tenant, 'SELECT COUNT(*) FROM "Contacts"')
    status, body = query(stack, {"tenant": tenant, "sql": "DELETE FROM Contacts"})
    assert (status, body["error"]["code"]) == (400, "unfiltered_write"), body
    assert "allow_unfiltered" in body["error"]["message"]
    assert direct_rows(stack, tenant, 'SELECT COUNT(*) FROM "Contacts"') == before


def test_read_token_may_not_write(stack: Stack) -> None:
    contact_id = new_contact(stack, 2, "Protected")
    status, body = query(
        stack,
        {"tenant": "beta.example", "sql": "DELETE FROM Contacts WHERE ContactID = ?",
         "params": [contact_id]},
        token=BETA_READ_TOKEN,
    )  # fmt: skip
    assert (status, body["error"]["code"]) == (403, "forbidden"), body
    assert body["error"]["statement_class"] == "write"
    assert stored(stack, 2, contact_id) == [[contact_id, "Protected", None]]


def test_constraint_violation_is_a_409(stack: Stack, tenant: int) -> None:
    status, body = query(
        stack,
        {
            "tenant": tenant,
            "sql": INSERT,  # FirstName is NOT NULL
            "params": {"first": None, "last": "x", "active": True, "created": "2024-05-01"},
        },
    )
    assert (status, body["error"]["code"]) == (409, "constraint_violation"), body


def test_allow_unfiltered_must_be_a_boolean(stack: Stack) -> None:
    status, body = query(
        stack, {"tenant": 2, "sql": "DELETE FROM Contacts", "allow_unfiltered": "yes"}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_request"), body
