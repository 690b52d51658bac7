"""The request's row cap as a bind parameter on the outermost query (two rewrite
rules, just before ``mark_params``: ``row_cap`` for PostgreSQL and SQLite, ``tsql_row_cap``
for SQL Server; see ``rewriter.rules``).

``fetchmany(max_rows + 1)`` bounds what tenantgate returns, not what the database and
the driver do: psqlODBC and sqliteodbc read a whole result into memory at execute time
(see docs/drivers.md), and over TDS a closed cursor must drain or cancel the rest of
the stream (Babelfish acts on the cancel only when the statement ends, after its
deadline is disarmed; SQL Server stops, but has done the work). So on every backend a
read's outermost query (the SELECT, or the whole set operation) carries a row count
that is a bind parameter: the plan stays independent of ``max_rows`` and cacheable,
and the service binds ``max_rows + 1`` (the extra row tells the executor the result
was truncated), or the caller's own count when that is smaller. Writes are never
capped: every OUTPUT/RETURNING row is an affected row.

The parameter is an ``exp.Placeholder`` whose ``meta`` carries a ``RowCap``;
``params.mark`` turns it into a marker like any other parameter, so it lands at the
right place in ``param_order`` whatever order the generator writes the clauses in.
A caller's own count (``TOP n``, ``TOP (?)``, ``FETCH NEXT @n ROWS``, ``LIMIT n``) is
replaced by the cap and recorded in it; OFFSET stays as written. The allow-list
refuses ``TOP n PERCENT``, ``WITH TIES`` and FETCH's PERCENT/WITH TIES, whose counts
are not row counts; should one get here, this pass fails rather than change them.

PostgreSQL and SQLite: ``LIMIT ?`` (or the caller's ``LIMIT``/``FETCH`` count).

SQL Server (T-SQL has no LIMIT; sqlglot writes ``exp.Limit`` on a SELECT as ``TOP``,
parenthesised for a parameter, and as ``OFFSET ... FETCH FIRST`` next to an OFFSET):

* a SELECT without OFFSET: ``SELECT TOP (?) ...`` (the caller's ``TOP`` replaced);
* a SELECT with OFFSET: its ``FETCH NEXT ? ROWS ONLY`` (added if it had none);
* a set operation with ORDER BY: ``... ORDER BY ... OFFSET 0 ROWS FETCH NEXT ? ROWS
  ONLY`` (or its own OFFSET/FETCH). T-SQL cannot put ``TOP`` on a set operation, and
  wrapping it in a derived table would move its ORDER BY to a query with other
  scoping; OFFSET/FETCH is allowed right after a set operation's ORDER BY and keeps
  it, the names and the types exactly as they were.
* a set operation without ORDER BY: OFFSET/FETCH needs an ORDER BY, and a set
  operation can only be ordered by its output columns (``ORDER BY (SELECT NULL)`` is
  refused there; ``ORDER BY 1`` would sort the whole result). It is wrapped:
  ``SELECT TOP (?) * FROM (<set operation>) AS [__tenantgate_rows__]``; its CTEs move
  to the wrapper. A derived table's columns must have distinct names (the columns
  pass names every unnamed output ``_col_<i>``), so when two output names are equal
  ignoring case, the wrapper renames them with a column list and names them back:
  ``SELECT TOP (?) [__tenantgate_rows__].[c0] AS [x], [__tenantgate_rows__].[c1] AS
  [x] FROM (...) AS [__tenantgate_rows__]([c0], [c1])``. Either way the result has
  the set operation's columns, names, types and (unspecified) order. The alias starts
  with the reserved marker prefix, so it cannot collide with a caller's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from rewriter.markers import MARKER_PREFIX, META_POSITION, META_ROW_CAP

# The derived table a capped SQL Server set operation without ORDER BY is read from.
WRAPPER_ALIAS = MARKER_PREFIX + "rows__"


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


def limit(tree: exp.Expr) -> exp.Expr:
    """PostgreSQL and SQLite: put the cap on ``tree``'s outermost query (reads only),
    in place, as its ``LIMIT`` (or its own LIMIT/FETCH count); the tree to generate."""
    if isinstance(tree, exp.Select | exp.SetOperation):
        _cap_limit(tree)
    return tree


def tsql(tree: exp.Expr, columns: Sequence[str] = ()) -> exp.Expr:
    """SQL Server: put the cap on ``tree``'s outermost query (reads only); the tree to
    generate.

    ``tree`` is changed in place; the result is ``tree`` itself except for a set
    operation without ORDER BY, which comes back inside its wrapper. ``columns`` are
    the statement's output names (``Plan.columns``), which that wrapper needs.
    """
    if not isinstance(tree, exp.Select | exp.SetOperation):
        return tree
    if isinstance(tree, exp.SetOperation):
        if tree.args.get("order") is not None:
            _cap_fetch(tree)
            return tree
        if tree.args.get("offset") is None:
            return _wrap(tree, columns)
        # OFFSET without ORDER BY (only the postgres/sqlite dialects write that): sqlglot
        # reads it from a derived table it orders by (SELECT NULL); the cap is its FETCH.
        _cap_fetch(tree)
        return tree
    if tree.args.get("offset") is not None:
        _cap_fetch(tree)
        return tree
    _cap_limit(tree)
    return tree


def _cap_limit(query: exp.Query) -> None:
    """The query's LIMIT/TOP/FETCH count becomes the cap (a new LIMIT if it has none)."""
    limit = query.args.get("limit")
    cap = exp.Placeholder()
    if limit is None:
        cap.meta[META_ROW_CAP] = RowCap()
        query.set("limit", exp.Limit(expression=cap))
        return
    key = "count" if isinstance(limit, exp.Fetch) else "expression"
    cap.meta[META_ROW_CAP] = _own_count(limit, limit.args.get(key))
    limit.set(key, cap)


def _cap_fetch(query: exp.Query) -> None:
    """T-SQL next to an ORDER BY/OFFSET: the cap is a ``FETCH NEXT ? ROWS ONLY``."""
    limit = query.args.get("limit")
    cap = exp.Placeholder()
    if isinstance(limit, exp.Fetch):
        cap.meta[META_ROW_CAP] = _own_count(limit, limit.args.get("count"))
        limit.set("count", cap)
        return
    own = RowCap() if limit is None else _own_count(limit, limit.args.get("expression"))
    cap.meta[META_ROW_CAP] = own
    # The generator adds OFFSET 0 ROWS where there is no OFFSET (FETCH needs one).
    query.set("limit", exp.Fetch(direction="NEXT", count=cap))


def _wrap(setop: exp.SetOperation, columns: Sequence[str]) -> exp.Select:
    """``SELECT TOP (<cap>) ... FROM (<setop>) AS [__tenantgate_rows__]``."""
    limit = setop.args.get("limit")  # LIMIT n from the postgres/sqlite dialects
    cap = exp.Placeholder()
    if limit is None:
        cap.meta[META_ROW_CAP] = RowCap()
    else:
        cap.meta[META_ROW_CAP] = _own_count(limit, limit.args.get("expression"))
        setop.set("limit", None)
    ctes = setop.args.get("with_")
    setop.set("with_", None)
    alias = exp.TableAlias(this=exp.to_identifier(WRAPPER_ALIAS))
    folded = [name.casefold() for name in columns]
    if len(set(folded)) == len(folded):
        items: list[exp.Expr] = [exp.Star()]
    else:
        inner = [f"c{i}" for i in range(len(columns))]
        alias.set("columns", [exp.to_identifier(name) for name in inner])
        items = [
            exp.alias_(exp.column(name, table=WRAPPER_ALIAS), output, quoted=True)
            for name, output in zip(inner, columns, strict=True)
        ]
    wrapper = exp.Select(expressions=items)
    wrapper.set("from_", exp.From(this=exp.Subquery(this=setop, alias=alias)))
    wrapper.set("limit", exp.Limit(expression=cap))
    if ctes is not None:
        wrapper.set("with_", ctes)
    return wrapper


def _own_count(limit: exp.Expr, count: object) -> RowCap:
    """The caller's count as ``allowlist._check_limit_value`` lets it through."""
    options = limit.args.get("limit_options")
    if options is not None and (options.args.get("percent") or options.args.get("with_ties")):
        # Refused by the allow-list: a percentage or tied rows are not a row count.
        raise AssertionError(f"unexpected row count options {options!r}")  # pragma: no cover
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
