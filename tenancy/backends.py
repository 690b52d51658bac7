"""The kinds of database server a tenant can live on."""

from __future__ import annotations

import enum
import re

from tenancy.errors import TenantMisconfigured


class BackendKind(enum.StrEnum):
    """A backend family. The values are also the rewriter's backend names."""

    SQLSERVER = "sqlserver"
    POSTGRESQL = "postgresql"
    SQLITE = "sqlite"


# Registered driver names (odbcinst.ini sections on Unix, driver names on Windows).
_NAME_PATTERNS: tuple[tuple[re.Pattern[str], BackendKind], ...] = (
    (re.compile(r"sqlite3?(?: odbc)?(?: driver)?(?: \(utf-?8\))?"), BackendKind.SQLITE),
    (
        re.compile(
            r"(?:postgresql(?: odbc driver)?|psqlodbc)"
            r"(?: ?\(?(?:unicode|ansi)\)?)?(?: ?\(x(?:64|86)\))?"
        ),
        BackendKind.POSTGRESQL,
    ),
    (
        re.compile(
            r"odbc driver \d+ for sql server|sql server(?: native client \d+(?:\.\d+)?)?"
            r"|sql native client|freetds"
        ),
        BackendKind.SQLSERVER,
    ),
)


def kind_for_driver(driver: str) -> BackendKind:
    """The backend a tenant is on, from its ODBC ``Driver`` value.

    The backend decides the SQL dialect and how the tenant's database is addressed, so an
    unrecognised driver is a misconfiguration rather than something to guess at.
    """
    name = driver.strip()
    if len(name) >= 2 and name[0] == "{" and name[-1] == "}":
        name = name[1:-1].replace("}}", "}").strip()
    if "/" in name or "\\" in name:
        # A path would let a controller record make this process load any shared library.
        raise TenantMisconfigured(
            "Driver must name a driver registered with the ODBC driver manager, not a path"
        )
    folded = name.casefold()
    for pattern, kind in _NAME_PATTERNS:
        if pattern.fullmatch(folded):
            return kind
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise TenantMisconfigured(
        f"unsupported ODBC driver {shown!r}: expected a SQL Server, PostgreSQL or SQLite driver",
        driver=shown,
    )
