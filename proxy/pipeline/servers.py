"""What requests have lately seen of each backend server, for ``/readyz`` and metrics.

A probe of its own per server would cost every server a query per probe and per
process, and would say less than the traffic does: so the state comes from the
requests' outcomes. A statement that ran (whatever its result) shows the server
answering; ``BackendUnavailable`` (no connection, or one lost under a statement)
shows it not answering. A server is ``failing`` from its first such error until a
statement runs on it again; a server no request has used since start is absent.

SQLite files are not servers (their "server" is the local disk, and a missing file
is one tenant's trouble), so only PostgreSQL and SQL Server servers are tracked.

The hot path pays one dictionary lookup per statement while a server is up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from proxy.errors import ProxyError
from tenancy.backends import BackendKind

__all__ = ["ServerHealth"]

TRACKED = frozenset({BackendKind.POSTGRESQL, BackendKind.SQLSERVER})


@dataclass(slots=True)
class _State:
    failing: bool
    since: float  # monotonic time of the last change of ``failing``
    failures: int = 0  # BackendUnavailable errors since the last statement that ran
    error: str = ""  # the last error's code


class ServerHealth:
    """Each server's state, keyed by its secret-free ``server_key``."""

    def __init__(self) -> None:
        self._states: dict[str, _State] = {}

    def answered(self, kind: BackendKind, server_key: str) -> None:
        """A statement ran on the server (its own result does not matter)."""
        state = self._states.get(server_key)
        if state is not None and not state.failing:
            return
        if kind not in TRACKED:
            return
        if state is None:
            self._states[server_key] = _State(failing=False, since=time.monotonic())
        else:
            state.failing, state.since, state.failures = False, time.monotonic(), 0

    def unavailable(self, kind: BackendKind, server_key: str, error: ProxyError) -> None:
        """No connection to the server, or one lost under a statement."""
        if kind not in TRACKED:
            return
        state = self._states.get(server_key)
        now = time.monotonic()
        if state is None:
            state = self._states[server_key] = _State(failing=True, since=now)
        elif not state.failing:
            state.failing, state.since = True, now
        state.failures += 1
        state.error = error.code

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{server_key: {"state": "up"|"failing", "for_s": ..., ...}}``."""
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for key, state in sorted(self._states.items()):
            entry: dict[str, Any] = {
                "state": "failing" if state.failing else "up",
                "for_s": round(now - state.since, 1),
            }
            if state.failing:
                entry["failures"] = state.failures
                entry["code"] = state.error
            out[key] = entry
        return out

    def with_pool_stats(self, pools: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """``pools`` (``Drivers.get_stats``) with ``failing`` (0 or 1) for each server
        tracked here, for the metrics."""
        for key, state in list(self._states.items()):
            pools.setdefault(key, {})["failing"] = int(state.failing)
        return pools
