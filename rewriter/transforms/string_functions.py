"""T-SQL's string functions on PostgreSQL and SQLite (SQLite 3.40: no CONCAT,
CONCAT_WS, REPEAT or REVERSE, and GROUP_CONCAT without ORDER BY).

* ``CONCAT(a, ...)`` treats NULL as ''; PostgreSQL's CONCAT does too; SQLite:
  ``COALESCE(a, '') || ...``. ``CONCAT_WS(sep, a, ...)`` skips NULLs (and a NULL
  separator is ''); PostgreSQL: ``CONCAT_WS(COALESCE(sep, ''), ...)``; SQLite, with a
  literal separator: ``SUBSTR(COALESCE(sep || a, '') || ..., LENGTH(sep) + 1)``.
  T-SQL converts other arguments to strings with its own formats: accepted are
  strings and integers (and on PostgreSQL decimals and dates, which print alike);
  other kinds, or an unknown kind (a parameter), are refused.
* ``STRING_AGG(x, sep)``: ``STRING_AGG`` / ``GROUP_CONCAT`` (NULLs skipped, NULL for no
  rows, everywhere); an integer ``x`` is cast to text on PostgreSQL. ``WITHIN GROUP
  (ORDER BY ...)`` on PostgreSQL; refused on SQLite, whose GROUP_CONCAT has no order
  before 3.44.
* ``SUBSTRING(x, start, n)`` on SQLite: a start below 1 counts from the end there, so a
  non-literal start becomes ``SUBSTR(x, MAX(start, 1), MAX(n + MIN(start, 1) - 1, 0))``.
* ``REPLICATE(x, n)``: NULL for n < 0 (PostgreSQL's REPEAT gives ''); SQLite:
  ``REPLACE(HEX(ZEROBLOB(n)), '00', x)``. T-SQL truncates the result of a non-MAX
  string at 8,000 bytes (4,000 characters of nvarchar): reproduced with SUBSTR, so the
  argument's type must be known (a literal or a column).
* ``REVERSE``: PostgreSQL's; refused on SQLite (no such function).
* ``STUFF(x, start, n, r)`` with literal ``start`` and ``n``: NULL when start is beyond
  ``x`` (or below 1, or n < 0), else ``SUBSTR(x, 1, start-1) || COALESCE(r, '') ||
  SUBSTR(x, start + n)``.
* ``TRY_CAST`` / ``TRY_CONVERT``: SQL Server only. PostgreSQL fails the statement
  where T-SQL gives NULL, and SQLite's CAST never fails ('abc' is 0).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from rewriter.functions import not_supported
from rewriter.transforms.common import call, post_order, reusable
from rewriter.transforms.types import Types
from rewriter.type_names import DATE, DECIMAL, INTEGER, TEXT, declared_type

# Kinds T-SQL converts to the same text as each backend does (CONCAT, STRING_AGG).
PRINTABLE = {
    "postgresql": frozenset({TEXT, INTEGER, DECIMAL, DATE}),
    "sqlite": frozenset({TEXT, INTEGER}),
}
STRING_FUNCTIONS = (
    exp.Concat,
    exp.ConcatWs,
    exp.GroupConcat,
    exp.Substring,
    exp.Repeat,
    exp.Reverse,
    exp.Stuff,
)
# T-SQL truncates a non-MAX string result at 8,000 bytes.
NVARCHAR_LIMIT = 4000
VARCHAR_LIMIT = 8000


def _empty() -> exp.Expr:
    return exp.Literal.string("")


def _dpipe(parts: Sequence[exp.Expr]) -> exp.Expr:
    result = parts[0]
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part, safe=True)
    return result


def _integer_literal(node: exp.Expr | None) -> int | None:
    """The value of an integer literal (``3``, ``-3``), else None."""
    if isinstance(node, exp.Paren):
        return _integer_literal(node.this)
    if isinstance(node, exp.Neg):
        inner = _integer_literal(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _check_printable(node: exp.Expr, args: list[exp.Expr], backend: str, types: Types) -> None:
    name = "CONCAT_WS" if isinstance(node, exp.ConcatWs) else "CONCAT"
    if isinstance(node, exp.GroupConcat):
        name = "STRING_AGG"
    for arg in args:
        if isinstance(arg, exp.Null):
            continue
        kind = types.of(arg)
        if kind in PRINTABLE[backend]:
            continue
        why = (
            f"T-SQL would convert the {kind} argument to text in its own format"
            if kind is not None
            else "an argument's type is unknown (CAST it to a string type)"
        )
        raise not_supported(f"{name} with {_a(kind or 'untyped')} argument", backend, why)


def string_functions(tree: exp.Expr, backend: str, types: Types) -> None:
    for node in post_order(tree, *STRING_FUNCTIONS):
        if isinstance(node, exp.ConcatWs):  # a subclass of Concat: first
            _concat_ws(node, backend, types)
        elif isinstance(node, exp.Concat):
            _concat(node, backend, types)
        elif isinstance(node, exp.GroupConcat):
            _string_agg(node, backend, types)
        elif isinstance(node, exp.Substring):
            _substring(node, backend)
        elif isinstance(node, exp.Repeat):
            _replicate(node, backend, types)
        elif isinstance(node, exp.Reverse):
            if backend == "sqlite":
                raise not_supported("REVERSE", backend, "SQLite has no such function")
        elif isinstance(node, exp.Stuff):
            _stuff(node, backend)


def _concat(node: exp.Expr, backend: str, types: Types) -> None:
    args = list(node.expressions)
    _check_printable(node, args, backend, types)
    if backend == "sqlite":
        parts = [exp.Coalesce(this=arg, expressions=[_empty()]) for arg in args]
        node.replace(exp.paren(_dpipe(parts), copy=False))


def _concat_ws(node: exp.Expr, backend: str, types: Types) -> None:
    separator, *args = node.expressions
    _check_printable(node, args, backend, types)
    if backend == "postgresql":
        if not (isinstance(separator, exp.Literal) and separator.is_string):
            # T-SQL reads a NULL separator as ''; PostgreSQL's CONCAT_WS returns NULL.
            separator.replace(exp.Coalesce(this=separator.copy(), expressions=[_empty()]))
        return
    if not (isinstance(separator, exp.Literal) and separator.is_string):
        raise not_supported(
            "CONCAT_WS with a separator other than a string literal", backend, "write it as 'x'"
        )
    parts = [
        exp.Coalesce(
            this=exp.DPipe(this=separator.copy(), expression=arg, safe=True),
            expressions=[_empty()],
        )
        for arg in args
    ]
    start = exp.Literal.number(len(separator.name) + 1)
    node.replace(call("SUBSTR", _dpipe(parts), start))


def _string_agg(node: exp.Expr, backend: str, types: Types) -> None:
    value = node.this
    ordered = isinstance(value, exp.Order)
    if ordered and backend == "sqlite":
        raise not_supported(
            "STRING_AGG(...) WITHIN GROUP (ORDER BY ...)",
            backend,
            "GROUP_CONCAT has no order before SQLite 3.44; use STRING_AGG without it",
        )
    target = value.this if isinstance(value, exp.Order) else value
    _check_printable(node, [target], backend, types)
    if backend == "postgresql" and types.of(target) != TEXT:
        target.replace(exp.Cast(this=target.copy(), to=exp.DataType.build("TEXT")))


def _substring(node: exp.Expr, backend: str) -> None:
    if backend != "sqlite":
        return  # PostgreSQL's SUBSTRING(x FROM s FOR n) is T-SQL's, start < 1 included
    start, length = node.args.get("start"), node.args.get("length")
    if length is None:
        return  # T-SQL requires it; sqlglot would have said so
    count = _integer_literal(length)
    if count is not None and count < 0:
        raise not_supported("SUBSTRING with a negative length", backend, "an error in T-SQL")
    first = _integer_literal(start)
    if first is not None and first >= 1:
        return
    assert start is not None
    if first is not None:  # a literal start below 1: the characters before 1 are not there
        node.set("start", exp.Literal.number(1))
        node.set(
            "length",
            call(
                "MAX",
                exp.paren(length.copy()) + exp.Literal.number(first - 1),
                exp.Literal.number(0),
            ),
        )
        return
    start = reusable(start, "SUBSTRING with a parameter start", backend)
    node.set("start", call("MAX", start.copy(), exp.Literal.number(1)))
    shortened = exp.Sub(
        this=exp.Add(
            this=exp.paren(length.copy()),
            expression=call("MIN", start.copy(), exp.Literal.number(1)),
        ),
        expression=exp.Literal.number(1),
    )
    node.set("length", call("MAX", shortened, exp.Literal.number(0)))


def _text_limit(node: exp.Expr, types: Types) -> int | None:
    """Where T-SQL truncates REPLICATE's result (0: never), or None when unknown."""
    if isinstance(node, exp.National):
        return NVARCHAR_LIMIT
    if isinstance(node, exp.Literal) and node.is_string:
        return VARCHAR_LIMIT
    type_name = types.declared(node)
    if type_name is None:
        return None
    declared = declared_type(type_name)
    if declared.kind != TEXT:
        return None
    if declared.name in ("text", "ntext") or declared.arguments == ("max",):
        return 0
    return NVARCHAR_LIMIT if declared.name.startswith("n") else VARCHAR_LIMIT


def _replicate(node: exp.Expr, backend: str, types: Types) -> None:
    value, times = node.this, node.args["times"]
    limit = _text_limit(value, types)
    if limit is None:
        raise not_supported(
            "REPLICATE of an expression",
            backend,
            "T-SQL truncates the result by the string's type: REPLICATE a column or a literal",
        )
    count = _integer_literal(times)
    if count is not None and count < 0:
        node.replace(exp.Null())
        return
    if backend == "sqlite":
        repeated: exp.Expr = exp.Replace(
            this=call("HEX", call("ZEROBLOB", times.copy())),
            expression=exp.Literal.string("00"),
            replacement=value.copy(),
        )
    else:
        repeated = call("REPEAT", value.copy(), times.copy())
    if limit:
        repeated = call("SUBSTR", repeated, exp.Literal.number(1), exp.Literal.number(limit))
    if count is None:
        times = reusable(times, "REPLICATE with a parameter count", backend)
        # NULL for a negative or NULL count (SQLite's ZEROBLOB(NULL) is empty).
        negative = exp.LT(
            this=exp.Coalesce(this=times.copy(), expressions=[exp.Literal.number(-1)]),
            expression=exp.Literal.number(0),
        )
        repeated = exp.Case(ifs=[exp.If(this=negative, true=exp.Null())], default=repeated)
    node.replace(repeated)


def _stuff(node: exp.Expr, backend: str) -> None:
    value = node.this
    start = _integer_literal(node.args.get("start"))
    length = _integer_literal(node.args.get("length"))
    if start is None or length is None:
        raise not_supported(
            "STUFF with a start or length other than a number", backend, "write them as numbers"
        )
    if start < 1 or length < 0:
        node.replace(exp.Null())  # T-SQL: NULL
        return
    value = reusable(value, "STUFF with a parameter string", backend)
    text = value.copy()
    replacement = node.args.get("expression")
    head = call("SUBSTR", text.copy(), exp.Literal.number(1), exp.Literal.number(start - 1))
    tail = call("SUBSTR", text.copy(), exp.Literal.number(start + length))
    middle = exp.Coalesce(this=replacement, expressions=[_empty()]) if replacement else _empty()
    beyond = exp.LT(this=call("LENGTH", text.copy()), expression=exp.Literal.number(start))
    node.replace(
        exp.Case(ifs=[exp.If(this=beyond, true=exp.Null())], default=_dpipe([head, middle, tail]))
    )


def try_casts(tree: exp.Expr, backend: str) -> None:
    """TRY_CAST / TRY_CONVERT: not on PostgreSQL and SQLite (see the module doc)."""
    for node in tree.find_all(exp.TryCast, exp.Convert):
        if isinstance(node, exp.Convert) and not node.args.get("safe"):
            continue
        to = node.args.get("to") if isinstance(node, exp.TryCast) else node.this
        name = to.sql("tsql") if isinstance(to, exp.Expr) else "?"
        function = "TRY_CAST" if isinstance(node, exp.TryCast) else "TRY_CONVERT"
        why = (
            "SQLite's CAST never fails ('abc' becomes 0)"
            if backend == "sqlite"
            else "a value that does not convert fails the statement instead of giving NULL"
        )
        raise not_supported(f"{function}(... AS {name})", backend, why)
