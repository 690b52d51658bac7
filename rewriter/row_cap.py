"""The request's row cap as a bind parameter on the outermost query (a rewrite
pass, just before ``params.mark``).

psqlODBC and sqliteodbc read a whole result into memory at execute time (see
docs/drivers.md), so ``fetchmany(max_rows + 1)`` bounds what tenantgate returns but
not what the driver buffers. On PostgreSQL and SQLite a read's outermost query (the
SELECT, or the whole set operation) therefore gets a LIMIT whose count is a bind
parameter: the plan stays independent of ``max_rows`` and cacheable, and the service
binds ``max_rows + 1`` (the extra row tells the executor the result was truncated),
or the caller's own count when that is smaller.

The parameter is an ``exp.Placeholder`` whose ``meta`` carries a ``RowCap``;
``params.mark`` turns it into a marker like any other parameter, so it lands at the
right place in ``param_order`` whatever order the generator writes the clauses in.
A caller's own count (``TOP n``, ``TOP (?)``, ``FETCH NEXT @n ROWS``, ``LIMIT n``) is
replaced by the cap and recorded in it; OFFSET stays as written.

SQL Server is left as written: TDS streams rows and the driver does not buffer the
result, so ``fetchmany`` already bounds the work (and ``TOP`` cannot go on a set
operation or next to OFFSET without rewriting the query around it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from rewriter.markers import META_POSITION, META_ROW_CAP

CAPPED_BACKENDS = frozenset({"postgresql", "sqlite"})


@dataclass(frozen=True, slots=True)
class RowCap:
    """The reserved ``Plan.param_order`` entry of the row cap.

    Bind ``max_rows + 1``, or the caller's own count if it is smaller: ``count`` when
    the statement wrote a number, the request parameter ``param`` (a ``?`` position or
    an ``@name``) when it wrote a parameter. Neither an ``int`` nor a ``str``, so it
    cannot be mistaken for a caller's parameter.
    """

    count: int | None = None
    param: int | str | None = None


def apply(tree: exp.Expr, backend: str) -> None:
    """Put the cap on ``tree``'s outermost query, in place (reads only)."""
    if backend not in CAPPED_BACKENDS or not isinstance(tree, exp.Select | exp.SetOperation):
        return
    limit = tree.args.get("limit")
    cap = exp.Placeholder()
    if limit is None:
        cap.meta[META_ROW_CAP] = RowCap()
        tree.set("limit", exp.Limit(expression=cap))
        return
    key = "count" if isinstance(limit, exp.Fetch) else "expression"
    count = limit.args.get(key)
    cap.meta[META_ROW_CAP] = _own_count(count)
    limit.set(key, cap)


def _own_count(count: object) -> RowCap:
    """The caller's count as ``allowlist._check_limit_value`` lets it through."""
    if isinstance(count, exp.Paren):
        count = count.this
    if count is None:  # FETCH FIRST ROW ONLY
        return RowCap(count=1)
    if isinstance(count, exp.Placeholder) and META_POSITION in count.meta:
        return RowCap(param=int(count.meta[META_POSITION]))
    if isinstance(count, exp.Parameter) and isinstance(count.this, exp.Var):
        return RowCap(param=count.this.name)
    if isinstance(count, exp.Literal) and not count.is_string and count.this.isdigit():
        return RowCap(count=int(count.this))
    # The allow-list admits nothing else; should it one day, fail loudly, not uncapped.
    raise AssertionError(f"unexpected row count {count!r}")  # pragma: no cover
