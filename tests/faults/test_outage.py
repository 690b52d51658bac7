"""A server away for 20 s, and tenantgate itself killed with SIGKILL mid-writes."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.support.faults import (
    FAULT_TOKEN,
    FaultStack,
    Load,
    acked_writes,
    by_status,
    read_job,
    seconds,
    table,
    worst_overrun,
    write_job,
)
from tests.support.stack import serve

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

OUTAGE_S = seconds(20.0)


def test_a_20_s_outage_is_answered_503_fast_and_recovers(
    faults: FaultStack, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = faults.clusters["a"]
    jobs = [read_job(31, workers=3, pause_s=0.05), write_job(31, workers=1, pause_s=0.05),
            read_job(41, workers=1, pause_s=0.05)]  # fmt: skip
    with Load(faults.url, FAULT_TOKEN, jobs) as load:
        time.sleep(1.0)
        cluster.stop("fast")
        stopped_at = time.monotonic()
        time.sleep(OUTAGE_S / 2)
        ready_away = _servers(faults)
        time.sleep(OUTAGE_S / 2)
        starting_at = time.monotonic()  # the server accepts before pg_ctl returns
        cluster.start()
        up_at = time.monotonic()
        time.sleep(3.0)
        ready_back = _servers(faults)
    outcomes = load.outcomes
    away = [
        o for o in outcomes if o.name != "read 41" and stopped_at <= o.start and o.end < starting_at
    ]
    first_ok = min(
        (o.end for o in outcomes if o.name == "read 31" and o.start >= up_at and o.status == 200),
        default=float("inf"),
    )
    acked = acked_writes(outcomes)
    found = faults.found_markers(31, acked)
    with capsys.disabled():
        print()
        print(table(f"outage of server a ({OUTAGE_S:.0f} s) under load", outcomes,
                    answered_while_away=f"{by_status(away)}",
                    recovery_s=f"{first_ok - up_at:.2f} (from the server's start to the"
                               " first read answered)",
                    readyz_while_away=str(ready_away), readyz_after=str(ready_back),
                    acknowledged_writes_found=f"{len(found)} of {len(acked)}"))  # fmt: skip
    assert not [o for o in outcomes if o.status in (0, 500)], by_status(outcomes)
    assert worst_overrun(outcomes) <= 1.0
    # While the server is away its tenant's requests are refused, fast and retryable.
    assert away and all(o.code == "backend_unavailable" for o in away), by_status(away)
    assert all(o.seconds < 1.0 and o.retry_after for o in away)
    assert all(o.status == 200 for o in outcomes if o.name == "read 41"), by_status(outcomes)
    assert first_ok - up_at < 2.0
    assert found == set(acked)
    # /readyz stays 200 (other servers' tenants are served) and names the server away.
    a, b = (f":{faults.clusters[n].server.port}" for n in ("a", "b"))
    assert _state(ready_away, a) == "failing" and _state(ready_away, b) == "up", ready_away
    assert _state(ready_back, a) == "up" and _state(ready_back, b) == "up", ready_back


def _servers(faults: FaultStack) -> dict[str, dict[str, object]]:
    answer = httpx.get(f"{faults.url}/readyz", timeout=10)
    assert answer.status_code == 200, answer.text
    servers: dict[str, dict[str, object]] = answer.json()["servers"]
    return servers


def _state(servers: dict[str, dict[str, object]], port: str) -> object:
    (state,) = [s["state"] for key, s in servers.items() if key.endswith(port)]
    return state


def test_kill_9_of_tenantgate_loses_no_acknowledged_write(
    faults: FaultStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every write tenantgate acknowledged is in the database after it was killed; the
    writes cut off by the kill got no answer (their outcome is the caller's to check)."""
    jobs = [write_job(31, workers=4), write_job(41, workers=2)]
    with (
        serve(faults.config, faults.root / "killed.log") as (url, pid),
        Load(url, FAULT_TOKEN, jobs) as load,
    ):
        time.sleep(seconds(2.0))
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    outcomes = load.outcomes
    acked: dict[int, list[str]] = {31: [], 41: []}
    for o in outcomes:
        if o.status == 200 and o.marker is not None:
            acked[int(o.name.split()[1])].append(o.marker)
    found = {tenant: faults.found_markers(tenant, markers) for tenant, markers in acked.items()}
    with capsys.disabled():
        print()
        print(table("kill -9 of tenantgate mid-writes", outcomes,
                    acknowledged_writes_found=", ".join(
                        f"tenant {t}: {len(found[t])} of {len(m)}"
                        for t, m in acked.items())))  # fmt: skip
    assert sum(map(len, acked.values())) > 50
    assert [o for o in outcomes if o.status == 0], "the kill cut no request off"
    assert not [o for o in outcomes if o.status not in (0, 200)], by_status(outcomes)
    for tenant, markers in acked.items():
        assert found[tenant] == set(markers)
    assert acked_writes(outcomes)
