"""The rewriter's reserved prefix (``rewriter.markers.MARKER_PREFIX``) in column names
(issue #9, item 7). A column that holds it, made outside tenantgate, leaves the tenant
working: ``*`` and ``CUSTOM_FIELDS()`` skip it, in a derived table and a CTE too, where
such a column used to end in a 500. (The custom-field API refuses such names:
``tests/unit/test_openapi_routes.py``.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.pipeline.request import QueryRequest
from tests.support.blocking import BlockingService
from tests.support.tenants import ADMIN, sqlite_service

pytestmark = pytest.mark.integration

TENANT = "lite.example"
RESERVED = ("__tenantgate_p1__", "X__TenantGate_catalog__")


def _reserved_columns(conn: sqlite3.Connection) -> None:
    for name in RESERVED:
        conn.execute(f'ALTER TABLE "Contacts" ADD COLUMN "{name}" TEXT DEFAULT \'x\'')


@pytest.fixture
def service(tmp_path: Path) -> Iterator[BlockingService]:
    with sqlite_service(tmp_path, contacts=3, seed_more=_reserved_columns) as service:
        yield service


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT *, CUSTOM_FIELDS() FROM Contacts",
        "SELECT d.* FROM (SELECT *, CUSTOM_FIELDS() FROM Contacts) AS d",
        "WITH c AS (SELECT *, CUSTOM_FIELDS() FROM Contacts) SELECT * FROM c",
    ],
)
def test_a_reserved_column_made_outside_is_skipped(service: BlockingService, sql: str) -> None:
    principal = service.auth.authenticate(f"Bearer {ADMIN}")
    result = service.query(principal, QueryRequest(tenant=TENANT, sql=sql)).result
    names = [c.name for c in result.columns]
    assert len(result.rows) == 3 and "ContactID" in names
    assert not [n for n in names if "tenantgate" in n.casefold()]
