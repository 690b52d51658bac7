"""The kinds of database server a tenant can live on."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from tenancy.errors import TenantMisconfigured


class BackendKind(enum.StrEnum):
    """A backend family. The values are also the rewriter's backend names."""

    SQLSERVER = "sqlserver"
    POSTGRESQL = "postgresql"
    SQLITE = "sqlite"


def quote_identifier(name: str, kind: BackendKind | str) -> str:
    """A delimited identifier: ``[name]`` (``]`` doubled) on SQL Server, else ``"name"``
    (``"`` doubled). The one quoter of tenancy and proxy; the rewriter, which imports
    nothing of ours, has its own in ``rewriter.generate``. NUL is refused: no backend
    accepts it in a name, and some drivers end the statement text there."""
    if "\x00" in name:
        raise ValueError("identifiers must not contain NUL")
    if BackendKind(kind) is BackendKind.SQLSERVER:
        return "[" + name.replace("]", "]]") + "]"
    return '"' + name.replace('"', '""') + '"'


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


_LIBRARY_RE = re.compile(r"\.(?:so|dll|dylib)(?:\.[0-9]+)*$")


def driver_name(driver: str) -> str:
    """A ``Driver`` value without its braces and surrounding blanks."""
    name = driver.strip()
    if len(name) >= 2 and name[0] == "{" and name[-1] == "}":
        name = name[1:-1].replace("}}", "}").strip()
    return name


def is_library(driver: str) -> bool:
    """Whether ``driver`` names a shared library (a path or a file) rather than a
    driver registered with the driver manager."""
    name = driver_name(driver)
    return "/" in name or "\\" in name or bool(_LIBRARY_RE.search(name.casefold()))


def kind_for_driver(driver: str, libraries: Mapping[str, BackendKind] | None = None) -> BackendKind:
    """The backend a tenant is on, from its ODBC ``Driver`` value.

    The backend decides the SQL dialect and how the tenant's database is addressed, so an
    unrecognised driver is a misconfiguration rather than something to guess at.

    A library path (``Driver=/opt/.../libmsodbcsql-18.so``: the driver manager loads it
    without a registration) is accepted only when it is one of ``libraries``, the paths
    the deployment's own backend templates name; its backend is that template's. Any
    other path would let a controller record make this process load any shared library.
    """
    name = driver_name(driver)
    if is_library(name):
        kind = (libraries or {}).get(name)
        if kind is None:
            raise TenantMisconfigured(
                "Driver must name a driver registered with the ODBC driver manager, or a "
                "library that the backend template names, not another path"
            )
        return kind
    folded = name.casefold()
    for pattern, kind in _NAME_PATTERNS:
        if pattern.fullmatch(folded):
            return kind
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise TenantMisconfigured(
        f"unsupported ODBC driver {shown!r}: expected a SQL Server, PostgreSQL or SQLite driver",
        driver=shown,
    )
