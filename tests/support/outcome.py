"""Whether the test a fixture serves failed, for fixtures that reuse what they build.

A fixture that hands the same databases to several tests (because those tests leave
them as they found them) must not hand them on after a test that failed half-way: the
next test would inherit its leftovers. ``tests/conftest.py`` records each phase's
report on the item; ``failed(request)`` reads them in the fixture's teardown.
"""

from __future__ import annotations

import pytest

PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def failed(request: pytest.FixtureRequest) -> bool:
    """Whether the setup or the call of ``request``'s test did not pass (or never ran)."""
    reports = request.node.stash.get(PHASE_REPORTS, {})
    call = reports.get("call")
    return call is None or call.outcome != "passed" or reports["setup"].outcome != "passed"
