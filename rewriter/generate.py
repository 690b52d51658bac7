"""Pass 8: SQL text for the backend (T-SQL meaning kept by ``transforms``), every
identifier quoted, parameters as ``?``."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, UnsupportedError

from rewriter import transforms
from rewriter.errors import ConstructNotSupportedOnBackend
from rewriter.functions import check_backend
from rewriter.markers import BACKEND_DIALECTS, CATALOG_MARKER, SCHEMA_MARKER
from rewriter.nodes import bfs
from rewriter.shapes import TableShape


def generate(
    tree: exp.Expr,
    backend: str,
    shapes: Mapping[str, TableShape] | None = None,
    source_dialect: str = "tsql",
) -> str:
    """Comments are dropped: nothing the caller wrote reaches the backend unparsed.

    First the functions the backend cannot run are refused (``functions``), then the
    transforms give each construct its T-SQL meaning there (``transforms``); ``tree``
    is changed in place. ``shapes`` give column types to the transforms that need them.
    """
    nodes = bfs(tree)
    check_backend(tree, backend, nodes)
    transforms.apply(tree, backend, shapes or {}, source_dialect, nodes)
    if backend == "sqlserver":
        # sqlglot writes FETCH FIRST ROW ONLY without its implied count, which is not
        # T-SQL ("FETCH FIRST ROWS ONLY"): make the count explicit.
        for node in nodes:
            if isinstance(node, exp.Fetch) and node.args.get("count") is None:
                node.set("count", exp.Literal.number(1))
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
