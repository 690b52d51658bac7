"""Arithmetic whose result type differs by backend.

* ``AVG`` of an integer column is an integer in T-SQL (truncated), a fraction in
  PostgreSQL and SQLite: truncated back when the argument is known to be an integer.
* Division: integer / integer truncates everywhere. But a DECIMAL column on SQLite
  has NUMERIC affinity, which stores ``7.00`` as the integer 7, so ``7.00 / 2`` is 3
  there (3.5 in T-SQL): the dividend is cast to REAL when either side is a decimal.
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.transforms.common import post_order
from rewriter.transforms.types import Types
from rewriter.type_names import DECIMAL, INTEGER


def integer_avg(tree: exp.Expr, backend: str, types: Types) -> None:
    for node in post_order(tree, exp.Avg):
        if types.of(node.this) != INTEGER:
            continue
        target = node.parent if isinstance(node.parent, exp.Window) else node
        average = target.copy()
        if backend == "postgresql":
            average = exp.func("TRUNC", average)
        target.replace(exp.Cast(this=average, to=exp.DataType.build("BIGINT")))


def decimal_division(tree: exp.Expr, types: Types) -> None:
    """SQLite only (NUMERIC affinity)."""
    for node in post_order(tree, exp.Div):
        # A decimal literal is already REAL in SQLite; only stored values lose it.
        operands = [o for o in (node.this, node.expression) if not isinstance(o, exp.Literal)]
        if any(types.of(operand) == DECIMAL for operand in operands):
            node.set("this", exp.Cast(this=node.this, to=exp.DataType.build("REAL")))
