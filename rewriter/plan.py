"""``rewrite``: a checked statement plus the tenant's table shapes -> a ``Plan``.

The passes are data: ``rules.RULES``, named rules in pipeline order, each saying the
backends it serves, the statement classes it applies to and any option that gates it
(sqlglot's optimizer ``RULES``, in spirit). ``rewrite`` checks its arguments, looks the
statement's tables up, and runs the rules that serve the backend, the statement class,
the logical SQL's dialect and the options over one ``rules.State`` (on a copy of the
parsed tree):

alias_tables                 every physical table gets an alias
qualify_columns   (reads)    per scope: expand stars and CUSTOM_FIELDS, check and
                             qualify columns, name outputs (``expand``, ``sources``)
qualify_write     (writes)   the same for a write's queries; its own clauses against
                             the target; OUTPUT/RETURNING names
tsql_output, sqlite_write_columns                      (writes, one backend each)
physical_names               the tenant's physical spelling of every table
qualifier_markers            marker catalog/schema (SQL Server, PostgreSQL)
tsql_delete_output, sqlite_values_cte, sqlite_returning_cte   (writes, one backend each)
row_cap, tsql_row_cap        (``row_cap=True``, reads) a bound row count on the
                             outermost query: LIMIT (PostgreSQL, SQLite), or TOP /
                             FETCH / a wrapper around a set operation without ORDER BY
                             (SQL Server: the root may change)
mark_params                  parameters -> unique markers
check_functions              functions the backend cannot run are refused
convert_to_cast ... national_literals   the transforms (``rewriter.transforms``):
                             T-SQL meaning on PostgreSQL and SQLite, each run only
                             when the tree holds the node types it acts on
tsql_fetch_count             FETCH's implied count made explicit (SQL Server)
lift_literals                (``lift_literals=True``, PostgreSQL) literals a filter
                             compares with a table's column -> markers bound to
                             ``Lifted`` values (``lift``)
generate                     backend SQL (``generate``)
unmark_params                markers -> ``?`` in text order: ``param_order``
splice                       wide expansions' column lists put in as text

The plan depends on the statement, the options and the shapes, never on where the
tenant lives: ``bind`` drops the database/schema in by string replacement.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from rewriter import generate as gen
from rewriter import rules, writes
from rewriter.errors import UnknownTable
from rewriter.lift import Lifted
from rewriter.markers import BACKEND_DIALECTS
from rewriter.parse import ParsedStatement, too_deep
from rewriter.row_cap import RowCap
from rewriter.shapes import TableShape
from rewriter.sources import Context

MISSING_COLUMN_POLICIES = ("error", "null")


@dataclass(frozen=True)
class Plan:
    """Backend SQL for one statement, still without the tenant's location."""

    sql: str  # with qualifier markers; use ``bind``
    columns: tuple[str, ...]
    # A RowCap entry is the row cap's bind, a Lifted one a literal taken out of the text.
    param_order: tuple[int | str | RowCap | Lifted, ...]
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
    lift_literals: bool = False,
) -> Plan:
    """``allow_unfiltered`` lets an UPDATE or DELETE without WHERE through; it gates
    the plan but does not change it (a plan cache checks it before its lookup).
    ``row_cap`` bounds a read's rows with a bind parameter
    (see ``rewriter.row_cap``): the caller binds it, for the ``RowCap`` entry of
    ``param_order``. ``lift_literals`` sends the literals a filter compares with a
    column as parameters, on PostgreSQL (``rewriter.lift``): the caller binds each
    ``Lifted`` entry's text."""
    writes.require_filter(parsed.unfiltered, allow_unfiltered=allow_unfiltered)
    if backend not in BACKEND_DIALECTS:
        raise ValueError(f"unknown backend {backend!r}")
    if missing_columns not in MISSING_COLUMN_POLICIES:
        raise ValueError(f"missing_columns must be one of {MISSING_COLUMN_POLICIES}")
    shapes = table_shapes(parsed, tables, tenant_label)
    ctx = Context(shapes=shapes, missing_null=missing_columns == "null", tenant=tenant_label)
    state = rules.State(parsed.expression.copy(), ctx, backend, parsed.dialect)
    options = _OPTIONS[row_cap, lift_literals]
    pipeline = rules.PIPELINES.get((backend, parsed.statement_class, parsed.dialect, options))
    if pipeline is None:
        pipeline = rules.select(backend, parsed.statement_class, parsed.dialect, options)
    try:
        pipeline.run(state)
    except RecursionError:
        raise too_deep() from None
    return Plan(
        sql=state.sql,
        columns=state.columns,
        param_order=state.param_order,
        statement_class=parsed.statement_class,
        backend=backend,
    )


# (row_cap, lift_literals) -> the rules' options: made once, not per call.
_OPTIONS: dict[tuple[bool, bool], frozenset[str]] = {
    (cap, lift): frozenset(name for name, on in (("row_cap", cap), ("lift_literals", lift)) if on)
    for cap in (False, True)
    for lift in (False, True)
}


def table_shapes(
    parsed: ParsedStatement, tables: Mapping[str, TableShape | None], tenant: str = ""
) -> dict[str, TableShape]:
    """The statement's tables by their names in it; ``UnknownTable`` for one the tenant
    lacks (``tenant`` names it in the message)."""
    folded = {name.casefold(): shape for name, shape in tables.items()}
    shapes: dict[str, TableShape] = {}
    for name in sorted(parsed.tables):
        shape = folded.get(name)
        if shape is None:
            where = f" for tenant {tenant}" if tenant else ""
            raise UnknownTable(f"unknown table {name!r}{where}", table=name, tenant=tenant or None)
        shapes[name] = shape
    return shapes
