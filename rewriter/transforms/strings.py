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
* The other way round, PostgreSQL's casts to text on SQL Server (``postgres_text_casts``):
  PostgreSQL's ``VARCHAR``/``TEXT`` without a length is unbounded Unicode text, which
  T-SQL's ``VARCHAR`` (30 characters of the code page) and ``VARCHAR(MAX)`` (the code
  page) would cut or mangle. They become ``NVARCHAR(MAX)``; ``VARCHAR(n)`` becomes
  ``NVARCHAR(n)`` (``LEFT(CAST(x AS NVARCHAR(MAX)), n)`` past 4000); ``CHAR``, which
  is ``CHAR(1)`` in PostgreSQL, ``NCHAR(1)``, and ``CHAR(n)`` ``NCHAR(n)``. SQLite's
  casts to text ignore the length: from SQLite's dialect every one is ``NVARCHAR(MAX)``
  (``sqlite_text_casts``).
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
UNICODE_MAX_LENGTH = 4000  # T-SQL: NVARCHAR(n) and NCHAR(n) take n up to 4000


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


def sqlite_text_casts(tree: exp.Expr) -> None:
    """SQL Server, logical SQL in SQLite's dialect: SQLite ignores a character type's
    length (``CAST(x AS VARCHAR(5))`` keeps all of ``x``), so every cast to one is
    unbounded Unicode text there, ``NVARCHAR(MAX)``, not T-SQL's ``VARCHAR`` (30
    characters of the code page) or ``CHAR(n)``."""
    for cast in post_order(tree, exp.Cast, exp.TryCast):
        to = cast.args.get("to")
        if isinstance(to, exp.DataType) and to.this in (*FIXED_TEXT, *VARIABLE_TEXT, DType.TEXT):
            cast.set("to", _unicode(DType.NVARCHAR, exp.var("MAX")))


def postgres_text_casts(tree: exp.Expr, backend: str) -> None:
    """SQL Server, logical SQL in PostgreSQL's dialect: a cast to a character type keeps
    PostgreSQL's meaning. sqlglot writes PostgreSQL's ``VARCHAR`` as T-SQL's
    ``VARCHAR``, which is ``VARCHAR(30)`` there, and ``TEXT`` as ``VARCHAR(MAX)``; both
    are code-page text, so a longer string would be cut at 30 characters and characters
    outside the code page lost (SQLAlchemy's batched inserts cast every string
    ``$1::VARCHAR``). The same types as ``NVARCHAR``/``NCHAR`` hold all of it."""
    for cast in post_order(tree, exp.Cast, exp.TryCast):
        to = cast.args.get("to")
        if not isinstance(to, exp.DataType):  # pragma: no cover - allow-list checked
            continue
        fixed = to.this in FIXED_TEXT
        if not fixed and to.this not in (*VARIABLE_TEXT, DType.TEXT):
            continue
        params = to.expressions
        length = params[0].this if params else None
        if length is None and fixed:
            length = exp.Literal.number(1)  # PostgreSQL: CHAR is CHAR(1)
        if not isinstance(length, exp.Literal) or not length.is_int:
            # Unsized VARCHAR or TEXT (or (MAX), which PostgreSQL refuses): unbounded.
            cast.set("to", _unicode(DType.NVARCHAR, exp.var("MAX")))
            continue
        size = int(length.name)
        if size <= UNICODE_MAX_LENGTH:
            cast.set("to", _unicode(DType.NCHAR if fixed else DType.NVARCHAR, length.copy()))
        elif fixed:
            raise not_supported(
                f"CAST to CHAR({size})",
                backend,
                f"NCHAR holds at most {UNICODE_MAX_LENGTH} characters",
            )
        else:
            # PostgreSQL cuts at n characters; NVARCHAR(n) stops at 4000.
            cast.set("to", _unicode(DType.NVARCHAR, exp.var("MAX")))
            cast.replace(exp.Left(this=cast.copy(), expression=length.copy()))


def _unicode(kind: DType, length: exp.Expr) -> exp.DataType:
    return exp.DataType(this=kind, expressions=[exp.DataTypeParam(this=length)])


def like_patterns(tree: exp.Expr, backend: str) -> None:
    for like in tree.find_all(exp.Like):
        pattern = like.expression
        if isinstance(pattern, exp.Literal | exp.National) and "[" in pattern.name:
            raise not_supported(
                "LIKE with a [...] character class", backend, "the pattern would mean '[' itself"
            )
