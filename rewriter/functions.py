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

from collections.abc import Callable, Mapping

from sqlglot import exp

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
    exp.Substring: ALL_BACKENDS,
    exp.StrPosition: ALL_BACKENDS,  # CHARINDEX(substr, string [, start])
    exp.Left: ALL_BACKENDS,  # transforms.strings: SUBSTR on SQLite
    exp.Right: ALL_BACKENDS,
    exp.Cast: ALL_BACKENDS,
    exp.Convert: ALL_BACKENDS,  # without a style only; becomes CAST
    exp.DateAdd: ALL_BACKENDS,  # transforms.dates (SQLite: no month/year)
    exp.DateDiff: ALL_BACKENDS,  # transforms.dates: boundaries crossed
    exp.TimeStrToTime: ALL_BACKENDS,  # sqlglot wraps DATEDIFF's operands in it
    exp.CurrentTimestamp: ALL_BACKENDS,  # GETDATE(), SYSDATETIME()
    # window functions: only inside OVER (...)
    exp.RowNumber: ALL_BACKENDS,
    exp.Rank: ALL_BACKENDS,
    exp.DenseRank: ALL_BACKENDS,
}

# Functions sqlglot does not know (``exp.Anonymous``), by casefolded name.
ANONYMOUS_BACKENDS: Mapping[str, frozenset[str]] = {
    "getutcdate": ALL_BACKENDS,  # transforms.dates
}

ALLOWED_FUNCTIONS: frozenset[type[exp.Expr]] = frozenset(BACKENDS_OF)

RANKING = (exp.RowNumber, exp.Rank, exp.DenseRank)
WINDOWED_AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)
DATE_UNITS = frozenset({"YEAR", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE", "SECOND"})


def _refuse(construct: str, why: str | None = None) -> ConstructNotAllowed:
    message = f"{construct} {why}" if why else f"not allowed: {construct}"
    return ConstructNotAllowed(message, construct=construct)


def _sql_name(node: exp.Expr) -> str:
    return node.sql_name() if isinstance(node, exp.Func) else type(node).__name__


def is_unit_keyword(node: exp.Expr) -> bool:
    """A ``Var`` that names the unit of DATEADD/DATEDIFF (``day``, ``month``...)."""
    return isinstance(node.parent, exp.DateAdd | exp.DateDiff) and node.arg_key == "unit"


def _check_ranking(node: exp.Expr) -> None:
    if not isinstance(node.parent, exp.Window) or node.arg_key != "this":
        raise _refuse(f"function {_sql_name(node)}", "needs an OVER (...) clause")


def _check_convert(node: exp.Expr) -> None:
    if node.args.get("style") is not None:
        # Styles are formats (120 = ODBC canonical, 103 = dd/mm/yyyy...); none is
        # mapped yet, and sqlglot's mapping pads or truncates differently per backend.
        raise _refuse("CONVERT with a style argument", "is not supported: use CAST")


def _check_date_unit(node: exp.Expr) -> None:
    unit = node.args.get("unit")
    name = unit.name.upper() if isinstance(unit, exp.Var) else ""
    if name not in DATE_UNITS:
        function = "DATEADD" if isinstance(node, exp.DateAdd) else "DATEDIFF"
        allowed = ", ".join(sorted(DATE_UNITS)).lower()
        raise _refuse(f"{function} unit {name.lower() or '?'}", f"is not supported (use {allowed})")


def _check_time_str(node: exp.Expr) -> None:
    if not isinstance(node.parent, exp.DateDiff):
        raise _refuse(f"function {_sql_name(node)}")


def _check_window(node: exp.Expr) -> None:
    function = node.this
    if type(function) not in (*RANKING, *WINDOWED_AGGREGATES):
        name = function.sql_name() if isinstance(function, exp.Func) else type(function).__name__
        raise _refuse(f"function {name} with OVER (...)")
    if str(node.args.get("over") or "").upper() != "OVER":
        raise _refuse("window clauses other than OVER (...)")


FRAME_BOUNDS = frozenset({"UNBOUNDED", "CURRENT ROW"})


def _check_window_spec(node: exp.Expr) -> None:
    kind = str(node.args.get("kind") or "").upper()
    if kind not in ("ROWS", "RANGE") or node.args.get("exclude"):
        raise _refuse("window frames other than ROWS or RANGE BETWEEN ...")
    for bound in ("start", "end"):
        value = node.args.get(bound)
        if value is None or (isinstance(value, str) and value.upper() in FRAME_BOUNDS):
            continue
        numeric = isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()
        if kind != "ROWS" or not numeric:
            # T-SQL has numeric offsets only for ROWS; RANGE n PRECEDING is refused there.
            raise _refuse(f"window frame bound {value}", "is not supported")


CHECKS: Mapping[type[exp.Expr], Callable[[exp.Expr], None]] = {
    exp.Window: _check_window,
    exp.WindowSpec: _check_window_spec,
    exp.RowNumber: _check_ranking,
    exp.Rank: _check_ranking,
    exp.DenseRank: _check_ranking,
    exp.Convert: _check_convert,
    exp.DateAdd: _check_date_unit,
    exp.DateDiff: _check_date_unit,
    exp.TimeStrToTime: _check_time_str,
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
            raise not_supported(f"function {name}", backend)


def not_supported(construct: str, backend: str, why: str = "") -> ConstructNotSupportedOnBackend:
    reason = f": {why}" if why else ""
    return ConstructNotSupportedOnBackend(
        f"{construct} is not supported on {backend}{reason}", construct=construct, backend=backend
    )
