"""``rewriter.infer``: parameter and result types from the statement and table shapes.

Golden cases, one line each: the statement, then what each ``?`` and each result
column is inferred as, written ``kind`` or ``kind/declared type`` (``-``: unknown;
``None`` for the columns of a write without RETURNING).
"""

from __future__ import annotations

import pytest

from rewriter import ParsedStatement, parse_statement, rewrite
from rewriter.errors import RewriteError
from rewriter.infer import Inferred, TypeHint, infer
from tenancy.metadata import Column, TableMetadata

CONTACTS = TableMetadata.build(
    "Contacts",
    [
        Column("ContactID", "integer", False),
        Column("AccountID", "bigint", True),
        Column("Email", "character varying(100)", True),
        Column("Score", "numeric(10,2)", True),
        Column("Born", "date", True),
        Column("CreatedAt", "timestamp without time zone", False),
        Column("IsActive", "boolean", False),
        Column("Custom_Key", "uuid", True),
    ],
    base=["ContactID", "AccountID", "Email", "Score", "Born", "CreatedAt", "IsActive"],
)
ACCOUNTS = TableMetadata.build(
    "Accounts", [Column("AccountID", "bigint", False), Column("Name", "text", False)]
)
TABLES = {"contacts": CONTACTS, "accounts": ACCOUNTS}

INT = "integer/integer"
BIGINT = "integer/bigint"
EMAIL = "text/character varying(100)"
SCORE = "decimal/numeric(10,2)"
CREATED = "datetime/timestamp without time zone"
ACTIVE = "boolean/boolean"
NAME = "text/text"
BASE = [INT, BIGINT, EMAIL, SCORE, "date/date", CREATED, ACTIVE]

TSQL = "tsql: "
"""Marks a statement in T-SQL; the others are in PostgreSQL's dialect."""

# (statement, params, columns)
CASES: list[tuple[str, list[str], list[str] | None]] = [
    # comparisons: the other operand, on either side
    ("SELECT Email FROM Contacts WHERE ContactID = ?", [INT], [EMAIL]),
    ("SELECT Email FROM Contacts WHERE ? = ContactID", [INT], [EMAIL]),
    ("SELECT Email FROM Contacts WHERE Email <> ? AND Score >= ?", [EMAIL, SCORE], [EMAIL]),
    ("SELECT Email FROM Contacts WHERE (Email) = (?)", [EMAIL], [EMAIL]),
    ("SELECT Email FROM Contacts WHERE UPPER(Email) = ?", ["text"], [EMAIL]),
    ("SELECT Email FROM Contacts WHERE ? = ?", ["-", "-"], [EMAIL]),
    # IN, BETWEEN, LIKE
    ("SELECT Email FROM Contacts WHERE AccountID IN (?, ?, ?)", [BIGINT] * 3, [EMAIL]),
    ("SELECT Email FROM Contacts WHERE AccountID NOT IN (?)", [BIGINT], [EMAIL]),
    ("SELECT Email FROM Contacts WHERE CreatedAt BETWEEN ? AND ?", [CREATED] * 2, [EMAIL]),
    ("SELECT Email FROM Contacts WHERE ? BETWEEN Score AND 10", [SCORE], [EMAIL]),
    ("SELECT Email FROM Contacts WHERE Email LIKE ? OR Email NOT LIKE ?", ["text"] * 2, [EMAIL]),
    # row counts
    ("SELECT Email FROM Contacts ORDER BY 1 LIMIT ? OFFSET ?", ["integer"] * 2, [EMAIL]),
    (TSQL + "SELECT TOP (?) Email FROM Contacts", ["integer"], [EMAIL]),
    (
        TSQL + "SELECT Email FROM Contacts ORDER BY Email OFFSET ? ROWS FETCH NEXT ? ROWS ONLY",
        ["integer"] * 2, [EMAIL],
    ),
    # casts name their type
    ("SELECT CAST(? AS integer) AS n", ["integer/INT"], ["integer/INT"]),
    (
        "SELECT (?)::date AS d, CAST(? AS varchar(10)) AS v",
        ["date/DATE", "text/VARCHAR(10)"], ["date/DATE", "text/VARCHAR(10)"],
    ),
    # anything else is unknown
    ("SELECT ? AS x", ["-"], ["-"]),
    ("SELECT Email FROM Contacts WHERE Score + ? > 3", ["-"], [EMAIL]),
    ("SELECT Email FROM Contacts WHERE COALESCE(?, Email) IS NULL", ["-"], [EMAIL]),
    # qualified, aliased, joined, through a derived table and a CTE
    (
        "SELECT c.Email, a.Name FROM Contacts c JOIN Accounts a ON a.AccountID = c.AccountID "
        "WHERE a.Name = ? AND c.IsActive = ?",
        [NAME, ACTIVE], [EMAIL, NAME],
    ),
    ("SELECT x.e FROM (SELECT Email AS e FROM Contacts) x WHERE x.e = ?", [EMAIL], [EMAIL]),
    ("WITH s AS (SELECT Score FROM Contacts) SELECT Score FROM s WHERE Score < ?", [SCORE],
     [SCORE]),
    (
        "SELECT Email FROM Contacts "
        "WHERE AccountID IN (SELECT AccountID FROM Accounts WHERE Name = ?)",
        [NAME], [EMAIL],
    ),
    # stars and CUSTOM_FIELDS expand to typed columns
    ("SELECT * FROM Contacts WHERE ContactID = ?", [INT], BASE),
    ("SELECT c.*, CUSTOM_FIELDS(c) FROM Contacts c", [], [*BASE, "-/uuid"]),
    ("SELECT * FROM (SELECT Email, Score FROM Contacts) d", [], [EMAIL, SCORE]),
    # expressions: typed where every backend agrees
    (
        "SELECT COUNT(*) AS n, MAX(CreatedAt) AS m, SUM(ContactID) AS s, 'a' AS t, 1 AS one, "
        "LOWER(Email) AS l, LENGTH(Email) AS len FROM Contacts GROUP BY Email",
        [], ["integer", "datetime", "integer", "text", "integer", "text", "integer"],
    ),
    ("SELECT AVG(ContactID) AS a, ContactID / 2 AS h FROM Contacts GROUP BY ContactID", [],
     ["-", "-"]),
    ("SELECT ROW_NUMBER() OVER (ORDER BY Email) AS r FROM Contacts", [], ["integer"]),
    # set operations: the branches' type where they agree
    ("SELECT Email FROM Contacts UNION SELECT Email FROM Contacts", [], [EMAIL]),
    ("SELECT Email FROM Contacts UNION ALL SELECT Name FROM Accounts", [], ["text"]),
    ("SELECT Email FROM Contacts UNION ALL SELECT ContactID FROM Contacts", [], ["-"]),
    # writes
    (
        "INSERT INTO Contacts (ContactID, Email, IsActive) VALUES (?, ?, ?), (?, ?, ?)",
        [INT, EMAIL, ACTIVE] * 2, None,
    ),
    ("INSERT INTO Contacts (Email, ContactID) SELECT ?, ?", [EMAIL, INT], None),
    (  # SQLAlchemy's "insertmanyvalues": a CAST in the row, in the select list, or none
        "INSERT INTO Contacts (Email, IsActive, CreatedAt) SELECT p0::VARCHAR, p1, "
        "p2::TIMESTAMP FROM (VALUES (? ::VARCHAR, ?, ?, 0), (?, ?, ?, 1)) "
        "AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter RETURNING ContactID",
        ["text/VARCHAR", ACTIVE, "datetime/TIMESTAMP"] * 2,
        [INT],
    ),
    (
        "INSERT INTO Contacts (Email, Score) SELECT a, a FROM (VALUES (?)) AS t(a)",
        ["-"], None,
    ),
    (
        "INSERT INTO Contacts (ContactID, Email) VALUES (?, ?) RETURNING ContactID, Email AS e",
        [INT, EMAIL], [INT, EMAIL],
    ),
    (
        TSQL + "INSERT INTO Contacts (ContactID, Email) OUTPUT INSERTED.ContactID VALUES (?, ?)",
        [INT, EMAIL], [INT],
    ),
    ("UPDATE Contacts SET Email = ?, Score = ? WHERE ContactID = ?", [EMAIL, SCORE, INT], None),
    ("UPDATE Contacts SET Email = ? WHERE ContactID = ? RETURNING Score", [EMAIL, INT], [SCORE]),
    ("DELETE FROM Contacts WHERE Born < ?", ["date/date"], None),
]  # fmt: skip


def _written(hint: TypeHint) -> str:
    if hint.kind is None and hint.declared is None:
        return "-"
    return f"{hint.kind or '-'}/{hint.declared}" if hint.declared else str(hint.kind)


def _parse(sql: str) -> ParsedStatement:
    if sql.startswith(TSQL):
        return parse_statement(sql.removeprefix(TSQL), dialect="tsql")
    return parse_statement(sql, dialect="postgres")


def _infer(sql: str, backend: str = "postgresql") -> Inferred:
    return infer(_parse(sql), tables=TABLES, backend=backend)


@pytest.mark.parametrize(("sql", "params", "columns"), CASES, ids=[c[0] for c in CASES])
def test_golden(sql: str, params: list[str], columns: list[str] | None) -> None:
    for backend in ("postgresql", "sqlite", "sqlserver"):
        inferred = _infer(sql, backend)
        assert [_written(h) for h in inferred.params] == params, backend
        written = None if inferred.columns is None else [_written(h) for h in inferred.columns]
        assert written == columns, backend


@pytest.mark.parametrize(
    ("sql", "columns"), [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_one_hint_per_column_of_the_plan(sql: str, columns: list[str] | None) -> None:
    parsed = _parse(sql)
    plan = rewrite(parsed, tables=TABLES, backend="postgresql")
    inferred = infer(parsed, tables=TABLES, backend="postgresql")
    if columns is None:
        assert inferred.columns is None and plan.columns == ()
    else:
        assert inferred.columns is not None and len(inferred.columns) == len(plan.columns)


def test_parse_tree_untouched() -> None:
    parsed = parse_statement("SELECT * FROM Contacts WHERE ContactID = ?", dialect="postgres")
    before = parsed.expression.sql()
    infer(parsed, tables=TABLES, backend="postgresql")
    assert parsed.expression.sql() == before


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT Nope FROM Contacts WHERE ContactID = ?", "unknown_column"),
        ("SELECT Email FROM Archived", "unknown_table"),
    ],
)
def test_refused_as_rewrite_refuses(sql: str, code: str) -> None:
    with pytest.raises(RewriteError) as caught:
        _infer(sql)
    assert caught.value.code == code


def test_missing_columns_as_null() -> None:
    parsed = parse_statement("SELECT Nope, Email FROM Contacts WHERE Nope = ?", dialect="postgres")
    inferred = infer(parsed, tables=TABLES, backend="postgresql", missing_columns="null")
    assert [_written(h) for h in inferred.params] == ["-"]
    assert inferred.columns is not None and [_written(h) for h in inferred.columns] == ["-", EMAIL]
