"""A network partition of one PostgreSQL server while tenants of every server are loaded."""

from __future__ import annotations

import time

import pytest

from tests.support.faults import (
    FAULT_TOKEN,
    POOL,
    FaultStack,
    Firewall,
    Load,
    acked_writes,
    by_status,
    read_job,
    seconds,
    slow_job,
    table,
    worst_overrun,
    write_job,
)

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

CUT_S = seconds(8.0)
# Load after the heal: longer than the recovery bound below (5 s), so that a recovery in
# 4-5 s is seen as one.
AFTER_S = max(seconds(4.0), 6.0)


def test_a_partitioned_server_costs_only_its_own_tenants(
    faults: FaultStack, firewall: Firewall, capsys: pytest.CaptureFixture[str]
) -> None:
    port = faults.clusters["a"].server.port
    jobs = [
        read_job(31, workers=6),
        write_job(31, workers=2),
        read_job(41, workers=2, pause_s=0.01),
        read_job(1, workers=2, pause_s=0.01, name="read sqlite"),
        slow_job(1, timeout_ms=1000, name="slow sqlite"),
    ]
    with Load(faults.url, FAULT_TOKEN, jobs) as load:
        time.sleep(seconds(2.0))
        cut_at = time.monotonic()
        with firewall.partition(port):
            time.sleep(CUT_S)
        healed_at = time.monotonic()
        time.sleep(AFTER_S)
    outcomes = load.outcomes
    during = [o for o in outcomes if cut_at <= o.start < healed_at]
    first_ok = min(
        (
            o.end
            for o in outcomes
            if o.name == "read 31" and o.start >= healed_at and o.status == 200
        ),
        default=float("inf"),
    )
    # Connections given up during the partition closed on our side; the server learns it
    # when the retransmitted FIN gets through after the heal.
    settle = time.monotonic()
    while (connections := faults.backend_connections("a")) > POOL["max_size"]:
        if time.monotonic() - settle > 60:
            break
        time.sleep(0.5)
    settled_s = time.monotonic() - settle + AFTER_S
    acked = acked_writes(outcomes)
    found = faults.found_markers(31, acked)
    with capsys.disabled():
        print()
        print(table(f"partition of server a ({CUT_S:.0f} s), all requests", outcomes,
                    recovery_s=f"{first_ok - healed_at:.2f}",
                    worst_overrun_s=f"{worst_overrun(outcomes):.2f}",
                    connections_on_a=f"{connections} (pool max {POOL['max_size']}),"
                                     f" {settled_s:.1f} s after the heal",
                    acknowledged_writes_found=f"{len(found)} of {len(acked)}"))  # fmt: skip
    assert worst_overrun(outcomes) <= 1.0
    assert not [
        o for o in outcomes if o.status == 0 or (o.status >= 500 and o.status not in (503, 504))
    ]
    others = [o for o in during if o.name in ("read 41", "read sqlite")]
    assert others and all(o.status == 200 for o in others), by_status(others)
    slow = [o for o in during if o.name == "slow sqlite"]
    assert slow and all(o.code == "statement_timeout" for o in slow), by_status(slow)
    assert first_ok - healed_at < 5.0
    assert connections <= POOL["max_size"]
    assert found == set(acked)
