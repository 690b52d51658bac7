"""Writes beyond the golden cases (tests/fixtures/rewriter/writes.toml): the
unfiltered-write gate, the plan cache in front of it, and the generated SQLite SQL
run against an in-memory database (stdlib sqlite3) to check what it really does."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from rewriter import UnfilteredWrite, parse_statement, rewrite
from rewriter.plan_cache import PlanCache
from rewriter.statement import READ, WRITE
from tests.unit.rewriter.shapes import SCHEMA
from tests.unit.rewriter.test_sqlite_exec import db  # noqa: F401 - the fixture

BACKENDS = ("sqlserver", "postgresql", "sqlite")

CLASSES = [
    ("SELECT 1 AS one", READ, False),
    ("INSERT INTO Contacts (FirstName) VALUES (?)", WRITE, False),
    ("INSERT INTO Accounts (Name) SELECT Name FROM Accounts", WRITE, False),
    ("UPDATE Contacts SET Email = NULL WHERE ContactID = 1", WRITE, False),
    ("UPDATE Contacts SET Email = NULL", WRITE, True),
    ("DELETE FROM Contacts WHERE ContactID = 1", WRITE, False),
    ("DELETE Contacts", WRITE, True),
    ("DELETE FROM Contacts OUTPUT DELETED.ContactID", WRITE, True),
]


@pytest.mark.parametrize(("sql", "statement_class", "unfiltered"), CLASSES)
def test_statement_class_and_filter(sql: str, statement_class: str, unfiltered: bool) -> None:
    parsed = parse_statement(sql)
    assert parsed.statement_class == statement_class
    assert parsed.unfiltered is unfiltered
    assert parsed.tables <= {"contacts", "accounts"}


UNFILTERED = [
    (
        "DELETE FROM Contacts",
        {
            "sqlserver": "DELETE FROM [T2].[dbo].[Contacts]",
            "postgresql": 'DELETE FROM "t2"."Contacts"',
            "sqlite": 'DELETE FROM "Contacts"',
        },
    ),
    (
        "UPDATE Contacts SET Email = ? OUTPUT INSERTED.ContactID",
        {
            "sqlserver": "UPDATE [T2].[dbo].[Contacts] SET [Email] = ? OUTPUT INSERTED.[ContactID] "
            "AS [ContactID]",
            "postgresql": 'UPDATE "t2"."Contacts" SET "Email" = ? RETURNING "ContactID"',
            "sqlite": 'WITH "__tenantgate_returning__" AS (SELECT 1) '
            'UPDATE "Contacts" SET "Email" = ? RETURNING "Contacts"."ContactID"',
        },
    ),
]
LOCATION = {"sqlserver": ("T2", "dbo"), "postgresql": (None, "t2"), "sqlite": (None, None)}


@pytest.mark.parametrize(("sql", "expected"), UNFILTERED, ids=[s for s, _ in UNFILTERED])
def test_unfiltered_write_runs_only_when_allowed(sql: str, expected: dict[str, str]) -> None:
    parsed = parse_statement(sql)
    for backend in BACKENDS:
        with pytest.raises(UnfilteredWrite) as caught:
            rewrite(parsed, tables=SCHEMA, backend=backend)
        assert caught.value.code == "unfiltered_write"
        assert "allow_unfiltered" in caught.value.message
        plan = rewrite(parsed, tables=SCHEMA, backend=backend, allow_unfiltered=True)
        catalog, schema = LOCATION[backend]
        assert plan.bind(catalog=catalog, schema=schema) == expected[backend]


def test_plan_cache_checks_the_gate_before_its_lookup() -> None:
    cache = PlanCache()
    parsed = cache.parse("DELETE FROM Contacts", dialect="tsql")
    plan, cached = cache.plan(parsed, tables=SCHEMA, backend="sqlite", allow_unfiltered=True)
    assert not cached and plan.sql == 'DELETE FROM "Contacts"'
    # The plan is cached now, but a request that does not allow it is still refused.
    with pytest.raises(UnfilteredWrite):
        cache.plan(parsed, tables=SCHEMA, backend="sqlite")
    again, cached = cache.plan(parsed, tables=SCHEMA, backend="sqlite", allow_unfiltered=True)
    assert cached and again is plan


def test_allow_unfiltered_does_not_change_a_filtered_plan() -> None:
    parsed = parse_statement("DELETE FROM Contacts WHERE ContactID = ?")
    for backend in BACKENDS:
        plain = rewrite(parsed, tables=SCHEMA, backend=backend)
        allowed = rewrite(parsed, tables=SCHEMA, backend=backend, allow_unfiltered=True)
        assert plain == allowed


def test_the_parsed_tree_is_not_changed_by_rewriting_a_write() -> None:
    parsed = parse_statement(
        "UPDATE Contacts SET Email = ? OUTPUT INSERTED.ContactID WHERE EXISTS "
        "(SELECT 1 FROM Opportunities o WHERE o.ContactID = Contacts.ContactID)"
    )
    before = parsed.expression.sql()
    for backend in BACKENDS:
        rewrite(parsed, tables=SCHEMA, backend=backend)
    assert parsed.expression.sql() == before


# -- the generated SQLite SQL, run ------------------------------------------------------


def run(
    conn: sqlite3.Connection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] = (),
    **options: Any,
) -> tuple[tuple[str, ...], list[tuple[Any, ...]], int]:
    plan = rewrite(parse_statement(sql), tables=SCHEMA, backend="sqlite", **options)
    values = [params[key] for key in plan.param_order]  # type: ignore[index]
    cursor = conn.execute(plan.bind(catalog=None, schema=None), values)
    rows = cursor.fetchall()
    if plan.columns:
        assert tuple(d[0] for d in cursor.description) == plan.columns
    return plan.columns, rows, cursor.rowcount


def contacts(conn: sqlite3.Connection, where: str = "1 = 1") -> list[tuple[Any, ...]]:
    return conn.execute(
        f'SELECT "ContactID", "FirstName", "Email", "Shoe Size" FROM "Contacts" WHERE {where} '
        'ORDER BY "ContactID"'
    ).fetchall()


def test_insert_several_rows_returning_keys(db: sqlite3.Connection) -> None:  # noqa: F811
    columns, rows, _ = run(
        db,
        "INSERT INTO Contacts (ContactID, FirstName, [shoe size]) OUTPUT INSERTED.ContactID "
        "AS id, INSERTED.[Shoe Size] VALUES (?, ?, ?), (?, ?, ?)",
        [20, "Barbara", 40, 21, "Donald", None],
    )
    assert columns == ("id", "Shoe Size")
    assert sorted(rows) == [(20, 40), (21, None)]
    assert contacts(db, '"ContactID" >= 20') == [
        (20, "Barbara", None, 40),
        (21, "Donald", None, None),
    ]


def test_insert_select_named_params(db: sqlite3.Connection) -> None:  # noqa: F811
    _, _, count = run(
        db,
        "INSERT INTO Accounts (AccountID, Name) SELECT ContactID + @offset, LastName "
        "FROM Contacts WHERE AccountID = @account",
        {"offset": 1000, "account": 1},
    )
    assert count == 2
    names = db.execute('SELECT "AccountID", "Name" FROM "Accounts" WHERE "AccountID" > 1000')
    assert sorted(names.fetchall()) == [(1010, "Lovelace"), (1011, "Turing")]


def test_update_with_correlated_subquery(db: sqlite3.Connection) -> None:  # noqa: F811
    _, _, count = run(
        db,
        "UPDATE Contacts SET Email = UPPER(FirstName), [Shoe Size] = [Shoe Size] + ? "
        "WHERE EXISTS (SELECT 1 FROM Opportunities o WHERE o.ContactID = Contacts.ContactID "
        "AND o.Stage = ?)",
        [1, "won"],
    )
    assert count == 1
    assert contacts(db, '"ContactID" = 10') == [(10, "Ada", "ADA", 39)]
    assert contacts(db, '"ContactID" = 11') == [(11, "Alan", "alan@example.com", 44)]


def test_update_returning_new_values(db: sqlite3.Connection) -> None:  # noqa: F811
    _, rows, _ = run(
        db,
        "UPDATE Contacts SET FirstName = @name OUTPUT INSERTED.ContactID, INSERTED.FirstName "
        "WHERE ContactID IN (@a, @b)",
        {"name": "X", "a": 12, "b": 13},
    )
    assert sorted(rows) == [(12, "X"), (13, "X")]


def test_delete_output_deleted_with_subquery(db: sqlite3.Connection) -> None:  # noqa: F811
    _, rows, _ = run(
        db,
        "DELETE FROM Contacts OUTPUT DELETED.ContactID, DELETED.Email "
        "WHERE ContactID IN (SELECT ContactID FROM Contacts WHERE Email IS NULL)",
    )
    assert rows == [(12, None)]
    assert [r[0] for r in contacts(db)] == [10, 11, 13]


def test_allowed_unfiltered_delete(db: sqlite3.Connection) -> None:  # noqa: F811
    _, _, count = run(db, "DELETE FROM Opportunities", allow_unfiltered=True)
    assert count == 3
    assert db.execute('SELECT COUNT(*) FROM "Opportunities"').fetchone() == (0,)


def test_insertmanyvalues_runs_on_sqlite_keys_in_order() -> None:
    """SQLAlchemy's "insertmanyvalues" statement (postgres dialect), as SQLite runs it:
    rows inserted in ORDER BY order (the keys follow it), parameters bound in order."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(
            'CREATE TABLE "Contacts" ("ContactID" INTEGER PRIMARY KEY, "AccountID", '
            '"FirstName", "LastName", "Email", "Custom_Region", "Shoe Size")'
        )
        conn.execute('INSERT INTO "Contacts" ("ContactID", "FirstName") VALUES (7, \'seed\')')
        sql = (
            'INSERT INTO "Contacts" ("FirstName", "LastName", "Shoe Size") '
            "SELECT p0::VARCHAR, p1::VARCHAR, p2::INTEGER FROM (VALUES (?, ?, ?, 2), "
            "(?, ?, ?, 0), (?, ?, ?, 1)) AS imp_sen(p0, p1, p2, sen_counter) "
            'ORDER BY sen_counter RETURNING "Contacts"."ContactID", '
            '"Contacts"."ContactID" AS "ContactID__1"'
        )
        plan = rewrite(parse_statement(sql, dialect="postgres"), tables=SCHEMA, backend="sqlite")
        assert plan.columns == ("ContactID", "ContactID__1")
        params = ["C", "c", "3", "A", "a", "1", "B", "b", "2"]
        cursor = conn.execute(
            plan.bind(catalog=None, schema=None), [params[i] for i in plan.param_order]
        )
        returned = cursor.fetchall()
        assert sorted(returned) == [(8, 8), (9, 9), (10, 10)]
        stored = conn.execute(
            'SELECT "ContactID", "FirstName", "LastName", "Shoe Size" FROM "Contacts" '
            'WHERE "ContactID" > 7 ORDER BY "ContactID"'
        ).fetchall()
        assert stored == [(8, "A", "a", 1), (9, "B", "b", 2), (10, "C", "c", 3)]
    finally:
        conn.close()


def test_values_source_reads_no_table() -> None:
    """The accepted shape names no table but its target: nothing else is read."""
    parsed = parse_statement(
        "INSERT INTO Contacts (FirstName) SELECT accounts.x FROM (VALUES (?), (?)) "
        "AS accounts(x) ORDER BY accounts.x",
        dialect="postgres",
    )
    assert parsed.tables == frozenset({"contacts"})
    for backend in BACKENDS:
        plan = rewrite(parsed, tables={"contacts": SCHEMA["contacts"]}, backend=backend)
        assert '"Accounts"' not in plan.sql and "[Accounts]" not in plan.sql
