"""The fault-injection suite: real servers restarted, stopped, partitioned and stalled
under load, with tenantgate's real service process in front (tests/support/faults.py).

It needs root and iptables, which CI has (``make test`` runs as root there); elsewhere
it skips, saying why. In CI a missing piece is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.faults import FaultStack, Firewall, fault_stack, firewall_missing


def _required() -> bool:
    return os.environ.get("CI", "").casefold() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def firewall() -> Iterator[Firewall]:
    missing = firewall_missing()
    if missing is not None:
        if _required():
            pytest.fail(f"the fault suite must run in CI: {missing}")
        pytest.skip(missing)
    with Firewall() as fw:
        yield fw


@pytest.fixture(scope="module")
def faults(firewall: Firewall, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    with fault_stack(tmp_path_factory.mktemp("faults")) as stack:
        yield stack
