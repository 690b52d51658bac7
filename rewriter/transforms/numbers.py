"""Arithmetic whose result type differs by backend.

* ``AVG`` of an integer column is an integer in T-SQL (truncated), a fraction in
  PostgreSQL and SQLite: truncated back when the argument is known to be an integer.
* Division: integer / integer truncates everywhere. But a DECIMAL column on SQLite
  has NUMERIC affinity, which stores ``7.00`` as the integer 7, so ``7.00 / 2`` is 3
  there (3.5 in T-SQL): the dividend is cast to REAL when either side is a decimal.
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.functions import not_supported
from rewriter.transforms.common import post_order
from rewriter.transforms.types import Types
from rewriter.type_names import DECIMAL, FLOAT, INTEGER


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


# -- ROUND, FLOOR, CEILING, POWER, SQRT, SIGN ---------------------------------------
#
# T-SQL's result type follows the argument (FLOOR of an int is an int, of a decimal a
# decimal, POWER(2, 3) the int 8, POWER(2, -1) the int 0); PostgreSQL computes an
# integer argument in double precision, and rounds a double half to even. So:
# * ROUND(x, n): decimals and integers only on PostgreSQL (numeric ROUND rounds half
#   away from zero, as T-SQL); SQLite's ROUND does too on the decimal digits it
#   prints, but reads a negative n as 0: ``ROUND(x / 10.0^k) * 10^k`` there. n must
#   be a number on SQLite. ROUND(x, n, f) with f other than 0 truncates: TRUNC(x, n)
#   on PostgreSQL; refused on SQLite (binary fractions: 0.29 * 100 is 28.999...).
# * FLOOR/CEILING/SIGN of an integer on PostgreSQL: cast back to an integer.
# * POWER(int, y): ``CAST(TRUNC(POWER(CAST(x AS NUMERIC), y)) AS BIGINT)`` on
#   PostgreSQL, ``CAST(POWER(x, y) AS INTEGER)`` on SQLite; of a float as is; of a
#   decimal refused (T-SQL keeps the base's scale).
# * SQRT: float everywhere; PostgreSQL's SQRT of a numeric is a numeric.
NUMBER_FUNCTIONS = (exp.Round, exp.Floor, exp.Ceil, exp.Pow, exp.Sqrt, exp.Sign)
_NAMES: dict[type[exp.Expr], str] = {exp.Floor: "FLOOR", exp.Ceil: "CEILING", exp.Sign: "SIGN"}


def _int_literal(node: exp.Expr | None) -> int | None:
    if isinstance(node, exp.Paren):
        return _int_literal(node.this)
    if isinstance(node, exp.Neg):
        inner = _int_literal(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


def _as(node: exp.Expr, type_name: str) -> exp.Expr:
    return exp.Cast(this=node, to=exp.DataType.build(type_name))


def number_functions(tree: exp.Expr, backend: str, types: Types) -> None:
    for node in post_order(tree, *NUMBER_FUNCTIONS):
        kind = types.of(node.this)
        if isinstance(node, exp.Round):
            _round(node, backend, kind)
        elif isinstance(node, exp.Pow):
            _power(node, backend, kind)
        elif isinstance(node, exp.Sqrt):
            if backend == "postgresql":
                node.set("this", _as(node.this, "DOUBLE PRECISION"))
        elif kind == INTEGER and backend == "postgresql":
            node.replace(_as(node.copy(), "BIGINT"))


def _round(node: exp.Expr, backend: str, kind: str | None) -> None:
    if kind == FLOAT:
        why = "rounding a binary float differs by engine (PostgreSQL: half to even)"
        raise not_supported("ROUND of a float value", backend, f"{why}; CAST it to DECIMAL")
    # A kind that cannot be known (a shape without types, a parameter) keeps sqlglot's
    # translation, as integer AVG does (docs/rewriter.md).
    function = node.args.get("truncate")
    truncate = function is not None and _int_literal(function) != 0
    if function is not None and _int_literal(function) is None:
        raise not_supported("ROUND(x, n, f) with f other than a number", backend)
    node.set("truncate", None)
    digits = node.args.get("decimals")
    if backend == "postgresql":
        if truncate:
            node.replace(exp.func("TRUNC", node.this, digits or exp.Literal.number(0)))
        return
    if truncate:
        raise not_supported(
            "ROUND(x, n, 1) (truncation)",
            backend,
            "SQLite stores decimals as binary fractions, which truncate one unit low",
        )
    places = 0 if digits is None else _int_literal(digits)
    if places is None:
        raise not_supported("ROUND(x, n) with n other than a number", backend)
    if places < 0:
        scale = exp.Literal.number(10 ** (-places))
        shifted = exp.Div(
            this=exp.paren(node.this), expression=exp.Literal.number(f"{10 ** (-places)}.0")
        )
        rounded: exp.Expr = exp.Mul(this=exp.Round(this=shifted), expression=scale)
        if kind == INTEGER:
            rounded = _as(rounded, "INTEGER")
        node.replace(exp.paren(rounded))


def _power(node: exp.Expr, backend: str, kind: str | None) -> None:
    if kind == FLOAT:
        return
    if kind == INTEGER:
        if backend == "postgresql":
            exact = exp.Pow(this=_as(node.this, "NUMERIC"), expression=node.expression)
            node.replace(_as(exp.func("TRUNC", exact), "BIGINT"))
        else:
            node.replace(_as(node.copy(), "INTEGER"))
        return
    why = (
        "T-SQL keeps the decimal base's scale in the result"
        if kind == DECIMAL
        else "its T-SQL result type follows the base's: CAST it to INT or FLOAT"
    )
    raise not_supported(f"POWER of a {kind or 'untyped'} base", backend, why)
