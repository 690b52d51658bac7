"""Transpilation golden cases (``tests/fixtures/rewriter/transpile_*.toml``).

Each ``[[transpile]]`` case (its own array, so the untyped ``test_golden`` runner
skips it: these cases need column types) gives the logical T-SQL, the expected SQL
per backend, and either the rows it returns (run on real PostgreSQL and SQLite by
``tests/integration/test_transpile.py``) or the refusal: ``error`` (every backend),
``refused`` (PostgreSQL and SQLite: ``construct_not_supported_on_backend``), or
``refused_on`` (per backend). ``[tables]`` declares the typed schema and its rows.
``dialect`` (default ``tsql``) is the logical SQL dialect of ``sql``.
``babelfish_deviates`` says why the T-SQL engine of the tests (Babelfish) returns
other rows than SQL Server documents: its rows are then checked to differ (xfail).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from rewriter import RewriteError, parse_statement, rewrite
from rewriter.markers import BACKEND_DIALECTS
from rewriter.type_names import (
    DATE,
    DATETIME,
    DECIMAL,
    FLOAT,
    INTEGER,
    TEXT,
    kind_of_type_name,
)
from tenancy.metadata import Column, TableMetadata
from tests.unit.rewriter.shapes import SCHEMA

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rewriter"
BACKENDS = ("sqlserver", "postgresql", "sqlite")
NOT_SUPPORTED = "construct_not_supported_on_backend"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, declared T-SQL type)
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class TranspileCase:
    name: str
    sql: str
    expect: dict[str, str]
    rows: list[list[Any]] | None
    params: list[Any]
    refusals: dict[str, tuple[str, str]]  # backend -> (code, message substring)
    dialect: str = "tsql"  # of ``sql``
    babelfish_deviates: str = ""  # why Babelfish's rows are not SQL Server's


def _load() -> tuple[dict[str, Table], list[TranspileCase]]:
    tables: dict[str, Table] = {}
    cases: list[TranspileCase] = []
    for path in sorted(FIXTURES.glob("transpile_*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        for name, raw in data.get("tables", {}).items():
            columns = tuple((c[0], c[1]) for c in raw["columns"])
            rows = tuple(tuple(row) for row in raw["rows"])
            tables[name.casefold()] = Table(name, columns, rows)
        for raw in data.get("transpile", []):
            refusals: dict[str, tuple[str, str]] = {}
            if "error" in raw:
                refusals = dict.fromkeys(BACKENDS, (raw["error"], raw.get("message", "")))
            if "refused" in raw:
                refusals = dict.fromkeys(("postgresql", "sqlite"), (NOT_SUPPORTED, raw["refused"]))
            for backend, message in raw.get("refused_on", {}).items():
                refusals[backend] = (NOT_SUPPORTED, message)
            cases.append(
                TranspileCase(
                    name=raw["name"],
                    sql=raw["sql"],
                    expect={b: raw[b] for b in BACKENDS if b in raw},
                    rows=raw.get("rows"),
                    params=raw.get("params", []),
                    refusals=refusals,
                    dialect=raw.get("dialect", "tsql"),
                    babelfish_deviates=raw.get("babelfish_deviates", ""),
                )
            )
    return tables, cases


TABLES, CASES = _load()


def typed_shapes(tables: Mapping[str, Table]) -> dict[str, TableMetadata]:
    """Metadata as the catalog reports it, for ``tables`` by their casefolded names."""
    return {
        key: TableMetadata.build(t.name, [Column(n, ty, True) for n, ty in t.columns])
        for key, t in tables.items()
    }


def shapes() -> dict[str, TableMetadata]:
    """The T-SQL type names stand for the backend's."""
    return typed_shapes(TABLES)


def generate(case: TranspileCase, backend: str) -> tuple[str, tuple[int | str, ...]]:
    parsed = parse_statement(case.sql, dialect=case.dialect)
    plan = rewrite(parsed, tables=shapes(), backend=backend)
    return plan.bind(catalog=None, schema=None), plan.param_order


def test_cases_cover_the_issue() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    with_rows = [c for c in CASES if c.rows is not None]
    assert len(with_rows) >= 30


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_transpile(case: TranspileCase) -> None:
    for backend in BACKENDS:
        refusal = case.refusals.get(backend)
        if refusal is not None:
            with pytest.raises(RewriteError) as caught:
                generate(case, backend)
            assert caught.value.code == refusal[0], caught.value.message
            assert refusal[1] in caught.value.message
            if refusal[0] == NOT_SUPPORTED:
                assert caught.value.details["backend"] == backend
            continue
        sql, order = generate(case, backend)
        assert sql == case.expect[backend].strip(), backend
        assert sorted(order) == list(range(case.sql.count("?")))
        parsed = [s for s in sqlglot.parse(sql, read=BACKEND_DIALECTS[backend]) if s]
        assert len(parsed) == 1


@pytest.mark.parametrize(
    ("type_name", "kind"),
    [
        ("nvarchar(50)", TEXT),
        ("character varying(20)", TEXT),
        ("VARCHAR(10)", TEXT),
        ("text", TEXT),
        ("integer", INTEGER),
        ("BIGINT", INTEGER),
        ("UNSIGNED BIG INT", INTEGER),
        ("numeric(12,2)", DECIMAL),
        ("money", DECIMAL),
        ("double precision", FLOAT),
        ("date", DATE),
        ("timestamp without time zone", DATETIME),
        ("datetime2(7)", DATETIME),
        ("interval", None),
        ("point", None),
        ("", None),
    ],
)
def test_kind_of_type_name(type_name: str, kind: str | None) -> None:
    assert kind_of_type_name(type_name) == kind


def test_plus_with_untyped_shapes_keeps_arithmetic() -> None:
    # Shapes without ``type_of`` (the older protocol) give no kinds: + is left alone.
    parsed = parse_statement("SELECT FirstName + LastName FROM Contacts")
    plan = rewrite(parsed, tables=SCHEMA, backend="postgresql")
    assert '"contacts"."FirstName" + "contacts"."LastName"' in plan.sql


def test_backend_dialect_input_is_not_given_tsql_meaning() -> None:
    parsed = parse_statement("SELECT LENGTH(Name) FROM People", dialect="postgres")
    plan = rewrite(parsed, tables=shapes(), backend="postgresql")
    assert plan.sql.startswith('SELECT LENGTH("people"."Name")')


# -- identifiers (issue #3 item 5) ------------------------------------------------------

TWINS = TableMetadata.build(
    "Twins", [Column("Name", "text", True), Column("name", "text", True), Column("Id", "int", True)]
)


@pytest.mark.parametrize(
    ("written", "physical"),
    [("Name", "Name"), ("name", "name"), ("ID", "Id"), ("id", "Id"), ("[Id]", "Id")],
)
def test_identifier_exact_then_unique_case_insensitive(written: str, physical: str) -> None:
    for backend in BACKENDS:
        plan = rewrite(
            parse_statement(f"SELECT {written} FROM twins"),
            tables={"twins": TWINS},
            backend=backend,
        )
        assert plan.columns == (physical,)


def test_identifier_matching_several_columns_only_by_case_is_unknown() -> None:
    for backend in BACKENDS:
        with pytest.raises(RewriteError) as caught:
            rewrite(
                parse_statement("SELECT NAME FROM Twins"), tables={"twins": TWINS}, backend=backend
            )
        assert caught.value.code == "unknown_column"


def test_string_plus_in_an_update_uses_the_target_table_types() -> None:
    parsed = parse_statement("UPDATE People SET Name = Name + N'!' WHERE Id = 1")
    for backend in ("postgresql", "sqlite"):
        plan = rewrite(parsed, tables=shapes(), backend=backend)
        # SQLite qualifies the write's own columns (see writes._qualify_own_for_sqlite).
        right = '"People"."Name"' if backend == "sqlite" else '"Name"'
        assert f'"Name" = {right} || ' in plan.sql
