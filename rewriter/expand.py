"""Part of the ``qualify_columns`` rule (per SELECT scope): expand ``*``, ``t.*`` and
``CUSTOM_FIELDS([alias])``.

``*`` and ``t.*`` become the base columns of a table (the output names of a
derived table or CTE); ``CUSTOM_FIELDS`` becomes a table's custom columns. The
new columns are qualified and already carry their physical spelling.

Splicing. A tenant's table may have 800 columns; as ``exp.Column`` nodes they would
cost every later pass and sqlglot's generator about 10 µs each, on every plan-cache
miss. So in the statement's outermost select lists (the root query and the branches
of a root set operation) an expansion is one ``exp.Var`` placeholder instead
(``sources.Splice``), and ``splice`` puts the rendered column list in its place after
generation. The rendered text is what sqlglot writes for the same columns
(``"alias"."column"``, identifiers always quoted, items joined by ``", "``) and is
cached per (table fingerprint, base/custom, alias, backend). Inside CTEs and derived
tables the columns stay nodes: the tsql generator adds ``AS [name]`` to their outputs
there, and their outputs feed the scopes that read them.
"""

from __future__ import annotations

import re
import threading

from cachetools import LRUCache
from sqlglot import exp

from rewriter.allowlist import CUSTOM_FIELDS, refuse
from rewriter.errors import UnknownTable
from rewriter.generate import quote
from rewriter.markers import MARKER_PREFIX
from rewriter.sources import META_RESOLVED, META_SPLICE, Context, Source, Splice

SPLICE_MARKER = MARKER_PREFIX + "c{}__"
SPLICE_MARKER_RE = re.compile(re.escape(MARKER_PREFIX) + r"c(\d+)__")

# Off only in tests that check splicing against the plain column nodes.
SPLICING = True

# Bounded by the characters it holds: an 800-column list is ~20 KB, and the alias in
# the key is the caller's, so 4,096 entries by count alone could hold ~100 MB.
_RENDERED: LRUCache[tuple[str, str, str, str], str] = LRUCache(maxsize=8 << 20, getsizeof=len)
_RENDERED_LOCK = threading.Lock()


def expand_select(select: exp.Select, sources: dict[str, Source], ctx: Context) -> None:
    items: list[exp.Expr] = []
    changed = False
    splice = SPLICING and _outermost(select)
    for item in select.expressions:
        if isinstance(item, exp.Star):
            if not sources:
                raise refuse("SELECT * without FROM")
            for source in sources.values():
                items.extend(_columns(source, "base", ctx, splice))
            changed = True
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
            source = _named_source(item.table, sources, ctx, f"{item.table}.*")
            items.extend(_columns(source, "base", ctx, splice))
            changed = True
        elif isinstance(item, exp.Anonymous) and str(item.this).casefold() == CUSTOM_FIELDS:
            source = _custom_fields_source(item, sources, ctx)
            items.extend(_columns(source, "custom", ctx, splice))
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


def splice(sql: str, ctx: Context, backend: str) -> str:
    """Put each splice's rendered column list where its placeholder was generated."""
    if not ctx.splices:
        return sql
    found: list[int] = []

    def substitute(match: re.Match[str]) -> str:
        index = int(match.group(1))
        found.append(index)
        return _render(ctx.splices[index], backend)

    # One pass over the generated text: rendered column names (tenant data) are never
    # scanned for markers themselves.
    text = SPLICE_MARKER_RE.sub(substitute, sql)
    if sorted(found) != list(range(len(ctx.splices))):  # pragma: no cover - defensive
        raise AssertionError("the generated SQL lost or duplicated an expanded column list")
    return text


def _outermost(select: exp.Select) -> bool:
    node: exp.Expr = select
    while node.parent is not None:
        node = node.parent
        if not isinstance(node, exp.SetOperation):
            return False
    return True


def _custom_fields_source(item: exp.Anonymous, sources: dict[str, Source], ctx: Context) -> Source:
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
    return source


def _named_source(name: str, sources: dict[str, Source], ctx: Context, written: str) -> Source:
    source = sources.get(name)
    if source is None:
        raise UnknownTable(
            f"{written}: no table or alias {name!r} in this FROM clause",
            table=name,
            tenant=ctx.tenant or None,
        )
    return source


def _columns(source: Source, kind: str, ctx: Context, splice: bool) -> list[exp.Expr]:
    shape = source.shape
    if shape is None:
        names = tuple(source.star_columns())
        key = None
    else:
        names = tuple(shape.base_columns if kind == "base" else shape.custom_columns)
        key = (shape.fingerprint, kind)
    if not names:
        return []
    if splice:
        marker = SPLICE_MARKER.format(len(ctx.splices))
        ctx.splices.append(Splice(marker=marker, alias=source.alias, names=names, key=key))
        node = exp.Var(this=marker)
        node.meta[META_SPLICE] = ctx.splices[-1]
        return [node]
    columns: list[exp.Expr] = []
    for name in names:
        column = exp.Column(
            this=exp.Identifier(this=name, quoted=True),
            table=exp.Identifier(this=source.alias, quoted=True),
        )
        column.meta[META_RESOLVED] = True
        columns.append(column)
    return columns


def _render(item: Splice, backend: str) -> str:
    if item.key is None:
        return _render_names(item, backend)
    key = (*item.key, item.alias, backend)
    with _RENDERED_LOCK:
        text = _RENDERED.get(key)
    if text is None:
        text = _render_names(item, backend)
        if len(text) <= _RENDERED.maxsize:
            with _RENDERED_LOCK:
                _RENDERED[key] = text
    return text


def _render_names(item: Splice, backend: str) -> str:
    qualifier = quote(item.alias, backend) + "."
    return ", ".join(qualifier + quote(name, backend) for name in item.names)
