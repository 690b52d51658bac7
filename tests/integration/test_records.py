"""The records API through ``proxy.tables.records`` on real PostgreSQL and SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.demo.seed import BASE_MODEL, custom_columns
from proxy.errors import (
    Forbidden,
    InvalidFieldValue,
    InvalidRequest,
    PreconditionFailed,
    RecordNotFound,
    StatementTimeout,
    UnsupportedPrimaryKey,
)
from proxy.pipeline.request import QueryRequest
from proxy.tables.records import Records, etag_for
from rewriter.errors import UnknownColumn
from tests.support.pg import PgServer
from tests.support.tenants import ADMIN, READER, TENANTS, WRITER, Tenants, seeded_service

BACKENDS = pytest.mark.parametrize("tenant", TENANTS)
CUSTOM = custom_columns(3)
NEW = {"FirstName": "Rec", "LastName": "Ord", "IsActive": True, "CreatedAt": "2024-05-01 10:00:00"}


@pytest.fixture
def tenants(tmp_path: Path, pg: PgServer, pg_database: str) -> Iterator[Tenants]:
    with seeded_service(tmp_path, pg, pg_database, CUSTOM) as t:
        yield t


@pytest.fixture
def records(tenants: Tenants) -> Records:
    return tenants.service.records()


@pytest.fixture(scope="module")
def unchanged_tenants(
    tmp_path_factory: pytest.TempPathFactory, pg: PgServer, module_pg_database: str
) -> Iterator[Tenants]:
    """``tenants`` seeded once for the tests whose every request is refused before
    anything is written, so that no test hands the next one a changed row."""
    with seeded_service(tmp_path_factory.mktemp("records"), pg, module_pg_database, CUSTOM) as t:
        yield t


@BACKENDS
def test_get_base_fields_only_unless_custom_asked(
    tenants: Tenants, records: Records, tenant: str
) -> None:
    base = records.get(tenants.principal(READER), tenant, "contacts", "3")
    assert base.table == "Contacts" and base.key == 3
    assert list(base.values) == BASE_MODEL["Contacts"]
    assert base.values["ContactID"] == 3
    full = records.get(tenants.principal(READER), tenant, "Contacts", "3", custom=True)
    assert list(full.values) == BASE_MODEL["Contacts"] + [c.name for c in CUSTOM]
    assert base.etag != full.etag and base.etag.startswith('"b') and full.etag.startswith('"c')
    assert records.get(tenants.principal(READER), tenant, "Contacts", "3").etag == base.etag


@BACKENDS
def test_get_missing_or_malformed_key(tenants: Tenants, records: Records, tenant: str) -> None:
    with pytest.raises(RecordNotFound):
        records.get(tenants.principal(READER), tenant, "Contacts", "999999")
    with pytest.raises(InvalidRequest):
        records.get(tenants.principal(READER), tenant, "Contacts", "1 OR 1=1")


@BACKENDS
def test_patch_writes_only_given_fields_and_returns_new_etag(
    tenants: Tenants, records: Records, tenant: str
) -> None:
    writer = tenants.principal(WRITER)
    before = records.get(writer, tenant, "Contacts", "4", custom=True)
    patched = records.patch(
        writer, tenant, "Contacts", "4",
        {"lastname": "O'Brien'; --", "BirthDate": "1990-12-31", "Revenue": "1234.5",
         "Custom_Region": "Mars", "UpdatedAt": "2024-06-01T08:09:10", "LeadScore": None},
        if_match=before.etag,
    )  # fmt: skip
    assert patched.etag != before.etag and patched.etag.startswith('"c')
    assert patched.values["LastName"] == "O'Brien'; --"
    assert patched.values["Custom_Region"] == "Mars"
    assert patched.values["FirstName"] == before.values["FirstName"]
    again = records.get(writer, tenant, "Contacts", "4", custom=True)
    assert again.etag == patched.etag and again.values == patched.values
    stored = tenants.read(
        tenant,
        'SELECT "LastName", "Custom_Region", "LeadScore", "Revenue" FROM "Contacts" '
        'WHERE "ContactID" = 4',
    )
    assert stored[0][:3] == ("O'Brien'; --", "Mars", None)
    assert float(stored[0][3]) == 1234.5
    others = tenants.read(
        tenant, 'SELECT COUNT(*) FROM "Contacts" WHERE "LastName" = ?', ["O'Brien'; --"]
    )
    assert others == [(1,)]


@BACKENDS
def test_patch_with_stale_etag_is_412_and_changes_nothing(
    tenants: Tenants, records: Records, tenant: str
) -> None:
    writer = tenants.principal(WRITER)
    seen = records.get(writer, tenant, "Contacts", "5")
    tenants.alter(
        tenant, """UPDATE "Contacts" SET "Title" = 'changed behind' WHERE "ContactID" = 5"""
    )
    with pytest.raises(PreconditionFailed):
        records.patch(writer, tenant, "Contacts", "5", {"LastName": "Lost"}, if_match=seen.etag)
    assert tenants.read(tenant, 'SELECT "LastName" FROM "Contacts" WHERE "ContactID" = 5') != [
        ("Lost",)
    ]
    # A base-scope ETag ignores custom fields: a custom change does not invalidate it.
    fresh = records.get(writer, tenant, "Contacts", "5")
    tenants.alter(tenant, """UPDATE "Contacts" SET "Custom_Region" = 'x' WHERE "ContactID" = 5""")
    done = records.patch(writer, tenant, "Contacts", "5", {"LastName": "Kept"}, if_match=fresh.etag)
    assert done.values["LastName"] == "Kept"


@BACKENDS
def test_if_match_forms(tenants: Tenants, records: Records, tenant: str) -> None:
    writer = tenants.principal(WRITER)
    assert records.patch(writer, tenant, "Contacts", "6", {"Title": "a"}, if_match="*")
    for bad in ('W/"b' + "0" * 64 + '"', "garbage", '"b' + "0" * 64 + '"'):
        with pytest.raises(PreconditionFailed):
            records.patch(writer, tenant, "Contacts", "6", {"Title": "b"}, if_match=bad)
    with pytest.raises(RecordNotFound):
        records.patch(writer, tenant, "Contacts", "424242", {"Title": "b"}, if_match="*")


@BACKENDS
def test_concurrent_patches_with_one_etag_only_one_wins(
    tenants: Tenants, records: Records, tenant: str
) -> None:
    writer = tenants.principal(WRITER)
    seen = records.get(writer, tenant, "Contacts", "7")
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def patch(name: str) -> None:
        barrier.wait()
        try:
            records.patch(writer, tenant, "Contacts", "7", {"LastName": name}, if_match=seen.etag)
            outcomes.append("ok")
        except PreconditionFailed:
            outcomes.append("412")

    threads = [threading.Thread(target=patch, args=(n,)) for n in ("T1", "T2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["412", "ok"]


@BACKENDS
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"Nope": 1}, UnknownColumn),
        ({"ContactID": 99}, InvalidRequest),
        ({"LeadScore": "ten"}, InvalidFieldValue),
        ({"LeadScore": 2**63}, InvalidFieldValue),
        ({"FirstName": "x" * 51}, InvalidFieldValue),
        ({"FirstName": None}, InvalidFieldValue),
        ({"BirthDate": "31/12/1990"}, InvalidFieldValue),
        ({"Revenue": "1.234"}, InvalidFieldValue),
        ({"IsActive": "yes"}, InvalidFieldValue),
        ({"FirstName": "a", "firstname": "b"}, InvalidRequest),
        ({}, InvalidRequest),
    ],
)
def test_patch_refusals(
    unchanged_tenants: Tenants, tenant: str, body: dict[str, Any], error: type[Exception]
) -> None:
    records = unchanged_tenants.service.records()
    with pytest.raises(error):
        records.patch(unchanged_tenants.principal(WRITER), tenant, "Contacts", "8", body)


@BACKENDS
def test_scopes(tenants: Tenants, records: Records, tenant: str) -> None:
    with pytest.raises(Forbidden):
        records.patch(tenants.principal(READER), tenant, "Contacts", "8", {"Title": "x"})
    with pytest.raises(Forbidden):
        records.insert(tenants.principal(READER), tenant, "Contacts", NEW)


@BACKENDS
def test_insert_returns_the_generated_key(tenants: Tenants, records: Records, tenant: str) -> None:
    writer = tenants.principal(WRITER)
    created = records.insert(writer, tenant, "Contacts", {**NEW, "Custom_Region": "Venus"})
    assert created["primary_key"] == "ContactID" and created["key"] > 10
    got = records.get(writer, tenant, "Contacts", str(created["key"]), custom=True)
    assert got.values["FirstName"] == "Rec" and got.values["Custom_Region"] == "Venus"
    with pytest.raises(InvalidFieldValue):
        records.insert(writer, tenant, "Contacts", {**NEW, "CreatedAt": "soon"})


@BACKENDS
def test_table_without_primary_key_is_refused(
    tenants: Tenants, records: Records, tenant: str
) -> None:
    tenants.alter(tenant, 'CREATE TABLE "NoKey" ("a" INTEGER)')
    with pytest.raises(UnsupportedPrimaryKey):
        records.get(tenants.principal(ADMIN), tenant, "NoKey", "1")


def test_etag_is_canonical() -> None:
    assert etag_for("b", {"a": 1, "b": "x"}) == etag_for("b", {"b": "x", "a": 1})
    assert etag_for("b", {"a": 1}) != etag_for("c", {"a": 1})


def test_a_rolled_back_patch_leaves_no_stale_timeout_on_the_connection(
    tmp_path: Path, pg: PgServer, pg_database: str
) -> None:
    """PostgreSQL undoes a SET made inside a transaction that rolls back: the connection
    must not believe it still has the timeout the PATCH set (one pooled connection)."""

    def brief_view(conn: object, backend: str) -> None:
        if backend == "postgresql":
            conn.execute('CREATE VIEW "Brief" AS SELECT 1 AS n FROM pg_sleep(0.3)')  # type: ignore[attr-defined]

    with seeded_service(tmp_path, pg, pg_database, pool_max_size=1, seed_more=brief_view) as t:
        writer, tenant = t.principal(WRITER), "pg.example"
        brief = "SELECT n FROM Brief"
        records = t.service.records()
        seen = records.get(writer, tenant, "Contacts", "5")
        t.alter(tenant, """UPDATE "Contacts" SET "Title" = 'moved' WHERE "ContactID" = 5""")
        with pytest.raises(StatementTimeout):  # leaves statement_timeout = 100 ms behind
            t.service.query(writer, QueryRequest(tenant=tenant, sql=brief, timeout_ms=100))
        with pytest.raises(PreconditionFailed):  # its transaction set 5 s, then rolled back
            records.patch(writer, tenant, "Contacts", "5", {"Title": "x"}, if_match=seen.etag)
        # 300 ms of sleep within the default 5 s: only a stale 100 ms timeout would stop it.
        outcome = t.service.query(writer, QueryRequest(tenant=tenant, sql=brief))
        assert outcome.result.rows == [[1]]
