"""Literals sent as parameters (``rewriter.lift``) on real PostgreSQL, through the
native driver as the service runs them: lifted and not, each statement returns the
same rows, or fails with the same error.

The golden cases of ``tests/fixtures/rewriter/lift_literals.toml`` run first; then a
fixed-seed sweep of comparisons between every typed column and literals at the edges
of each type (ranges, signs, scales, quotes, trailing spaces, non-ASCII text). Then
the point of it: texts that differ by a lifted value share one prepared statement.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.config import QuerySettings
from proxy.drivers.base import ResultSet
from proxy.drivers.postgres import PostgresDriver
from proxy.drivers.sizing import PoolOptions
from proxy.errors import ProxyError
from proxy.pipeline.request import QueryRequest, bind_params
from rewriter import Plan, RewriteError, parse_statement, rewrite
from rewriter.lift import Lifted
from tenancy.connstr import parse
from tenancy.location import TenantLocation, locate
from tests.support.pg import PgServer
from tests.support.tenants import READER, TEMPLATES, seeded_service, service_for
from tests.unit.rewriter.test_lift import CASES, TABLES, LiftCase, shapes

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MAX_ROWS = 1000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def create_items(conn: Any, schema: str = "") -> None:
    """The fixture's tables, with their declared PostgreSQL types, and rows (``conn``: a
    pyodbc connection; ``schema``: where, if not the default)."""
    prefix = f'"{schema}".' if schema else ""
    for table in TABLES.values():
        columns = ", ".join(f'"{n}" {ty}' for n, ty in table.columns)
        conn.execute(f'CREATE TABLE {prefix}"{table.name}" ({columns})')
        marks = ", ".join("?" for _ in table.columns)
        for row in table.rows:
            conn.execute(f'INSERT INTO {prefix}"{table.name}" VALUES ({marks})', row)


@pytest.fixture(scope="module")
def database(pg: PgServer) -> Iterator[str]:
    """The fixture's tables in schema ``t``, where the golden SQL is bound."""
    name = pg.create_database("lift")
    with contextlib.closing(pg.connect(name)) as conn:
        conn.execute("CREATE SCHEMA t")
        create_items(conn, "t")
    yield name
    pg.drop_database(name)


@pytest.fixture
def loc(pg: PgServer, database: str) -> TenantLocation:
    return locate(parse(pg.odbc(database)), {})


@contextlib.asynccontextmanager
async def open_driver() -> AsyncIterator[PostgresDriver]:
    driver = PostgresDriver(PoolOptions(max_size=1, acquire_timeout=10.0))
    try:
        yield driver
    finally:
        await driver.aclose()


def make_plan(sql: str, dialect: str, *, lift: bool) -> Plan:
    parsed = parse_statement(sql, dialect=dialect)
    return rewrite(
        parsed,
        tables=shapes(),
        backend="postgresql",
        row_cap=parsed.statement_class == "read",
        lift_literals=lift,
    )


async def outcome(
    driver: PostgresDriver,
    loc: TenantLocation,
    plan: Plan,
    sql: str,
    dialect: str,
    params: tuple[Any, ...] = (),
) -> tuple[str, Any]:
    """("rows", sorted rows) or ("error", its class and code): what the statement did."""
    positional = parse_statement(sql, dialect=dialect).positional_params
    values = bind_params(plan.param_order, list(params), positional, max_rows=MAX_ROWS)
    try:
        result: ResultSet = await driver.run(
            loc, plan.bind(catalog=None, schema="t"), values, timeout_s=10, max_rows=MAX_ROWS
        )
    except Exception as error:
        return "error", (type(error).__name__, getattr(error, "code", None))
    return "rows", (sorted(map(repr, result.rows)), result.row_count)


@pytest.mark.parametrize("case", [c for c in CASES if c.runs], ids=lambda c: c.name)
@pytest.mark.driver_independent  # the native driver, opened here
async def test_a_golden_case_returns_the_same_rows_lifted(
    case: LiftCase, loc: TenantLocation
) -> None:
    async with open_driver() as driver:
        lifted = make_plan(case.sql, case.dialect, lift=True)
        plain = make_plan(case.sql, case.dialect, lift=False)
        got = await outcome(driver, loc, lifted, case.sql, case.dialect, case.params)
        want = await outcome(driver, loc, plain, case.sql, case.dialect, case.params)
    assert got == want
    assert got[0] == "rows", got  # a golden case runs (``runs = false`` says otherwise)


# Literals at the edges of each kind, as SQL text.
INTEGERS = [
    "0",
    "1",
    "-1",
    "40",
    "007",
    "32767",
    "32768",
    "-32768",
    "-32769",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999",
]
DECIMALS = ["0.5", "1.50", "4.5", "-0.50", "0.0", "99999999.99", "99999999.995", "1.", ".5"]
STRINGS = [
    "'Ann'",
    "'ann'",
    "'B2'",
    "'B2   '",
    "' B2'",
    "'O''Brien'",
    "''",
    "'Émile'",
    "'naïve'",
    "'100%'",
    "'it''s'",
    "'" + "x" * 30 + "'",
    "'1'",
    "'2024-01-01'",
]
OPERATORS = ["=", "<>", "<", "<=", ">", ">="]


def sweep(count: int, seed: int) -> list[str]:
    """``count`` filters of one or two comparisons of a typed column with a literal."""
    chooser = random.Random(seed)
    columns = [name for name, _ in TABLES["items"].columns if name not in ("Doc", "Flag")]
    literals = INTEGERS + DECIMALS + STRINGS
    statements = []
    for _ in range(count):
        terms = []
        for _ in range(chooser.choice((1, 2))):
            column, literal = chooser.choice(columns), chooser.choice(literals)
            if chooser.random() < 0.15:
                members = ", ".join(chooser.sample(literals, 3))
                terms.append(f'"{column}" IN ({members})')
            elif chooser.random() < 0.15:
                low, high = sorted(chooser.sample(INTEGERS[:5], 2))
                terms.append(f'"{column}" BETWEEN {low} AND {high}')
            else:
                terms.append(f'"{column}" {chooser.choice(OPERATORS)} {literal}')
        joiner = chooser.choice((" AND ", " OR "))
        statements.append(f'SELECT "Id" FROM "Items" WHERE {joiner.join(terms)}')
    return statements


@pytest.mark.driver_independent  # the native driver, opened here
async def test_a_sweep_of_literals_at_every_types_edges_means_the_same_lifted(
    loc: TenantLocation,
) -> None:
    statements = sweep(400, seed=17)
    lifted_count = 0
    async with open_driver() as driver:
        for sql in statements:
            lifted = make_plan(sql, "postgres", lift=True)
            plain = make_plan(sql, "postgres", lift=False)
            lifted_count += any(isinstance(e, Lifted) for e in lifted.param_order)
            got = await outcome(driver, loc, lifted, sql, "postgres")
            want = await outcome(driver, loc, plain, sql, "postgres")
            assert got == want, sql
    # The sweep exercises lifting, not only what stays a literal.
    assert lifted_count > len(statements) // 3


@pytest.mark.driver_independent  # the native driver, opened here
async def test_texts_differing_by_a_value_share_one_prepared_statement(
    loc: TenantLocation,
) -> None:
    """pgbench -M simple's script: 200 keys, 1,000 runs, one connection. Unlifted, each
    key is a text of its own: 200 texts over a room of 100 prepared statements."""
    order = random.Random(3).choices(range(1, 201), k=1000)
    async with open_driver() as driver:
        for key in order:
            sql = f'SELECT "Name" FROM "Items" WHERE "Id" = {key}'
            plan = make_plan(sql, "postgres", lift=True)
            values = bind_params(plan.param_order, [], 0, max_rows=1)
            result = await driver.run(
                loc, plan.bind(catalog=None, schema="t"), values, timeout_s=10, max_rows=1
            )
            assert result.rows == ([[TABLES["items"].rows[key - 1][3]]] if key <= 5 else [])
        pool = next(iter(driver._pools.values())).pool
        conn = await pool.acquire()
        try:
            assert conn.statements.kept.get_stats()["prepares"] == 1
        finally:
            pool.release(conn)


def seed_items(conn: Any, backend: str) -> None:
    """The fixture's tables and rows on the PostgreSQL tenant (the SQLite one has none)."""
    if backend == "postgresql":
        create_items(conn)


def test_the_service_lifts_unless_configured_not_to(
    tmp_path: Path, pg: PgServer, pg_database: str
) -> None:
    """Two services over the same tenant, lifting and not, with the suite's driver (the
    native one, then psqlODBC in the ODBC pass): the golden cases and the sweep return
    the same rows through both. The metadata is the tenant's catalog's, not the
    fixture's declared types."""
    statements = [(c.sql, c.dialect, c.params) for c in CASES if c.runs]
    statements += [(sql, "postgres", ()) for sql in sweep(150, seed=29)]
    (tmp_path / "on").mkdir()
    with seeded_service(tmp_path / "on", pg, pg_database, seed_more=seed_items) as on:
        off = service_for(
            tmp_path / "off.db",
            {"pg.example": pg.odbc(pg_database)},
            backend_templates=TEMPLATES,  # as seeded_service's: psqlODBC's booleans
            query=QuerySettings(lift_literals=False),
        )
        try:
            principal = on.principal(READER)
            lifted = 0
            for sql, dialect, params in statements:
                req = QueryRequest(
                    tenant="pg.example", sql=sql, params=list(params), dialect=dialect
                )
                got = _through(on.service, principal, req)
                want = _through(off, off.auth.authenticate(f"Bearer {READER}"), req)
                assert got == want, sql
                explained = on.service.explain(principal, req) if got[0] == "rows" else None
                lifted += explained is not None and any(
                    isinstance(v, str) and f"'{v}'" not in explained["sql"]
                    for v in explained["params"]
                )
            assert lifted > len(statements) // 4
            # SQLite tenants keep their literals.
            lite = QueryRequest(
                tenant="lite.example", sql="SELECT FirstName FROM Contacts WHERE ContactID = 3"
            )
            assert '"ContactID" = 3' in on.service.explain(principal, lite)["sql"]
        finally:
            off.close()


def _through(service: Any, principal: Any, req: QueryRequest) -> tuple[str, Any]:
    try:
        result = service.query(principal, req).result
    except (ProxyError, RewriteError) as error:
        return "error", error.code
    return "rows", (sorted(map(repr, result.rows)), result.row_count)
