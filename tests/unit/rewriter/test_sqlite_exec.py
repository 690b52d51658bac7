"""Generated SQLite SQL runs: the fixture schema in an in-memory database (stdlib sqlite3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from rewriter import parse_statement, rewrite
from tests.unit.rewriter.shapes import SCHEMA


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    for shape in SCHEMA.values():
        if shape is None:
            continue
        columns = ", ".join(_quote(c) for c in shape.column_names)
        conn.execute(f"CREATE TABLE {_quote(shape.name)} ({columns})")
    conn.executemany(
        "INSERT INTO Accounts VALUES (?, ?, ?, ?)",
        [
            (1, "Acme", "Retail", "gold"),
            (2, "Globex", "Energy", None),
            (3, "Initech", "Retail", ""),
        ],
    )
    conn.executemany(
        "INSERT INTO Contacts VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (10, 1, "Ada", "Lovelace", "ada@example.com", "EU", 38),
            (11, 1, "Alan", "Turing", "alan@example.com", "EU", 44),
            (12, 2, "Grace", "Hopper", None, "US", 37),
            (13, 3, "Edsger", "Dijkstra", "ewd@example.com", None, None),
        ],
    )
    conn.executemany(
        "INSERT INTO Opportunities VALUES (?, ?, ?, ?, ?)",
        [(100, 1, 10, 500, "won"), (101, 1, 11, 1500, "open"), (102, 2, 12, 50, "lost")],
    )
    yield conn
    conn.close()


def run(
    conn: sqlite3.Connection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] = (),
    **options: str,
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    plan = rewrite(parse_statement(sql), tables=SCHEMA, backend="sqlite", **options)
    values = [params[key] for key in plan.param_order]  # type: ignore[index]
    cursor = conn.execute(plan.bind(catalog=None, schema=None), values)
    names = tuple(d[0] for d in cursor.description)
    assert names == plan.columns  # the backend returns the names the plan promises
    return plan.columns, cursor.fetchall()


def test_star_and_custom_fields(db: sqlite3.Connection) -> None:
    columns, rows = run(db, "SELECT *, CUSTOM_FIELDS() FROM contacts WHERE contactid = ?", [12])
    assert columns[-2:] == ("Custom_Region", "Shoe Size")
    assert rows == [(12, 2, "Grace", "Hopper", None, "US", 37)]


def test_top_and_where_binds_in_order(db: sqlite3.Connection) -> None:
    _, rows = run(
        db,
        "SELECT TOP (?) FirstName FROM Contacts WHERE AccountID = ? ORDER BY FirstName DESC",
        [1, 1],
    )
    assert rows == [("Alan",)]
    _, rows = run(
        db,
        "SELECT TOP (?) FirstName FROM Contacts WHERE AccountID = ? ORDER BY FirstName",
        [5, 1],
    )
    assert rows == [("Ada",), ("Alan",)]


def test_offset_fetch_binds_swap_correctly(db: sqlite3.Connection) -> None:
    _, rows = run(
        db,
        "SELECT ContactID FROM Contacts WHERE ContactID > ? ORDER BY ContactID "
        "OFFSET ? ROWS FETCH NEXT ? ROWS ONLY",
        [0, 1, 2],
    )
    assert rows == [(11,), (12,)]


def test_named_params_repeat(db: sqlite3.Connection) -> None:
    _, rows = run(
        db,
        "SELECT FirstName FROM Contacts WHERE AccountID = @acct OR ContactID = @acct + 12",
        {"acct": 1},
    )
    assert sorted(rows) == [("Ada",), ("Alan",), ("Edsger",)]


def test_join_group_having_order_alias(db: sqlite3.Connection) -> None:
    columns, rows = run(
        db,
        "SELECT a.Name, COUNT(*) AS n, SUM(o.Amount) AS total FROM Accounts a "
        "JOIN Opportunities o ON o.AccountID = a.AccountID "
        "GROUP BY a.Name HAVING COUNT(*) >= ? ORDER BY TOTAL DESC",
        [1],
    )
    assert columns == ("Name", "n", "total")
    assert rows == [("Acme", 2, 2000), ("Globex", 1, 50)]


def test_correlated_subquery_cte_union(db: sqlite3.Connection) -> None:
    _, rows = run(
        db,
        "WITH retail AS (SELECT AccountID FROM Accounts WHERE Industry = 'Retail') "
        "SELECT c.FirstName FROM Contacts c WHERE c.AccountID IN (SELECT AccountID FROM retail) "
        "AND NOT EXISTS (SELECT 1 FROM Opportunities o WHERE o.ContactID = c.ContactID "
        "AND Stage = 'won') "
        "UNION SELECT Name FROM Accounts WHERE Custom_Tier = 'gold' ORDER BY firstname",
    )
    assert rows == [("Acme",), ("Alan",), ("Edsger",)]


def test_derived_table_star_and_unnamed_columns(db: sqlite3.Connection) -> None:
    columns, rows = run(
        db,
        "SELECT * FROM (SELECT AccountID, MAX(Amount) FROM Opportunities GROUP BY AccountID) AS d "
        "ORDER BY d.AccountID",
    )
    assert columns == ("AccountID", "_col_1")
    assert rows == [(1, 1500), (2, 50)]


def test_functions_and_null_policy(db: sqlite3.Connection) -> None:
    columns, rows = run(
        db,
        "SELECT UPPER(FirstName) AS f, ISNULL(Email, 'none') AS e, LEN(LastName), "
        "SUBSTRING(LastName, 1, 3) AS s, [Shoe Size], Loyalty_Points, "
        "CASE WHEN [Shoe Size] > 40 THEN 'L' ELSE 'S' END AS size "
        "FROM Contacts WHERE ContactID = ?",
        [12],
        missing_columns="null",
    )
    assert columns == ("f", "e", "_col_2", "s", "Shoe Size", "Loyalty_Points", "size")
    assert rows == [("GRACE", "none", 6, "Hop", 37, None, "S")]


def test_national_string_literal(db: sqlite3.Connection) -> None:
    _, rows = run(db, "SELECT FirstName FROM Contacts WHERE LastName = N'Hopper'")
    assert rows == [("Grace",)]
