"""Grouping sets in each backend's spelling.

* ``GROUP BY ROLLUP / CUBE / GROUPING SETS`` and ``GROUPING()`` mean the same on SQL
  Server and PostgreSQL. T-SQL's older ``GROUP BY a, b WITH ROLLUP`` (``WITH CUBE``)
  is ``ROLLUP (a, b)`` (``CUBE (a, b)``) on every backend (SQL Server documents them
  as the same; Babelfish only parses the second), and ``GROUPING_ID(a, b)`` is
  PostgreSQL's ``GROUPING(a, b)`` (the same bit mask: the last argument is the
  lowest bit) or, on SQL Server, ``GROUPING(a) * 2 + GROUPING(b)``.
  SQLite has no grouping sets: refused there, naming the construct as written. A
  ``UNION ALL`` of one ``GROUP BY`` per grouping level would have to repeat the
  statement's parameters and its source, so it is left to the user.

``STDEV``, ``STDEVP``, ``VAR``, ``VARP`` run on SQL Server only: their float result's
last digits depend on how the engine sums (PostgreSQL's ``stddev_samp`` of a decimal
is a ``numeric`` with other digits again), and SQLite has none (``functions.UNSUPPORTED``).
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.functions import NO_GROUPING_SETS, is_grouping_sets, not_supported


def grouping_sets(tree: exp.Expr, backend: str) -> None:
    for group in list(tree.find_all(exp.Group)):
        if not is_grouping_sets(group):
            continue
        if backend == "sqlite":
            raise not_supported(_construct(group), backend, NO_GROUPING_SETS)
        for key, kind in (("rollup", exp.Rollup), ("cube", exp.Cube)):
            if group.args.get(key):
                # GROUP BY a, b WITH ROLLUP: every item is rolled up, as ROLLUP (a, b).
                group.set(key, None)
                group.set("expressions", [kind(expressions=group.expressions)])
    # GROUPING() itself is refused on SQLite by ``check_functions`` (functions.UNSUPPORTED).
    for function in list(tree.find_all(exp.GroupingId)):
        function.replace(_grouping_id(function.expressions, backend))


def _grouping_id(columns: list[exp.Expr], backend: str) -> exp.Expr:
    """GROUPING_ID(a, b) is GROUPING(a) * 2 + GROUPING(b) (SQL Server's documented
    definition), which is PostgreSQL's GROUPING(a, b). On SQL Server the sum is
    written out: the same value, and Babelfish has no GROUPING_ID."""
    if backend == "postgresql":
        return exp.Grouping(expressions=columns)
    terms: list[exp.Expr] = []
    for bit, column in enumerate(reversed(columns)):
        term: exp.Expr = exp.Grouping(expressions=[column])
        if bit:
            term = exp.Mul(this=term, expression=exp.Literal.number(1 << bit))
        terms.insert(0, term)
    total = terms[0]
    for term in terms[1:]:
        total = exp.Add(this=total, expression=term)
    return exp.Paren(this=total) if len(terms) > 1 else total


def _construct(group: exp.Group) -> str:
    if group.args.get("rollup"):
        return "GROUP BY ... WITH ROLLUP"
    if group.args.get("cube"):
        return "GROUP BY ... WITH CUBE"
    for item in group.expressions:
        if isinstance(item, exp.Rollup):
            return "GROUP BY ROLLUP (...)"
        if isinstance(item, exp.Cube):
            return "GROUP BY CUBE (...)"
    return "GROUP BY GROUPING SETS (...)"
