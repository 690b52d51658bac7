"""``rewrite``: a checked statement plus the tenant's table shapes -> a ``Plan``.

Passes, in order, on a copy of the parsed tree:

6a. ``qualify.alias_tables``  every physical table gets an alias
5.  ``columns``               per scope: expand stars and CUSTOM_FIELDS, check and
                              qualify columns, name outputs (``expand``, ``sources``)
6b. ``qualify.qualify_tables`` physical spelling, marker catalog/schema
6c. ``row_cap.apply``         (``row_cap=True``, reads) a bound row count on the outermost
                              query (LIMIT, TOP, FETCH; a SQL Server set operation
                              without ORDER BY is wrapped, so the root may change)
7.  ``params.mark``           parameters -> unique markers
8.  ``generate``              backend SQL, then markers -> ``?`` in text order

The plan depends on the statement, the options and the shapes, never on where the
tenant lives: ``bind`` drops the database/schema in by string replacement.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from rewriter import expand, params, qualify, writes
from rewriter import generate as gen
from rewriter.columns import qualify_columns
from rewriter.errors import ConstructNotAllowed, UnknownTable
from rewriter.markers import BACKEND_DIALECTS
from rewriter.parse import ParsedStatement
from rewriter.row_cap import RowCap
from rewriter.row_cap import apply as apply_row_cap
from rewriter.shapes import TableShape
from rewriter.sources import Context
from rewriter.statement import WRITE

MISSING_COLUMN_POLICIES = ("error", "null")


@dataclass(frozen=True)
class Plan:
    """Backend SQL for one statement, still without the tenant's location."""

    sql: str  # with qualifier markers; use ``bind``
    columns: tuple[str, ...]
    param_order: tuple[int | str | RowCap, ...]  # a RowCap entry is the row cap's bind
    statement_class: str
    backend: str

    def bind(self, *, catalog: str | None, schema: str | None) -> str:
        """The SQL that runs, qualified with the tenant's database and schema."""
        pieces = self._bind_pieces
        if pieces is None:
            return gen.bind(self.sql, self.backend, catalog, schema)
        # The hot path of a cached plan: a join, not a search through a long text.
        return gen.bind(_QUALIFIERS[self.backend], self.backend, catalog, schema).join(pieces)

    @functools.cached_property
    def _bind_pieces(self) -> tuple[str, ...] | None:
        """The SQL split at each catalog+schema marker pair, or None if a marker is alone."""
        pieces = tuple(self.sql.split(_QUALIFIERS[self.backend]))
        catalog, schema = gen.qualifier_markers(self.backend)
        if any(catalog in piece or schema in piece for piece in pieces):
            return None
        return pieces


_QUALIFIERS = {backend: "".join(gen.qualifier_markers(backend)) for backend in BACKEND_DIALECTS}


def rewrite(
    parsed: ParsedStatement,
    *,
    tables: Mapping[str, TableShape | None],
    backend: str,
    missing_columns: str = "error",
    tenant_label: str = "",
    allow_unfiltered: bool = False,
    row_cap: bool = False,
) -> Plan:
    """``allow_unfiltered`` lets an UPDATE or DELETE without WHERE through; it gates
    the plan but does not change it (a plan cache checks it before its lookup).
    ``row_cap`` bounds a read's rows with a bind parameter
    (see ``rewriter.row_cap``): the caller binds it, for the ``RowCap`` entry of
    ``param_order``."""
    writes.require_filter(parsed.unfiltered, allow_unfiltered=allow_unfiltered)
    if backend not in BACKEND_DIALECTS:
        raise ValueError(f"unknown backend {backend!r}")
    if missing_columns not in MISSING_COLUMN_POLICIES:
        raise ValueError(f"missing_columns must be one of {MISSING_COLUMN_POLICIES}")
    shapes = _shapes(parsed, tables, tenant_label)
    ctx = Context(shapes=shapes, missing_null=missing_columns == "null", tenant=tenant_label)
    tree: exp.Expr = parsed.expression.copy()
    try:
        qualify.alias_tables(tree)
        if parsed.statement_class == WRITE:
            columns = writes.qualify_write(tree, ctx, backend)
        else:
            columns = qualify_columns(tree, ctx)
        qualify.qualify_tables(tree, shapes, backend)
        if row_cap and parsed.statement_class != WRITE:
            tree = apply_row_cap(tree, backend, columns)
        bindings = params.mark(tree)
        generated = gen.generate(tree, backend, shapes, parsed.dialect)
        sql, order = params.unmark(generated, bindings)
        sql = expand.splice(sql, ctx, backend)
    except RecursionError:
        raise ConstructNotAllowed("the statement is nested too deeply") from None
    return Plan(
        sql=sql,
        columns=columns,
        param_order=order,
        statement_class=parsed.statement_class,
        backend=backend,
    )


def _shapes(
    parsed: ParsedStatement, tables: Mapping[str, TableShape | None], tenant: str
) -> dict[str, TableShape]:
    folded = {name.casefold(): shape for name, shape in tables.items()}
    shapes: dict[str, TableShape] = {}
    for name in sorted(parsed.tables):
        shape = folded.get(name)
        if shape is None:
            where = f" for tenant {tenant}" if tenant else ""
            raise UnknownTable(f"unknown table {name!r}{where}", table=name, tenant=tenant or None)
        shapes[name] = shape
    return shapes
