"""The row cap (rewriter.row_cap) on real PostgreSQL, SQLite and SQL Server, through
the service.

psqlODBC and sqliteodbc buffer a whole result at execute time (docs/drivers.md), and
over TDS a cursor closed after ``fetchmany`` must drain or cancel the rest of the
stream (Babelfish acts on the cancel only when the statement ends), so a read of a
large table must carry its bound in the SQL, not only in ``fetchmany``. The SQL Server
tests run once per ODBC driver (``tds_driver``) against a T-SQL engine over TDS
(``tests/support/tds.py``), on ``BIG_ROWS`` rows built server-side.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyodbc
import pytest

from proxy.auth import Principal
from proxy.config import PoolSettings
from proxy.demo.seed import seed_tenant
from proxy.pipeline.request import QueryRequest
from rewriter import RowCap, parse_statement, rewrite
from tests.integration.test_transpile import BACKEND_ROWS, _create, _expected, _normal
from tests.support.blocking import BlockingService
from tests.support.pg import PgServer
from tests.support.tds import TdsServer
from tests.support.tenants import seeded_service, service_for, token
from tests.unit.rewriter.golden import load_cases
from tests.unit.rewriter.shapes import SCHEMA
from tests.unit.rewriter.test_transpile import TranspileCase, shapes

TOKEN = "row-cap-token"
ROWS = 20_000
EVENTS = 'CREATE TABLE "Events" ("EventID" INTEGER PRIMARY KEY, "Note" TEXT NOT NULL)'


def seed_events(conn: Any, backend: str) -> None:
    """``Events``: ``ROWS`` rows, far more than any ``max_rows`` below."""
    conn.execute(EVENTS)
    if backend == "postgresql":
        conn.execute(f"INSERT INTO \"Events\" SELECT i, 'e' || i FROM generate_series(1, {ROWS}) i")
    else:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO Events SELECT i, 'e' || i FROM n",
            (ROWS,),
        )


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, pg: PgServer, module_pg_database: str
) -> Iterator[BlockingService]:
    """One service over both tenants for the module: ``ROWS`` events are seeded once, and
    the one test that writes leaves them as they were (``Note = Note``)."""
    with seeded_service(
        tmp_path_factory.mktemp("row_cap"),
        pg,
        module_pg_database,
        contacts=20,
        pool_max_size=1,
        backend_templates={},
        tokens=(token("t", TOKEN, "read", "write"),),
        seed_more=seed_events,
    ) as t:
        yield t.service


@pytest.fixture
def principal(service: BlockingService) -> Principal:
    return service.auth.authenticate(f"Bearer {TOKEN}")


BACKENDS = pytest.mark.parametrize("tenant", ["lite.example", "pg.example"])


@BACKENDS
def test_a_large_table_is_capped_in_the_sql(
    service: BlockingService, principal: Principal, tenant: str
) -> None:
    req = QueryRequest(tenant=tenant, sql="SELECT * FROM Events ORDER BY EventID", max_rows=10)
    outcome = service.query(principal, req)
    assert [row[0] for row in outcome.result.rows] == list(range(1, 11))
    assert outcome.result.truncated is True and outcome.result.row_count == 10

    explained = service.explain(principal, req)
    assert explained["sql"].endswith("LIMIT ?")
    assert explained["params"] == [11]  # max_rows + 1: the extra row says "truncated"


@BACKENDS
def test_the_driver_holds_only_the_capped_rows(
    service: BlockingService, principal: Principal, tenant: str
) -> None:
    # psqlODBC reports the rows it buffered as rowcount: 11 of 20,000, not all of them.
    req = QueryRequest(tenant=tenant, sql="SELECT EventID, Note FROM Events", max_rows=10)
    prepared = service.prepare(principal, req)
    location = prepared.tenant.location
    if service.drivers.for_location(location).name != "odbc":
        pytest.skip("how much an ODBC driver buffers; native drivers fetch what they return")
    with service.drivers.odbc.pools.pool_for(location).connection() as conn:
        cursor = conn.raw.cursor()
        try:
            cursor.execute(prepared.sql, prepared.params)
            rows = cursor.fetchall()
            if tenant == "pg.example":
                assert cursor.rowcount == 11
        finally:
            with contextlib.suppress(pyodbc.Error):
                cursor.close()
    assert len(rows) == 11


# (sql, params, rows returned with max_rows=10, truncated), on every backend.
OWN_COUNTS = [
    # The caller's own count is smaller than max_rows: not truncated.
    ("SELECT TOP 4 EventID FROM Events ORDER BY EventID", [], 4, False),
    ("SELECT TOP (?) EventID FROM Events ORDER BY EventID", [3], 3, False),
    ("SELECT TOP 10 EventID FROM Events ORDER BY EventID", [], 10, False),
    # Larger than max_rows: the cap wins, and the result is truncated.
    ("SELECT TOP 5000 EventID FROM Events ORDER BY EventID", [], 10, True),
    ("SELECT TOP (?) EventID FROM Events ORDER BY EventID", [5000], 10, True),
    (
        "SELECT EventID FROM Events ORDER BY EventID OFFSET ? ROWS FETCH NEXT ? ROWS ONLY",
        [100, 2],
        2,
        False,
    ),
    ("SELECT EventID FROM Events ORDER BY EventID OFFSET 5 ROWS", [], 10, True),
    (
        "SELECT EventID FROM Events WHERE EventID <= 12 UNION"
        " SELECT EventID FROM Events WHERE EventID > 19995 ORDER BY EventID DESC",
        [],
        10,
        True,
    ),
    (
        "SELECT EventID FROM Events UNION ALL SELECT EventID FROM Events"
        " ORDER BY EventID OFFSET 3 ROWS FETCH NEXT 4 ROWS ONLY",
        [],
        4,
        False,
    ),
    # Set operations without ORDER BY (SQL Server: read from a derived table with TOP).
    ("SELECT EventID FROM Events UNION ALL SELECT EventID FROM Events", [], 10, True),
    ("SELECT EventID, EventID FROM Events EXCEPT SELECT 1, 1", [], 10, True),
    # A small result under the cap: all of it, not truncated.
    ("SELECT EventID FROM Events WHERE EventID < 6", [], 5, False),
    ("SELECT EventID FROM Events WHERE EventID < 4 UNION SELECT 7", [], 4, False),
]


@BACKENDS
@pytest.mark.parametrize(("sql", "params", "rows", "truncated"), OWN_COUNTS)
def test_truncated_follows_the_callers_own_count(
    service: BlockingService,
    principal: Principal,
    tenant: str,
    sql: str,
    params: list[int],
    rows: int,
    truncated: bool,
) -> None:
    req = QueryRequest(tenant=tenant, sql=sql, params=params, max_rows=10)
    result = service.query(principal, req).result
    assert (len(result.rows), result.truncated) == (rows, truncated)


@BACKENDS
def test_offset_stays_the_callers(
    service: BlockingService, principal: Principal, tenant: str
) -> None:
    sql = "SELECT EventID FROM Events ORDER BY EventID OFFSET 100 ROWS FETCH NEXT 50 ROWS ONLY"
    result = service.query(principal, QueryRequest(tenant=tenant, sql=sql, max_rows=3)).result
    assert [r[0] for r in result.rows] == [101, 102, 103] and result.truncated is True


@BACKENDS
def test_write_returning_rows_are_all_counted(
    service: BlockingService, principal: Principal, tenant: str
) -> None:
    # Note = Note: the rows the other tests read stay as they are.
    sql = "UPDATE Events SET Note = Note OUTPUT INSERTED.EventID WHERE EventID <= 50"
    req = QueryRequest(tenant=tenant, sql=sql, max_rows=10)
    assert "LIMIT" not in service.explain(principal, req)["sql"]
    outcome = service.query(principal, req)
    assert outcome.result.row_count == 50 and outcome.result.truncated is True


@BACKENDS
def test_the_plan_does_not_depend_on_max_rows(
    service: BlockingService, principal: Principal, tenant: str
) -> None:
    sql = "SELECT EventID FROM Events WHERE EventID > ?"
    first = service.explain(principal, QueryRequest(tenant=tenant, sql=sql, params=[7], max_rows=5))
    second = service.explain(
        principal, QueryRequest(tenant=tenant, sql=sql, params=[7], max_rows=50)
    )
    assert second["plan_cached"] is True and first["sql"] == second["sql"]
    assert (first["params"], second["params"]) == ([7, 6], [7, 51])


# -- SQL Server ------------------------------------------------------------------------

BIG_ROWS = 200_000
_DIGITS = "(VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9))"
# 10^6 numbers from six cross-joined digit lists, built by the engine in one statement.
BIG_EVENTS = (
    "INSERT INTO [dbo].[Events] ([EventID], [Note]) SELECT n, CONCAT(N'e', n) FROM ("
    " SELECT 1 + a.d + 10 * b.d + 100 * c.d + 1000 * d.d + 10000 * e.d + 100000 * f.d AS n"
    f" FROM {_DIGITS} AS a(d) CROSS JOIN {_DIGITS} AS b(d) CROSS JOIN {_DIGITS} AS c(d)"
    f" CROSS JOIN {_DIGITS} AS d(d) CROSS JOIN {_DIGITS} AS e(d) CROSS JOIN {_DIGITS} AS f(d)"
    ") AS numbers WHERE n <= ?"
)


@dataclass
class Events:
    """The module's one SQL Server tenant database and, per driver, a service over it."""

    server: TdsServer
    closing: contextlib.ExitStack
    database: str = ""
    services: dict[str, BlockingService] = field(default_factory=dict)


@pytest.fixture(scope="module")
def events(tds_server: TdsServer) -> Iterator[Events]:
    """The tenant database is seeded by the first test that needs it (with that test's
    driver) and each driver's service is made by the first test on that driver; all are
    shared by the others: ``BIG_ROWS`` rows take seconds to insert on this engine, a
    service's first statement (its pool's login, the catalog read) most of a second, and
    no test here changes a row."""
    with contextlib.ExitStack() as closing:
        made = Events(tds_server, closing)
        try:
            yield made
        finally:
            closing.close()
            if made.database:
                tds_server.drop_database(made.database)


@pytest.fixture
def tds_service(
    tmp_path_factory: pytest.TempPathFactory, tds_driver: str, events: Events
) -> BlockingService:
    """The service whose one tenant, ``mssql.example``, is the module's database reached
    through ``tds_driver``: the default schema plus ``Events`` with ``BIG_ROWS`` rows."""
    tds_server = events.server
    if not events.database:
        events.database = tds_server.create_database()
        with contextlib.closing(tds_server.connect(tds_driver, events.database)) as conn:
            seed_tenant(conn, "sqlserver", contacts=5, seed=1)
            conn.execute(
                "CREATE TABLE [dbo].[Events]"
                " ([EventID] INT NOT NULL PRIMARY KEY, [Note] NVARCHAR(40) NOT NULL)"
            )
            conn.execute(BIG_EVENTS, BIG_ROWS)
            assert conn.execute("SELECT COUNT(*) FROM [dbo].[Events]").fetchone()[0] == BIG_ROWS
    if tds_driver not in events.services:
        service = service_for(
            tmp_path_factory.mktemp(f"row_cap-{tds_driver}") / "controller.db",
            {"mssql.example": tds_server.odbc(tds_driver, events.database)},
            pool=PoolSettings(max_size=1),
            tokens=(token("t", TOKEN, "read", "write"),),
        )
        events.closing.callback(service.close)
        events.services[tds_driver] = service
    return events.services[tds_driver]


MSSQL = "mssql.example"


def _mssql(service: BlockingService) -> Principal:
    return service.auth.authenticate(f"Bearer {TOKEN}")


@pytest.mark.parametrize("sql", ["SELECT * FROM Events", "SELECT * FROM Events ORDER BY EventID"])
def test_sqlserver_a_large_table_is_capped_in_the_sql(
    tds_service: BlockingService, sql: str
) -> None:
    req = QueryRequest(tenant=MSSQL, sql=sql, max_rows=10)
    outcome = tds_service.query(_mssql(tds_service), req)
    assert len(outcome.result.rows) == 10
    assert outcome.result.truncated is True and outcome.result.row_count == 10
    if "ORDER BY" in sql:
        assert [row[0] for row in outcome.result.rows] == list(range(1, 11))
    assert [c.name for c in outcome.result.columns] == ["EventID", "Note"]

    explained = tds_service.explain(_mssql(tds_service), req)
    assert explained["sql"].startswith("SELECT TOP (?) ")
    assert explained["params"] == [11]  # max_rows + 1: the extra row says "truncated"


def test_sqlserver_the_driver_receives_only_the_capped_rows(tds_service: BlockingService) -> None:
    # Run as prepared, then read to the end: the engine sent 11 rows, not 200,000.
    req = QueryRequest(tenant=MSSQL, sql="SELECT EventID, Note FROM Events", max_rows=10)
    prepared = tds_service.prepare(_mssql(tds_service), req)
    with tds_service.drivers.odbc.pools.pool_for(prepared.tenant.location).connection() as conn:
        cursor = conn.raw.cursor()
        try:
            cursor.execute(prepared.sql, prepared.params)
            rows = cursor.fetchall()
        finally:
            with contextlib.suppress(pyodbc.Error):
                cursor.close()
    assert len(rows) == 11


@pytest.mark.parametrize(("sql", "params", "rows", "truncated"), OWN_COUNTS)
def test_sqlserver_truncated_follows_the_callers_own_count(
    tds_service: BlockingService, sql: str, params: list[int], rows: int, truncated: bool
) -> None:
    req = QueryRequest(tenant=MSSQL, sql=sql, params=params, max_rows=10)
    result = tds_service.query(_mssql(tds_service), req).result
    assert (len(result.rows), result.truncated) == (rows, truncated)


def test_sqlserver_offset_stays_the_callers(tds_service: BlockingService) -> None:
    principal = _mssql(tds_service)
    for sql in (
        "SELECT EventID FROM Events ORDER BY EventID OFFSET 100 ROWS FETCH NEXT 50 ROWS ONLY",
        "SELECT EventID FROM Events ORDER BY EventID OFFSET 100 ROWS",
    ):
        req = QueryRequest(tenant=MSSQL, sql=sql, max_rows=3)
        result = tds_service.query(principal, req).result
        assert [r[0] for r in result.rows] == [101, 102, 103] and result.truncated is True
        assert tds_service.explain(principal, req)["sql"].endswith(
            "OFFSET 100 ROWS FETCH NEXT ? ROWS ONLY"
        )


@pytest.mark.parametrize(
    ("sql", "columns", "shape"),
    [
        # ORDER BY kept on the set operation, the cap after it
        (
            "SELECT EventID AS id, Note FROM Events WHERE EventID <= 3 UNION ALL"
            " SELECT EventID, Note FROM Events WHERE EventID <= 3 ORDER BY id DESC, Note",
            ["id", "Note"],
            "ORDER BY [id] DESC, [Note] OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
        ),
        # no ORDER BY: a derived table with TOP, its names and types the set operation's
        (
            "SELECT EventID AS id, Note FROM Events WHERE EventID <= 3 UNION ALL"
            " SELECT EventID, Note FROM Events WHERE EventID <= 3",
            ["id", "Note"],
            "AS [__tenantgate_rows__]",
        ),
        # the same name twice: renamed in the derived table, named back outside
        (
            "SELECT EventID, Note, EventID FROM Events WHERE EventID <= 3 UNION ALL"
            " SELECT EventID, Note, EventID FROM Events WHERE EventID <= 3",
            ["EventID", "Note", "EventID"],
            "AS [__tenantgate_rows__]([c0], [c1], [c2])",
        ),
    ],
)
def test_sqlserver_set_operations_keep_their_columns_and_order(
    tds_service: BlockingService, sql: str, columns: list[str], shape: str
) -> None:
    principal = _mssql(tds_service)
    req = QueryRequest(tenant=MSSQL, sql=sql, max_rows=100)
    assert shape in tds_service.explain(principal, req)["sql"]
    result = tds_service.query(principal, req).result
    assert [c.name for c in result.columns] == columns
    assert [c.type for c in result.columns] == [
        "integer" if name in ("id", "EventID") else "string" for name in columns
    ]
    assert result.truncated is False and len(result.rows) == 6
    if "ORDER BY" in sql:
        assert [r[:2] for r in result.rows] == [
            [3, "e3"], [3, "e3"], [2, "e2"], [2, "e2"], [1, "e1"], [1, "e1"]
        ]  # fmt: skip
    else:
        assert Counter(r[0] for r in result.rows) == {1: 2, 2: 2, 3: 2}
    # Truncated by the cap, after the ORDER BY.
    small = tds_service.query(principal, QueryRequest(tenant=MSSQL, sql=sql, max_rows=2)).result
    assert small.truncated is True and len(small.rows) == 2
    if "ORDER BY" in sql:
        assert [r[0] for r in small.rows] == [3, 3]


def test_sqlserver_write_output_rows_are_all_counted(tds_service: BlockingService) -> None:
    # Note = Note: the rows the other tests read stay as they are.
    sql = "UPDATE Events SET Note = Note OUTPUT INSERTED.EventID WHERE EventID <= 50"
    req = QueryRequest(tenant=MSSQL, sql=sql, max_rows=10)
    explained = tds_service.explain(_mssql(tds_service), req)
    assert "TOP" not in explained["sql"] and "FETCH" not in explained["sql"]
    outcome = tds_service.query(_mssql(tds_service), req)
    assert outcome.result.row_count == 50 and outcome.result.truncated is True


def test_sqlserver_the_plan_does_not_depend_on_max_rows(tds_service: BlockingService) -> None:
    principal = _mssql(tds_service)
    sql = "SELECT EventID FROM Events WHERE EventID > ?"
    first = tds_service.explain(principal, QueryRequest(MSSQL, sql, params=[7], max_rows=5))
    second = tds_service.explain(principal, QueryRequest(MSSQL, sql, params=[7], max_rows=50))
    assert second["plan_cached"] is True and first["sql"] == second["sql"]
    assert (first["params"], second["params"]) == ([6, 7], [51, 7])  # TOP (?) comes first


# Every capped plan is T-SQL the engine runs: the row cap's golden cases on empty tables
# of the shared test schema, and the transpile cases with their rows, which a cap larger
# than the result leaves exactly as they were.

CAP_CASES = [c for c in load_cases() if c.file == "row_cap" and not c.error]


def _bind_cap(order: tuple[int | str | RowCap, ...], given: Any, max_rows: int) -> list[Any]:
    values: list[Any] = []
    for entry in order:
        if not isinstance(entry, RowCap):
            values.append(given[entry])
        elif entry.param is not None:
            values.append(min(given[entry.param], max_rows + 1))
        else:
            values.append(max_rows + 1 if entry.count is None else min(entry.count, max_rows + 1))
    return values


@pytest.fixture(scope="module")
def tds_cap_database(tds_server: TdsServer) -> Iterator[str]:
    """The shared golden test schema (``tests/unit/rewriter/shapes.py``), empty, and the
    transpile tables with their rows."""
    name = tds_server.create_database("rowcap")
    try:
        with contextlib.closing(tds_server.connect(database=name)) as conn:
            for shape in SCHEMA.values():
                if shape is None:
                    continue
                columns = ", ".join(
                    f"[{c}] {'INT' if c.endswith('ID') else 'NVARCHAR(100)'}"
                    for c in shape.column_names
                )
                conn.execute(f"CREATE TABLE [dbo].[{shape.name}] ({columns})")
            _create(conn, "sqlserver")
        yield name
    finally:
        tds_server.drop_database(name)


@pytest.mark.parametrize("case", CAP_CASES, ids=lambda c: c.name)
def test_sqlserver_runs_every_capped_golden_case(
    case: Any, tds_master_connection: pyodbc.Connection, tds_cap_database: str
) -> None:
    parsed = parse_statement(case.sql, dialect=case.dialect)
    plan = rewrite(parsed, tables=SCHEMA, backend="sqlserver", row_cap=True)
    given: dict[int | str, int] = {i: 1 for i in range(parsed.positional_params)}
    given.update({name: 1 for name in parsed.named_params})
    conn = tds_master_connection
    conn.autocommit = False  # the writes are rolled back: the tables stay empty
    cursor = conn.cursor()
    try:
        cursor.execute(
            plan.bind(catalog=tds_cap_database, schema="dbo"),
            _bind_cap(plan.param_order, given, max_rows=10),
        )
        if cursor.description is not None:
            assert tuple(d[0] for d in cursor.description) == plan.columns
            assert cursor.fetchall() == []
    finally:
        cursor.close()
        conn.rollback()


@pytest.mark.parametrize("case", BACKEND_ROWS, ids=lambda c: c.name)
def test_sqlserver_capped_transpile_cases_return_their_rows(
    case: TranspileCase, tds_master_connection: pyodbc.Connection, tds_cap_database: str
) -> None:
    if "sqlserver" in case.refusals:
        # A postgres/sqlite-dialect construct with no SQL Server form (the unit test
        # checks its refusal; tests/integration/test_transpile.py says the same).
        pytest.skip(f"{case.dialect} construct refused on SQL Server")
    parsed = parse_statement(case.sql, dialect=case.dialect)
    plan = rewrite(parsed, tables=shapes(), backend="sqlserver", row_cap=True)
    values = _bind_cap(plan.param_order, case.params, max_rows=1000)
    with contextlib.closing(tds_master_connection.cursor()) as cursor:
        cursor.execute(plan.bind(catalog=tds_cap_database, schema="dbo"), values)
        assert tuple(d[0] for d in cursor.description) == plan.columns
        rows = [[_normal(v) for v in row] for row in cursor.fetchall()]
    if case.babelfish_deviates:
        assert rows != _expected(case), "Babelfish now agrees: drop babelfish_deviates"
        pytest.xfail(f"Babelfish deviates from SQL Server: {case.babelfish_deviates}")
    assert rows == _expected(case)
