"""A daemon thread that runs a pool's maintenance every so often, until stopped.

Idle connections of quiet pools must be closed on time even when nobody asks those
pools for a connection, so maintenance cannot wait for the next request. The ODBC
pools and the SQLite driver (whose pools serve threads too) share this one; the
PostgreSQL driver's maintenance is a task on its event loop instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from proxy.drivers.sizing import check_seconds

__all__ = ["Janitor"]

log = logging.getLogger(__name__)


class Janitor:
    def __init__(self, work: Callable[[], None], *, interval: float, name: str) -> None:
        check_seconds("maintenance_interval", interval)
        self._work = work
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._work()
            except Exception:
                # A failed round must not end maintenance for the life of the process.
                log.exception("%s: maintenance failed", self._thread.name)

    def stop(self) -> None:
        """Stop, and wait for a round in progress (unless called from that round)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
