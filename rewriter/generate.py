"""SQL text for the backend: the ``generate`` rule (sqlglot's generator, every
identifier quoted, comments dropped) and SQL Server's ``tsql_fetch_count``; the
functions check and the T-SQL-meaning transforms before them are rules of their own
(``rewriter.rules``). Also the qualifier markers and ``bind``."""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, UnsupportedError

from rewriter.errors import ConstructNotSupportedOnBackend
from rewriter.markers import BACKEND_DIALECTS, CATALOG_MARKER, SCHEMA_MARKER


def tsql_fetch_count(nodes: Iterable[exp.Expr]) -> None:
    """SQL Server: sqlglot writes FETCH FIRST ROW ONLY without its implied count, which
    is not T-SQL ("FETCH FIRST ROWS ONLY"): make the count explicit."""
    for node in nodes:
        if isinstance(node, exp.Fetch) and node.args.get("count") is None:
            node.set("count", exp.Literal.number(1))


def to_sql(tree: exp.Expr, backend: str) -> str:
    """The backend's SQL for ``tree``. Comments are dropped: nothing the caller wrote
    reaches the backend unparsed."""
    # A fresh generator per statement (sqlglot's generators keep state between runs,
    # such as a counter for generated aliases), from a dialect built once: looking a
    # dialect up by name and building it costs about as much as the generation.
    generator = _DIALECTS[backend].generator(
        identify=True, comments=False, unsupported_level=ErrorLevel.RAISE
    )
    try:
        # The tree is the rewrite's own copy: a second one would cost a deep copy.
        return generator.generate(tree, copy=False)
    except UnsupportedError as error:
        raise ConstructNotSupportedOnBackend(
            f"the statement cannot be written for {backend}: {error}", backend=backend
        ) from None


_DIALECTS = {
    backend: Dialect.get_or_raise(dialect) for backend, dialect in BACKEND_DIALECTS.items()
}


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
