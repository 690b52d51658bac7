"""Literals sent as parameters (``rewriter.lift``): the golden cases of
``tests/fixtures/rewriter/lift_literals.toml``, and what the option leaves alone.

``tests/integration/test_lift_literals.py`` runs the same cases on real PostgreSQL."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rewriter import Plan, parse_statement, rewrite
from rewriter.lift import Lifted
from rewriter.plan_cache import PlanCache
from tenancy.metadata import TableMetadata
from tests.unit.rewriter.test_transpile import Table, typed_shapes

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "rewriter" / "lift_literals.toml"


@dataclass(frozen=True)
class LiftCase:
    name: str
    sql: str
    dialect: str
    postgresql: str
    lifted: tuple[str, ...]
    params: tuple[Any, ...]
    runs: bool


def _load() -> tuple[dict[str, Table], list[LiftCase]]:
    with FIXTURE.open("rb") as handle:
        data = tomllib.load(handle)
    tables = {
        name.casefold(): Table(
            name,
            tuple((c[0], c[1]) for c in raw["columns"]),
            tuple(tuple(row) for row in raw["rows"]),
        )
        for name, raw in data["tables"].items()
    }
    cases = [
        LiftCase(
            name=raw["name"],
            sql=raw["sql"],
            dialect=raw.get("dialect", "postgres"),
            postgresql=raw["postgresql"],
            lifted=tuple(raw["lifted"]),
            params=tuple(raw.get("params", ())),
            runs=raw.get("runs", True),
        )
        for raw in data["lift"]
    ]
    return tables, cases


TABLES, CASES = _load()


def shapes() -> dict[str, TableMetadata]:
    """The fixture's tables, with their PostgreSQL type names."""
    return typed_shapes(TABLES)


def plan(case: LiftCase, backend: str = "postgresql", *, lift: bool = True) -> Plan:
    parsed = parse_statement(case.sql, dialect=case.dialect)
    return rewrite(parsed, tables=shapes(), backend=backend, lift_literals=lift)


def lifted(plan: Plan) -> list[str]:
    return [entry.text for entry in plan.param_order if isinstance(entry, Lifted)]


def test_cases_are_named_once() -> None:
    assert len(CASES) >= 15
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_lifted(case: LiftCase) -> None:
    lifted_plan = plan(case)
    assert lifted_plan.bind(catalog=None, schema="t") == case.postgresql.strip()
    assert lifted(lifted_plan) == list(case.lifted)
    # The caller's own parameters keep their numbers, whatever was lifted among them.
    own = [e for e in lifted_plan.param_order if not isinstance(e, Lifted)]
    assert own == list(plan(case, lift=False).param_order)
    assert lifted_plan.sql.count("?") == len(lifted_plan.param_order)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("backend", ["sqlserver", "sqlite"])
def test_other_backends_keep_their_literals(case: LiftCase, backend: str) -> None:
    assert plan(case, backend) == plan(case, backend, lift=False)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_without_the_option_nothing_is_lifted(case: LiftCase) -> None:
    assert lifted(plan(case, lift=False)) == []


def test_texts_differing_by_a_lifted_value_share_their_sql() -> None:
    texts = [f'SELECT "Name" FROM "Items" WHERE "Id" = {key}' for key in range(1, 201)]
    plans = [
        rewrite(
            parse_statement(t, dialect="postgres"),
            tables=shapes(),
            backend="postgresql",
            lift_literals=True,
        )
        for t in texts
    ]
    assert len({p.sql for p in plans}) == 1
    assert [p.param_order for p in plans[:2]] == [(Lifted("1"),), (Lifted("2"),)]


def test_untyped_shapes_lift_nothing() -> None:
    # Shapes without ``type_of``: no declared type proves what a literal means.
    from tests.unit.rewriter.shapes import SCHEMA  # noqa: PLC0415 - the untyped schema

    parsed = parse_statement("SELECT FirstName FROM Contacts WHERE ContactID = 5")
    lifted_plan = rewrite(parsed, tables=SCHEMA, backend="postgresql", lift_literals=True)
    assert lifted(lifted_plan) == []


def test_the_plan_cache_keeps_lifted_and_unlifted_plans_apart() -> None:
    cache = PlanCache()
    parsed = parse_statement('SELECT "Name" FROM "Items" WHERE "Id" = 2', dialect="postgres")
    on, cached = cache.plan(parsed, tables=shapes(), backend="postgresql", lift_literals=True)
    off, _ = cache.plan(parsed, tables=shapes(), backend="postgresql")
    again, hit = cache.plan(parsed, tables=shapes(), backend="postgresql", lift_literals=True)
    assert (cached, hit) == (False, True)
    assert lifted(on) == ["2"] and lifted(off) == []
    assert again is on


def test_a_long_in_list_is_lifted_in_one_pass() -> None:
    # 2,000 members: replaced one by one, sqlglot would re-parent the list each time.
    members = ", ".join(str(i) for i in range(2000))
    parsed = parse_statement(
        f'SELECT "Id" FROM "Items" WHERE "Id" IN ({members})', dialect="postgres"
    )
    lifted_plan = rewrite(parsed, tables=shapes(), backend="postgresql", lift_literals=True)
    assert lifted(lifted_plan) == [str(i) for i in range(2000)]
