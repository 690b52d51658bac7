"""Metadata staleness healed: tables altered outside tenantgate, on PostgreSQL and SQLite.

Through ``proxy.pipeline.service.Service`` in-process, like ``test_service.py``. The DDL runs on
a separate connection, as another application would: tenantgate's cache still holds
the old shape when the next request arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proxy.auth import Principal
from proxy.demo.seed import BASE_MODEL, custom_columns, quote_identifier
from proxy.errors import BackendObjectMissing
from proxy.pipeline.request import QueryRequest
from rewriter.errors import UnknownColumn
from tests.support.blocking import BlockingService
from tests.support.pg import PgServer
from tests.support.tenants import Tenants, seeded_service, token

CUSTOM = custom_columns(5)
DROPPED = CUSTOM[1].name
KEPT = [c.name for c in CUSTOM if c.name != DROPPED]
TOKEN = "staleness-token"


@dataclass
class World:
    tenants: Tenants
    principal: Principal

    @property
    def service(self) -> BlockingService:
        return self.tenants.service

    def query(self, tenant: str, sql: str, *params: Any, **kw: Any) -> Any:
        return self.service.query(
            self.principal, QueryRequest(tenant=tenant, sql=sql, params=list(params), **kw)
        ).result

    def heals(self, outcome: str) -> float:
        value = self.service.metrics.registry.get_sample_value(
            "tenantgate_metadata_heals_total", {"outcome": outcome}
        )
        return value or 0.0


@pytest.fixture
def world(tmp_path: Path, pg: PgServer, pg_database: str) -> Iterator[World]:
    with seeded_service(
        tmp_path,
        pg,
        pg_database,
        CUSTOM,
        contacts=20,
        # One connection per pool: the session that ran the stale plan runs the re-run.
        pool_max_size=1,
        backend_templates={"postgresql": "BoolsAsChar=0"},
        tokens=(token("t", TOKEN, "read", "write", "admin"),),
    ) as t:
        yield World(t, t.principal(TOKEN))


BACKENDS = pytest.mark.parametrize("tenant", ["lite.example", "pg.example"])


def q(name: str) -> str:
    return quote_identifier(name, "sqlite")  # "..." on both backends


def drop_outside(world: World, tenant: str, column: str) -> None:
    world.tenants.alter(tenant, f"ALTER TABLE {q('Contacts')} DROP COLUMN {q(column)}")


def add_outside(world: World, tenant: str, column: str) -> None:
    world.tenants.alter(tenant, f"ALTER TABLE {q('Contacts')} ADD COLUMN {q(column)} TEXT")


@BACKENDS
def test_dropped_column_named_by_a_read_is_unknown_column(world: World, tenant: str) -> None:
    sql = f"SELECT ContactID, {DROPPED} FROM Contacts WHERE ContactID = ?"
    assert len(world.query(tenant, sql, 1).rows) == 1  # cached with the column
    drop_outside(world, tenant, DROPPED)

    with pytest.raises(UnknownColumn) as error:
        world.query(tenant, sql, 1)
    assert error.value.details["column"] == DROPPED
    assert world.heals("rerun_refused") == 1
    # Now validated up front: no further backend error, no further heal.
    with pytest.raises(UnknownColumn):
        world.query(tenant, sql, 1)
    assert world.heals("rerun_refused") == 1


@BACKENDS
def test_dropped_column_is_null_under_the_null_policy(world: World, tenant: str) -> None:
    sql = f"SELECT ContactID, {DROPPED} FROM Contacts WHERE ContactID = ?"
    world.query(tenant, sql, 2, missing_columns="null")
    drop_outside(world, tenant, DROPPED)

    result = world.query(tenant, sql, 2, missing_columns="null")
    assert [c.name for c in result.columns] == ["ContactID", DROPPED]
    assert result.rows == [[2, None]]
    assert world.heals("rerun_ok") == 1


@BACKENDS
def test_star_and_custom_fields_after_a_drop_run_with_what_is_left(
    world: World, tenant: str
) -> None:
    sql = "SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID = ?"
    before = world.query(tenant, sql, 3)
    assert [c.name for c in before.columns][-len(CUSTOM) :] == [c.name for c in CUSTOM]
    drop_outside(world, tenant, DROPPED)

    after = world.query(tenant, sql, 3)
    assert [c.name for c in after.columns] == list(BASE_MODEL["Contacts"]) + KEPT
    assert after.rows[0][0] == 3
    assert world.heals("rerun_ok") == 1


@BACKENDS
def test_column_added_outside_works_when_named_at_once(world: World, tenant: str) -> None:
    world.query(tenant, "SELECT ContactID FROM Contacts WHERE ContactID = 1")  # cached
    add_outside(world, tenant, "Custom_Added")
    world.tenants.alter(
        tenant,
        f"UPDATE {q('Contacts')} SET {q('Custom_Added')} = 'fresh' WHERE {q('ContactID')} = 4",
    )

    result = world.query(tenant, "SELECT ContactID, custom_added FROM Contacts WHERE ContactID = 4")
    assert [c.name for c in result.columns] == ["ContactID", "Custom_Added"]
    assert result.rows == [[4, "fresh"]]
    assert world.heals("revalidated") == 1
    # The forced refresh brought the whole table up to date.
    star = world.query(tenant, "SELECT CUSTOM_FIELDS() FROM Contacts WHERE ContactID = 4")
    assert [c.name for c in star.columns][-1] == "Custom_Added"


@BACKENDS
def test_column_added_outside_shows_in_custom_fields_after_refresh(
    world: World, tenant: str
) -> None:
    sql = "SELECT CUSTOM_FIELDS() FROM Contacts WHERE ContactID = 5"
    assert [c.name for c in world.query(tenant, sql).columns] == [c.name for c in CUSTOM]
    add_outside(world, tenant, "Custom_Later")
    # Within the time-to-live the cache may lag: the query still runs, on the old shape.
    assert [c.name for c in world.query(tenant, sql).columns] == [c.name for c in CUSTOM]

    world.service.refresh(world.principal, tenant)
    names = [c.name for c in world.query(tenant, sql).columns]
    assert names == [c.name for c in CUSTOM] + ["Custom_Later"]


@BACKENDS
def test_a_name_that_is_really_absent_reads_the_catalog_at_most_once_a_second(
    world: World, tenant: str
) -> None:
    sql = "SELECT ContactID, NoSuchField FROM Contacts WHERE ContactID = 1"
    world.query(tenant, "SELECT ContactID FROM Contacts WHERE ContactID = 1")
    loads = world.service.metadata.get_stats()["loads"]
    for _ in range(20):
        with pytest.raises(UnknownColumn):
            world.query(tenant, sql)
    assert world.service.metadata.get_stats()["loads"] == loads + 1
    assert world.heals("still_unknown") == 1


def first_name(world: World, tenant: str, contact: int) -> list[tuple[Any, ...]]:
    return world.tenants.read(
        tenant, f"SELECT {q('FirstName')} FROM {q('Contacts')} WHERE {q('ContactID')} = {contact}"
    )


WRITES = [
    # Under the null policy the re-prepared UPDATE would be valid (the dropped column
    # becomes NULL) and would change the row: it must not be run. PostgreSQL only:
    # see test_sqlite_stale_write_filter_is_not_a_string_literal.
    pytest.param(
        "pg.example",
        f"UPDATE Contacts SET FirstName = 'Changed' WHERE ContactID = ? AND {DROPPED} IS NULL",
        id="pg-where",
    ),
    pytest.param(
        "pg.example",
        f"UPDATE Contacts SET FirstName = 'Changed', {DROPPED} = NULL WHERE ContactID = ?",
        id="pg-set",
    ),
    pytest.param(
        "lite.example",
        f"UPDATE Contacts SET FirstName = 'Changed', {DROPPED} = NULL WHERE ContactID = ?",
        id="lite-set",
    ),
]


@pytest.mark.parametrize(("tenant", "sql"), WRITES)
def test_a_write_on_a_dropped_column_is_not_run_again(world: World, tenant: str, sql: str) -> None:
    original = first_name(world, tenant, 6)
    world.query(tenant, f"SELECT {DROPPED} FROM Contacts WHERE ContactID = 6")  # cached
    drop_outside(world, tenant, DROPPED)

    with pytest.raises(BackendObjectMissing):
        world.query(tenant, sql, 6, missing_columns="null")
    assert world.heals("write_not_rerun") == 1
    assert first_name(world, tenant, 6) == original
    # The metadata was refreshed: the next attempt is validated against the new shape.
    with pytest.raises(UnknownColumn):
        world.query(tenant, sql, 6)


def test_sqlite_stale_write_filter_is_not_a_string_literal(world: World) -> None:
    tenant = "lite.example"
    world.query(tenant, f"SELECT {DROPPED} FROM Contacts WHERE ContactID = 6")  # cached
    drop_outside(world, tenant, DROPPED)
    # With the column gone, an unqualified '"Custom_ShoeSize" <> 'x'' would be the
    # literal 'Custom_ShoeSize' <> 'x' in SQLite: true for every row. The writes pass
    # qualifies the write's own columns on SQLite, so this is an error instead.
    sql = f"DELETE FROM Contacts WHERE {DROPPED} <> 'x' AND ContactID = ?"
    with pytest.raises(BackendObjectMissing):
        world.query(tenant, sql, 7)
