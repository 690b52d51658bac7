"""The reporting corpus (issue #10, item 6) through the real service, on every backend.

``tests/fixtures/reporting/corpus.toml`` holds realistic T-SQL reporting statements over
the default CRM schema; ``expected.json`` the rows each returns on the demo data, computed
by running it directly on the T-SQL engine (``benchmarks/reporting.py --regenerate``),
corrected in the corpus where that engine (Babelfish) deviates from SQL Server.

One service process serves a SQLite, a PostgreSQL and a SQL Server tenant per ODBC
driver, all seeded once for the module with the same data. For each (statement, backend)
the answer must be the expected rows, or a refusal (``construct_not_allowed`` /
``construct_not_supported_on_backend``) that the entry lists in ``refused_on`` for that
backend with a substring of its message. A wrong answer fails; so does a statement that
is accepted where it is listed as refused (shrink the list: ``benchmarks/reporting.py
--update-refusals``). Each backend's test prints the accepted / correct / refused report.

Without a T-SQL engine the SQL Server parameters skip (fail in CI) and the others still
run against the stored expected rows. A sample of the expected rows is recomputed in
Python from ``generate_rows`` (``tests/support/reporting_oracle.py``), independently of
any database.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from proxy.demo.seed import TABLES, SeedCounts, generate_rows
from tests.support import tds
from tests.support.pg import PgServer
from tests.support.reporting import (
    CONTACTS,
    FAILURES,
    SEED,
    ReportingStack,
    Result,
    direct_rows,
    format_report,
    json_normal,
    load_corpus,
    load_expected,
    mismatch,
    reference,
    reporting_stack,
    run_corpus,
    same_value,
)
from tests.support.reporting_oracle import ORACLES

pytestmark = pytest.mark.e2e

REPORTS = load_corpus()
EXPECTED = load_expected()
LABELS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]
LABELS += [pytest.param(f"sqlserver-{d}", id=d, marks=pytest.mark.sqlserver) for d in tds.DRIVERS]
MAX_ROWS = 40


@pytest.fixture(scope="module")
def corpus_stack(
    tmp_path_factory: pytest.TempPathFactory,
    pg: PgServer,
    optional_tds_server: tds.TdsServer | None,
) -> Iterator[ReportingStack]:
    root = tmp_path_factory.mktemp("reporting")
    with reporting_stack(root, pg, optional_tds_server) as stack:
        yield stack


@pytest.mark.timeout(600)
@pytest.mark.parametrize("label", LABELS)
def test_corpus_through_the_service(
    label: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if label.startswith("sqlserver-"):
        request.getfixturevalue("tds_server")  # the engine's own skip (a failure in CI)
    stack: ReportingStack = request.getfixturevalue("corpus_stack")
    if label not in stack.tenants:
        driver = label.split("-", 1)[1]
        reason = f"the {tds.DRIVER_NAMES[driver]} ODBC driver is not installed"
        if tds.required():
            pytest.fail(f"SQL Server tests must run with both drivers in CI: {reason}")
        pytest.skip(reason)
    outcomes = run_corpus(stack, REPORTS, EXPECTED, [label])
    report = format_report(outcomes)
    with capsys.disabled():
        print(f"\n{report}")
    failures = [o for o in outcomes if o.status in FAILURES]
    assert not failures, report


_KINDS = {
    "integer": "int",
    "text": "str",
    "boolean": "bool",
    "date": "date",
    "datetime": "datetime",
}


@pytest.mark.parametrize("label", LABELS)
def test_seeded_rows_are_the_generators(label: str, request: pytest.FixtureRequest) -> None:
    """Every backend holds the same data: each table read back through the service equals
    ``generate_rows`` (decimals, dates, datetimes and bits as each backend stores them)."""
    if label.startswith("sqlserver-"):
        request.getfixturevalue("tds_server")
    stack: ReportingStack = request.getfixturevalue("corpus_stack")
    if label not in stack.tenants:
        pytest.skip(f"no {label} tenant here")
    counts = SeedCounts.for_contacts(CONTACTS)
    with stack.client() as client:
        for table, columns in TABLES.items():
            kinds = [
                f"decimal:{c.type.scale}" if c.type.kind == "decimal" else _KINDS[c.type.kind]
                for c in columns
            ]
            want = Result(
                [c.name for c in columns],
                kinds,
                [[json_normal(v) for v in row] for row in generate_rows(table, counts, seed=SEED)],
            )
            sql = f"SELECT * FROM {table} ORDER BY {columns[0].name}"
            response = client.post("/v1/query", json={"tenant": stack.tenants[label], "sql": sql})
            assert response.status_code == 200, response.text
            body = response.json()
            names = [c["name"] for c in body["columns"]]
            assert mismatch(want, names, body["rows"], None) is None, (table, label)


# -- the corpus and its expected rows, without a service -----------------------------------


@pytest.mark.driver_independent
def test_corpus_is_well_formed() -> None:
    names = [r.name for r in REPORTS]
    assert len(names) >= 110
    assert len(set(names)) == len(names)
    assert set(EXPECTED) <= set(names), "expected.json has rows of statements no longer here"
    for r in REPORTS:
        want = reference(r, EXPECTED, "postgresql", babelfish=False)
        assert want is not None, (
            f"{r.name}: no expected rows (benchmarks/reporting.py --regenerate)"
        )
        assert len(want.rows) <= MAX_ROWS, f"{r.name}: {len(want.rows)} rows, not a report"
        # Deterministic: ordered, or one row (a plain aggregate).
        assert re.search(r"\bORDER\s+BY\b", r.sql, re.I) or len(want.rows) <= 1, r.name
        if r.rows is not None:
            assert r.deviation or r.babelfish_skip, f"{r.name}: say why the rows are hand-written"
        assert not r.deviation or r.rows is not None, f"{r.name}: a deviation needs rows"
        assert all(len(row) == len(want.columns) for row in want.rows), r.name


def _json(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


@pytest.mark.driver_independent
@pytest.mark.parametrize("name", sorted(ORACLES))
def test_expected_rows_match_an_independent_computation(name: str) -> None:
    """The expected rows (the engine's, or the corpus's corrections) agree with SQL
    Server's meaning computed in Python over the seeded data."""
    entry = next(r for r in REPORTS if r.name == name)
    want = reference(entry, EXPECTED, "postgresql", babelfish=False)
    assert want is not None
    got = [[_json(v) for v in row] for row in ORACLES[name]()]
    assert len(got) == len(want.rows)
    for i, (w, g) in enumerate(zip(want.rows, got, strict=True)):
        for j, kind in enumerate(want.types):
            tolerance = entry.tolerance or (1e-12 if kind == "float" else None)
            assert same_value(w[j], g[j], kind, tolerance), (i, want.columns[j], w[j], g[j])


@pytest.mark.sqlserver
@pytest.mark.driver_independent
def test_expected_rows_are_the_engines_today(
    tds_server: tds.TdsServer, corpus_stack: ReportingStack
) -> None:
    """``expected.json`` is what the T-SQL engine returns for the corpus now (directly,
    not through tenantgate): it was regenerated after the last change of a statement.
    Compared as the service's answers are (``mismatch``)."""
    assert corpus_stack.tds_database is not None
    stale = []
    driver = tds_server.drivers[-1]
    with contextlib.closing(tds_server.connect(driver, corpus_stack.tds_database)) as conn:
        for r in REPORTS:
            if r.babelfish_skip and corpus_stack.babelfish:
                continue
            cursor = conn.cursor()
            try:
                got = direct_rows(cursor, r)
            finally:
                cursor.close()
            want = EXPECTED.get(r.name)
            # Compared as the service's answers are: Babelfish reports the scale of some
            # decimal results differently from one session to the next (MIN over a
            # derived table as decimal(38,8) or (18,2)), and STDEV's last float digit.
            why = "missing" if want is None else mismatch(want, got.columns, got.rows, r.tolerance)
            if why:
                stale.append(f"{r.name}: {why}")
    assert not stale, f"run benchmarks/reporting.py --regenerate; stale: {stale}"
