"""Statement size limits (issue #9, item 5): ``query.max_sql_chars`` before parsing,
``query.max_params`` after, each a 400 ``statement_too_large`` that names its limit; a
statement at the limits runs. And a statement's preparation counts against its timeout
(item 6)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.errors import StatementTimeout, StatementTooLarge
from proxy.pipeline.request import QueryRequest
from tests.support.blocking import BlockingService
from tests.support.tenants import ADMIN, sqlite_service

pytestmark = pytest.mark.integration

TENANT = "lite.example"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[BlockingService]:
    with sqlite_service(tmp_path, contacts=5) as service:
        yield service


def _run(service: BlockingService, sql: str, params: list[object]) -> int:
    principal = service.auth.authenticate(f"Bearer {ADMIN}")
    req = QueryRequest(tenant=TENANT, sql=sql, params=params)
    return len(service.query(principal, req).result.rows)


def _in_list(n: int) -> str:
    return f"SELECT ContactID FROM Contacts WHERE ContactID IN ({', '.join('?' * n)})"


def test_parameters_up_to_the_limit(service: BlockingService) -> None:
    limit = service.settings.query.max_params
    assert _run(service, _in_list(limit), list(range(1, limit + 1))) == 5
    with pytest.raises(StatementTooLarge) as refused:
        _run(service, _in_list(limit + 1), list(range(1, limit + 2)))
    assert refused.value.details["limit"] == limit


def test_statement_text_up_to_the_limit(service: BlockingService) -> None:
    limit = service.settings.query.max_sql_chars
    sql = "SELECT ContactID FROM Contacts WHERE ContactID = 1"
    padded = sql + " " * (limit - len(sql))
    assert _run(service, padded, []) == 1
    with pytest.raises(StatementTooLarge) as refused:
        _run(service, padded + " ", [])
    assert refused.value.details["limit"] == limit


def test_preparation_counts_against_the_timeout(service: BlockingService) -> None:
    # Parsing and rewriting 2,100 markers cold is far more than 1 ms of work (tens of
    # thousands of tree nodes) on any machine: the statement's timeout is spent before
    # it could run, and it is not run (issue #9, item 6).
    limit = service.settings.query.max_params
    principal = service.auth.authenticate(f"Bearer {ADMIN}")
    sql = _in_list(limit) + " AND FirstName <> 'not run'"
    req = QueryRequest(tenant=TENANT, sql=sql, params=list(range(limit)), timeout_ms=1)
    with pytest.raises(StatementTimeout) as refused:
        service.query(principal, req)
    assert "before the statement could run" in refused.value.message
    # The same statement, now prepared from the caches, runs within a usual timeout.
    assert len(service.query(principal, dataclasses.replace(req, timeout_ms=5000)).result.rows)
