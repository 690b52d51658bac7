"""The adversarial corpus: hostile statements in ``tests/fixtures/adversarial/``, one
file per thing they try, each refused with an asserted error code.

A case is ``{name, sql, [dialect], [times], error}``; ``times = N`` repeats every
``<<...>>`` segment of ``sql`` N times (deep nesting, long names). A case with
``accepted = true`` instead is a decoy: hostile-looking text that is harmless and
must keep working (a string literal holding ``;DROP``, an alias named ``@@VERSION``);
its generated SQL gets the same tenant-safety checks as the property tests.

Every case runs ``parse_statement`` and ``rewrite`` for all three backends against
the test schema in ``shapes.py``. The counts per group live in the fixtures'
``README.md``, which ``test_readme_counts`` keeps honest.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from rewriter import RewriteError, parse_statement, rewrite
from tests.unit.rewriter.shapes import SCHEMA
from tests.unit.rewriter.test_properties import BACKENDS, assert_tenant_safe

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adversarial"
GROUPS = (
    "escape_tenant",
    "run_code",
    "system_objects",
    "exhaust_resources",
    "smuggle_statement",
    "confuse_parser",
)
CODES = frozenset(
    {
        "multiple_statements",
        "statement_not_allowed",
        "construct_not_allowed",
        "cross_database_reference",
        "parse_error",
        "unknown_table",
        "unknown_column",
        "invalid_parameters",
        "statement_too_large",
    }
)
_REPEAT = re.compile(r"<<(.*?)>>", re.DOTALL)


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    sql: str
    dialect: str
    error: str | None

    @property
    def id(self) -> str:
        return f"{self.group}:{self.name}"


def _repeat(sql: str, times: int) -> str:
    return _REPEAT.sub(lambda match: match.group(1) * times, sql)


def load() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(FIXTURES.glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        for raw in data["case"]:
            sql = _repeat(raw["sql"], int(raw.get("times", 1)))
            assert ("error" in raw) != bool(raw.get("accepted")), f"{path.stem}:{raw['name']}"
            cases.append(
                Case(path.stem, raw["name"], sql, raw.get("dialect", "tsql"), raw.get("error"))
            )
    return cases


CASES = load()
REFUSED = [c for c in CASES if c.error]
DECOYS = [c for c in CASES if not c.error]


def test_corpus_shape() -> None:
    assert len(REFUSED) >= 150
    assert {c.group for c in CASES} == set(GROUPS)
    for group in GROUPS:
        assert sum(c.group == group for c in REFUSED) >= 20, group
    assert len({c.id for c in CASES}) == len(CASES), "case names must be unique per file"
    assert {c.error for c in REFUSED} <= CODES


def test_readme_counts() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for group in GROUPS:
        count = sum(c.group == group for c in REFUSED)
        assert f"| `{group}` | {count} |" in readme, f"update README.md: {group} has {count}"
    assert f"| total | {len(REFUSED)} |" in readme


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_refused(case: Case) -> None:
    for backend in BACKENDS:
        with pytest.raises(RewriteError) as caught:
            parsed = parse_statement(case.sql, dialect=case.dialect)
            rewrite(parsed, tables=SCHEMA, backend=backend)
        assert caught.value.code == case.error, caught.value.message


@pytest.mark.parametrize("case", DECOYS, ids=lambda c: c.id)
def test_decoy_accepted_and_safe(case: Case) -> None:
    parsed = parse_statement(case.sql, dialect=case.dialect)
    for backend in BACKENDS:
        assert_tenant_safe(rewrite(parsed, tables=SCHEMA, backend=backend), parsed, backend)


@pytest.mark.parametrize(
    "bad",
    [
        'SELECT "name" FROM "sys"."objects"',
        'SELECT "FirstName" FROM "Contacts"',  # unqualified on a qualified backend
        'SELECT "a" FROM "t2"."Leads" AS "a"',  # not one of the tenant's tables
        'SELECT 1 AS "a"; SELECT 2 AS "b"',
        'SELECT ? AS "a"',  # more binds than the plan has
    ],
)
def test_the_safety_check_catches_escapes(bad: str) -> None:
    """The checker the corpus and the properties rely on fails on foreign SQL."""
    parsed = parse_statement("SELECT FirstName FROM Contacts")
    plan = rewrite(parsed, tables=SCHEMA, backend="postgresql")
    with pytest.raises(AssertionError):
        assert_tenant_safe(dataclasses.replace(plan, sql=bad), parsed, "postgresql")
