"""The row cap (rewriter.row_cap) on real PostgreSQL and SQLite, through the service.

psqlODBC and sqliteodbc buffer a whole result at execute time (docs/drivers.md), so
a read of a large table must carry its bound in the SQL, not only in ``fetchmany``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyodbc
import pytest

from proxy.auth import Principal
from proxy.service import QueryRequest, Service
from tests.support.pg import PgServer
from tests.support.tenants import seeded_service, token

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


@pytest.fixture
def service(tmp_path: Path, pg: PgServer, pg_database: str) -> Iterator[Service]:
    with seeded_service(
        tmp_path,
        pg,
        pg_database,
        contacts=20,
        pool_max_size=1,
        backend_templates={},
        tokens=(token("t", TOKEN, "read", "write"),),
        seed_more=seed_events,
    ) as t:
        yield t.service


@pytest.fixture
def principal(service: Service) -> Principal:
    return service.auth.authenticate(f"Bearer {TOKEN}")


BACKENDS = pytest.mark.parametrize("tenant", ["lite.example", "pg.example"])


@BACKENDS
def test_a_large_table_is_capped_in_the_sql(
    service: Service, principal: Principal, tenant: str
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
    service: Service, principal: Principal, tenant: str
) -> None:
    # psqlODBC reports the rows it buffered as rowcount: 11 of 20,000, not all of them.
    req = QueryRequest(tenant=tenant, sql="SELECT EventID, Note FROM Events", max_rows=10)
    prepared = service.prepare(principal, req)
    with service.pools.pool_for(prepared.tenant.location).connection() as conn:
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


@BACKENDS
@pytest.mark.parametrize(
    ("sql", "params", "rows", "truncated"),
    [
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
        (
            "SELECT EventID FROM Events WHERE EventID <= 12 UNION"
            " SELECT EventID FROM Events WHERE EventID > 19995 ORDER BY EventID DESC",
            [],
            10,
            True,
        ),
        # A small result under the cap: all of it, not truncated.
        ("SELECT EventID FROM Events WHERE EventID < 6", [], 5, False),
    ],
)
def test_truncated_follows_the_callers_own_count(
    service: Service,
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
def test_offset_stays_the_callers(service: Service, principal: Principal, tenant: str) -> None:
    sql = "SELECT EventID FROM Events ORDER BY EventID OFFSET 100 ROWS FETCH NEXT 50 ROWS ONLY"
    result = service.query(principal, QueryRequest(tenant=tenant, sql=sql, max_rows=3)).result
    assert [r[0] for r in result.rows] == [101, 102, 103] and result.truncated is True


@BACKENDS
def test_write_returning_rows_are_all_counted(
    service: Service, principal: Principal, tenant: str
) -> None:
    sql = "UPDATE Events SET Note = 'x' OUTPUT INSERTED.EventID WHERE EventID <= 50"
    req = QueryRequest(tenant=tenant, sql=sql, max_rows=10)
    assert "LIMIT" not in service.explain(principal, req)["sql"]
    outcome = service.query(principal, req)
    assert outcome.result.row_count == 50 and outcome.result.truncated is True


@BACKENDS
def test_the_plan_does_not_depend_on_max_rows(
    service: Service, principal: Principal, tenant: str
) -> None:
    sql = "SELECT EventID FROM Events WHERE EventID > ?"
    first = service.explain(principal, QueryRequest(tenant=tenant, sql=sql, params=[7], max_rows=5))
    second = service.explain(
        principal, QueryRequest(tenant=tenant, sql=sql, params=[7], max_rows=50)
    )
    assert second["plan_cached"] is True and first["sql"] == second["sql"]
    assert (first["params"], second["params"]) == ([7, 6], [7, 51])
