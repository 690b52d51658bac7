"""Two services over the same tenants and controller, like two worker processes of a
host (a shared run folder: the change bell) or two hosts (none: the change log alone).

What one changes (a custom field added or dropped, a schema refresh) the other must
see: on the next request with the bell, after one poll of the log without it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.demo.seed import seed_tenant
from proxy.pipeline.request import QueryRequest
from tenancy.errors import ControllerUnavailable
from tests.support.blocking import BlockingService
from tests.support.locked import locked
from tests.support.tenants import ADMIN, TOKENS, service_for

TENANT = "lite.example"
TABLE_URL_NAME = "Opportunities"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[BlockingService, BlockingService]]:
    tenant_file = tmp_path / "tenant.db"
    with contextlib.closing(sqlite3.connect(tenant_file)) as conn:
        seed_tenant(conn, "sqlite", contacts=3, seed=1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = service_for(
        tmp_path / "controller.db",
        {TENANT: f"Driver=SQLite3;Database={tenant_file}"},
        tokens=TOKENS,
        changes_table="TenantgateChanges",
        run_dir=str(run_dir),
    )
    second = BlockingService(first.settings, run_dir=str(run_dir))
    try:
        # As a process does when it starts: where it begins reading the log.
        first.run(first.target.invalidation.catch_up)
        second.run(second.target.invalidation.catch_up)
        yield first, second
    finally:
        first.close()
        second.close()


def star(service: BlockingService) -> list[str]:
    principal = service.auth.authenticate(f"Bearer {ADMIN}")
    req = QueryRequest(
        tenant=TENANT, sql=f"SELECT *, CUSTOM_FIELDS() FROM {TABLE_URL_NAME} WHERE 1 = 0"
    )
    return [c.name for c in service.query(principal, req).result.columns]


def test_a_field_added_by_one_is_seen_by_the_others_next_request(
    pair: tuple[BlockingService, BlockingService],
) -> None:
    first, second = pair
    assert "Region_Code" not in star(second)  # cached by the second
    admin = first.custom_fields()
    principal = first.auth.authenticate(f"Bearer {ADMIN}")
    admin.add(principal, TENANT, TABLE_URL_NAME, {"name": "Region_Code", "type": "integer"})
    assert "Region_Code" in star(second)
    admin.drop(principal, TENANT, TABLE_URL_NAME, "Region_Code")
    assert "Region_Code" not in star(second)


def test_without_the_bell_one_poll_of_the_log_is_enough(
    pair: tuple[BlockingService, BlockingService],
) -> None:
    first, second = pair
    assert "Region_Code" not in star(second)
    second.target.invalidation._bell = None  # another host: no shared bell
    admin = first.custom_fields()
    principal = first.auth.authenticate(f"Bearer {ADMIN}")
    admin.add(principal, TENANT, TABLE_URL_NAME, {"name": "Region_Code", "type": "integer"})
    assert "Region_Code" not in star(second)  # not yet: nothing told it
    second.run(second.target.invalidation.catch_up)  # what its poller does every poll
    assert "Region_Code" in star(second)


def test_a_refresh_through_one_reaches_the_other(
    pair: tuple[BlockingService, BlockingService], tmp_path: Path
) -> None:
    first, second = pair
    assert "Added_Behind" not in star(second)
    with contextlib.closing(sqlite3.connect(tmp_path / "tenant.db")) as conn:
        conn.execute(f'ALTER TABLE "{TABLE_URL_NAME}" ADD COLUMN "Added_Behind" INTEGER')
        conn.commit()
    first.refresh(first.auth.authenticate(f"Bearer {ADMIN}"), TENANT)
    assert "Added_Behind" in star(second)


def test_a_stalled_controller_delays_the_log_but_loses_no_change(
    pair: tuple[BlockingService, BlockingService], tmp_path: Path
) -> None:
    """The poll runs within controller.timeout_ms on the controller's own threads; a
    poll that could not read the log leaves its position, so the change still lands."""
    first, second = pair
    second.target.invalidation._bell = None  # another host: the log alone
    assert "Region_Code" not in star(second)
    admin = first.custom_fields()
    principal = first.auth.authenticate(f"Bearer {ADMIN}")
    admin.add(principal, TENANT, TABLE_URL_NAME, {"name": "Region_Code", "type": "integer"})
    timeout_s = second.settings.controller.timeout_ms / 1000
    with locked(tmp_path / "controller.db"):
        started = time.monotonic()
        with pytest.raises(ControllerUnavailable):
            second.run(second.target.invalidation.catch_up)
        assert time.monotonic() - started < timeout_s + 1.0
        assert "Region_Code" not in star(second)  # cached, and served meanwhile
    deadline = time.monotonic() + 30  # the abandoned controller threads end on their own
    while True:
        try:
            second.run(second.target.invalidation.catch_up)
            break
        except ControllerUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert "Region_Code" in star(second)
