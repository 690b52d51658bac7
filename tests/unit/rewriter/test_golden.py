"""Table-driven golden cases: logical SQL in, backend SQL (or an error code) out."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import TokenType

from rewriter import RewriteError, parse_statement, rewrite
from rewriter.markers import BACKEND_DIALECTS
from tests.unit.rewriter.golden import BACKENDS, LOCATIONS, Case, load_cases, param_entry
from tests.unit.rewriter.shapes import SCHEMA

CASES = load_cases()


def run(case: Case, backend: str) -> tuple[str, tuple[str, ...], list[object]]:
    parsed = parse_statement(case.sql, dialect=case.dialect)
    plan = rewrite(
        parsed,
        tables=SCHEMA,
        backend=backend,
        missing_columns=case.missing_columns,
        tenant_label=case.tenant,
        row_cap=case.row_cap,
    )
    catalog, schema = LOCATIONS[backend]
    params = [param_entry(entry) for entry in plan.param_order]
    return plan.bind(catalog=catalog, schema=schema), plan.columns, params


def test_enough_cases() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES), "case names must be unique per file"


@pytest.mark.parametrize("case", [c for c in CASES if c.error], ids=lambda c: c.id)
def test_refused(case: Case) -> None:
    for backend in BACKENDS:
        with pytest.raises(RewriteError) as caught:
            run(case, backend)
        assert caught.value.code == case.error, caught.value.message
        if case.message:
            assert case.message in caught.value.message


@pytest.mark.parametrize("case", [c for c in CASES if not c.error], ids=lambda c: c.id)
def test_rewritten(case: Case) -> None:
    expect = case.expect or {}
    for backend in BACKENDS:
        sql, columns, params = run(case, backend)
        if backend in expect:
            assert sql == expect[backend].strip()
        if "columns" in expect:
            assert list(columns) == expect["columns"]
        wanted = expect.get("params", [])
        if isinstance(wanted, dict):
            wanted = wanted[backend]
        assert list(params) == wanted
        # The generated SQL is exactly one statement of the backend's dialect.
        statements = [
            s for s in sqlglot.parse(sql, read=BACKEND_DIALECTS[backend]) if s is not None
        ]
        assert len(statements) == 1
        tokens = Dialect.get_or_raise(BACKEND_DIALECTS[backend]).tokenize(sql)
        assert sum(t.token_type == TokenType.PLACEHOLDER for t in tokens) == len(params)
