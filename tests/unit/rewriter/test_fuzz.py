"""Whatever text arrives, only RewriteError subclasses come out."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewriter import RewriteError, parse_statement, rewrite
from tests.unit.rewriter.shapes import SCHEMA

WORDS = [
    "SELECT",
    "FROM",
    "WHERE",
    "TOP",
    "(",
    ")",
    "?",
    "@p",
    "@@x",
    "*",
    ",",
    ";",
    "Contacts",
    "Accounts",
    "c",
    "c.*",
    "c.FirstName",
    "FirstName",
    "AccountID",
    "CUSTOM_FIELDS()",
    "CUSTOM_FIELDS(c)",
    "JOIN",
    "ON",
    "=",
    "AND",
    "OR",
    "NOT",
    "IN",
    "EXISTS",
    "UNION",
    "ALL",
    "WITH",
    "AS",
    "x",
    "ORDER",
    "BY",
    "GROUP",
    "HAVING",
    "COUNT(*)",
    "1",
    "'s'",
    "dbo.",
    "sys.objects",
    "#t",
    "OFFSET",
    "ROWS",
    "FETCH",
    "NEXT",
    "ONLY",
    "INTO",
    "--",
    "/*",
    "*/",
    "[Shoe Size]",
    "CAST(",
    "INT",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "NULL",
    "LIMIT",
    "DISTINCT",
    "LEFT",
    "OVER",
    "INSERT",
    "EXEC",
    "+",
    "-",
    "N'x'",
    "\n",
]


def check(sql: str, dialect: str = "tsql") -> None:
    try:
        parsed = parse_statement(sql, dialect=dialect)
        for backend in ("sqlserver", "postgresql", "sqlite"):
            for policy in ("error", "null"):
                plan = rewrite(parsed, tables=SCHEMA, backend=backend, missing_columns=policy)
                plan.bind(catalog="db", schema="s")
    except RewriteError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200), st.sampled_from(["tsql", "postgres", "sqlite"]))
def test_arbitrary_text(sql: str, dialect: str) -> None:
    check(sql, dialect)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), max_size=30))
def test_sql_like_token_soup(words: list[str]) -> None:
    check("SELECT " + " ".join(words))
    check(" ".join(words))
