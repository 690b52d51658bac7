"""String functions and literals whose T-SQL meaning sqlglot does not carry over.

* ``N'...'``: SQLite has no national literals (sqlglot passes them through).
* ``LEN(x)`` ignores trailing spaces; ``LENGTH`` does not: ``LENGTH(RTRIM(x))``.
* ``LEFT``/``RIGHT`` do not exist in SQLite: ``SUBSTR(x, 1, n)`` / ``SUBSTR(x, -n, n)``.
* ``CAST``/``CONVERT`` to ``[N]VARCHAR(n)`` truncate to ``n`` in T-SQL and PostgreSQL,
  not in SQLite (type names are only affinities there): ``SUBSTR(CAST(x AS TEXT), 1, n)``.
  Without a length T-SQL means 30; ``(MAX)`` is ``TEXT``. Fixed-length ``CHAR(n)``
  pads with spaces, which SQLite cannot do: refused there.
* ``CAST(x AS DATETIME2)`` on SQLite is ``DATETIME(x)``, as ``DATETIME`` already is
  (sqlglot's ``CAST(x AS TIMESTAMP)`` has numeric affinity there).
* ``CAST(x AS INT)`` truncates a decimal in T-SQL and SQLite, PostgreSQL rounds:
  ``CAST(TRUNC(x) AS INT)`` there when ``x`` is known to be a decimal or float.
* ``LIKE`` patterns with ``[...]`` character classes mean something else outside SQL
  Server: refused when the pattern is a literal that contains ``[``.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.expressions.datatypes import DType

from rewriter.functions import not_supported
from rewriter.transforms.common import call, post_order, reusable
from rewriter.transforms.types import Types
from rewriter.type_names import DECIMAL, FLOAT

VARIABLE_TEXT = (DType.VARCHAR, DType.NVARCHAR)
FIXED_TEXT = (DType.CHAR, DType.NCHAR)
INTEGERS = (DType.TINYINT, DType.SMALLINT, DType.INT, DType.BIGINT)
DATETIMES = (DType.DATETIME2, DType.TIMESTAMP)
DEFAULT_CAST_LENGTH = 30  # T-SQL: CAST(x AS VARCHAR) is VARCHAR(30)


def national_literals(tree: exp.Expr) -> None:
    """SQLite: ``N'...'`` is a plain string."""
    for national in list(tree.find_all(exp.National)):
        national.replace(exp.Literal.string(national.name))


def convert_to_cast(tree: exp.Expr, backend: str) -> None:
    """``CONVERT(type, x)`` (no style: the allow-list refused styles) is a CAST."""
    for node in list(tree.find_all(exp.Convert)):
        to = node.this
        assert isinstance(to, exp.DataType)
        node.replace(exp.Cast(this=node.expression, to=to))


def len_ignores_trailing_spaces(tree: exp.Expr, backend: str) -> None:
    for node in list(tree.find_all(exp.Length)):
        node.set("this", exp.Trim(this=node.this, position="TRAILING"))


def left_right(tree: exp.Expr, backend: str) -> None:
    for node in post_order(tree, exp.Left, exp.Right):
        count = node.expression
        if isinstance(node, exp.Left):
            node.replace(call("SUBSTR", node.this, exp.Literal.number(1), count))
        else:
            # SUBSTR(x, -n, n): the last n characters, all of x when n > LENGTH(x),
            # and '' for n = 0 (SUBSTR(x, -n) would give all of x).
            count = reusable(count, "RIGHT with a parameter count", backend)
            node.replace(call("SUBSTR", node.this, exp.Neg(this=exp.paren(count)), count.copy()))


def casts(tree: exp.Expr, backend: str, types: Types) -> None:
    for cast in post_order(tree, exp.Cast):
        to = cast.args.get("to")
        if not isinstance(to, exp.DataType):  # pragma: no cover - allow-list checked
            continue
        if to.this in DATETIMES and backend == "sqlite":
            # sqlglot writes DATETIME(x) for DATETIME but CAST(x AS TIMESTAMP) for
            # DATETIME2, which SQLite reads as a number ('2026-01-01' is 2026).
            cast.set("to", exp.DataType.build("DATETIME"))
            continue
        if to.this in INTEGERS and backend == "postgresql":
            if types.of(cast.this) in (DECIMAL, FLOAT):
                cast.set("this", exp.func("TRUNC", cast.this))
            continue
        if to.this not in VARIABLE_TEXT + FIXED_TEXT:
            continue
        params = to.expressions
        length = params[0].this if params else exp.Literal.number(DEFAULT_CAST_LENGTH)
        if isinstance(length, exp.Var):  # (MAX)
            cast.set("to", exp.DataType.build("TEXT"))
            continue
        if backend == "postgresql":
            cast.set("to", exp.DataType(this=to.this, expressions=[exp.DataTypeParam(this=length)]))
        elif to.this in FIXED_TEXT:
            raise not_supported(f"CAST to {to.this.value}(n)", backend, "no fixed-length strings")
        else:
            text = exp.Cast(this=cast.this, to=exp.DataType.build("TEXT"))
            cast.replace(call("SUBSTR", text, exp.Literal.number(1), length.copy()))


def like_patterns(tree: exp.Expr, backend: str) -> None:
    for like in tree.find_all(exp.Like):
        pattern = like.expression
        if isinstance(pattern, exp.Literal | exp.National) and "[" in pattern.name:
            raise not_supported(
                "LIKE with a [...] character class", backend, "the pattern would mean '[' itself"
            )
