"""A view per backend that no machine can finish reading within a test's lifetime.

Tests of timeouts need a statement that is slow by construction, not by the speed of
the machine: a cross join that takes 300 ms here finishes inside the timeout on a
machine ten times faster. ``SlowRows`` is either a server-side sleep of an hour
(PostgreSQL) or a count over 10^13 or more rows (SQLite, SQL Server), so a timeout
of a second or two leaves a margin of three orders of magnitude either way. Reading it
through tenantgate is an ordinary, allowed ``SELECT n FROM SlowRows``.
"""

from __future__ import annotations

from typing import Any

SLOW_SQL = "SELECT n FROM SlowRows"

SLOW_VIEW = {
    "postgresql": 'CREATE VIEW "SlowRows" AS SELECT 1 AS n FROM pg_sleep(3600)',
    # A recursive count to 10^15: about 10^7 steps a second is the fastest SQLite goes.
    "sqlite": (
        "CREATE VIEW SlowRows AS WITH RECURSIVE c(x) AS "
        "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000000) "
        "SELECT count(*) AS n FROM c"
    ),
    # Babelfish has no WAITFOR; at least 10^13 rows (Babelfish's sys.all_columns has a few
    # thousand rows, SQL Server's many more).
    "sqlserver": (
        "CREATE VIEW dbo.SlowRows AS SELECT COUNT_BIG(*) AS n FROM sys.all_columns a "
        "CROSS JOIN sys.all_columns b CROSS JOIN sys.all_columns c CROSS JOIN sys.all_columns d"
    ),
}


def create_slow_view(conn: Any, backend: str) -> None:
    """Create ``SlowRows`` through ``conn`` (pyodbc or sqlite3), connected to the tenant's
    own database (SQL Server refuses three-part names in CREATE VIEW)."""
    conn.execute(SLOW_VIEW[backend])
    commit = getattr(conn, "commit", None)
    if commit is not None and not getattr(conn, "autocommit", False):
        commit()
