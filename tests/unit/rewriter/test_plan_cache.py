"""The plan cache (keys, bounds in bytes, threads, cached parse errors, the statement
limits), the fast ``bind`` and the spliced column lists of wide expansions
(``rewriter.expand``)."""

from __future__ import annotations

import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from rewriter import (
    Limits,
    RewriteError,
    StatementTooLarge,
    UnknownTable,
    expand,
    parse_statement,
    rewrite,
)
from rewriter import generate as gen
from rewriter import plan_cache as module
from rewriter.markers import BACKEND_DIALECTS
from rewriter.plan import Plan
from rewriter.plan_cache import PlanCache
from tests.unit.rewriter.golden import BACKENDS, LOCATIONS, load_cases
from tests.unit.rewriter.shapes import ACCOUNTS, CONTACTS, SCHEMA, Shape

POINT = "SELECT ContactID, FirstName FROM Contacts WHERE ContactID = ?"
STAR = "SELECT *, CUSTOM_FIELDS() FROM Contacts"


def copy_of(shape: Shape) -> Shape:
    """An equal shape that is a different object (another tenant's metadata)."""
    return Shape(shape.name, tuple(shape.column_names), tuple(shape.base_columns))


def wider(shape: Shape, *extra: str) -> Shape:
    return Shape(shape.name, (*shape.column_names, *extra), tuple(shape.base_columns))


# -- keys ------------------------------------------------------------------------------


def test_tenants_with_equal_fingerprints_share_a_plan() -> None:
    cache = PlanCache()
    first, cached = cache.plan(
        cache.parse(STAR, dialect="tsql"),
        tables={"contacts": CONTACTS},
        backend="postgresql",
        tenant_label="alpha.example",
    )
    assert not cached
    other_tenant = copy_of(CONTACTS)
    assert other_tenant is not CONTACTS
    second, cached = cache.plan(
        cache.parse(STAR, dialect="tsql"),
        tables={"contacts": other_tenant},
        backend="postgresql",
        tenant_label="beta.example",
    )
    assert cached and second is first
    # The location is bound after the cache: one plan, each tenant's own schema.
    assert '"t1"."Contacts"' in first.bind(catalog=None, schema="t1")
    assert '"t2"."Contacts"' in second.bind(catalog=None, schema="t2")
    stats = cache.get_stats()
    assert {k: stats[k] for k in ("hits", "misses", "size", "parsed_size", "uncached")} == {
        "hits": 1,
        "misses": 1,
        "size": 1,
        "parsed_size": 1,
        "uncached": 0,
    }


def test_a_different_fingerprint_misses() -> None:
    cache = PlanCache()
    parsed = cache.parse(STAR, dialect="tsql")
    narrow, _ = cache.plan(parsed, tables={"contacts": CONTACTS}, backend="sqlite")
    wide, cached = cache.plan(
        parsed, tables={"contacts": wider(CONTACTS, "Custom_Extra")}, backend="sqlite"
    )
    assert not cached
    assert wide.columns == (*narrow.columns, "Custom_Extra")
    assert '"contacts"."Custom_Extra"' in wide.sql


@pytest.mark.parametrize(
    ("change", "value"),
    [("backend", "sqlserver"), ("missing_columns", "null")],
)
def test_options_are_part_of_the_key(change: str, value: str) -> None:
    cache = PlanCache()
    parsed = cache.parse(POINT, dialect="tsql")
    options = {"backend": "postgresql", "missing_columns": "error"}
    cache.plan(parsed, tables=SCHEMA, **options)
    _, cached = cache.plan(parsed, tables=SCHEMA, **{**options, change: value})
    assert not cached


def test_only_the_statements_tables_count() -> None:
    cache = PlanCache()
    parsed = cache.parse(POINT, dialect="tsql")
    cache.plan(parsed, tables={"contacts": CONTACTS, "accounts": ACCOUNTS}, backend="sqlite")
    _, cached = cache.plan(
        parsed, tables={"Contacts": CONTACTS, "accounts": wider(ACCOUNTS, "x")}, backend="sqlite"
    )
    assert cached  # the key looks names up casefolded, and ignores tables not used


def test_a_missing_table_is_refused_and_not_cached() -> None:
    cache = PlanCache()
    parsed = cache.parse(POINT, dialect="tsql")
    for _ in range(2):
        with pytest.raises(UnknownTable):
            cache.plan(parsed, tables={"contacts": None}, backend="sqlite")
    assert cache.get_stats()["size"] == 0


def _weights(sql: str) -> tuple[int, int]:
    """The (parsed, plan) estimates of ``sql`` on SCHEMA for sqlite."""
    probe = PlanCache()
    parsed = probe.parse(sql, dialect="tsql")
    probe.plan(parsed, tables=SCHEMA, backend="sqlite")
    stats = probe.get_stats()
    return stats["parsed_bytes"], stats["bytes"]


def test_bounded_in_bytes() -> None:
    statements = [f"SELECT ContactID FROM Contacts WHERE ContactID = {i}" for i in range(5)]
    parsed_weight, plan_weight = _weights(statements[0])
    # Room for two of each, not three.
    cache = PlanCache(max_bytes=plan_weight * 5 // 2, parse_max_bytes=parsed_weight * 5 // 2)
    for sql in statements:
        cache.plan(cache.parse(sql, dialect="tsql"), tables=SCHEMA, backend="sqlite")
    stats = cache.get_stats()
    assert stats["size"] == 2 and stats["parsed_size"] == 2
    assert stats["bytes"] <= plan_weight * 5 // 2
    assert stats["parsed_bytes"] <= parsed_weight * 5 // 2
    # The least recently used went first.
    _, cached = cache.plan(
        cache.parse(statements[0], dialect="tsql"), tables=SCHEMA, backend="sqlite"
    )
    assert not cached
    _, cached = cache.plan(
        cache.parse(statements[4], dialect="tsql"), tables=SCHEMA, backend="sqlite"
    )
    assert cached


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        PlanCache(max_bytes=0)


def _in_list(n: int, first: int = 0) -> str:
    values = ", ".join(str(first + i) for i in range(n))
    return f"SELECT ContactID FROM Contacts WHERE ContactID IN ({values})"


def test_a_large_statement_weighs_more_than_a_small_one() -> None:
    small_parsed, small_plan = _weights(_in_list(2))
    large_parsed, large_plan = _weights(_in_list(2000))
    # About one node per item; the plan's weight follows its text.
    assert large_parsed - small_parsed >= 1998 * module.NODE_BYTES
    assert large_plan - small_plan >= 2 * 1998 * len("1000, ")


def test_an_oversized_statement_is_answered_but_not_cached() -> None:
    small_parsed, small_plan = _weights(POINT)
    cache = PlanCache(max_entry_bytes=max(small_parsed, small_plan))
    for _ in range(2):
        parsed = cache.parse(_in_list(2000), dialect="tsql")
        plan, cached = cache.plan(parsed, tables=SCHEMA, backend="sqlite")
        assert not cached and plan.sql.count(",") == 1999
    cache.plan(cache.parse(POINT, dialect="tsql"), tables=SCHEMA, backend="sqlite")
    stats = cache.get_stats()
    assert stats["parsed_size"] == 1 and stats["size"] == 1  # the point select only
    assert stats["uncached"] == 4  # the large one's tree and plan, twice


def test_many_distinct_large_statements_stay_within_the_bounds() -> None:
    cache = PlanCache(max_bytes=256 << 10, parse_max_bytes=2 << 20, max_entry_bytes=1 << 20)
    for i in range(40):
        sql = _in_list(600, first=i * 1000)
        cache.plan(cache.parse(sql, dialect="tsql"), tables=SCHEMA, backend="sqlite")
    stats = cache.get_stats()
    assert 0 < stats["parsed_bytes"] <= 2 << 20 and 0 < stats["bytes"] <= 256 << 10
    assert stats["parsed_size"] < 40 and stats["size"] < 40


def test_refusals_are_cached_without_their_exception() -> None:
    # An exception's traceback holds the parse's frames: the tokens and tree of a
    # statement of up to max_sql_chars, per distinct refused text.
    cache = PlanCache()
    sql = _in_list(1500) + " AND LOAD_FILE('x') = 1"
    for _ in range(2):
        with pytest.raises(RewriteError):
            cache.parse(sql, dialect="tsql")
    [(value, weight)] = cache._parsed.values()
    assert not isinstance(value, BaseException)
    assert weight < 2 * len(sql)


# -- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit_name", "sql"),
    [
        ("max_sql_chars", "SELECT ContactID FROM Contacts" + " " * 200),
        ("max_params", "SELECT ContactID FROM Contacts WHERE ContactID IN (?, ?) AND Email = ?"),
        ("max_in_list", "SELECT ContactID FROM Contacts WHERE ContactID NOT IN (1, 2, 3, 4)"),
        ("max_depth", "SELECT ContactID FROM Contacts WHERE ContactID = ((((1))))"),
        ("max_name_chars", "SELECT ContactID AS [an alias of 21 chars!] FROM Contacts"),
    ],
)
def test_each_limit_is_refused_by_name(limit_name: str, sql: str) -> None:
    limits = Limits(max_sql_chars=200, max_params=2, max_depth=6, max_in_list=3, max_name_chars=20)
    cache = PlanCache(limits=limits)
    with pytest.raises(StatementTooLarge) as refused:
        cache.parse(sql, dialect="tsql")
    assert refused.value.code == "statement_too_large"
    assert refused.value.details == {"limit": getattr(limits, limit_name), "limit_name": limit_name}


def test_a_statement_at_the_limits_is_accepted() -> None:
    limits = Limits(max_sql_chars=200, max_params=3, max_depth=7, max_in_list=3, max_name_chars=9)
    sql = "SELECT ContactID FROM Contacts WHERE ContactID IN (?, ?, ?) AND Email = ((1))"
    parsed = PlanCache(limits=limits).parse(sql, dialect="tsql")
    assert parsed.positional_params == 3


_DEEP = {
    "parentheses": "SELECT ContactID FROM Contacts WHERE ContactID = {0}1{1}",
    "and": "SELECT ContactID FROM Contacts WHERE {2}",
    "or": "SELECT ContactID FROM Contacts WHERE {3}",
    "not": "SELECT ContactID FROM Contacts WHERE {4}1 = 1",
    "subqueries": "SELECT ContactID FROM Contacts WHERE ContactID = {5}1{1}",
    "case": "SELECT {6}1{7} FROM Contacts",
    "minus": "SELECT {8}1 FROM Contacts",
    "functions": "SELECT {9}1{1} FROM Contacts",
    "plus": "SELECT ContactID FROM Contacts WHERE ContactID = 1{10}",
}


@pytest.mark.parametrize("shape", list(_DEEP))
@pytest.mark.parametrize("n", [160, 5000])
def test_deep_nesting_is_statement_too_large_never_a_recursion_error(shape: str, n: int) -> None:
    sql = _DEEP[shape].format(
        "(" * n,
        ")" * n,
        " AND ".join(f"ContactID <> {i}" for i in range(n)),
        " OR ".join(f"ContactID = {i}" for i in range(n)),
        "NOT " * n,
        "(SELECT " * n,
        "CASE WHEN 1 = 1 THEN " * n,
        " END" * n,
        "- " * n,
        "ABS(" * n,
        " + 1" * n,
    )
    cache = PlanCache(limits=Limits(max_sql_chars=1_000_000))  # the depth, not the length
    for _ in range(2):  # parsed, then from the cache
        with pytest.raises(StatementTooLarge) as refused:
            cache.parse(sql, dialect="tsql")
        assert refused.value.details["limit_name"] == "max_depth"


# -- parse errors ----------------------------------------------------------------------


def test_parse_errors_are_cached_and_raised_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = module.parse_statement

    def counting(sql: str, *, dialect: str, limits: Limits) -> object:
        nonlocal calls
        calls += 1
        return real(sql, dialect=dialect, limits=limits)

    monkeypatch.setattr(module, "parse_statement", counting)
    cache = PlanCache()
    caught: list[RewriteError] = []
    for _ in range(3):
        with pytest.raises(RewriteError) as info:
            cache.parse("SELECT FROM WHERE", dialect="tsql")
        caught.append(info.value)
    assert calls == 1
    assert len({id(e) for e in caught}) == 3
    assert {(type(e), e.code, e.message, tuple(e.details.items())) for e in caught} == {
        (type(caught[0]), caught[0].code, caught[0].message, tuple(caught[0].details.items()))
    }
    assert caught[0].code == "parse_error"
    # A fresh instance carries no traceback of an earlier request.
    assert caught[2].__traceback__ is not caught[1].__traceback__
    assert caught[2].__context__ is None


# -- threads ---------------------------------------------------------------------------


def test_thread_safe_under_real_threads() -> None:
    statements = [POINT, STAR, "SELECT a.Name FROM Accounts AS a WHERE a.AccountID = ?"]
    schemas = [SCHEMA, {**SCHEMA, "contacts": wider(CONTACTS, "Custom_T")}]
    expected = {
        (s, i, b): rewrite(parse_statement(s, dialect="tsql"), tables=schemas[i], backend=b).sql
        for s in statements
        for i in range(len(schemas))
        for b in BACKENDS
    }
    # Smaller than the working set: evictions under load.
    budget = 7 * _weights(POINT)[1]
    cache = PlanCache(max_bytes=budget)
    barrier = threading.Barrier(8)
    rounds = 150

    def work(worker: int) -> list[str]:
        barrier.wait()
        wrong: list[str] = []
        for n in range(rounds):
            s = statements[(worker + n) % len(statements)]
            i = (worker * 7 + n) % len(schemas)
            b = BACKENDS[(worker + 3 * n) % len(BACKENDS)]
            plan, _ = cache.plan(cache.parse(s, dialect="tsql"), tables=schemas[i], backend=b)
            if plan.sql != expected[(s, i, b)]:
                wrong.append(f"{s} / {i} / {b}")
        return wrong

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    assert all(not r for r in results), results
    stats = cache.get_stats()
    assert stats["hits"] + stats["misses"] == 8 * rounds
    assert stats["hits"] > 0 and stats["misses"] > 0
    assert stats["bytes"] <= budget


# -- bind ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("catalog", "schema"), [(None, None), ("T2", None), (None, "s"), ("T]2", 'd"bo')]
)
def test_fast_bind_equals_replacement(
    backend: str, catalog: str | None, schema: str | None
) -> None:
    sql = (
        "SELECT * FROM (SELECT a.FirstName FROM Contacts AS a JOIN Accounts AS b ON a.AccountID = "
        "b.AccountID) AS t WHERE EXISTS (SELECT 1 FROM Opportunities AS o)"
    )
    plan = rewrite(parse_statement(sql, dialect="tsql"), tables=SCHEMA, backend=backend)
    assert plan.bind(catalog=catalog, schema=schema) == gen.bind(plan.sql, backend, catalog, schema)


def test_bind_falls_back_when_a_marker_stands_alone() -> None:
    catalog, schema = gen.qualifier_markers("postgresql")
    sql = f'SELECT 1 FROM {schema}"t", {catalog}{schema}"u"'
    plan = Plan(
        sql=sql, columns=("1",), param_order=(), statement_class="read", backend="postgresql"
    )
    assert plan.bind(catalog=None, schema="s") == 'SELECT 1 FROM "s"."t", "s"."u"'


# -- splicing --------------------------------------------------------------------------


def _golden(splicing: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setattr(expand, "SPLICING", splicing)
    results: dict[str, object] = {}
    for case in load_cases():
        for backend in BACKENDS:
            key = f"{case.id}/{backend}"
            try:
                plan = rewrite(
                    parse_statement(case.sql, dialect=case.dialect),
                    tables=SCHEMA,
                    backend=backend,
                    missing_columns=case.missing_columns,
                    tenant_label=case.tenant,
                    row_cap=case.row_cap,
                )
            except RewriteError as error:
                results[key] = (error.code, error.message)
                continue
            catalog, schema = LOCATIONS[backend]
            results[key] = (
                plan.bind(catalog=catalog, schema=schema),
                plan.columns,
                plan.param_order,
            )
    return results


def test_splicing_changes_nothing_on_the_golden_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    spliced = _golden(True, monkeypatch)
    plain = _golden(False, monkeypatch)
    assert spliced == plain


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT *, 1 + 1, CUSTOM_FIELDS(), FirstName FROM Contacts",
        "SELECT c.*, a.* FROM Contacts AS c JOIN Accounts AS a ON a.AccountID = c.AccountID",
        "SELECT * FROM Contacts UNION ALL SELECT * FROM Contacts ORDER BY Email",
        "WITH x AS (SELECT *, CUSTOM_FIELDS() FROM Contacts) SELECT *, LEN(Email) FROM x",
        "SELECT * FROM (SELECT *, 2 AS two FROM Accounts) AS d WHERE d.two = 2",
        "SELECT TOP 3 * FROM Accounts ORDER BY Name",
    ],
)
def test_splicing_changes_nothing(sql: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for backend in BACKENDS:
        parsed = parse_statement(sql, dialect="tsql")
        monkeypatch.setattr(expand, "SPLICING", True)
        spliced = rewrite(parsed, tables=SCHEMA, backend=backend)
        monkeypatch.setattr(expand, "SPLICING", False)
        plain = rewrite(parsed, tables=SCHEMA, backend=backend)
        assert (spliced.sql, spliced.columns) == (plain.sql, plain.columns)


# Column names a tenant's catalog may hold: quotes, brackets, spaces, dots, non-ASCII.
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from('"[]`. '),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(names=st.lists(NAMES, min_size=1, max_size=6, unique=True), alias=NAMES)
def test_rendered_columns_are_what_sqlglot_writes(names: list[str], alias: str) -> None:
    splice = expand.Splice(marker="m", alias=alias, names=tuple(names), key=None)
    for backend, dialect in BACKEND_DIALECTS.items():
        select = exp.Select(
            expressions=[
                exp.Column(
                    this=exp.Identifier(this=n, quoted=True),
                    table=exp.Identifier(this=alias, quoted=True),
                )
                for n in names
            ]
        )
        written = select.sql(dialect=dialect, identify=True, comments=False)
        assert written == "SELECT " + expand._render_names(splice, backend)


def test_wide_table_runs_on_sqlite() -> None:
    odd = ['Shoe "Size"', "a]b", "Größe", "x.y", "select"]
    custom = [f"Custom_{i:03d}" for i in range(790)] + odd
    shape = Shape("Contacts", (*CONTACTS.base_columns, *custom), tuple(CONTACTS.base_columns))
    conn = sqlite3.connect(":memory:")
    columns = ", ".join('"' + c.replace('"', '""') + '"' for c in shape.column_names)
    conn.execute(f'CREATE TABLE "Contacts" ({columns})')
    conn.execute(
        f'INSERT INTO "Contacts" VALUES ({", ".join("?" * len(shape.column_names))})',
        list(range(len(shape.column_names))),
    )
    plan = rewrite(
        parse_statement(STAR + " WHERE ContactID = ?", dialect="tsql"),
        tables={"contacts": shape},
        backend="sqlite",
    )
    cursor = conn.execute(plan.bind(catalog=None, schema=None), [0])
    assert tuple(d[0] for d in cursor.description) == plan.columns == tuple(shape.column_names)
    assert cursor.fetchall() == [tuple(range(len(shape.column_names)))]
    # The placeholder never reaches the SQL, and the wide list is one splice, not nodes.
    assert expand.SPLICE_MARKER_RE.search(plan.sql) is None


def test_column_names_that_look_like_markers_stay_names() -> None:
    custom = ("__tenantgate_c0__", "__tenantgate_p0__", "__tenantgate_catalog__")
    shape = Shape("Contacts", (*CONTACTS.base_columns, *custom), tuple(CONTACTS.base_columns))
    plan = rewrite(
        parse_statement("SELECT CUSTOM_FIELDS(), * FROM Contacts WHERE Email = ?", dialect="tsql"),
        tables={"contacts": shape},
        backend="postgresql",
    )
    assert plan.columns == (*custom, *CONTACTS.base_columns)
    assert plan.param_order == (0,)
    sql = plan.bind(catalog=None, schema="t2")
    assert sql.startswith(
        'SELECT "contacts"."__tenantgate_c0__", "contacts"."__tenantgate_p0__", '
        '"contacts"."__tenantgate_catalog__", "contacts"."ContactID"'
    )
    assert sql.endswith('FROM "t2"."Contacts" AS "contacts" WHERE "contacts"."Email" = ?')


# -- the sqlglot build ------------------------------------------------------------------


def test_sqlglot_build_is_the_expected_one() -> None:
    """``make test`` runs the suite with sqlglotc and the rewriter tests without it."""
    wanted = os.environ.get("TENANTGATE_SQLGLOTC")
    if wanted is None:
        pytest.skip("TENANTGATE_SQLGLOTC is not set (make test sets it)")
    assert sqlglot.tokens.SQLGLOTC_INSTALLED is (wanted == "1")
