"""The service pipeline in-process, the same scenarios on real PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.demo.seed import BASE_MODEL, custom_columns
from proxy.errors import StatementTimeout
from proxy.pipeline.request import QueryRequest
from rewriter.errors import UnknownColumn
from tests.support.blocking import BlockingService
from tests.support.pg import PgServer
from tests.support.slow import SLOW_SQL, create_slow_view
from tests.support.tenants import seeded_service, token

CUSTOM = custom_columns(5)
TOKEN = "integration-token"


@pytest.fixture
def service(tmp_path: Path, pg: PgServer, pg_database: str) -> Iterator[BlockingService]:
    with seeded_service(
        tmp_path,
        pg,
        pg_database,
        CUSTOM,
        contacts=50,
        # One connection per pool: every request of a tenant shares one session.
        pool_max_size=1,
        backend_templates={"postgresql": "BoolsAsChar=0"},
        tokens=(token("t", TOKEN, "read", "admin"),),
        seed_more=create_slow_view,
    ) as t:
        yield t.service


BACKENDS = pytest.mark.parametrize("tenant", ["lite.example", "pg.example"])


@BACKENDS
def test_star_and_custom_fields(service: BlockingService, tenant: str) -> None:
    principal = service.auth.authenticate(f"Bearer {TOKEN}")
    outcome = service.query(
        principal,
        QueryRequest(
            tenant=tenant,
            sql="SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID = ?",
            params=[3],
        ),
    )
    names = [c.name for c in outcome.result.columns]
    assert names == list(BASE_MODEL["Contacts"]) + [c.name for c in CUSTOM]
    assert outcome.result.rows[0][0] == 3
    assert set(outcome.phases) >= {"resolve", "metadata", "rewrite", "execute"}


@BACKENDS
def test_unknown_column_and_null_policy(service: BlockingService, tenant: str) -> None:
    principal = service.auth.authenticate(f"Bearer {TOKEN}")
    sql = "SELECT ContactID, NoSuchField FROM Contacts WHERE ContactID = 1"
    with pytest.raises(UnknownColumn):
        service.query(principal, QueryRequest(tenant=tenant, sql=sql))
    outcome = service.query(principal, QueryRequest(tenant=tenant, sql=sql, missing_columns="null"))
    assert outcome.result.rows == [[1, None]]


@BACKENDS
def test_plans_are_shared_between_tenants_with_equal_shapes(
    service: BlockingService, tenant: str
) -> None:
    principal = service.auth.authenticate(f"Bearer {TOKEN}")
    req = QueryRequest(tenant=tenant, sql="SELECT FirstName FROM Contacts WHERE ContactID = 2")
    first = service.explain(principal, req)
    second = service.explain(principal, req)
    assert second["plan_cached"] is True
    assert first["sql"] == second["sql"]
    # A SQLite tenant's file by its name alone: the server's folders are not the
    # caller's business (issue #9, item 9).
    assert "/" not in first["database"], first["database"]


def test_catalog_reads_do_not_inherit_a_short_statement_timeout(service: BlockingService) -> None:
    principal = service.auth.authenticate(f"Bearer {TOKEN}")
    with pytest.raises(StatementTimeout):
        service.query(principal, QueryRequest(tenant="pg.example", sql=SLOW_SQL, timeout_ms=20))
    location = service.resolver.resolve("pg.example").location
    # The pool has one connection: the session that just ran with a 20 ms timeout.
    source = service.drivers.for_location(location).blocking_source(location, timeout_s=10.0)

    def show() -> object:
        with source() as conn:
            cursor = conn.cursor()
            try:
                cursor.execute("SHOW statement_timeout")
                return cursor.fetchone()[0]
            finally:
                cursor.close()

    assert service.offload(show) == "10s"
    service.metadata.refresh(location)
    assert service.metadata.get(location, "Contacts") is not None


def test_a_catalog_read_survives_a_terminated_backend(
    service: BlockingService, pg: PgServer, pg_database: str
) -> None:
    """The server closed the pooled session (a restart, ``pg_terminate_backend``)
    before the pool could notice: the catalog read runs once more on a fresh one."""
    principal = service.auth.authenticate(f"Bearer {TOKEN}")
    service.query(principal, QueryRequest(tenant="pg.example", sql="SELECT 1 AS x"))
    location = service.resolver.resolve("pg.example").location
    with pg.connect() as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = ? AND pid <> pg_backend_pid()",
            pg_database,
        ).fetchone()[0]
    assert ended >= 1
    assert "Contacts" in service.offload(service.metadata.list_tables, location)
