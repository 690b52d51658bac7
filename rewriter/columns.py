"""The ``qualify_columns`` rule (per scope, innermost first): expand stars, check and
qualify every column, name the outputs.

Scopes come from ``sqlglot.optimizer.scope.traverse_scope`` (CTEs, derived tables
and subqueries before the query that uses them), so a derived table's output names
are final before an outer query expands or checks against them.

* A qualified column ``t.c``: ``t`` must be a source of this SELECT or of an
  enclosing one (correlated subquery), and it must have ``c``.
* An unqualified column: exactly one source of this SELECT has it (several:
  ``AmbiguousColumn``); otherwise the nearest enclosing SELECT where it resolves.
  A bare ORDER BY item may name a select-list alias.
* Unknown: ``UnknownColumn``, or ``NULL`` under the ``null`` policy
  (``NULL AS <name as written>`` when it is a select-list item on its own).

Every resolved column gets its source's alias and its physical spelling.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope

from rewriter.errors import AmbiguousColumn, UnknownColumn, UnknownTable
from rewriter.expand import expand_select
from rewriter.sources import (
    META_RESOLVED,
    Context,
    Source,
    Sources,
    output_name,
    query_outputs,
    spliced,
)

UNNAMED = "_col_{}"


def qualify_columns(tree: exp.Expr, ctx: Context) -> tuple[str, ...]:
    """Rewrite ``tree`` in place; return the statement's output column names."""
    sources = Sources(ctx)
    for scope in traverse_scope(tree):
        expression = scope.expression
        if isinstance(expression, exp.Select):
            own = sources.of(scope)
            expand_select(expression, own, ctx)
            _resolve_select(scope, own, sources, ctx)
            if scope.scope_type is not ScopeType.SUBQUERY:
                _name_outputs(expression)
        elif isinstance(expression, exp.SetOperation):
            _resolve_set_operation(scope, ctx)
    # A list, not a generator: a wide table has hundreds of outputs.
    return tuple([name or "" for name in query_outputs(tree)])


def _resolve_select(scope: Scope, own: dict[str, Source], sources: Sources, ctx: Context) -> None:
    select = scope.expression
    assert isinstance(select, exp.Select)
    aliases: dict[str, str] = {}
    for item in select.expressions:
        if isinstance(item, exp.Alias):
            aliases.setdefault(item.alias.casefold(), item.alias)
    columns = [
        node
        for node in scope.walk()
        # ``_meta``, not ``meta``: reading ``meta`` attaches an empty dict to every column.
        if type(node) is exp.Column and not (node._meta and node._meta.get(META_RESOLVED))
    ]
    for column in columns:
        name = column.name
        qualifier = column.table
        if not qualifier and _is_order_item(column, select) and name.casefold() in aliases:
            column.set("this", exp.Identifier(this=aliases[name.casefold()], quoted=True))
            continue
        found = (
            _resolve_qualified(column, scope, own, sources, ctx)
            if qualifier
            else _resolve_unqualified(column, scope, own, sources, ctx)
        )
        if found is None:
            _missing(column, own, ctx)
            continue
        source, spelling = found
        column.set("this", exp.Identifier(this=spelling, quoted=True))
        column.set("table", exp.Identifier(this=source.alias, quoted=True))
        column.meta[META_RESOLVED] = True


def _is_order_item(column: exp.Column, select: exp.Select) -> bool:
    ordered = column.parent
    if not isinstance(ordered, exp.Ordered) or column.arg_key != "this":
        return False
    order = ordered.parent
    return isinstance(order, exp.Order) and order.parent is select


def _resolve_qualified(
    column: exp.Column, scope: Scope, own: dict[str, Source], sources: Sources, ctx: Context
) -> tuple[Source, str] | None:
    qualifier = column.table
    for candidates in (own, *sources.outer(scope)):
        source = candidates.get(qualifier)
        if source is not None:
            spelling = source.lookup(column.name, ctx.tenant)
            return None if spelling is None else (source, spelling)
    raise UnknownTable(
        f"{qualifier}.{column.name}: no table or alias {qualifier!r} in scope",
        table=qualifier,
        tenant=ctx.tenant or None,
    )


def _resolve_unqualified(
    column: exp.Column, scope: Scope, own: dict[str, Source], sources: Sources, ctx: Context
) -> tuple[Source, str] | None:
    name = column.name
    for candidates in (own, *sources.outer(scope)):
        hits = [
            (source, spelling)
            for source in candidates.values()
            if (spelling := source.lookup(name, ctx.tenant)) is not None
        ]
        if len(hits) > 1:
            tables = ", ".join(source.label for source, _ in hits)
            raise AmbiguousColumn(
                f"column {name!r} is ambiguous: it is in {tables}; qualify it with a table alias",
                column=name,
                tenant=ctx.tenant or None,
            )
        if hits:
            return hits[0]
    return None


def _missing(column: exp.Column, own: dict[str, Source], ctx: Context) -> None:
    name = column.name
    qualifier = column.table
    source = own.get(qualifier) if qualifier else None
    if not ctx.missing_null:
        table = source.label if source is not None else (qualifier or None)
        where = f" in {table}" if table else ""
        tenant = f" for tenant {ctx.tenant}" if ctx.tenant else ""
        raise UnknownColumn(
            f"unknown column {name!r}{where}{tenant}",
            column=name,
            table=table,
            tenant=ctx.tenant or None,
        )
    parent = column.parent
    if isinstance(parent, exp.Select) and column.arg_key == "expressions":
        column.replace(exp.Alias(this=exp.Null(), alias=exp.Identifier(this=name, quoted=True)))
    elif isinstance(parent, exp.Ordered | exp.Group):
        # Ordering or grouping by a constant does nothing, and SQL Server refuses it.
        _drop_clause_item(parent if isinstance(parent, exp.Ordered) else column)
    else:
        column.replace(exp.Null())


def _drop_clause_item(item: exp.Expr) -> None:
    clause = item.parent
    item.pop()
    if isinstance(clause, exp.Order | exp.Group) and not clause.expressions:
        clause.pop()


def _name_outputs(select: exp.Select) -> None:
    items = select.expressions
    if all(output_name(item) is not None or spliced(item) for item in items):
        return
    named: list[exp.Expr] = []
    index = 0  # the output's position: a splice counts as all of its columns
    for item in items:
        splice = spliced(item)
        if splice is not None:
            named.append(item)
            index += len(splice.names)
            continue
        if output_name(item) is None:
            alias = exp.Identifier(this=UNNAMED.format(index), quoted=True)
            # The item moves under the new Alias: no copy needed, the select list is rebuilt.
            named.append(exp.Alias(this=item, alias=alias))
        else:
            named.append(item)
        index += 1
    select.set("expressions", named)


def _resolve_set_operation(scope: Scope, ctx: Context) -> None:
    """ORDER BY of a UNION/INTERSECT/EXCEPT names the first branch's outputs."""
    operation = scope.expression
    order = operation.args.get("order")
    if not isinstance(order, exp.Order):
        return
    outputs = [o for o in query_outputs(operation) if o is not None]
    for column in [n for n in order.walk() if type(n) is exp.Column]:
        name = column.name
        matches = [o for o in outputs if o == name] or [
            o for o in outputs if o.casefold() == name.casefold()
        ]
        if column.table or len(matches) != 1:
            if len(matches) > 1:
                raise AmbiguousColumn(
                    f"ORDER BY {name!r} is ambiguous", column=name, tenant=ctx.tenant or None
                )
            if ctx.missing_null and not column.table:
                parent = column.parent
                if isinstance(parent, exp.Ordered) and column.arg_key == "this":
                    _drop_clause_item(parent)
                else:
                    column.replace(exp.Null())
                continue
            raise UnknownColumn(
                f"ORDER BY {column.sql()}: a set operation can only be ordered by its "
                "output column names",
                column=name,
                tenant=ctx.tenant or None,
            )
        column.set("this", exp.Identifier(this=matches[0], quoted=True))
