"""End to end over HTTP: the service process with its controller file locked by another.

The real ``tenantgate serve`` on a configuration of its own: a SQLite controller (ODBC)
listing one SQLite tenant, a short tenant TTL and grace period, the default controller
deadline (1.5 s). While another process holds ``BEGIN EXCLUSIVE`` on the controller:
an unknown tenant answers 503 ``controller_unavailable`` with ``Retry-After`` within
2 s, ``/readyz`` answers 503 ``not_ready`` naming the controller check within 2 s,
``/healthz`` answers at once, and the cached tenant keeps answering from its stale
entry until the grace period ends. Afterwards everything is ready again. The figures
are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.auth import hash_token
from proxy.demo.seed import seed_tenant
from tests.support.locked import locked
from tests.support.stack import serve
from tests.support.tenants import base_model_toml, write_controller

pytestmark = [pytest.mark.e2e, pytest.mark.driver_independent]

TOKEN = "e2e-controller-stall-token"
TTL_S, GRACE_S = 1.0, 6.0
WITHIN_S = 2.0


def _config(controller: Path) -> str:
    base_model = base_model_toml()
    return f"""
[controller]
connection_string = "Driver=SQLite3;Database={controller}"
cache_ttl_s = {TTL_S}
negative_ttl_s = 1
stale_grace_s = {GRACE_S}

[backends.sqlite]
driver = "native"

[base_model]
{base_model}

[[tokens]]
name = "reader"
sha256 = "{hash_token(TOKEN)}"
classes = ["read"]
"""


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """The service's URL, its controller file and its log."""
    tenant = tmp_path / "tenant.db"
    with contextlib.closing(sqlite3.connect(tenant)) as conn:
        seed_tenant(conn, "sqlite", contacts=5, seed=1)
        conn.commit()
    controller = tmp_path / "controller.db"
    write_controller(controller, [(1, "lite.example", f"Driver=SQLite3;Database={tenant}")])
    config = tmp_path / "tenantgate.toml"
    config.write_text(_config(controller), encoding="utf-8")
    log = tmp_path / "service.log"
    with serve(config, log) as (url, _pid):
        yield url, controller, log


def _timed(
    client: httpx.Client, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.request(method, path, **kwargs)
    return response, time.monotonic() - started


def _query(tenant: str) -> dict[str, Any]:
    return {"json": {"tenant": tenant, "sql": "SELECT ContactID FROM Contacts WHERE ContactID = 1"}}


def test_a_stalled_controller_is_bounded_end_to_end(running: tuple[str, Path, Path]) -> None:
    url, controller, log = running
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready" and body["checks"]["controller"]["ok"] is True
        assert client.post("/v1/query", **_query("lite.example")).json()["rows"] == [[1]]
        cached_by = time.monotonic()

        with locked(controller):
            unknown, unknown_s = _timed(client, "POST", "/v1/query", **_query("nobody.example"))
            assert unknown.status_code == 503, unknown.text
            assert unknown.json()["error"]["code"] == "controller_unavailable"
            assert int(unknown.headers["Retry-After"]) >= 1
            assert unknown_s < WITHIN_S

            not_ready, ready_s = _timed(client, "GET", "/readyz")
            assert not_ready.status_code == 503, not_ready.text
            body = not_ready.json()
            assert body["error"]["code"] == "not_ready"
            assert body["status"] == "not_ready"
            assert body["checks"]["controller"]["ok"] is False
            assert body["checks"]["controller"]["code"] == "controller_unavailable"
            assert int(not_ready.headers["Retry-After"]) >= 1
            assert ready_s < WITHIN_S

            health, health_s = _timed(client, "GET", "/healthz")
            assert health.status_code == 200

            # The cached tenant, expired: served from its stale entry.
            time.sleep(max(0.0, cached_by + TTL_S + 0.2 - time.monotonic()))
            stale, stale_s = _timed(client, "POST", "/v1/query", **_query("lite.example"))
            assert stale.status_code == 200, stale.text
            assert stale.json()["rows"] == [[1]]
            assert stale_s < WITHIN_S
            again, again_s = _timed(client, "POST", "/v1/query", **_query("lite.example"))
            assert again.status_code == 200, again.text

            scrape = client.get("/metrics").text
            assert 'tenantgate_cache_stale_served_total{cache="tenant"}' in scrape
            print(
                f"\nlocked controller over HTTP: unknown tenant 503 in {unknown_s:.2f} s; "
                f"/readyz 503 in {ready_s:.2f} s; /healthz in {health_s * 1000:.0f} ms; "
                f"stale tenant {stale_s:.2f} s then {again_s * 1000:.0f} ms"
            )

            # Past the grace period: the controller's error reaches the caller.
            time.sleep(max(0.0, cached_by + TTL_S + GRACE_S + 0.3 - time.monotonic()))
            late, late_s = _timed(client, "POST", "/v1/query", **_query("lite.example"))
            assert late.status_code == 503, late.text
            assert late.json()["error"]["code"] == "controller_unavailable"
            assert late_s < WITHIN_S

        deadline = time.monotonic() + 15
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready again after the lock ended"
            time.sleep(0.2)
        assert client.post("/v1/query", **_query("lite.example")).json()["rows"] == [[1]]
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text
