"""Pass 5a (per SELECT scope): expand ``*``, ``t.*`` and ``CUSTOM_FIELDS([alias])``.

``*`` and ``t.*`` become the base columns of a table (the output names of a
derived table or CTE); ``CUSTOM_FIELDS`` becomes a table's custom columns. The
new columns are qualified and already carry their physical spelling.
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.allowlist import CUSTOM_FIELDS, refuse
from rewriter.errors import UnknownTable
from rewriter.sources import META_RESOLVED, Context, Source


def expand_select(select: exp.Select, sources: dict[str, Source], ctx: Context) -> None:
    items: list[exp.Expr] = []
    changed = False
    for item in select.expressions:
        if isinstance(item, exp.Star):
            if not sources:
                raise refuse("SELECT * without FROM")
            for source in sources.values():
                items.extend(_columns(source, source.star_columns()))
            changed = True
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
            source = _named_source(item.table, sources, ctx, f"{item.table}.*")
            items.extend(_columns(source, source.star_columns()))
            changed = True
        elif isinstance(item, exp.Anonymous) and str(item.this).casefold() == CUSTOM_FIELDS:
            items.extend(_custom_fields(item, sources, ctx))
            changed = True
        else:
            items.append(item)
    if changed:
        if not items:
            raise refuse(
                "an empty select list",
                "is not allowed: the table has no custom fields, select something else too",
            )
        select.set("expressions", items)


def _custom_fields(item: exp.Anonymous, sources: dict[str, Source], ctx: Context) -> list[exp.Expr]:
    args = item.expressions
    if args:
        name = args[0].name
        source = _named_source(name.casefold(), sources, ctx, f"CUSTOM_FIELDS({name})")
    else:
        if len(sources) != 1:
            raise refuse(
                "CUSTOM_FIELDS() with several tables",
                "is ambiguous: name the table, for example CUSTOM_FIELDS(c)",
            )
        source = next(iter(sources.values()))
    if source.shape is None:
        raise refuse(
            f"CUSTOM_FIELDS({source.alias}) on a derived table or CTE",
            "is not allowed: custom fields belong to tables",
        )
    return _columns(source, list(source.shape.custom_columns))


def _named_source(name: str, sources: dict[str, Source], ctx: Context, written: str) -> Source:
    source = sources.get(name)
    if source is None:
        raise UnknownTable(
            f"{written}: no table or alias {name!r} in this FROM clause",
            table=name,
            tenant=ctx.tenant or None,
        )
    return source


def _columns(source: Source, names: list[str]) -> list[exp.Expr]:
    columns: list[exp.Expr] = []
    for name in names:
        column = exp.Column(
            this=exp.Identifier(this=name, quoted=True),
            table=exp.Identifier(this=source.alias, quoted=True),
        )
        column.meta[META_RESOLVED] = True
        columns.append(column)
    return columns
