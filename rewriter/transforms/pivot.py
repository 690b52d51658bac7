"""T-SQL's PIVOT, written as the conditional aggregates it stands for.

``FROM (SELECT a, b, c FROM t) AS s PIVOT (SUM(c) FOR b IN ([x], [y])) AS p`` groups
the source by every column other than ``b`` and ``c`` (T-SQL's implicit grouping)
and spreads ``c`` over one column per listed value::

    FROM (SELECT s.a, SUM(CASE WHEN s.b = 'x' THEN s.c END) AS x,
                      SUM(CASE WHEN s.b = 'y' THEN s.c END) AS y
          FROM (SELECT a, b, c FROM t) AS s GROUP BY s.a) AS p

That is ordinary SQL over the tenant's own derived table, so the rewrite runs before
``qualify_columns`` (rule ``pivot``) on every backend, and every column is then
qualified and checked like any other. The source must be a derived table whose select
list names its columns (``SELECT *`` or a bare table would make the grouping depend
on the table's full column list). UNPIVOT is refused.

``check`` runs at parse time (the allow-list), ``rewrite`` at rewrite time.
"""

from __future__ import annotations

import re

from sqlglot import exp

from rewriter.errors import ConstructNotAllowed
from rewriter.sources import output_name

AGGREGATES = (exp.Sum, exp.Count, exp.Avg, exp.Min, exp.Max)
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?")
# What T-SQL's PIVOT sets; the rest (sqlglot's naming flags aside) are other dialects'.
_EXPECTED_ARGS = frozenset(
    {"expressions", "fields", "alias", "columns", "unpivot"}
    | {"identify_pivot_strings", "prefixed_pivot_columns", "pivot_column_naming"}
)
_FORM = (
    "write FROM (SELECT a, b, c FROM t) AS s PIVOT (SUM(c) FOR b IN ([v1], [v2])) AS p, "
    "or the conditional aggregates it stands for: SELECT a, SUM(CASE WHEN b = 'v1' "
    "THEN c END) AS v1, ... FROM t GROUP BY a"
)


def _refuse(construct: str, why: str) -> ConstructNotAllowed:
    return ConstructNotAllowed(f"{construct} {why}", construct=construct)


def check(node: exp.Expr) -> None:
    """Parse time: a PIVOT of the one form ``rewrite`` carries."""
    assert isinstance(node, exp.Pivot)
    if node.args.get("unpivot"):
        raise _refuse(
            "UNPIVOT",
            "is not supported: write one SELECT per column (WHERE the column IS NOT NULL) "
            "combined with UNION ALL",
        )
    for arg, value in node.args.items():
        if arg not in _EXPECTED_ARGS and value not in (None, False, [], ""):
            raise _refuse(f"PIVOT with {arg.upper()}", f"is not supported: {_FORM}")
    source = node.parent
    if not isinstance(source, exp.Subquery) or node.arg_key != "pivots":
        raise _refuse("PIVOT on a table", f"is not supported: {_FORM}")
    if len(source.args.get("pivots") or []) != 1 or not isinstance(source.this, exp.Select):
        raise _refuse("PIVOT", f"is supported only over one SELECT: {_FORM}")
    if not isinstance(node.args.get("alias"), exp.TableAlias) or not source.alias:
        raise _refuse("PIVOT without an alias", f"is not supported: {_FORM}")
    if source.args["alias"].columns or node.args["alias"].columns:
        raise _refuse("PIVOT with column aliases AS s (a, b, ...)", f"is not supported: {_FORM}")
    aggregates, fields = node.expressions, node.args.get("fields") or []
    aggregate = aggregates[0] if len(aggregates) == 1 else exp.Null()
    if (
        type(aggregate) not in AGGREGATES
        or not _is_name(aggregate.this)
        or len(fields) != 1
        or not isinstance(fields[0], exp.In)
        or not _is_name(fields[0].this)
    ):
        raise _refuse("PIVOT", f"takes one SUM/COUNT/AVG/MIN/MAX of a column here: {_FORM}")
    values = fields[0].expressions
    if not values or not all(_is_name(v) for v in values):
        raise _refuse("PIVOT ... IN (...)", f"takes a list of [values] here: {_FORM}")
    names = [v.name.casefold() for v in values]
    if len(set(names)) != len(names):
        raise _refuse("PIVOT ... IN (...)", "lists a value twice")
    items = source.this.expressions
    outputs = [output_name(item) for item in items]
    if any(name is None for name in outputs) or any(_is_star(item) for item in items):
        raise _refuse(
            "PIVOT over a derived table without named columns",
            f"is not supported: list and name every column of the derived table; {_FORM}",
        )
    folded = [name.casefold() for name in outputs if name is not None]
    if len(set(folded)) != len(folded):
        raise _refuse("PIVOT over a derived table", "that names a column twice is not supported")
    value_column, spread_column = aggregate.this.name.casefold(), fields[0].this.name.casefold()
    for column in (value_column, spread_column):
        if column not in folded:
            raise _refuse(f"PIVOT column {column}", "is not a column of its derived table")
    grouping = [n for n in folded if n not in (value_column, spread_column)]
    if set(grouping) & set(names):
        raise _refuse("PIVOT ... IN (...)", "names a value that is also a column of the result")


def _is_star(item: exp.Expr) -> bool:
    """``*``, ``t.*`` or CUSTOM_FIELDS(): columns the statement does not name."""
    return isinstance(item, exp.Star | exp.Anonymous) or (
        isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
    )


def _is_name(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier)


def rewrite(tree: exp.Expr, backend: str) -> None:
    # Deepest first: a PIVOT inside another's derived table is rewritten before the
    # outer one copies that derived table.
    for pivot in reversed(list(tree.find_all(exp.Pivot))):
        source = pivot.parent
        assert isinstance(source, exp.Subquery) and isinstance(source.this, exp.Select)
        source.replace(_grouped(source, pivot, backend))


def value_literal(text: str, backend: str) -> exp.Expr:
    """A listed value as the literal to compare with. T-SQL converts ``[v]`` to the
    spread column's type; a string literal gets the same from SQL Server (N'...' keeps
    any character) and PostgreSQL (an untyped literal takes the column's type). SQLite
    converts a string only for a column with numeric affinity, not for an expression:
    a number is written as a number there (a TEXT column converts it back)."""
    if backend == "sqlserver":
        return exp.National(this=text)
    if backend == "sqlite" and _NUMBER_RE.fullmatch(text):
        return exp.Literal.number(text)
    return exp.Literal.string(text)


def _grouped(source: exp.Subquery, pivot: exp.Pivot, backend: str) -> exp.Subquery:
    inner = source.copy()
    inner.set("pivots", None)
    inner_alias = inner.alias_or_name
    aggregate = pivot.expressions[0]
    field = pivot.args["fields"][0]
    value_column, spread_column = aggregate.this.name, field.this.name

    def column(name: str) -> exp.Column:
        return exp.column(exp.to_identifier(name, quoted=True), table=inner_alias, quoted=True)

    skipped = {value_column.casefold(), spread_column.casefold()}
    grouping = [
        name
        for name in (output_name(item) for item in source.this.expressions)
        if name is not None and name.casefold() not in skipped
    ]
    items: list[exp.Expr] = [column(name) for name in grouping]
    for value in field.expressions:
        text = value.name
        literal = value_literal(text, backend)
        spread = exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=column(spread_column), expression=literal),
                    true=column(value_column),
                )
            ]
        )
        function = type(aggregate)(this=spread)
        items.append(exp.alias_(function, exp.to_identifier(text, quoted=True)))
    select = exp.Select(expressions=items).from_(inner)
    if grouping:
        select = select.group_by(*[column(name) for name in grouping])
    return exp.Subquery(this=select, alias=pivot.args["alias"].copy())
