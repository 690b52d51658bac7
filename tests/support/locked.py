"""A SQLite file held under an exclusive lock by another process: a stalled controller.

``locked(path)`` starts a Python process that opens ``path`` with the standard
library's sqlite3 and runs ``BEGIN EXCLUSIVE``; the block runs while it holds the lock,
which ends (``ROLLBACK``) when the block does. Every other connection to the file,
the SQLite ODBC driver's included, then waits in its busy handler for its ``Timeout=``,
exactly as behind an operator's long write or a backup tool's lock. Another process
rather than another connection of this one: POSIX record locks belong to a process, so
that is how the lock looks in production.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
db.close()
"""


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """``path`` under an exclusive lock held by another process, for the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError(f"the lock holder did not lock {path}: {line!r}")
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        try:
            holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
