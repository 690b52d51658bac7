"""Tables: physical tables get an alias (before scopes are built: their alias or their
name) and, once columns are done, the tenant's physical spelling and the marker
catalog/schema qualifiers that ``Plan.bind`` fills in (SQL Server and PostgreSQL:
SQLite output is never qualified). Each is a rule in ``rewriter.rules``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlglot import exp

from rewriter.markers import CATALOG_MARKER, META_PHYSICAL, SCHEMA_MARKER
from rewriter.shapes import TableShape

QUALIFIED_BACKENDS = frozenset({"sqlserver", "postgresql"})


def physical_tables(tree: exp.Expr) -> list[exp.Table]:
    return [t for t in tree.find_all(exp.Table) if t.meta.get(META_PHYSICAL)]


def alias_tables(tree: exp.Expr) -> None:
    for table in physical_tables(tree):
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.Identifier(this=table.name)))


def physical_names(tables: Iterable[exp.Table], shapes: Mapping[str, TableShape]) -> None:
    """Each table's logical (casefolded) name becomes the tenant's physical spelling."""
    for table in tables:
        table.set("this", exp.Identifier(this=shapes[table.name].name, quoted=True))


def qualifier_markers(tables: Iterable[exp.Table]) -> None:
    """Each table gets the marker catalog and schema that ``Plan.bind`` replaces."""
    for table in tables:
        table.set("db", exp.Identifier(this=SCHEMA_MARKER, quoted=True))
        table.set("catalog", exp.Identifier(this=CATALOG_MARKER, quoted=True))
