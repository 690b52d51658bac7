"""Dates: parts, names, truncation, month ends and INTERVAL arithmetic on every backend.

One pass over the date functions of a statement, in any logical dialect: each keeps
the meaning of the dialect it was written in, on every backend. Where the logical
dialect is the backend's own (T-SQL on SQL Server, PostgreSQL on PostgreSQL, SQLite on
SQLite) the statement is left as written, apart from what sqlglot would regenerate
wrongly (``DATENAME``, which it writes as ``FORMAT``).

T-SQL (the reference: SQL Server's documented results; ``SET DATEFIRST`` is assumed to
be its default, 7, as for US English: weeks start on Sunday):

* ``DATEPART(part, d)``, ``YEAR``/``MONTH``/``DAY``: year, quarter, month, dayofyear,
  day, week (``DATEDIFF(week, Jan 1, d) + 1``: Sunday-started weeks, the week of Jan 1
  is week 1), weekday (Sunday = 1), hour, minute, second (whole seconds), iso_week.
  millisecond only on SQL Server (its ``datetime`` counts in 1/300 s).
* ``DATENAME``: English month and weekday names, the number as text for the others.
* ``EOMONTH(d [, n])``, ``DATEFROMPARTS(y, m, d)``, ``DATETRUNC(part, d)`` (the result
  has the operand's type: a date stays a date).

PostgreSQL: ``EXTRACT(field FROM d)`` / ``date_part('field', d)`` (year, quarter,
month, day, doy, dow, isodow, week = ISO week, hour, minute), ``date_trunc('unit', d)``
(a timestamp; weeks start on Monday) and ``d + INTERVAL 'n unit'`` / ``d - INTERVAL
...`` (a timestamp; a month added to Jan 31 gives the last day of February, as T-SQL).
SQLite: ``strftime(format, d)`` with %Y %m %d %H %M %S %j %w.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.expressions.datatypes import DType

from rewriter.errors import ConstructNotAllowed
from rewriter.functions import not_supported
from rewriter.transforms.common import call, post_order, reusable
from rewriter.transforms.types import Types
from rewriter.type_names import DATE, DATETIME

NATIVE = {"tsql": "sqlserver", "postgres": "postgresql", "sqlite": "sqlite"}

# DATEPART's part as sqlglot spells it (after parse.py wrote abbreviations out).
TSQL_PARTS = {
    "YEAR": "year",
    "QUARTER": "quarter",
    "MONTH": "month",
    "DAYOFYEAR": "dayofyear",
    "DAY": "day",
    "WEEK": "week",
    "DAYOFWEEK": "weekday",
    "WEEKDAY": "weekday",
    "HOUR": "hour",
    "MINUTE": "minute",
    "SECOND": "second",
    "WEEKISO": "iso_week",
    "ISO_WEEK": "iso_week",
    "MILLISECOND": "millisecond",
}
# Parts sqlglot renames, as T-SQL spells them (for messages).
WRITTEN = {"TIMEZONE_MINUTE": "tzoffset", "MICROSECOND": "microsecond", "NANOSECOND": "nanosecond"}
SQLSERVER_ONLY_PARTS = {"millisecond": "SQL Server's datetime counts in 1/300 seconds"}
# PostgreSQL's EXTRACT fields -> the part builders' names.
POSTGRES_FIELDS = {
    "YEAR": "year",
    "QUARTER": "quarter",
    "MONTH": "month",
    "DAY": "day",
    "DOY": "dayofyear",
    "DAYOFYEAR": "dayofyear",
    "DOW": "dow",
    "ISODOW": "isodow",
    "WEEK": "iso_week",
    "HOUR": "hour",
    "MINUTE": "minute",
}
# DATENAME: sqlglot's format -> the part; month and weekday are names.
DATENAME_FORMATS = {
    "%Y": "year",
    "quarter": "quarter",
    "%B": "month",
    "%j": "dayofyear",
    "%d": "day",
    "%W": "week",
    "%A": "weekday",
    "%h": "hour",
    "%H": "hour",
    "%M": "minute",
    "%S": "second",
    "%V": "iso_week",
}
MONTHS = (
    *("January", "February", "March", "April", "May", "June", "July", "August"),
    *("September", "October", "November", "December"),
)
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# DATETRUNC (T-SQL) and date_trunc (PostgreSQL) units.
TSQL_TRUNC = {
    "YEAR": "year",
    "QUARTER": "quarter",
    "MONTH": "month",
    "WEEK": "week",
    "WEEKISO": "iso_week",
    "ISO_WEEK": "iso_week",
    "DAYOFYEAR": "day",
    "DAY": "day",
    "HOUR": "hour",
    "MINUTE": "minute",
    "SECOND": "second",
}
POSTGRES_TRUNC = {
    "YEAR": "year",
    "QUARTER": "quarter",
    "MONTH": "month",
    "WEEK": "iso_week",
    "DAY": "day",
    "HOUR": "hour",
    "MINUTE": "minute",
}
TIME_UNITS = ("hour", "minute", "second")
INTERVAL_UNITS = {
    **dict.fromkeys(("YEAR", "YEARS"), "year"),
    **dict.fromkeys(("MONTH", "MONTHS", "MON", "MONS"), "month"),
    **dict.fromkeys(("WEEK", "WEEKS"), "week"),
    **dict.fromkeys(("DAY", "DAYS"), "day"),
    **dict.fromkeys(("HOUR", "HOURS"), "hour"),
    **dict.fromkeys(("MINUTE", "MINUTES", "MIN", "MINS"), "minute"),
    **dict.fromkeys(("SECOND", "SECONDS", "SEC", "SECS"), "second"),
}
# strftime specifiers (SQLite dialect) -> (part, width of the zero-padded text).
STRFTIME = {
    "Y": ("year", 4),
    "m": ("month", 2),
    "d": ("day", 2),
    "H": ("hour", 2),
    "M": ("minute", 2),
    "S": ("second", 2),
    "j": ("dayofyear", 3),
    "w": ("dow", 1),
}
SQLITE_PARTS = {
    "year": "%Y",
    "month": "%m",
    "day": "%d",
    "dayofyear": "%j",
    "hour": "%H",
    "minute": "%M",
    "second": "%S",
    "dow": "%w",
}
POSTGRES_PARTS = {
    "year": "YEAR",
    "quarter": "QUARTER",
    "month": "MONTH",
    "dayofyear": "DOY",
    "day": "DAY",
    "hour": "HOUR",
    "minute": "MINUTE",
    "dow": "DOW",
    "isodow": "ISODOW",
    "iso_week": "WEEK",
}
# A Sunday, before every date the backends take (0001-01-01 was a Monday): week
# numbers counted from it are never negative, so integer division floors.
SUNDAY = "0001-01-07"


def cast(node: exp.Expr, type_name: str) -> exp.Expr:
    to = (
        exp.DataType(this=DType.DATETIME2)
        if type_name == "DATETIME2"
        else exp.DataType.build(type_name)
    )
    return exp.Cast(this=node, to=to)


def integer(node: exp.Expr, backend: str) -> exp.Expr:
    return cast(node, "INTEGER" if backend == "sqlite" else "INT")


def div(left: exp.Expr, right: int) -> exp.Expr:
    """Integer division of a non-negative integer (the same on every backend)."""
    return exp.paren(
        exp.Div(this=exp.paren(left), expression=exp.Literal.number(right), typed=True)
    )


def plus(left: exp.Expr, right: int) -> exp.Expr:
    if right < 0:
        return exp.Sub(this=left, expression=exp.Literal.number(-right))
    return exp.Add(this=left, expression=exp.Literal.number(right))


def _unit_name(node: exp.Expr | None) -> str:
    return node.name.upper() if isinstance(node, exp.Var) else ""


# -- parts -------------------------------------------------------------------------


def part(name: str, value: exp.Expr, backend: str, kind: str | None, construct: str) -> exp.Expr:
    """The integer ``name`` part of ``value`` on ``backend``, with T-SQL's meaning for
    its parts (weekday: Sunday = 1) and PostgreSQL's for ``dow`` (Sunday = 0),
    ``isodow`` (Monday = 1) and ``iso_week``."""
    if backend == "sqlserver":
        if name == "dow":  # DATEFIRST 7: DATEPART(weekday) is 1 on Sunday
            return exp.paren(plus(call("DATEPART", exp.var("weekday"), value), -1))
        if name == "isodow":
            weekday = plus(call("DATEPART", exp.var("weekday"), value), 5)
            return exp.paren(
                plus(exp.Mod(this=exp.paren(weekday), expression=exp.Literal.number(7)), 1)
            )
        return call("DATEPART", exp.var(name), value)
    if backend == "postgresql":
        return _part_postgresql(name, value, kind, construct)
    return _part_sqlite(name, value, construct)


def _part_postgresql(name: str, value: exp.Expr, kind: str | None, construct: str) -> exp.Expr:
    operand = value if kind in (DATE, DATETIME) else cast(value, "TIMESTAMP")

    def extract(field: str, of: exp.Expr) -> exp.Expr:
        return exp.Extract(this=exp.var(field), expression=of)

    if name in POSTGRES_PARTS:
        return cast(extract(POSTGRES_PARTS[name], operand), "INT")
    if name == "weekday":
        return cast(plus(extract("DOW", operand), 1), "INT")
    if name == "second":  # EXTRACT(SECOND) has the fraction; DATEPART does not
        return cast(call("FLOOR", extract("SECOND", operand)), "INT")
    if name == "week":
        operand = reusable(operand, construct, "postgresql")
        days = exp.Sub(
            this=cast(extract("DOY", operand), "INT"),
            expression=cast(extract("DOW", operand.copy()), "INT"),
        )
        return div(plus(days, 12), 7)
    raise not_supported(construct, "postgresql")  # pragma: no cover - parts are checked


def _part_sqlite(name: str, value: exp.Expr, construct: str) -> exp.Expr:
    def strftime(fmt: str, of: exp.Expr) -> exp.Expr:
        return integer(call("STRFTIME", exp.Literal.string(fmt), of), "sqlite")

    if name in SQLITE_PARTS:
        return strftime(SQLITE_PARTS[name], value)
    if name == "quarter":
        return div(plus(strftime("%m", value), 2), 3)
    if name == "weekday":
        return exp.paren(plus(strftime("%w", value), 1))
    if name == "isodow":
        shifted = exp.paren(plus(strftime("%w", value), 6))
        return exp.paren(plus(exp.Mod(this=shifted, expression=exp.Literal.number(7)), 1))
    if name == "iso_week":
        # The ISO week is the week of its Thursday (the Monday-started week's 4th day).
        thursday = call(
            "DATE", value, exp.Literal.string("-3 days"), exp.Literal.string("weekday 4")
        )
        return exp.paren(plus(div(plus(strftime("%j", thursday), -1), 7), 1))
    if name == "week":
        value = reusable(value, construct, "sqlite")
        days = exp.Sub(this=strftime("%j", value), expression=strftime("%w", value.copy()))
        return div(plus(days, 12), 7)
    raise not_supported(construct, "sqlite")  # pragma: no cover - parts are checked


def _text(node: exp.Expr, backend: str) -> exp.Expr:
    return cast(node, "VARCHAR(30)" if backend == "sqlserver" else "TEXT")


def _name_of(names: tuple[str, ...], number: exp.Expr, base: int) -> exp.Expr:
    ifs = [
        exp.If(this=exp.Literal.number(i + base), true=exp.Literal.string(name))
        for i, name in enumerate(names)
    ]
    return exp.Case(this=number, ifs=ifs)


# -- the pass ----------------------------------------------------------------------


class _Pass:
    def __init__(self, backend: str, dialect: str, types: Types) -> None:
        self.backend = backend
        self.dialect = dialect
        self.types = types
        self.native = NATIVE.get(dialect) == backend

    def kind(self, node: exp.Expr) -> str | None:
        return self.types.of(node)

    def run(self, tree: exp.Expr) -> None:
        handlers: dict[type[exp.Expr], Callable[[exp.Expr], exp.Expr | None]] = {
            exp.Extract: self.extract,
            exp.Year: self.year_month_day,
            exp.Month: self.year_month_day,
            exp.Day: self.year_month_day,
            exp.TimeToStr: self.time_to_str,
            exp.LastDay: self.eomonth,
            exp.DateFromParts: self.date_from_parts,
            exp.TimestampTrunc: self.trunc,
            exp.Interval: self.interval,
            exp.Date: self.sqlite_date,
            exp.Anonymous: self.sqlite_date,
        }
        for node in post_order(tree, *handlers):
            if self.dialect == "sqlite" and not isinstance(node, SQLITE_FORMS):
                name = SQL_NAMES.get(type(node), type(node).__name__.upper())
                raise ConstructNotAllowed(
                    f"{name} is not SQLite: use strftime(...) or date(d, modifiers)",
                    construct=name,
                )
            replacement = handlers[type(node)](node)
            if replacement is not None:
                target = node.parent if isinstance(node, exp.Interval) else node
                assert target is not None
                target.replace(replacement)

    # date(d, modifiers...) / datetime(d, modifiers...) (SQLite), date(d) (PostgreSQL)
    def sqlite_date(self, node: exp.Expr) -> exp.Expr | None:
        if isinstance(node, exp.Anonymous):
            function = str(node.this).upper()
            if function not in ("DATE", "DATETIME"):
                return None
            value, *modifiers = node.expressions
        else:
            # (PostgreSQL's date(d, zone) is refused by the allow-list: functions.DATE_ARGS)
            function, value, modifiers = "DATE", node.this, []
        construct = f"{function.lower()}(...)"
        postgres_date = self.dialect == "postgres" and function == "DATE" and not modifiers
        if self.dialect != "sqlite" and not postgres_date:
            raise ConstructNotAllowed(
                f"{function}(...) is not a {self.dialect} function: use CAST(d AS "
                f"{'DATE' if function == 'DATE' else 'DATETIME2'})"
                + (" and DATEADD" if self.dialect == "tsql" else " and d + INTERVAL '...'"),
                construct=construct,
            )
        steps = [_modifier(m, function) for m in modifiers]
        if isinstance(value, exp.Literal) and value.name.casefold() == "now":
            raise ConstructNotAllowed(
                f"{function.lower()}('now') is not supported: use CURRENT_TIMESTAMP",
                construct=f"{function.lower()}('now')",
            )
        if self.native:
            return None
        if self.dialect == "postgres":  # date(x): the date part, as SQLite's DATE(x)
            return cast(value, "DATE") if self.backend == "sqlserver" else None
        if any(unit == "month" for unit, _ in steps):
            value = reusable(value, construct, self.backend)
        current = cast(value, "DATETIME2" if self.backend == "sqlserver" else "TIMESTAMP")
        for unit, amount in steps:
            current = self._modify(current, unit, amount)
        return cast(current, "DATE") if function == "DATE" else current

    def _modify(self, value: exp.Expr, unit: str, amount: int) -> exp.Expr:
        """One SQLite modifier on SQL Server or PostgreSQL: ``start`` of a unit, or
        ``amount`` units added, months as SQLite adds them (the day is kept and runs
        over: Jan 31 + 1 month is March 2nd, or 1st in a leap year)."""
        sqlserver = self.backend == "sqlserver"
        if unit.startswith("start of "):
            name = unit.removeprefix("start of ")
            if sqlserver:
                return self._trunc_to_timestamp(name, value, "")
            return call("DATE_TRUNC", exp.Literal.string(name), value)
        if unit != "month":
            if sqlserver:
                return exp.DateAdd(this=value, expression=_number(amount), unit=exp.var(unit))
            interval = exp.Interval(this=exp.Literal.string(f"{amount} {unit}"))
            return exp.Add(this=value, expression=interval)
        # The first of the month, plus the months (no month end to meet), plus the days.
        if sqlserver:
            day = call("DAY", value.copy())
            first = exp.DateAdd(
                this=value.copy(),
                expression=exp.Sub(this=exp.Literal.number(1), expression=day),
                unit=exp.var("DAY"),
            )
            moved = exp.DateAdd(this=first, expression=_number(amount), unit=exp.var("MONTH"))
            return exp.DateAdd(this=moved, expression=plus(day.copy(), -1), unit=exp.var("DAY"))

        def days() -> exp.Expr:
            count = exp.paren(plus(exp.Extract(this=exp.var("DAY"), expression=value.copy()), -1))
            return exp.Mul(this=count, expression=exp.Interval(this=exp.Literal.string("1 day")))

        start: exp.Expr = exp.Sub(this=value.copy(), expression=days())
        later: exp.Expr = exp.Add(
            this=start, expression=exp.Interval(this=exp.Literal.string(f"{amount} month"))
        )
        return exp.Add(this=later, expression=days())

    # DATEPART / EXTRACT / date_part
    def extract(self, node: exp.Expr) -> exp.Expr | None:
        field = _unit_name(node.this)
        value = node.expression
        if self.dialect == "postgres":
            construct = f"EXTRACT({field} FROM ...)"
            name = POSTGRES_FIELDS.get(field)
            if name is None:
                raise ConstructNotAllowed(
                    f"{construct} is not supported: use one of "
                    + ", ".join(sorted(set(POSTGRES_FIELDS) - {"DAYOFYEAR"})).lower(),
                    construct=construct,
                )
        else:
            construct = f"DATEPART({WRITTEN.get(field, field.lower())}, ...)"
            name = TSQL_PARTS.get(field)
            if name is None:
                allowed = sorted(set(TSQL_PARTS.values()) - set(SQLSERVER_ONLY_PARTS))
                raise ConstructNotAllowed(
                    f"{construct} is not supported: use one of {', '.join(allowed)}",
                    construct=construct,
                )
            if name in SQLSERVER_ONLY_PARTS and self.backend != "sqlserver":
                raise not_supported(construct, self.backend, SQLSERVER_ONLY_PARTS[name])
            construct = f"DATEPART({name}, ...)"
        if self.native:
            if self.backend == "sqlserver":
                return call("DATEPART", exp.var(name), value)
            return None
        return part(name, value, self.backend, self.kind(value), construct)

    def year_month_day(self, node: exp.Expr) -> exp.Expr | None:
        name = type(node).__name__.lower()
        value = node.this
        if isinstance(value, exp.TsOrDsToDate):
            value = value.this
        if self.native:
            return None
        return part(name, value, self.backend, self.kind(value), f"{name.upper()}(...)")

    # DATENAME (T-SQL) / strftime (SQLite)
    def time_to_str(self, node: exp.Expr) -> exp.Expr | None:
        operand = node.this
        fmt = node.args["format"].name
        strftime = isinstance(operand, exp.TsOrDsToTimestamp)
        if strftime != (self.dialect == "sqlite") or self.dialect == "postgres":
            # DATENAME is T-SQL's, strftime SQLite's (sqlglot reads both as a format).
            raise ConstructNotAllowed(
                "TO_CHAR(...) / FORMAT(...) is not supported: use EXTRACT(...) or "
                "date_trunc(...) (T-SQL: DATEPART, DATENAME or CONVERT(varchar, d, style))",
                construct="TO_CHAR(...) / FORMAT(...)",
            )
        if strftime:
            return self.strftime(operand.this, fmt)
        value = operand.this if isinstance(operand, exp.Cast) else operand
        name = DATENAME_FORMATS.get(fmt)
        if name is None:
            raise ConstructNotAllowed(
                "DATENAME with this part is not supported: use one of "
                + ", ".join(sorted(set(DATENAME_FORMATS.values()))),
                construct="DATENAME(...)",
            )
        if self.backend == "sqlserver":
            return call("DATENAME", exp.var(name), value)
        construct = f"DATENAME({name}, ...)"
        kind = self.kind(value)
        if name in ("month", "weekday"):
            if self.backend == "postgresql":
                operand = value if kind in (DATE, DATETIME) else cast(value, "TIMESTAMP")
                # FM: no padding; without TM the names are English whatever lc_time says.
                pattern = "FMMonth" if name == "month" else "FMDay"
                return call("TO_CHAR", operand, exp.Literal.string(pattern))
            if name == "month":
                return _name_of(MONTHS, part("month", value, "sqlite", kind, construct), 1)
            return _name_of(WEEKDAYS, part("dow", value, "sqlite", kind, construct), 0)
        return _text(part(name, value, self.backend, kind, construct), self.backend)

    def strftime(self, value: exp.Expr, fmt: str) -> exp.Expr | None:
        pieces: list[tuple[str, str | int]] = []  # ("text", s) or (part, width)
        index = 0
        while index < len(fmt):
            char = fmt[index]
            if char != "%":
                pieces.append(("", char))
                index += 1
                continue
            spec = fmt[index + 1 : index + 2]
            if spec == "%":
                pieces.append(("", "%"))
            elif spec in STRFTIME:
                pieces.append(STRFTIME[spec])
            else:
                construct = f"strftime('%{spec}', ...)"
                raise ConstructNotAllowed(
                    f"{construct} is not supported: use %Y %m %d %H %M %S %j %w",
                    construct=construct,
                )
            index += 2
        if self.native:
            return None
        if isinstance(value, exp.Literal) and value.name.casefold() == "now":
            raise ConstructNotAllowed(
                "strftime(..., 'now') is not supported: use CURRENT_TIMESTAMP",
                construct="strftime(..., 'now')",
            )
        construct = f"strftime('{fmt}', ...)"
        parts = [p for p in pieces if p[0]]
        if len(parts) > 1:
            value = reusable(value, construct, self.backend)
        kind = self.kind(value)
        out: list[exp.Expr] = []
        text = ""
        for name, width in pieces:
            if not name:
                text += str(width)
                continue
            if text:
                out.append(exp.Literal.string(text))
                text = ""
            assert isinstance(width, int)
            number = _text(part(name, value.copy(), self.backend, kind, construct), self.backend)
            if width > 1:
                padding = exp.Literal.string("0" * width)
                if self.backend == "sqlserver":
                    number = call(
                        "RIGHT", exp.Add(this=padding, expression=number), exp.Literal.number(width)
                    )
                else:
                    number = call(
                        "LPAD", number, exp.Literal.number(width), exp.Literal.string("0")
                    )
            out.append(number)
        if text:
            out.append(exp.Literal.string(text))
        result = out[0]
        for piece in out[1:]:
            if self.backend == "sqlserver":
                result = exp.Add(this=result, expression=piece)
            else:
                result = exp.DPipe(this=result, expression=piece)
        if not parts:  # strftime('text', d): NULL for a NULL d
            return exp.Case(
                ifs=[exp.If(this=exp.Is(this=value, expression=exp.Null()), true=exp.Null())],
                default=result,
            )
        return result

    # EOMONTH(d [, n])
    def eomonth(self, node: exp.Expr) -> exp.Expr | None:
        inner = node.this
        months: exp.Expr = exp.Literal.number(0)
        if isinstance(inner, exp.DateAdd):
            months, inner = inner.expression, inner.this
        value = inner.this if isinstance(inner, exp.TsOrDsToDate) else inner
        if self.backend == "sqlserver":
            args = [value] if _is_zero(months) else [value, months]
            return call("EOMONTH", *args)
        after = _months_plus_one(months)
        if self.backend == "postgresql":
            start = call("DATE_TRUNC", exp.Literal.string("month"), cast(value, "DATE"))
            if isinstance(after, exp.Literal):
                step: exp.Expr = exp.Interval(this=exp.Literal.string(f"{after.name} month"))
            else:
                step = exp.paren(
                    exp.Mul(
                        this=exp.Interval(this=exp.Literal.string("1 month")),
                        expression=exp.paren(after),
                    )
                )
            end = exp.Sub(
                this=exp.Add(this=start, expression=step),
                expression=exp.Interval(this=exp.Literal.string("1 day")),
            )
            return cast(end, "DATE")
        modifier = (
            exp.Literal.string(f"{after.name} months")
            if isinstance(after, exp.Literal)
            else exp.DPipe(this=cast(after, "TEXT"), expression=exp.Literal.string(" months"))
        )
        return call(
            "DATE",
            value,
            exp.Literal.string("start of month"),
            modifier,
            exp.Literal.string("-1 days"),
        )

    # DATEFROMPARTS(y, m, d)
    def date_from_parts(self, node: exp.Expr) -> exp.Expr | None:
        year, month, day = (node.args.get(k) for k in ("year", "month", "day"))
        if year is None or month is None or day is None:
            raise ConstructNotAllowed(
                "DATEFROMPARTS needs a year, a month and a day", construct="DATEFROMPARTS(...)"
            )
        if self.backend == "sqlserver":
            return None
        if self.backend == "postgresql":
            return call("MAKE_DATE", year, month, day)
        # SQLite: from January 1st of the year; every operand once, NULL stays NULL.
        start = exp.DPipe(
            this=call(
                "SUBSTR",
                exp.DPipe(this=exp.Literal.string("000"), expression=year),
                exp.Literal.number(-4),
            ),
            expression=exp.Literal.string("-01-01"),
        )

        def modifier(count: exp.Expr, word: str) -> exp.Expr:
            return exp.DPipe(
                this=exp.paren(plus(count, -1)), expression=exp.Literal.string(f" {word}")
            )

        return call("DATE", start, modifier(month, "months"), modifier(day, "days"))

    # DATETRUNC (T-SQL) / date_trunc (PostgreSQL)
    def trunc(self, node: exp.Expr) -> exp.Expr | None:
        unit = _unit_name(node.args.get("unit"))
        value = node.this
        if self.dialect == "postgres":
            construct = f"date_trunc('{unit.lower()}', ...)"
            name = POSTGRES_TRUNC.get(unit)
            if name is None:
                raise ConstructNotAllowed(
                    f"{construct} is not supported: use "
                    + ", ".join(f"'{u.lower()}'" for u in POSTGRES_TRUNC),
                    construct=construct,
                )
            if self.native:
                return None
            return self._trunc_to_timestamp(name, value, construct)
        construct = f"DATETRUNC({unit.lower()}, ...)"
        name = TSQL_TRUNC.get(unit)
        if name is None:
            raise ConstructNotAllowed(
                f"{construct} is not supported: use one of "
                + ", ".join(sorted(set(TSQL_TRUNC.values()))),
                construct=construct,
            )
        kind = self.kind(value)
        if kind == DATE and name in TIME_UNITS:
            raise ConstructNotAllowed(
                f"{construct} on a date is an error in T-SQL", construct=construct
            )
        if self.backend == "sqlserver":
            return call("DATETRUNC", exp.var(name), value)
        if self.backend == "postgresql":
            operand = cast(value, "TIMESTAMP") if kind not in (DATE, DATETIME) else value
            result = _trunc_postgresql(name, operand)
            return cast(result, "DATE") if kind == DATE else result
        return _trunc_sqlite(name, value, kind == DATE, construct)

    def _trunc_to_timestamp(self, name: str, value: exp.Expr, construct: str) -> exp.Expr:
        """date_trunc's meaning (a timestamp) on SQL Server and SQLite."""
        if self.backend == "sqlite":
            return _trunc_sqlite(name, value, False, construct)

        # SQL Server: whole units since 0001-01-01 (a Monday), added back to it (a
        # DATETIME2, as PostgreSQL's timestamp). Weeks are days / 7 * 7: DATEDIFF(week)
        # would count Sundays, and Babelfish counts Mondays.
        def zero() -> exp.Expr:
            return cast(exp.Literal.string("0001-01-01"), "DATETIME2")

        unit = exp.var("DAY" if name == "iso_week" else name.upper())
        count: exp.Expr = exp.DateDiff(this=value, expression=zero(), unit=unit)
        if name == "iso_week":
            count = exp.Mul(
                this=exp.Div(this=count, expression=exp.Literal.number(7), typed=True),
                expression=exp.Literal.number(7),
            )
        return exp.DateAdd(this=zero(), expression=count, unit=unit.copy())

    # d + INTERVAL / d - INTERVAL (PostgreSQL)
    def interval(self, node: exp.Expr) -> exp.Expr | None:
        parent = node.parent
        construct = "INTERVAL arithmetic"
        if not isinstance(parent, exp.Add | exp.Sub) or parent.find_ancestor(exp.Interval):
            raise ConstructNotAllowed(
                "INTERVAL arithmetic is supported as d + INTERVAL '...' and d - INTERVAL '...'",
                construct=construct,
            )
        other = parent.expression if node.arg_key == "this" else parent.this
        if isinstance(other, exp.Interval):
            raise ConstructNotAllowed(
                "INTERVAL + INTERVAL is not supported: add each to the date", construct=construct
            )
        if self.dialect != "postgres":
            foreign_intervals(node, self.dialect)
        if isinstance(parent, exp.Sub) and node.arg_key != "expression":
            raise ConstructNotAllowed(
                "INTERVAL - d is not supported: write d - INTERVAL '...'", construct=construct
            )
        count, unit = _interval_parts(node)
        if unit is None or count is None:
            raise ConstructNotAllowed(
                f"INTERVAL {node.this.sql()} is not supported: write one whole number and "
                "one unit (year, month, week, day, hour, minute, second), as INTERVAL '3 month'",
                construct=construct,
            )
        if self.native:
            return None
        if isinstance(parent, exp.Sub):
            count = -count
        value = other
        kind = self.kind(value)
        if self.backend == "sqlserver":
            # PostgreSQL: date + interval is a timestamp.
            operand = value if kind == DATETIME else cast(value, "DATETIME2")
            return exp.DateAdd(this=operand, expression=_number(count), unit=exp.var(unit.upper()))
        return add_sqlite(unit, count, value, False, construct)


SQLITE_FORMS = (exp.TimeToStr, exp.Date, exp.Anonymous, exp.DateFromParts)
SQL_NAMES: dict[type[exp.Expr], str] = {
    exp.Extract: "EXTRACT / DATEPART",
    exp.TimestampTrunc: "date_trunc / DATETRUNC",
    exp.LastDay: "EOMONTH",
    exp.Interval: "INTERVAL",
}
SQLITE_MODIFIER_UNITS = {
    **dict.fromkeys(("DAY", "DAYS"), "day"),
    **dict.fromkeys(("HOUR", "HOURS"), "hour"),
    **dict.fromkeys(("MINUTE", "MINUTES"), "minute"),
    **dict.fromkeys(("SECOND", "SECONDS"), "second"),
    **dict.fromkeys(("MONTH", "MONTHS"), "month"),
    **dict.fromkeys(("YEAR", "YEARS"), "year"),
}


def _modifier(node: exp.Expr, function: str) -> tuple[str, int]:
    """A SQLite date modifier: ('start of month', 0) or (unit, amount); years are
    12 months (SQLite runs a Feb 29 over into March the same way)."""
    text = node.name.strip().lower() if isinstance(node, exp.Literal) and node.is_string else ""
    if text in ("start of month", "start of year", "start of day"):
        return text, 0
    words = text.split()
    if len(words) == 2:
        sign = -1 if words[0].startswith("-") else 1
        digits = words[0].lstrip("+-")
        unit = SQLITE_MODIFIER_UNITS.get(words[1].upper())
        if unit is not None and digits.isdigit():
            if unit == "year":
                return "month", sign * int(digits) * 12
            return unit, sign * int(digits)
    written = node.sql("sqlite")
    construct = f"{function.lower()}(d, {written})"
    raise ConstructNotAllowed(
        f"{construct} is not supported: use '+N days' (hours, minutes, seconds, months, "
        "years) or 'start of month' / 'start of year' / 'start of day'",
        construct=construct,
    )


def _number(value: int) -> exp.Expr:
    literal = exp.Literal.number(abs(value))
    return exp.Neg(this=literal) if value < 0 else literal


def _is_zero(node: exp.Expr) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and node.name == "0"


def _literal_int(node: exp.Expr) -> int | None:
    if isinstance(node, exp.Neg):
        inner = _literal_int(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string and node.name.isdigit():
        return int(node.name)
    return None


def _months_plus_one(months: exp.Expr) -> exp.Expr:
    value = _literal_int(months)
    if value is not None:
        return _number(value + 1) if value + 1 >= 0 else exp.Literal.string(str(value + 1))
    return plus(exp.paren(months), 1)


def _interval_parts(node: exp.Expr) -> tuple[int | None, str | None]:
    text = node.this.name.strip() if isinstance(node.this, exp.Literal) else ""
    unit_node = node.args.get("unit")
    words = text.split()
    if unit_node is None and len(words) == 2:
        text, unit_word = words
    elif isinstance(unit_node, exp.Var) and len(words) == 1:
        unit_word = unit_node.name
    else:
        return None, None
    unit = INTERVAL_UNITS.get(unit_word.upper())
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if unit is None or not digits.isdigit():
        return None, None
    return sign * int(digits), unit


def _trunc_postgresql(name: str, value: exp.Expr) -> exp.Expr:
    def trunc(unit: str, of: exp.Expr) -> exp.Expr:
        return call("DATE_TRUNC", exp.Literal.string(unit), of)

    if name == "week":  # Sunday-started: PostgreSQL's weeks start on Monday
        day = exp.Interval(this=exp.Literal.string("1 day"))
        shifted = exp.Add(this=value, expression=day)
        return exp.Sub(this=trunc("week", shifted), expression=day.copy())
    return trunc("week" if name == "iso_week" else name, value)


def _trunc_sqlite(name: str, value: exp.Expr, is_date: bool, construct: str) -> exp.Expr:
    function = "DATE" if is_date else "DATETIME"

    def modifiers(*words: str) -> exp.Expr:
        return call(function, value, *(exp.Literal.string(w) for w in words))

    if name == "year":
        return modifiers("start of year")
    if name == "month":
        return modifiers("start of month")
    if name == "day":
        return modifiers("start of day")
    if name == "week":  # the Sunday on or before
        return modifiers("start of day", "-6 days", "weekday 0")
    if name == "iso_week":  # the Monday on or before
        return modifiers("start of day", "-6 days", "weekday 1")
    if name == "quarter":
        value = reusable(value, construct, "sqlite")
        month = integer(call("STRFTIME", exp.Literal.string("%m"), value.copy()), "sqlite")
        back = exp.Mod(this=exp.paren(plus(month, -1)), expression=exp.Literal.number(3))
        shift = exp.DPipe(
            this=exp.Neg(this=exp.paren(back)), expression=exp.Literal.string(" months")
        )
        return call(function, value, exp.Literal.string("start of month"), shift)
    fmt = {"hour": "%Y-%m-%d %H:00:00", "minute": "%Y-%m-%d %H:%M:00"}.get(
        name, "%Y-%m-%d %H:%M:%S"
    )
    return call("STRFTIME", exp.Literal.string(fmt), value)


def add_sqlite(
    unit: str, count: int | exp.Expr, value: exp.Expr, is_date: bool, construct: str
) -> exp.Expr:
    """``value`` plus ``count`` units on SQLite, with T-SQL's (and PostgreSQL's) month
    rule: the day is kept, or the month's last day where the month is shorter (SQLite
    itself carries the overflow into the next month: Jan 31 + 1 month is March 2nd)."""
    function = "DATE" if is_date else "DATETIME"
    months = {"year": 12, "quarter": 3, "month": 1}.get(unit)
    if months is None:
        days = {"week": 7}.get(unit, 1)
        word = {"week": "days"}.get(unit, unit + "s")
        if isinstance(count, int):
            modifier: exp.Expr = exp.Literal.string(f"{count * days} {word}")
        else:
            amount = (
                exp.Mul(this=exp.paren(count), expression=exp.Literal.number(7))
                if days > 1
                else count
            )
            modifier = exp.DPipe(
                this=cast(amount, "TEXT"), expression=exp.Literal.string(f" {word}")
            )
        return call(function, value, modifier)
    value = reusable(value, construct, "sqlite")
    if isinstance(count, int):
        total = count * months
        there: exp.Expr = exp.Literal.string(f"{total} months")
        after: exp.Expr = exp.Literal.string(f"{total + 1} months")
    else:
        count = reusable(count, construct, "sqlite")
        amount = exp.Mul(this=exp.paren(count), expression=exp.Literal.number(months))
        there = exp.DPipe(this=cast(amount, "TEXT"), expression=exp.Literal.string(" months"))
        after = exp.DPipe(
            this=cast(plus(amount.copy(), 1), "TEXT"), expression=exp.Literal.string(" months")
        )
    start = exp.Literal.string("start of month")
    day = integer(call("STRFTIME", exp.Literal.string("%d"), value.copy()), "sqlite")
    same_day = call(
        "DATE",
        value.copy(),
        start,
        there,
        exp.DPipe(this=exp.paren(plus(day, -1)), expression=exp.Literal.string(" days")),
    )
    month_end = call("DATE", value.copy(), start.copy(), after, exp.Literal.string("-1 days"))
    result = call("MIN", same_day, month_end)
    if is_date:
        return call("DATE", result)  # the same text, known to be a date by later rules
    clock = exp.DPipe(this=exp.Literal.string("+"), expression=call("TIME", value.copy()))
    return call("DATETIME", result, clock)


def date_functions(tree: exp.Expr, backend: str, dialect: str, types: Types) -> None:
    _Pass(backend, dialect, types).run(tree)


def foreign_intervals(tree: exp.Expr, dialect: str) -> None:
    """INTERVAL is PostgreSQL's: refused in the T-SQL and SQLite dialects, before the
    transforms that read ``+`` (string ``+`` would name it less well)."""
    if tree.find(exp.Interval) is None:
        return
    hint = "DATEADD(month, n, d)" if dialect == "tsql" else "date(d, '+n months')"
    raise ConstructNotAllowed(
        f"INTERVAL arithmetic is not supported in the {dialect} dialect: use {hint}",
        construct="INTERVAL arithmetic",
    )
