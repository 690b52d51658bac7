"""The reporting corpus (issue #10, item 6): load it, run it, judge it, report it.

``tests/fixtures/reporting/corpus.toml`` holds realistic T-SQL reporting statements over
the default CRM schema; ``expected.json`` beside it holds the rows each returns on the
demo data (``seed_tenant`` with ``SEED`` and ``CONTACTS``), computed by running the
statement directly on the T-SQL engine (``direct_rows``; ``benchmarks/reporting.py
--regenerate`` writes the file). A corpus entry's own ``rows`` replace them where that
engine (Babelfish) deviates from SQL Server's documented meaning.

``reporting_stack`` starts the real service process with one tenant per backend, all
seeded alike; ``run_corpus`` sends every statement through ``POST /v1/query`` and
classifies each (statement, backend) answer: ``correct``, ``wrong`` (rows differ),
``refused`` (a listed refusal), or one of the failures ``accepted_but_listed``,
``unlisted_refusal``, ``other_reason`` and ``error``. Used by
``tests/e2e/test_reporting_corpus.py`` and ``benchmarks/reporting.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

from proxy.auth import hash_token
from proxy.demo.seed import seed_tenant
from tests.support.pg import PgServer
from tests.support.stack import serve
from tests.support.tds import TdsServer
from tests.support.tenants import backends_toml, base_model_toml, write_controller

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "reporting"
CORPUS = FIXTURES / "corpus.toml"
EXPECTED = FIXTURES / "expected.json"

SEED = 10
"""The seed of every tenant's data: the same rows on every backend."""
CONTACTS = 400
"""80 accounts, 400 contacts, 200 opportunities (``SeedCounts.for_contacts``)."""

BACKENDS = ("sqlite", "postgresql", "sqlserver")
REFUSAL_CODES = ("construct_not_allowed", "construct_not_supported_on_backend")
TOKEN = "reporting-corpus-token-61f2"

# A (statement, backend) outcome. The first three are fine; the rest fail the test.
CORRECT, REFUSED = "correct", "refused"
ENGINE_SKIP = "engine_skip"
"""Not sent: the T-SQL engine of the tests is Babelfish and cannot run the statement."""
WRONG = "wrong"
ACCEPTED_BUT_LISTED = "accepted_but_listed"
UNLISTED_REFUSAL = "unlisted_refusal"
OTHER_REASON = "other_reason"
ERROR = "error"
FAILURES = (WRONG, ACCEPTED_BUT_LISTED, UNLISTED_REFUSAL, OTHER_REASON, ERROR)


# -- the corpus --------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    name: str
    sql: str
    params: list[Any] | dict[str, Any]
    tolerance: float | None = None
    refused_on: Mapping[str, str] = field(default_factory=dict)
    rows: list[list[Any]] | None = None
    """Hand-written expected rows (JSON-normal values) where the T-SQL engine deviates."""
    columns: list[str] | None = None
    types: list[str] | None = None
    """With ``rows``, where the T-SQL engine cannot run the statement at all."""
    deviation: str = ""
    """Why ``rows`` differ from what the T-SQL engine of the tests returns."""
    babelfish_skip: str = ""
    """Why the statement is not sent to Babelfish at all (it crashes or rejects it)."""


NULL = "__NULL__"


def _nulls(rows: list[list[Any]] | None) -> list[list[Any]] | None:
    """TOML has no NULL: hand-written rows spell it ``"__NULL__"``."""
    if rows is None:
        return None
    return [[None if v == NULL else v for v in row] for row in rows]


def load_corpus(path: Path = CORPUS) -> list[Report]:
    with path.open("rb") as f:
        data = tomllib.load(f)
    reports = []
    for entry in data["report"]:
        unknown = set(entry) - {
            "name", "sql", "params", "tolerance", "refused_on", "rows", "columns", "types",
            "deviation", "babelfish_skip",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"{entry.get('name')}: unknown keys {sorted(unknown)}")
        refused_on = dict(entry.get("refused_on", {}))
        if set(refused_on) - set(BACKENDS):
            raise ValueError(f"{entry['name']}: refused_on names an unknown backend")
        reports.append(
            Report(
                name=entry["name"],
                sql=entry["sql"].strip(),
                params=entry.get("params", []),
                tolerance=entry.get("tolerance"),
                refused_on=refused_on,
                rows=_nulls(entry.get("rows")),
                columns=entry.get("columns"),
                types=entry.get("types"),
                deviation=entry.get("deviation", ""),
                babelfish_skip=entry.get("babelfish_skip", ""),
            )
        )
    return reports


# -- values ------------------------------------------------------------------------------


@dataclass
class Result:
    """Rows with their column names and T-SQL result types (``int``, ``decimal:<scale>``,
    ``float``, ``str``, ``date``, ``datetime``, ``bool``), values JSON-normal: decimals
    as text, dates ISO, datetimes ISO with a space, bits as 0/1."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]


def _type_of(type_code: Any, scale: int | None) -> str:
    if type_code is bool:
        return "bool"
    if type_code is int:
        return "int"
    if type_code is Decimal:
        return f"decimal:{scale or 0}"
    if type_code is float:
        return "float"
    if type_code is dt.datetime:
        return "datetime"
    if type_code is dt.date:
        return "date"
    return "str"


def json_normal(value: Any) -> Any:
    """A value read from a database as it is stored in ``expected.json``."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def positional(sql: str, params: list[Any] | dict[str, Any]) -> tuple[str, list[Any]]:
    """``sql`` with its ``@name`` parameters as ``?`` and the values in text order, as the
    service binds them; ``?`` statements unchanged. (Corpus statements carry no ``@``
    inside string literals, so a plain scan is exact for them.)"""
    if isinstance(params, list):
        return sql, list(params)
    values: list[Any] = []

    def mark(m: re.Match[str]) -> str:
        values.append(params[m.group(1)])
        return "?"

    return re.sub(r"@([A-Za-z_][A-Za-z0-9_]*)", mark, sql), values


def direct_rows(cursor: Any, report: Report) -> Result:
    """Run ``report`` directly on a T-SQL engine connection (pyodbc), not via tenantgate."""
    sql, values = positional(report.sql, report.params)
    cursor.execute(sql, values)
    description = cursor.description
    return Result(
        columns=[str(d[0]) for d in description],
        types=[_type_of(d[1], d[5]) for d in description],
        rows=[[json_normal(v) for v in row] for row in cursor.fetchall()],
    )


def load_expected(path: Path = EXPECTED) -> dict[str, Result]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: Result(e["columns"], e["types"], e["rows"]) for name, e in data["results"].items()
    }


def expected_text(results: Mapping[str, Result], engine: str) -> str:
    """``expected.json``'s text: one row per line, so that a change reads as a small diff."""
    lines = [
        "{",
        '  "about": "Generated by benchmarks/reporting.py --regenerate: each corpus statement '
        "run directly on the T-SQL engine over the demo data (tests/support/reporting.py SEED, "
        'CONTACTS). Do not edit; corrections go into corpus.toml (rows, deviation).",',
        f'  "engine": {json.dumps(engine)},',
        '  "results": {',
    ]
    names = list(results)
    for i, name in enumerate(names):
        r = results[name]
        lines.append(f"    {json.dumps(name)}: {{")
        lines.append(f'      "columns": {json.dumps(r.columns, ensure_ascii=False)},')
        lines.append(f'      "types": {json.dumps(r.types)},')
        if not r.rows:
            lines.append('      "rows": []')
        else:
            lines.append('      "rows": [')
            for j, row in enumerate(r.rows):
                comma = "," if j < len(r.rows) - 1 else ""
                lines.append(f"        {json.dumps(row, ensure_ascii=False)}{comma}")
            lines.append("      ]")
        lines.append("    }" + ("," if i < len(names) - 1 else ""))
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int | float | Decimal):
        try:
            return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            return None
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def _datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def same_value(expected: Any, actual: Any, kind: str, tolerance: float | None) -> bool:
    """Whether a value the service returned means the T-SQL value ``expected``.

    * ``int`` / ``bool``: equal numbers (a backend may spell 1 as ``1``, ``true`` or ``"1"``).
    * ``decimal:<s>``: T-SQL's result is itself rounded to scale ``s``; a backend that
      keeps more digits (PostgreSQL's numeric AVG) or stores NUMERIC as a double
      (SQLite) matches when it is less than one unit of the last place away.
    * ``float``: equal, or within the entry's relative ``tolerance`` (T-SQL floats are
      approximate; only entries that say so get one).
    * ``date``: the same ISO date text; ``datetime``: the same instant, whatever the
      separator or trailing zeros of the fraction.
    * ``str``: exactly equal.
    """
    if expected is None or actual is None:
        return expected is None and actual is None
    if kind in ("int", "bool", "float") or kind.startswith("decimal:"):
        e, a = _number(expected), _number(actual)
        if e is None or a is None:
            return False
        if kind.startswith("decimal:"):
            return abs(a - e) < Decimal(1).scaleb(-int(kind.split(":")[1]))
        if kind == "float" and tolerance is not None:
            return abs(a - e) <= Decimal(repr(tolerance)) * max(abs(e), Decimal(1))
        return a == e
    if kind == "datetime":
        e_dt, a_dt = _datetime(expected), _datetime(actual)
        return e_dt is not None and e_dt == a_dt
    return bool(expected == actual)


def mismatch(expected: Result, columns: Sequence[str], rows: Sequence[Sequence[Any]],
             tolerance: float | None) -> str | None:  # fmt: skip
    """Why ``columns``/``rows`` (from the service) differ from ``expected``; ``None`` if not.
    Column names compare case-insensitively (a backend's spelling of an alias)."""
    if [c.casefold() for c in columns] != [c.casefold() for c in expected.columns]:
        return f"columns {list(columns)} != {expected.columns}"
    if len(rows) != len(expected.rows):
        return f"{len(rows)} rows != {len(expected.rows)} expected; first: {list(rows[:3])}"
    for i, (want, got) in enumerate(zip(expected.rows, rows, strict=True)):
        for j, kind in enumerate(expected.types):
            if not same_value(want[j], got[j], kind, tolerance):
                return f"row {i} column {expected.columns[j]}: {got[j]!r} != {want[j]!r} ({kind})"
    return None


# -- the service -------------------------------------------------------------------------


@dataclass
class ReportingStack:
    url: str
    tenants: dict[str, str]
    """Backend label (``sqlite``, ``postgresql``, ``sqlserver-msodbc18``...) -> domain."""
    babelfish: bool
    log_path: Path
    tds_database: str | None = None
    """The SQL Server tenants' database on the T-SQL engine, if any."""

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )


def backend_of(label: str) -> str:
    """``sqlserver-freetds`` -> ``sqlserver``: the backend a tenant label runs on."""
    return label.split("-", 1)[0]


def _config(controller: str) -> str:
    return f"""
[server]
workers = 1

[controller]
connection_string = "{controller}"

{backends_toml()}

[pool]
max_size = 2
acquire_timeout_ms = 5000
login_timeout_s = 10

[query]
max_rows_cap = 5000
max_timeout_ms = 30000

[base_model]
{base_model_toml()}

[[tokens]]
name = "reporting"
sha256 = "{hash_token(TOKEN)}"
tenants = ["*"]
classes = ["read"]
"""


def seed_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        seed_tenant(conn, "sqlite", contacts=CONTACTS, seed=SEED)


@contextlib.contextmanager
def seeded_tds_database(tds: TdsServer, driver: str) -> Iterator[str]:
    """A database on the T-SQL engine seeded with the corpus data; dropped afterwards."""
    database = tds.create_database("tg_reporting")
    try:
        with contextlib.closing(tds.connect(driver, database)) as conn:
            seed_tenant(conn, "sqlserver", contacts=CONTACTS, seed=SEED)
        yield database
    finally:
        tds.drop_database(database)


@contextlib.contextmanager
def reporting_stack(
    root: Path,
    pg: PgServer | None,
    tds: TdsServer | None,
    *,
    sqlite: bool = True,
) -> Iterator[ReportingStack]:
    """The real service process with one tenant per backend, each seeded with the corpus
    data: SQLite (a file), PostgreSQL (a database on ``pg``) and, with ``tds``, one SQL
    Server database reached by a tenant per installed ODBC driver."""
    with contextlib.ExitStack() as cleanup:
        customers: list[tuple[int, str, str]] = []
        labels: dict[str, str] = {}

        def add(label: str, connect: str) -> None:
            domain = f"{label}.reporting.example"
            customers.append((len(customers) + 1, domain, connect))
            labels[label] = domain

        if sqlite:
            path = root / "reporting.db"
            seed_sqlite(path)
            add("sqlite", f"Driver=SQLite3;Database={path}")
        if pg is not None:
            name = pg.create_database("tg_reporting")
            cleanup.callback(pg.drop_database, name)
            with contextlib.closing(pg.connect(name)) as conn:
                seed_tenant(conn, "postgresql", contacts=CONTACTS, seed=SEED)
            add("postgresql", pg.odbc(name))
        babelfish, database = False, None
        if tds is not None and tds.drivers:
            database = cleanup.enter_context(seeded_tds_database(tds, tds.drivers[-1]))
            for driver in tds.drivers:
                add(f"sqlserver-{driver}", tds.odbc(driver, database))
            with contextlib.closing(tds.connect(tds.drivers[-1])) as conn:
                value = conn.execute("SELECT CAST(SERVERPROPERTY('Babelfish') AS INT)").fetchone()
                babelfish = bool(value and value[0] == 1)
        controller = write_controller(root / "controller.db", customers)
        config = root / "tenantgate.toml"
        config.write_text(_config(controller), encoding="utf-8")
        log_path = root / "service.log"
        with serve(config, log_path) as (url, _pid):
            yield ReportingStack(url, labels, babelfish, log_path, database)


# -- running and judging -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    name: str
    label: str
    """The tenant label: ``sqlite``, ``postgresql``, ``sqlserver-<driver>``."""
    status: str
    detail: str = ""
    code: str = ""
    message: str = ""
    """The refusal's message (refusals only)."""


def reference(report: Report, expected: Mapping[str, Result], backend: str,
              babelfish: bool) -> Result | None:  # fmt: skip
    """The rows ``report`` must return on ``backend``: the corpus entry's own (T-SQL's
    documented meaning) where the T-SQL engine deviates, except on that engine itself,
    where tenantgate must return what the engine does; else the engine's."""
    engine = expected.get(report.name)
    if report.rows is None or (backend == "sqlserver" and babelfish):
        return engine
    columns = report.columns or (engine.columns if engine else None)
    types = report.types or (engine.types if engine else None)
    if columns is None or types is None:
        return None
    return Result(columns, types, report.rows)


def judge(report: Report, label: str, response: httpx.Response,
          expected: Result | None) -> Outcome:  # fmt: skip
    backend = backend_of(label)
    listed = report.refused_on.get(backend)
    if response.status_code == 200:
        body = response.json()
        if expected is None:
            return Outcome(report.name, label, ERROR, "no expected rows: run --regenerate")
        # Columns come as {"name": ..., "type": ...}.
        names = [c["name"] if isinstance(c, dict) else c for c in body["columns"]]
        why = mismatch(expected, names, body["rows"], report.tolerance)
        if listed is not None:
            verdict = "and correct" if why is None else f"and wrong ({why})"
            return Outcome(
                report.name, label, ACCEPTED_BUT_LISTED,
                f"accepted {verdict}, but refused_on lists {backend}: remove it",
            )  # fmt: skip
        return Outcome(report.name, label, CORRECT if why is None else WRONG, why or "")
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "", response.text[:300]
    if 400 <= response.status_code < 500 and code in REFUSAL_CODES:
        if listed is None:
            return Outcome(
                report.name, label, UNLISTED_REFUSAL, f"{code}: {message}", code, message
            )
        if listed not in message:
            return Outcome(
                report.name, label, OTHER_REASON,
                f"refused for another reason than {listed!r}: {code}: {message}", code, message,
            )  # fmt: skip
        return Outcome(report.name, label, REFUSED, "", code, message)
    return Outcome(report.name, label, ERROR, f"HTTP {response.status_code} {code}: {message}")


def run_corpus(
    stack: ReportingStack,
    reports: Iterable[Report],
    expected: Mapping[str, Result],
    labels: Iterable[str] | None = None,
) -> list[Outcome]:
    """Every statement through ``POST /v1/query`` on each tenant of ``labels``."""
    chosen = list(labels if labels is not None else stack.tenants)
    outcomes = []
    with stack.client() as client:
        for report in reports:
            for label in chosen:
                if report.babelfish_skip and stack.babelfish and backend_of(label) == "sqlserver":
                    outcomes.append(Outcome(report.name, label, ENGINE_SKIP, report.babelfish_skip))
                    continue
                body = {"tenant": stack.tenants[label], "sql": report.sql, "params": report.params}
                response = client.post("/v1/query", json=body)
                want = reference(report, expected, backend_of(label), stack.babelfish)
                outcomes.append(judge(report, label, response, want))
    return outcomes


def construct_of(message: str) -> str:
    """The construct a refusal names: its message up to "is not supported" (the
    rewriter's refusals read "<construct as written> is not supported [on <backend>]: why"),
    else its first 60 characters."""
    head, found, _ = message.partition(" is not supported")
    return head if found else message[:60]


def format_report(outcomes: Sequence[Outcome]) -> str:
    """Per backend: statements, accepted, correct, refused (and failures); then the
    refusal reasons grouped, each with how many statements and on which backends."""
    by_label: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        by_label[o.label][o.status] += 1
    lines = ["reporting corpus: accepted / correct / refused per backend"]
    lines.append(f"  {'backend':<20} {'total':>5} {'accepted':>8} {'correct':>7} {'refused':>7}"
                 f" {'failing':>7} {'not sent':>8}")  # fmt: skip
    for label, counts in by_label.items():
        total = sum(counts.values())
        accepted = counts[CORRECT] + counts[WRONG] + counts[ACCEPTED_BUT_LISTED]
        refused = counts[REFUSED] + counts[UNLISTED_REFUSAL] + counts[OTHER_REASON]
        failing = sum(counts[s] for s in FAILURES)
        lines.append(
            f"  {label:<20} {total:>5} {accepted:>8} {counts[CORRECT]:>7} {refused:>7} {failing:>7}"
            f" {counts[ENGINE_SKIP]:>8}"
        )
    constructs: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    messages: dict[str, dict[str, str]] = defaultdict(dict)
    for o in outcomes:
        if o.message:
            construct = construct_of(o.message)
            constructs[construct][backend_of(o.label)].add(o.name)
            messages[construct].setdefault(o.message, backend_of(o.label))
    if constructs:
        lines.append("refused constructs (statements per backend), with the reasons given:")
        ordered = sorted(constructs.items(), key=lambda kv: (-sum(map(len, kv[1].values())), kv[0]))
        for construct, per_backend in ordered:
            per = ", ".join(f"{b} {len(n)}" for b, n in sorted(per_backend.items()))
            lines.append(f"  {construct}  [{per}]")
            lines += [f"      {message}" for message in messages[construct]]
    failures = [o for o in outcomes if o.status in FAILURES]
    if failures:
        lines.append(f"failures ({len(failures)}):")
        lines += [f"  {o.name} on {o.label}: {o.status}: {o.detail}" for o in failures]
    return "\n".join(lines)
