"""The row cap over the whole golden corpus: every accepted statement, every backend.

``row_cap.toml`` pins the SQL of chosen cases; this checks the invariant on all of
them: on PostgreSQL and SQLite a read's outermost query ends up with exactly one row
count, the ``?`` of the one ``RowCap`` entry; the other binds are the uncapped
plan's (less the caller's own count, which the cap now reads); SQL Server plans and
write plans are exactly the uncapped ones.
"""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import TokenType

from rewriter import Plan, RewriteError, RowCap, parse_statement, rewrite
from rewriter.markers import BACKEND_DIALECTS
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
        if statement_class != READ or backend == "sqlserver":
            assert capped == plain
            continue
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
