"""Pass 6: physical tables get an alias (before scopes are built: their alias or their
name) and, once columns are done, the tenant's physical spelling and marker
catalog/schema qualifiers that ``Plan.bind`` fills in."""

from __future__ import annotations

from collections.abc import Mapping

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


def qualify_tables(tree: exp.Expr, shapes: Mapping[str, TableShape], backend: str) -> None:
    for table in physical_tables(tree):
        shape = shapes[table.name]
        table.set("this", exp.Identifier(this=shape.name, quoted=True))
        if backend in QUALIFIED_BACKENDS:
            table.set("db", exp.Identifier(this=SCHEMA_MARKER, quoted=True))
            table.set("catalog", exp.Identifier(this=CATALOG_MARKER, quoted=True))
