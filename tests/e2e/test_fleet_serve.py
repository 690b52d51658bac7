"""The real service serves a fleet ``tenantgate seed`` made, with the configuration and
token it wrote: PostgreSQL schemas, the controller on the server too."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from proxy.bench.distribution import CustomColumnDistribution
from proxy.bench.fleet import load_fleet
from proxy.bench.seed import SeedOptions, drop_fleet, run_seed
from proxy.demo.seed import BASE_MODEL
from tests.support.pg import PgServer
from tests.support.stack import serve

# The configuration the seeder writes names its own drivers (native): the same test
# on either setting of TENANTGATE_TEST_DRIVERS.
pytestmark = [pytest.mark.e2e, pytest.mark.driver_independent]


@pytest.fixture
def fleet_dir(pg: PgServer, tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "fleet"
    options = SeedOptions(
        directory=directory,
        tenants=6,
        backend="postgresql",
        layout="schema",
        server=(
            f"postgresql://{quote(pg.user)}:{quote(pg.password)}@{pg.host}:{pg.port}/"
            f"{pg.admin_database}"
        ),
        prefix=f"tge_{uuid.uuid4().hex[:8]}",
        controller_on_server=True,
        custom_columns=CustomColumnDistribution.parse("0-5:50%,40-60:50%"),
        contacts=30,
        jobs=1,
        progress=io.StringIO(),
        bar=False,
    )
    run_seed(options)
    try:
        yield directory
    finally:
        with contextlib.suppress(Exception):
            drop_fleet(directory)


def test_the_service_serves_a_seeded_fleet(fleet_dir: Path) -> None:
    fleet = load_fleet(fleet_dir)
    narrow = min(fleet.tenants, key=lambda t: t.custom_columns)
    wide = max(fleet.tenants, key=lambda t: t.custom_columns)
    assert wide.custom_columns >= 40 > 5 >= narrow.custom_columns
    token = (fleet_dir / "token").read_text(encoding="utf-8").strip()
    with (
        serve(fleet_dir / "tenantgate.toml", fleet_dir / "service.log") as (url, _pid),
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client,
    ):
        for tenant, key in ((narrow, narrow.domain), (wide, wide.customer_id)):
            r = client.post(
                "/v1/query",
                json={"tenant": key, "sql": "SELECT *, CUSTOM_FIELDS() FROM Contacts"},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            names = [c["name"] for c in body["columns"]]
            assert len(names) == len(BASE_MODEL["Contacts"]) + tenant.custom_columns
            assert names[: len(BASE_MODEL["Contacts"])] == BASE_MODEL["Contacts"]
            assert body["row_count"] == tenant.contacts == 30
        bad = client.post(
            "/v1/query",
            json={"tenant": "t99999.fleet.example", "sql": "SELECT 1 FROM Contacts"},
        )
        assert bad.status_code == 404
