"""The row cap over the whole golden corpus: every accepted statement, every backend.

``row_cap.toml`` pins the SQL of chosen cases; this checks the invariant on all of
them: on every backend a read's outermost query ends up with exactly one row count,
the ``?`` of the one ``RowCap`` entry (on SQL Server a ``TOP``, or a ``FETCH`` after an
ORDER BY/OFFSET, or the ``TOP`` of the derived table a set operation without ORDER BY
is read from); the other binds are the uncapped plan's (less the caller's own count,
which the cap now reads), and the output columns are the same; write plans are
exactly the uncapped ones.
"""

from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import TokenType

from rewriter import Plan, RewriteError, RowCap, parse_statement, rewrite
from rewriter.markers import BACKEND_DIALECTS
from rewriter.row_cap import WRAPPER_ALIAS
from rewriter.statement import READ
from tests.unit.rewriter.golden import BACKENDS, Case, load_cases
from tests.unit.rewriter.shapes import SCHEMA

CASES = [c for c in load_cases() if not c.error]
CAP_VALUE = 987_654_321  # a number no golden case writes


def _plans(case: Case, backend: str) -> tuple[str, Plan, Plan] | None:
    parsed = parse_statement(case.sql, dialect=case.dialect)
    try:
        capped, plain = (
            rewrite(
                parsed,
                tables=SCHEMA,
                backend=backend,
                missing_columns=case.missing_columns,
                row_cap=row_cap,
            )
            for row_cap in (True, False)
        )
    except RewriteError:
        return None
    return parsed.statement_class, capped, plain


def _with_values(sql: str, backend: str, values: list[int]) -> str:
    """``sql`` with its ``?`` tokens replaced, in text order, by ``values``."""
    tokens = Dialect.get_or_raise(BACKEND_DIALECTS[backend]).tokenize(sql)
    spots = [t for t in tokens if t.token_type == TokenType.PLACEHOLDER]
    assert len(spots) == len(values)
    for token, value in reversed(list(zip(spots, values, strict=True))):
        sql = sql[: token.start] + str(value) + sql[token.end + 1 :]
    return sql


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_read_is_capped_once_at_its_root(case: Case) -> None:
    for backend in BACKENDS:
        found = _plans(case, backend)
        if found is None:
            continue
        statement_class, capped, plain = found
        if statement_class != READ:
            assert capped == plain
            continue
        assert capped.columns == plain.columns
        caps = [e for e in capped.param_order if isinstance(e, RowCap)]
        assert len(caps) == 1, capped.sql
        values = [
            CAP_VALUE if isinstance(e, RowCap) else i for i, e in enumerate(capped.param_order)
        ]
        sql = _with_values(capped.bind(catalog=None, schema="t2"), backend, values)
        tree = sqlglot.parse_one(sql, read=BACKEND_DIALECTS[backend])
        limit = tree.args.get("limit")
        assert isinstance(limit, exp.Limit | exp.Fetch), sql
        count = limit.args.get("count" if isinstance(limit, exp.Fetch) else "expression")
        assert isinstance(count, exp.Literal) and count.this == str(CAP_VALUE), sql
        # Nowhere else: a CTE's or a branch's own count stays what it was.
        assert sql.count(str(CAP_VALUE)) == 1, sql
        rest = [e for e in capped.param_order if not isinstance(e, RowCap)]
        expected = list(plain.param_order)
        if caps[0].param is not None:
            expected.remove(caps[0].param)
        assert sorted(rest, key=str) == sorted(expected, key=str), sql


WRAPPED = re.compile(
    r"(?P<with>WITH .*? )?SELECT TOP \(\?\) (?P<items>.*?) FROM \((?P<body>.*)\)"
    rf" AS \[{re.escape(WRAPPER_ALIAS)}\](?P<names>\(.*\))?"
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sqlserver_set_operations_run_as_written(case: Case) -> None:
    """T-SQL has no TOP on a set operation. With ORDER BY the cap is an OFFSET/FETCH
    after it, and the set operation is otherwise the uncapped one; without, the
    uncapped set operation is read, as written, from a derived table with TOP."""
    found = _plans(case, "sqlserver")
    if found is None or found[0] != READ:
        return
    _, capped, plain = found
    tree = sqlglot.parse_one(plain.sql, read="tsql")
    if not isinstance(tree, exp.SetOperation) or tree.args.get("limit") or tree.args.get("offset"):
        return
    if tree.args.get("order") is not None:
        assert capped.sql == plain.sql + " OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY"
        return
    wrapped = WRAPPED.fullmatch(capped.sql)
    assert wrapped is not None, capped.sql
    assert (wrapped["with"] or "") + wrapped["body"] == plain.sql
    if wrapped["names"] is None:  # distinct names: the derived table's own
        assert wrapped["items"] == "*"
        assert len({c.casefold() for c in plain.columns}) == len(plain.columns)
    else:  # renamed c0, c1, ... in the derived table, and named back in order
        inner = [f"[c{i}]" for i in range(len(plain.columns))]
        assert wrapped["names"] == "(" + ", ".join(inner) + ")"
        assert wrapped["items"] == ", ".join(
            f"[{WRAPPER_ALIAS}].{name} AS [{column}]"
            for name, column in zip(inner, plain.columns, strict=True)
        )


def test_the_wrapper_alias_cannot_be_written_by_a_caller() -> None:
    sql = f"SELECT {WRAPPER_ALIAS}.x FROM Contacts AS {WRAPPER_ALIAS}"
    with pytest.raises(RewriteError) as caught:
        parse_statement(sql)
    assert caught.value.code == "construct_not_allowed" and "reserved" in caught.value.message


@pytest.mark.parametrize(
    ("sql", "dialect", "expected"),
    [
        # the caller's count, whichever dialect wrote it and wherever T-SQL puts the cap
        ("SELECT TOP 7 FirstName FROM Contacts", "tsql", [RowCap(count=7)]),
        ("SELECT TOP (@n) FirstName FROM Contacts", "tsql", [RowCap(param="n")]),
        ("SELECT FirstName FROM Contacts ORDER BY 1 OFFSET ? ROWS", "tsql", [0, RowCap()]),
        (
            "SELECT firstname FROM contacts ORDER BY firstname LIMIT ? OFFSET ?",
            "postgres",
            [1, RowCap(param=0)],
        ),
        (
            "SELECT Name FROM Accounts UNION SELECT FirstName FROM Contacts LIMIT 3",
            "postgres",
            [RowCap(count=3)],
        ),
    ],
)
def test_sqlserver_records_the_callers_count(
    sql: str, dialect: str, expected: list[object]
) -> None:
    plan = rewrite(
        parse_statement(sql, dialect=dialect), tables=SCHEMA, backend="sqlserver", row_cap=True
    )
    assert list(plan.param_order) == expected
