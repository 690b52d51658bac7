"""A preparation reused for a statement sent again (``proxy.pipeline.reuse``): reused
while nothing changes, made afresh once a cache does, and never a way around a token's
tenants or statement classes. In-process, on real PostgreSQL and SQLite tenants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.auth import hash_token
from proxy.config import TokenSettings
from proxy.demo.seed import BASE_MODEL, custom_columns
from proxy.errors import Forbidden
from proxy.pipeline.request import QueryRequest
from tests.support.pg import PgServer
from tests.support.tenants import Tenants, seeded_service, token

FULL, LITE_ONLY, READER = "reuse-full-9a1", "reuse-lite-only-4c2", "reuse-reader-77e"
BACKENDS = pytest.mark.parametrize("tenant", ["lite.example", "pg.example"])
STAR = "SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID = ?"


@pytest.fixture
def tenants(tmp_path: Path, pg: PgServer, pg_database: str) -> Iterator[Tenants]:
    with seeded_service(
        tmp_path,
        pg,
        pg_database,
        custom_columns(2),
        tokens=(
            token("full", FULL, "read", "write"),
            token("reader", READER, "read"),
            TokenSettings("lite", hash_token(LITE_ONLY), tenants=("lite.example",)),
        ),
    ) as t:
        yield t


def _hits(t: Tenants) -> int:
    return t.service.reuse.get_stats()["hits"]


@BACKENDS
def test_a_statement_sent_again_reuses_its_preparation(tenants: Tenants, tenant: str) -> None:
    service, full = tenants.service, tenants.principal(FULL)
    # The first is prepared in a worker thread (the caches were cold), which keeps
    # nothing; the second from the caches alone, kept.
    service.query(full, QueryRequest(tenant, STAR, [1]))
    first = service.query(full, QueryRequest(tenant, STAR, [1]))
    before = _hits(tenants)
    again = service.query(full, QueryRequest(tenant, STAR, [2]))
    assert _hits(tenants) == before + 1
    assert again.result.rows[0][0] == 2, "the new values are bound, not the kept ones"
    assert [c.name for c in again.result.columns] == [c.name for c in first.result.columns]
    assert set(again.phases) == {"rewrite", "execute"}


@BACKENDS
def test_a_cache_change_makes_the_preparation_afresh(tenants: Tenants, tenant: str) -> None:
    service, full = tenants.service, tenants.principal(FULL)
    for _ in range(2):
        service.query(full, QueryRequest(tenant, STAR, [1]))
    quoted = '"Custom_Reused"' if tenant == "pg.example" else "Custom_Reused"
    tenants.alter(tenant, f'ALTER TABLE "Contacts" ADD COLUMN {quoted} TEXT')
    # What /v1/tenants/{ref}/refresh does: the metadata cache changes.
    service.metadata.refresh(service.resolver.resolve(tenant).location)
    before = _hits(tenants)
    outcome = service.query(full, QueryRequest(tenant, STAR, [1]))
    assert _hits(tenants) == before
    names = [c.name for c in outcome.result.columns]
    assert names[: len(BASE_MODEL["Contacts"])] == list(BASE_MODEL["Contacts"])
    assert names[-1] == "Custom_Reused"


def test_another_token_is_checked_again(tenants: Tenants) -> None:
    service = tenants.service
    for _ in range(2):
        service.query(tenants.principal(FULL), QueryRequest("pg.example", STAR, [1]))
    with pytest.raises(Forbidden):
        service.query(tenants.principal(LITE_ONLY), QueryRequest("pg.example", STAR, [1]))
    update = "UPDATE Contacts SET FirstName = ? WHERE ContactID = ?"
    for _ in range(2):
        service.query(tenants.principal(FULL), QueryRequest("pg.example", update, ["Ann", 1]))
    with pytest.raises(Forbidden):
        service.query(tenants.principal(READER), QueryRequest("pg.example", update, ["Bo", 1]))
    assert tenants.read("pg.example", 'SELECT "FirstName" FROM "Contacts" WHERE "ContactID" = 1')[
        0
    ] == ("Ann",)


def test_a_preparation_is_not_reused_past_its_window(tenants: Tenants) -> None:
    service, full = tenants.service, tenants.principal(FULL)
    for _ in range(2):
        service.query(full, QueryRequest("lite.example", STAR, [1]))
    key = service.reuse.key(QueryRequest("lite.example", STAR, [1]))
    stamp = (service.resolver.generation, service.metadata.generation)
    kept = service.reuse.get(key, stamp, 0.0)
    assert kept is not None
    assert service.reuse.get(key, stamp, kept.until) is None
