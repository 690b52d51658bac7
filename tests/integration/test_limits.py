"""Statement size limits (issue #9, item 5): ``query.max_sql_chars`` before parsing,
``query.max_params``, ``query.max_in_list`` and ``query.max_depth`` after, each a 400
``statement_too_large`` that names its limit; a statement at the limits runs. The
plan caches stay within their bytes whatever is sent. And a statement's preparation
counts against its timeout (item 6)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.errors import StatementTimeout
from proxy.pipeline.request import QueryRequest
from rewriter.errors import StatementTooLarge
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


def test_in_lists_up_to_the_limit(service: BlockingService) -> None:
    limit = service.settings.query.max_in_list
    values = ", ".join(str(i) for i in range(1, limit + 1))
    sql = f"SELECT ContactID FROM Contacts WHERE ContactID IN ({values})"
    assert _run(service, sql, []) == 5
    with pytest.raises(StatementTooLarge) as refused:
        _run(service, sql.replace("IN (", f"IN ({limit + 1}, "), [])
    assert refused.value.details == {"limit": limit, "limit_name": "max_in_list"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ContactID FROM Contacts WHERE ContactID = " + "(" * 5000 + "1" + ")" * 5000,
        "SELECT ContactID FROM Contacts WHERE "
        + " AND ".join(f"ContactID <> {i}" for i in range(3000)),
        "SELECT ContactID FROM Contacts WHERE "
        + " OR ".join(f"ContactID = {i}" for i in range(3000)),
        "SELECT ContactID FROM Contacts WHERE " + "NOT " * 5000 + "1 = 1",
        "SELECT ContactID FROM Contacts WHERE ContactID IN " + "(SELECT " * 2000 + "1" + ")" * 2000,
    ],
    ids=["parentheses", "and", "or", "not", "subqueries"],
)
def test_deep_nesting_is_refused_by_its_limit(service: BlockingService, sql: str) -> None:
    with pytest.raises(StatementTooLarge) as refused:
        _run(service, sql, [])
    assert refused.value.details == {
        "limit": service.settings.query.max_depth,
        "limit_name": "max_depth",
    }


def test_the_limits_are_the_configured_ones(service: BlockingService) -> None:
    query = dataclasses.replace(
        service.settings.query, max_in_list=3, max_depth=8, plan_cache_bytes=50_000
    )
    small = BlockingService(dataclasses.replace(service.settings, query=query))
    try:
        sql = "SELECT ContactID FROM Contacts WHERE ContactID IN (1, 2, 3)"
        assert _run(small, sql, []) == 3
        with pytest.raises(StatementTooLarge, match="IN list"):
            _run(small, sql.replace("(1", "(0, 1"), [])
        with pytest.raises(StatementTooLarge, match="more than 8 levels"):
            _run(small, "SELECT ContactID FROM Contacts WHERE ContactID = ((((((1))))))", [])
        assert small.plans.get_stats()["bytes"] <= 50_000
    finally:
        small.close()


def test_the_caches_stay_within_their_bytes(service: BlockingService) -> None:
    query = service.settings.query
    for i in range(40):
        values = ", ".join(str(i * 10_000 + k) for k in range(2000))
        _run(service, f"SELECT ContactID FROM Contacts WHERE ContactID IN ({values})", [])
        _run(service, f"SELECT ContactID FROM Contacts WHERE Email = '{i}{'x' * 90_000}'", [])
    stats = service.plans.get_stats()
    assert 0 < stats["parsed_bytes"] <= query.parse_cache_bytes
    assert 0 < stats["bytes"] <= query.plan_cache_bytes
    assert stats["parsed_size"] < 80  # the large ones went, or never came in


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
