"""Server restarts and terminated backends under mixed read and write load."""

from __future__ import annotations

import time

import pytest

from tests.support.faults import (
    FAULT_TOKEN,
    FaultStack,
    Job,
    Load,
    Outcome,
    acked_writes,
    burst,
    by_status,
    read_job,
    seconds,
    table,
    worst_overrun,
    write_job,
)

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

# What a caller may meet while its server restarts: the server is away (503) or a
# statement in flight is cut off with it. Never a 500.
ACCEPTED = {"", "backend_unavailable", "statement_timeout", "pool_saturated"}


def _jobs() -> list[Job]:
    return [
        read_job(31, workers=4, pause_s=0.01),
        write_job(31, workers=2, pause_s=0.01),
        read_job(41, workers=1, pause_s=0.02),
    ]


@pytest.mark.parametrize("fault", ["restart fast", "restart immediate", "terminate backends"])
def test_a_restart_costs_no_reads_and_no_acknowledged_write(
    faults: FaultStack, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = faults.clusters["a"]
    with Load(faults.url, FAULT_TOKEN, _jobs()) as load:
        time.sleep(seconds(2.0))
        fault_at = time.monotonic()
        if fault == "terminate backends":
            faults.terminate_backends(31)
            after: list[Outcome] = burst(faults.url, FAULT_TOKEN, read_job(31), 10)
        else:
            cluster.restart(fault.split()[1])
            back_at = time.monotonic()
            time.sleep(max(0.0, back_at + 2.0 - time.monotonic()))
            after = burst(faults.url, FAULT_TOKEN, read_job(31), 10)
        up_at = time.monotonic()
        time.sleep(seconds(2.0))
    outcomes = load.outcomes
    first_ok = min(
        (
            o.end
            for o in outcomes
            if o.name == "read 31" and o.start >= fault_at and o.status == 200
        ),
        default=float("inf"),
    )
    acked = acked_writes(outcomes)
    found = faults.found_markers(31, acked)
    duplicated = faults.duplicated_markers(31)
    with capsys.disabled():
        print()
        when = "at once" if fault.startswith("term") else "2 s after the restart"
        print(table(f"{fault} of server a under load", outcomes + after,
                    recovery_s=f"{first_ok - fault_at:.2f} (from the fault to the first"
                               " read answered)",
                    burst_after=f"{by_status(after)} ({when})",
                    acknowledged_writes_found=f"{len(found)} of {len(acked)}",
                    markers_written_twice=duplicated))  # fmt: skip
    assert not [o for o in outcomes + after if o.code not in ACCEPTED], by_status(outcomes)
    assert worst_overrun(outcomes) <= 1.0
    assert all(o.status == 200 for o in after), by_status(after)
    assert [o for o in outcomes if o.name == "read 41" and o.start > fault_at and o.end < up_at]
    assert all(o.status == 200 for o in outcomes if o.name == "read 41"), by_status(outcomes)
    assert found == set(acked)
    assert duplicated == 0
