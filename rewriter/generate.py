"""Pass 8: SQL text for the backend, every identifier quoted, parameters as ``?``."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from rewriter.errors import ConstructNotSupportedOnBackend
from rewriter.markers import BACKEND_DIALECTS, CATALOG_MARKER, SCHEMA_MARKER


def generate(tree: exp.Expr, backend: str) -> str:
    """Comments are dropped: nothing the caller wrote reaches the backend unparsed."""
    if backend == "sqlite":
        # SQLite has no N'...' literals (sqlglot passes them through): plain strings.
        for national in list(tree.find_all(exp.National)):
            national.replace(exp.Literal.string(national.name))
    try:
        return tree.sql(
            dialect=BACKEND_DIALECTS[backend],
            identify=True,
            comments=False,
            unsupported_level=ErrorLevel.RAISE,
        )
    except UnsupportedError as error:
        raise ConstructNotSupportedOnBackend(
            f"the statement cannot be written for {backend}: {error}", backend=backend
        ) from None


def quote(name: str, backend: str) -> str:
    if backend == "sqlserver":
        return "[" + name.replace("]", "]]") + "]"
    return '"' + name.replace('"', '""') + '"'


def qualifier_markers(backend: str) -> tuple[str, str]:
    """The quoted catalog and schema markers, each with its trailing dot."""
    return quote(CATALOG_MARKER, backend) + ".", quote(SCHEMA_MARKER, backend) + "."


def bind(sql: str, backend: str, catalog: str | None, schema: str | None) -> str:
    """Replace the qualifier markers: a string replacement, not a regeneration."""
    if backend == "sqlite":
        return sql
    catalog_marker, schema_marker = qualifier_markers(backend)
    if backend == "postgresql" and schema is None:
        catalog = None  # "db".."t" is not PostgreSQL; a connection is bound to one database
    if catalog is not None and schema is None:
        schema_text = "."  # SQL Server: [db]..[t] is the default schema of the login
    else:
        schema_text = "" if schema is None else quote(schema, backend) + "."
    catalog_text = "" if catalog is None else quote(catalog, backend) + "."
    if catalog is not None and schema is None:
        return sql.replace(catalog_marker + schema_marker, catalog_text + schema_text)
    return sql.replace(catalog_marker, catalog_text).replace(schema_marker, schema_text)
