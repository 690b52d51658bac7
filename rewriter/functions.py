"""Functions the rewriter accepts, per backend, and the conditions on their arguments.

``allowlist`` (parse time, no backend known yet) lets a function through when some
backend can run it; ``check_backend`` (generation time) refuses a function that the
chosen backend cannot run faithfully. Where sqlglot's translation was wrong, a
transform in ``rewriter.transforms`` fixes it: a function is listed for a backend only
once its translation there has been checked against a real database
(``tests/integration/test_transpile.py``).

Types are matched exactly, as in ``allowlist``: a subclass sqlglot adds later stays
refused until it is listed here on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlglot import exp
from sqlglot.expressions.datatypes import DType
from sqlglot.tokenizer_core import Token, TokenType

from rewriter.errors import ConstructNotAllowed, ConstructNotSupportedOnBackend

ALL_BACKENDS: frozenset[str] = frozenset({"sqlserver", "postgresql", "sqlite"})

# Function node type -> backends it runs on (after our transforms).
BACKENDS_OF: Mapping[type[exp.Expr], frozenset[str]] = {
    exp.Count: ALL_BACKENDS,
    exp.Sum: ALL_BACKENDS,
    exp.Avg: ALL_BACKENDS,  # transforms.numbers: integer AVG stays integer
    exp.Min: ALL_BACKENDS,
    exp.Max: ALL_BACKENDS,
    exp.Coalesce: ALL_BACKENDS,  # COALESCE, ISNULL
    exp.Nullif: ALL_BACKENDS,
    exp.If: ALL_BACKENDS,  # IIF: CASE on PostgreSQL, IIF on SQLite >= 3.32
    exp.Upper: ALL_BACKENDS,
    exp.Lower: ALL_BACKENDS,
    exp.Length: ALL_BACKENDS,  # LEN, LENGTH; transforms.strings: trailing spaces
    exp.Trim: ALL_BACKENDS,  # TRIM, LTRIM, RTRIM
    exp.Abs: ALL_BACKENDS,
    exp.Round: ALL_BACKENDS,
    exp.Substring: ALL_BACKENDS,  # transforms.string_functions: start < 1 on SQLite
    # transforms.string_functions (refusals there name the construct and the backend)
    exp.Concat: ALL_BACKENDS,  # CONCAT: NULL is ''
    exp.ConcatWs: ALL_BACKENDS,  # CONCAT_WS: NULLs skipped
    exp.GroupConcat: ALL_BACKENDS,  # STRING_AGG [WITHIN GROUP (ORDER BY ...)]
    exp.Replace: ALL_BACKENDS,
    exp.Repeat: ALL_BACKENDS,  # REPLICATE
    exp.Reverse: ALL_BACKENDS,  # refused on SQLite by the transform
    exp.Stuff: ALL_BACKENDS,
    exp.TryCast: ALL_BACKENDS,  # TRY_CAST: SQL Server only (transforms refuse)
    # transforms.numbers: T-SQL's result types
    exp.Floor: ALL_BACKENDS,
    exp.Ceil: ALL_BACKENDS,  # CEILING
    exp.Pow: ALL_BACKENDS,  # POWER
    exp.Sqrt: ALL_BACKENDS,
    exp.Sign: ALL_BACKENDS,
    exp.StrPosition: ALL_BACKENDS,  # CHARINDEX(substr, string [, start])
    exp.Left: ALL_BACKENDS,  # transforms.strings: SUBSTR on SQLite
    exp.Right: ALL_BACKENDS,
    exp.Cast: ALL_BACKENDS,
    exp.Convert: ALL_BACKENDS,  # without a style only; becomes CAST
    exp.DateAdd: ALL_BACKENDS,  # transforms.dates (SQLite: month end clamped)
    exp.DateDiff: ALL_BACKENDS,  # transforms.dates: boundaries crossed
    exp.TimeStrToTime: ALL_BACKENDS,  # sqlglot wraps DATEDIFF's operands in it
    # transforms.date_parts: DATEPART/EXTRACT/date_part, YEAR/MONTH/DAY, DATENAME and
    # SQLite's strftime, EOMONTH, DATEFROMPARTS, DATETRUNC/date_trunc, d +/- INTERVAL
    exp.Extract: ALL_BACKENDS,
    exp.Year: ALL_BACKENDS,
    exp.Month: ALL_BACKENDS,
    exp.Day: ALL_BACKENDS,
    exp.TsOrDsToDate: ALL_BACKENDS,  # sqlglot wraps YEAR/MONTH/DAY/EOMONTH's operand
    exp.LastDay: ALL_BACKENDS,  # EOMONTH
    exp.DateFromParts: ALL_BACKENDS,
    exp.TimestampTrunc: ALL_BACKENDS,  # DATETRUNC, date_trunc
    exp.TimeToStr: ALL_BACKENDS,  # DATENAME, strftime (FORMAT is refused by parse)
    exp.TsOrDsToTimestamp: ALL_BACKENDS,  # sqlglot wraps strftime's operand in it
    exp.Interval: ALL_BACKENDS,  # only as d + INTERVAL / d - INTERVAL (not a function)
    exp.Date: ALL_BACKENDS,  # date(d): SQLite's and PostgreSQL's, not T-SQL's
    exp.CurrentTimestamp: ALL_BACKENDS,  # GETDATE(), SYSDATETIME()
    # window functions: only inside OVER (...)
    exp.RowNumber: ALL_BACKENDS,
    exp.Rank: ALL_BACKENDS,
    exp.DenseRank: ALL_BACKENDS,
    # offset, distribution and value window functions: only inside OVER (... ORDER BY ...)
    exp.Lag: ALL_BACKENDS,
    exp.Lead: ALL_BACKENDS,
    exp.Ntile: ALL_BACKENDS,
    exp.FirstValue: ALL_BACKENDS,
    exp.LastValue: ALL_BACKENDS,
    exp.PercentRank: ALL_BACKENDS,
    exp.CumeDist: ALL_BACKENDS,
    # GROUPING(x), GROUPING_ID(x, ...): with ROLLUP/CUBE/GROUPING SETS, which SQLite
    # lacks (transforms.aggregates: GROUPING_ID's spelling, and ROLLUP's refusal)
    exp.Grouping: frozenset({"sqlserver", "postgresql"}),
    exp.GroupingId: frozenset({"sqlserver", "postgresql"}),
    # STDEV(x): float arithmetic whose last digits differ by engine; SQL Server only
    exp.Stddev: frozenset({"sqlserver"}),
}

# Functions sqlglot does not know (``exp.Anonymous``), by casefolded name.
ANONYMOUS_BACKENDS: Mapping[str, frozenset[str]] = {
    "getutcdate": ALL_BACKENDS,  # transforms.dates
    # SQLite's date(d, modifiers...), datetime(d [, modifiers...]): transforms.date_parts
    # (refused in the T-SQL and PostgreSQL dialects)
    "date": ALL_BACKENDS,
    "datetime": ALL_BACKENDS,
    # T-SQL's other statistical aggregates, as STDEV above: SQL Server only
    "stdevp": frozenset({"sqlserver"}),
    "var": frozenset({"sqlserver"}),
    "varp": frozenset({"sqlserver"}),
}

ALLOWED_FUNCTIONS: frozenset[type[exp.Expr]] = frozenset(BACKENDS_OF)

RANKING = (exp.RowNumber, exp.Rank, exp.DenseRank)
# Window functions that T-SQL allows only with ORDER BY in OVER (...).
UNFRAMED_WINDOW_FUNCTIONS = (exp.Lag, exp.Lead, exp.Ntile, exp.PercentRank, exp.CumeDist)
ORDERED_WINDOW_FUNCTIONS = (*UNFRAMED_WINDOW_FUNCTIONS, exp.FirstValue, exp.LastValue)
WINDOWED_AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)
# DATEADD/DATEDIFF units as sqlglot spells them once parse.py wrote T-SQL's
# abbreviations out (``canonical_date_part``); DAYOFYEAR/WEEKDAY count as days there.
DATE_UNITS = frozenset(
    {"YEAR", "QUARTER", "MONTH", "DAYOFYEAR", "DAY", "WEEK", "WEEKDAY", "DAYOFWEEK"}
    | {"HOUR", "MINUTE", "SECOND", "MILLISECOND"}
)
# T-SQL's date part abbreviations (DATEPART, DATENAME, DATEADD, DATEDIFF, DATETRUNC),
# written out before parsing: sqlglot reads some as other parts (``w`` as week, it is
# weekday; ``DATENAME(y, d)`` as the year, it is the day of the year).
DATE_PART_ABBREVIATIONS: Mapping[str, str] = {
    **dict.fromkeys(("YY", "YYYY"), "year"),
    **dict.fromkeys(("QQ", "Q"), "quarter"),
    **dict.fromkeys(("MM", "M"), "month"),
    **dict.fromkeys(("DY", "Y"), "dayofyear"),
    **dict.fromkeys(("DD", "D"), "day"),
    **dict.fromkeys(("WK", "WW"), "week"),
    **dict.fromkeys(("DW", "W"), "weekday"),
    "HH": "hour",
    **dict.fromkeys(("MI", "N"), "minute"),
    **dict.fromkeys(("SS", "S"), "second"),
    "MS": "millisecond",
    "MCS": "microsecond",
    "NS": "nanosecond",
    **dict.fromkeys(("ISOWK", "ISOWW"), "iso_week"),
}
DATE_PART_FUNCTIONS = frozenset({"DATEPART", "DATENAME", "DATEADD", "DATEDIFF", "DATETRUNC"})


def _refuse(construct: str, why: str | None = None) -> ConstructNotAllowed:
    message = f"{construct} {why}" if why else f"not allowed: {construct}"
    return ConstructNotAllowed(message, construct=construct)


def _sql_name(node: exp.Expr) -> str:
    return node.sql_name() if isinstance(node, exp.Func) else type(node).__name__


def is_unit_keyword(node: exp.Expr) -> bool:
    """A ``Var`` that names a date unit: DATEADD/DATEDIFF/DATETRUNC's (``day``,
    ``month``...), DATEPART/EXTRACT's part, an INTERVAL's unit."""
    parent, key = node.parent, node.arg_key
    if isinstance(parent, exp.Extract):
        return key == "this"
    return isinstance(parent, _UNIT_HOLDERS) and key == "unit"


_UNIT_HOLDERS = (exp.DateAdd, exp.DateDiff, exp.TimestampTrunc, exp.Interval)


def canonical_date_part(tokens: Sequence[Token], index: int) -> None:
    """``tokens[index]`` is a ``(``: after DATEPART & co., write an abbreviated part
    out (``DATEPART(w, d)`` -> ``DATEPART(weekday, d)``), so that sqlglot reads it as
    T-SQL means it. Only the text of that one token changes."""
    if index < 1 or index + 1 >= len(tokens):
        return
    function = tokens[index - 1].text.upper()
    if function not in DATE_PART_FUNCTIONS:
        return
    part = tokens[index + 1]
    if part.token_type != TokenType.VAR:
        return
    full = DATE_PART_ABBREVIATIONS.get(part.text.upper(), part.text.lower())
    if function in ("DATEADD", "DATEDIFF") and full in ("dayofyear", "weekday"):
        # T-SQL: both count days there (Babelfish rejects DATEDIFF(weekday, ...)).
        full = "day"
    if full != part.text.lower():
        part.text = full


def _check_ranking(node: exp.Expr) -> None:
    if not isinstance(node.parent, exp.Window) or node.arg_key != "this":
        raise _refuse(f"function {_sql_name(node)}", "needs an OVER (...) clause")


# REPLICATE's count: a number up to T-SQL's 8,000-byte limit of a non-MAX result, so
# that no statement asks a backend for a string of gigabytes.
MAX_REPLICATE = 8000


def _check_concat(node: exp.Expr) -> None:
    # sqlglot reads adjacent literals ('a' 'b') as a CONCAT without ``safe``: no
    # backend's SQL, so refused; CONCAT(...) and CONCAT_WS(...) carry ``safe``.
    if not node.args.get("safe"):
        raise _refuse("adjacent string literals", "are not allowed: use + or CONCAT")


def _check_replicate(node: exp.Expr) -> None:
    times = node.args.get("times")
    if isinstance(times, exp.Neg):
        times = times.this
    if (
        not isinstance(times, exp.Literal)
        or not _is_whole_number(times)
        or int(times.this) > MAX_REPLICATE
    ):
        raise _refuse("REPLICATE(s, n) with n other than a number up to 8000", "is not supported")


def _check_convert(node: exp.Expr) -> None:
    if node.args.get("safe") and node.args.get("style") is not None:
        raise _refuse("TRY_CONVERT with a style argument", "is not supported: use TRY_CAST")
    style = node.args.get("style")
    if style is None:
        return
    # Date styles to text only (transforms.date_styles); the others are formats whose
    # output sqlglot's mapping pads or truncates differently per backend.
    number = style.this if isinstance(style, exp.Literal) and not style.is_string else ""
    to = node.this
    if number not in DATE_STYLES or not (
        isinstance(to, exp.DataType) and to.this in (DType.VARCHAR, DType.NVARCHAR)
    ):
        target = to.sql("tsql") if isinstance(to, exp.Expr) else "?"
        raise _refuse(
            f"CONVERT({target}, x, {style.sql('tsql')})",
            "is not supported: CONVERT takes a style only to VARCHAR/NVARCHAR, with the "
            f"date styles {', '.join(sorted(DATE_STYLES, key=int))}; otherwise use CAST",
        )


DATE_STYLES = frozenset({"23", "101", "103", "112", "120", "121", "126"})


def _check_date_unit(node: exp.Expr) -> None:
    unit = node.args.get("unit")
    name = unit.name.upper() if isinstance(unit, exp.Var) else ""
    if name not in DATE_UNITS:
        function = "DATEADD" if isinstance(node, exp.DateAdd) else "DATEDIFF"
        allowed = ", ".join(sorted(DATE_UNITS - {"DAYOFWEEK"})).lower()
        raise _refuse(
            f"{function}({name.lower() or '?'}, ...)", f"is not supported (use {allowed})"
        )


# The arguments sqlglot sets for the date functions as users write them; any other
# (a time zone, a culture, SAFE...) is refused rather than dropped.
DATE_ARGS: Mapping[type[exp.Expr], tuple[str, frozenset[str]]] = {
    exp.Extract: ("DATEPART / EXTRACT", frozenset({"this", "expression"})),
    exp.Year: ("YEAR", frozenset({"this"})),
    exp.Month: ("MONTH", frozenset({"this"})),
    exp.Day: ("DAY", frozenset({"this"})),
    exp.TimeToStr: ("DATENAME / strftime", frozenset({"this", "format"})),
    exp.LastDay: ("EOMONTH", frozenset({"this"})),
    exp.DateFromParts: ("DATEFROMPARTS", frozenset({"year", "month", "day"})),
    exp.TimestampTrunc: ("DATETRUNC / date_trunc", frozenset({"this", "unit"})),
    exp.Interval: ("INTERVAL", frozenset({"this", "unit"})),
    exp.Date: ("date(d, ...)", frozenset({"this"})),
    exp.TsOrDsToDate: ("YEAR / MONTH / DAY / EOMONTH", frozenset({"this", "default_date"})),
    exp.TsOrDsToTimestamp: ("strftime", frozenset({"this"})),
    exp.DateAdd: ("DATEADD", frozenset({"this", "expression", "unit"})),
    exp.DateDiff: ("DATEDIFF", frozenset({"this", "expression", "unit", "big_int"})),
}


def _check_date_args(node: exp.Expr) -> None:
    name, allowed = DATE_ARGS[type(node)]
    for arg, value in node.args.items():
        if arg not in allowed and value is not None and value is not False and value != []:
            raise _refuse(f"{name} with a {arg} argument", "is not supported")


def _checked_args(check: Callable[[exp.Expr], None]) -> Callable[[exp.Expr], None]:
    def both(node: exp.Expr) -> None:
        _check_date_args(node)
        check(node)

    return both


def _check_unit_var(node: exp.Expr) -> None:
    """DATEPART/EXTRACT and DATETRUNC/date_trunc: the part is a keyword
    (transforms.date_parts decides which parts each backend carries)."""
    unit = node.this if isinstance(node, exp.Extract) else node.args.get("unit")
    if not isinstance(unit, exp.Var):
        name = "DATEPART" if isinstance(node, exp.Extract) else "DATETRUNC"
        raise _refuse(f"{name} with a part that is not a keyword")


def _check_date_operand(node: exp.Expr) -> None:
    """The wrappers sqlglot puts around an operand, only where it puts them."""
    parent = node.parent
    if isinstance(node, exp.TsOrDsToTimestamp):
        ok = isinstance(parent, exp.TimeToStr) and node.arg_key == "this"
    else:
        holder = parent.parent if isinstance(parent, exp.DateAdd) else parent
        ok = isinstance(holder, exp.Year | exp.Month | exp.Day | exp.LastDay)
    if not ok:
        raise _refuse(f"function {_sql_name(node)}")


def _check_time_to_str(node: exp.Expr) -> None:
    """DATENAME(part, d) (sqlglot: a format over ``CAST(d AS DATETIME2)``) or SQLite's
    strftime(format, d); FORMAT is refused while parsing, PostgreSQL's to_char here."""
    operand, fmt = node.this, node.args.get("format")
    datename = isinstance(operand, exp.Cast) and operand.to.this == DType.DATETIME2
    if not (datename or isinstance(operand, exp.TsOrDsToTimestamp)) or not (
        isinstance(fmt, exp.Literal) and fmt.is_string
    ):
        raise _refuse(
            "TO_CHAR(...) / FORMAT(...)",
            "is not supported: use EXTRACT(...) or date_trunc(...) (T-SQL: DATEPART, "
            "DATENAME or CONVERT(varchar, d, style))",
        )


def _check_interval(node: exp.Expr) -> None:
    """INTERVAL only as an operand of + or - (transforms.date_parts)."""
    if not isinstance(node.parent, exp.Add | exp.Sub):
        raise _refuse("INTERVAL outside d + INTERVAL '...' / d - INTERVAL '...'")


def _check_time_str(node: exp.Expr) -> None:
    if not isinstance(node.parent, exp.DateDiff):
        raise _refuse(f"function {_sql_name(node)}")


def _check_window(node: exp.Expr) -> None:
    function = node.this
    kind = type(function)
    if kind not in (*RANKING, *WINDOWED_AGGREGATES, *ORDERED_WINDOW_FUNCTIONS):
        name = function.sql_name() if isinstance(function, exp.Func) else type(function).__name__
        raise _refuse(f"function {name} with OVER (...)", "is not supported")
    if str(node.args.get("over") or "").upper() != "OVER":
        raise _refuse("window clauses other than OVER (...)")
    name = _sql_name(function)
    if isinstance(function.this, exp.Distinct):
        # An error in T-SQL (and PostgreSQL): DISTINCT is not allowed with OVER.
        raise _refuse(f"{name}(DISTINCT ...) OVER (...)", "is not supported: T-SQL has none")
    order = node.args.get("order")
    if kind in ORDERED_WINDOW_FUNCTIONS and order is None:
        # T-SQL requires the ORDER BY; PostgreSQL and SQLite would pick an arbitrary order.
        raise _refuse(f"{name}(...) OVER (...)", "needs an ORDER BY inside OVER (...)")
    if node.args.get("spec") is not None:
        if kind in (*RANKING, *UNFRAMED_WINDOW_FUNCTIONS):
            # T-SQL refuses a frame on them; PostgreSQL and SQLite would ignore it.
            raise _refuse(f"a ROWS or RANGE frame with {name}(...)", "is not supported")
        if order is None:
            # T-SQL: "ROWS or RANGE requires an ORDER BY in the OVER clause".
            raise _refuse("a ROWS or RANGE frame without ORDER BY", "is not supported")


def _check_offset(node: exp.Expr) -> None:
    """LAG/LEAD(x [, offset [, default]]): the offset a number (T-SQL refuses a
    negative one; PostgreSQL and SQLite would read it as the other direction)."""
    _check_in_window(node)
    offset = node.args.get("offset")
    if offset is not None and not _is_whole_number(offset):
        name = _sql_name(node)
        raise _refuse(
            f"{name}(x, offset) with an offset other than a number", "is not supported (0, 1, 2...)"
        )


def _check_ntile(node: exp.Expr) -> None:
    _check_in_window(node)
    buckets = node.this
    if not _is_whole_number(buckets) or int(buckets.this) < 1:
        raise _refuse("NTILE(n) with n other than a positive number", "is not supported")


def _check_in_window(node: exp.Expr) -> None:
    if not isinstance(node.parent, exp.Window) or node.arg_key != "this":
        raise _refuse(f"function {_sql_name(node)}", "needs an OVER (...) clause")


def _is_whole_number(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit()


def _check_grouping(node: exp.Expr) -> None:
    """GROUPING(x) / GROUPING_ID(x, ...) only in a query grouped by ROLLUP, CUBE or
    GROUPING SETS (T-SQL refuses it elsewhere), over plain expressions."""
    name = _sql_name(node)
    if isinstance(node, exp.Grouping) and len(node.expressions) != 1:
        # T-SQL's GROUPING takes one argument; GROUPING_ID takes several.
        raise _refuse("GROUPING(a, b, ...)", "is not supported: use GROUPING_ID(a, b, ...)")
    select = node.find_ancestor(exp.Select)
    group = select.args.get("group") if select is not None else None
    if not isinstance(group, exp.Group) or not is_grouping_sets(group):
        raise _refuse(f"{name}(...)", "needs GROUP BY ROLLUP, CUBE or GROUPING SETS")


def is_grouping_sets(group: exp.Group) -> bool:
    """Whether GROUP BY has ROLLUP, CUBE or GROUPING SETS (any spelling)."""
    return bool(group.args.get("rollup") or group.args.get("cube")) or any(
        isinstance(item, GROUPING_CONSTRUCTS) for item in group.expressions
    )


GROUPING_CONSTRUCTS = (exp.Rollup, exp.Cube, exp.GroupingSets)


FRAME_BOUNDS = frozenset({"UNBOUNDED", "CURRENT ROW"})


def _check_window_spec(node: exp.Expr) -> None:
    kind = str(node.args.get("kind") or "").upper()
    if kind not in ("ROWS", "RANGE") or node.args.get("exclude"):
        raise _refuse("window frames other than ROWS or RANGE BETWEEN ...")
    for bound in ("start", "end"):
        value = node.args.get(bound)
        if value is None or (isinstance(value, str) and value.upper() in FRAME_BOUNDS):
            continue
        if not _is_whole_number(value):
            raise _refuse(f"window frame bound {value.sql()}", "is not supported: use a number")
        if kind == "RANGE":
            # T-SQL's RANGE takes only UNBOUNDED and CURRENT ROW: the offset is refused
            # for T-SQL and on SQL Server by transforms.windows, which knows the dialect.
            window = node.parent
            order = window.args.get("order") if isinstance(window, exp.Window) else None
            if not isinstance(order, exp.Order) or len(order.expressions) != 1:
                raise _refuse(
                    "RANGE n PRECEDING / FOLLOWING", "needs exactly one ORDER BY expression"
                )


CHECKS: Mapping[type[exp.Expr], Callable[[exp.Expr], None]] = {
    exp.Window: _check_window,
    exp.WindowSpec: _check_window_spec,
    exp.RowNumber: _check_ranking,
    exp.Rank: _check_ranking,
    exp.DenseRank: _check_ranking,
    exp.Lag: _check_offset,
    exp.Lead: _check_offset,
    exp.Ntile: _check_ntile,
    exp.FirstValue: _check_in_window,
    exp.LastValue: _check_in_window,
    exp.PercentRank: _check_in_window,
    exp.CumeDist: _check_in_window,
    exp.Grouping: _check_grouping,
    exp.GroupingId: _check_grouping,
    exp.Convert: _check_convert,
    exp.Concat: _check_concat,
    exp.ConcatWs: _check_concat,
    exp.Repeat: _check_replicate,
    exp.DateAdd: _checked_args(_check_date_unit),
    exp.DateDiff: _checked_args(_check_date_unit),
    exp.TimeStrToTime: _check_time_str,
    exp.Extract: _checked_args(_check_unit_var),
    exp.TimestampTrunc: _checked_args(_check_unit_var),
    exp.TsOrDsToDate: _checked_args(_check_date_operand),
    exp.TsOrDsToTimestamp: _checked_args(_check_date_operand),
    exp.TimeToStr: _checked_args(_check_time_to_str),
    exp.Interval: _checked_args(_check_interval),
    **dict.fromkeys(
        (exp.Year, exp.Month, exp.Day, exp.LastDay, exp.DateFromParts, exp.Date),
        _check_date_args,
    ),
}


def is_allowed_anonymous(name: str) -> bool:
    return name.casefold() in ANONYMOUS_BACKENDS


def check_backend(tree: exp.Expr, backend: str, nodes: list[exp.Expr] | None = None) -> None:
    """Refuse a function the backend cannot run (before our transforms rewrite it).

    ``nodes``: the tree's nodes in ``walk()`` order, when the caller has them.
    """
    for node in tree.walk() if nodes is None else nodes:
        if not isinstance(node, exp.Func):
            continue
        if isinstance(node, exp.Anonymous):
            backends = ANONYMOUS_BACKENDS.get(str(node.this).casefold())
            name = str(node.this).upper()
        else:
            backends = BACKENDS_OF.get(type(node))
            name = type(node).__name__
        if backends is not None and backend not in backends:
            construct, why = UNSUPPORTED.get(name.casefold(), (f"function {name}", ""))
            raise not_supported(construct, backend, why)


NO_GROUPING_SETS = (
    "SQLite has no grouping sets; write one SELECT per grouping level (NULL for the "
    "columns rolled up) combined with UNION ALL"
)
_STATISTICS = (
    "no aggregate of this backend gives SQL Server's floating-point result (SQLite has "
    "none; PostgreSQL's differs in its last digits); compute it from SUM(x), "
    "SUM(x * x) and COUNT(x)"
)
# A function missing on some backend, by the casefolded name ``check_backend`` reads
# (the node's class, or an anonymous function's name): the construct as users write
# it, and why, with what to write instead.
UNSUPPORTED: Mapping[str, tuple[str, str]] = {
    "grouping": ("GROUPING(...)", NO_GROUPING_SETS),
    "groupingid": ("GROUPING_ID(...)", NO_GROUPING_SETS),
    "stddev": ("STDEV(...)", _STATISTICS),
    "stdevp": ("STDEVP(...)", _STATISTICS),
    "var": ("VAR(...)", _STATISTICS),
    "varp": ("VARP(...)", _STATISTICS),
}


def not_supported(construct: str, backend: str, why: str = "") -> ConstructNotSupportedOnBackend:
    reason = f": {why}" if why else ""
    return ConstructNotSupportedOnBackend(
        f"{construct} is not supported on {backend}{reason}", construct=construct, backend=backend
    )
