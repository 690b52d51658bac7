"""Dates: what sqlglot writes for DATEADD, DATEDIFF and GETDATE is not T-SQL's meaning.

* ``DATEDIFF(unit, a, b)`` counts unit *boundaries crossed* (``DATEDIFF(day,
  '2024-01-01 23:00', '2024-01-02 01:00')`` is 1); sqlglot divides elapsed time
  (0). Rewritten per unit: days between the dates, year/quarter/month numbers
  subtracted, hours/minutes/seconds between truncated times; ``week`` counts the
  Sundays crossed (whatever SET DATEFIRST says), as week numbers counted from a
  Sunday subtracted. ``dayofyear`` and ``weekday`` count days, as in T-SQL.
* ``DATEADD`` on SQLite: sqlglot writes ``DATE(x, '1 DAY')``, which drops the time
  and silently yields NULL for ``week``/``hour`` on some inputs; SQLite's month
  arithmetic overflows into the next month (``2024-01-31`` + 1 month is March 2nd,
  T-SQL says February 29th): month/quarter/year take the day, or the month's last
  day (``date_parts.add_sqlite``). On PostgreSQL ``date + interval`` is a timestamp:
  cast back to DATE, as T-SQL returns a date. ``dayofyear``/``weekday`` add days.
* ``millisecond`` is refused outside SQL Server: its ``datetime`` counts in 1/300
  seconds (DATEADD(millisecond, 1, d) may not change d), the other backends do not.
* ``GETDATE()`` is the server's local time without a zone: ``LOCALTIMESTAMP`` on
  PostgreSQL, ``DATETIME('now', 'localtime')`` on SQLite (sqlglot's
  ``CURRENT_TIMESTAMP`` is UTC text on SQLite, a zoned value on PostgreSQL).
  ``GETUTCDATE()`` (sqlglot passes it through, unknown elsewhere):
  ``CURRENT_TIMESTAMP AT TIME ZONE 'UTC'`` / ``DATETIME('now')``.
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.functions import not_supported
from rewriter.transforms.common import call, number, post_order, reusable
from rewriter.transforms.date_parts import SUNDAY, add_sqlite
from rewriter.transforms.types import Types
from rewriter.type_names import DATE, TEXT

SECONDS = {"HOUR": 3600, "MINUTE": 60, "SECOND": 1}
SQLITE_TRUNCATED = {"HOUR": "%Y-%m-%d %H:00:00", "MINUTE": "%Y-%m-%d %H:%M:00"}
DAY_UNITS = frozenset({"DAYOFYEAR", "WEEKDAY", "DAYOFWEEK"})  # T-SQL: counted as days
MILLISECONDS = "SQL Server's datetime counts in 1/300 seconds, this backend does not"


def _unit(node: exp.Expr) -> str:
    unit = node.args.get("unit")
    name = unit.name.upper() if isinstance(unit, exp.Var) else ""
    if name in DAY_UNITS:
        node.set("unit", exp.var("DAY"))
        return "DAY"
    return name


def _literal_count(count: exp.Expr) -> int | None:
    if isinstance(count, exp.Literal) or (
        isinstance(count, exp.Neg) and isinstance(count.this, exp.Literal)
    ):
        return int(float(count.sql()))  # T-SQL truncates a fractional count
    return None


def _cast(node: exp.Expr, type_name: str) -> exp.Expr:
    return exp.Cast(this=node, to=exp.DataType.build(type_name))


def _unwrap(node: exp.Expr) -> exp.Expr:
    return node.this if isinstance(node, exp.TimeStrToTime) else node


def now(tree: exp.Expr, backend: str) -> None:
    for node in list(tree.find_all(exp.CurrentTimestamp, exp.Anonymous)):
        utc = isinstance(node, exp.Anonymous)
        if utc and str(node.this).casefold() != "getutcdate":
            continue
        if backend == "postgresql":
            zoned = exp.AtTimeZone(this=exp.CurrentTimestamp(), zone=exp.Literal.string("UTC"))
            node.replace(exp.paren(zoned) if utc else exp.Localtimestamp())
        else:
            now_ = exp.Literal.string("now")
            node.replace(
                call("DATETIME", now_)
                if utc
                else call("DATETIME", now_, exp.Literal.string("localtime"))
            )


def dateadd(tree: exp.Expr, backend: str, types: Types) -> None:
    for node in post_order(tree, exp.DateAdd):
        unit, kind = _unit(node), types.of(node.this)
        construct = f"DATEADD({unit.lower()}, ...)"
        if unit == "MILLISECOND":
            raise not_supported(construct, backend, MILLISECONDS)
        if backend == "postgresql":
            if unit == "QUARTER":
                count = node.expression
                value = _literal_count(count)
                node.set("unit", exp.var("MONTH"))
                node.set(
                    "expression",
                    number(value * 3)
                    if value is not None
                    else exp.Mul(this=exp.paren(count), expression=exp.Literal.number(3)),
                )
                unit = "MONTH"
            if kind == TEXT:
                node.set("this", _cast(node.this, "TIMESTAMP"))
            elif kind == DATE and unit in ("YEAR", "MONTH", "WEEK", "DAY"):
                node.replace(_cast(node.copy(), "DATE"))
            continue
        if unit in ("YEAR", "QUARTER", "MONTH"):
            value = _literal_count(node.expression)
            node.replace(
                add_sqlite(
                    unit.lower(),
                    node.expression if value is None else value,
                    node.this,
                    kind == DATE,
                    construct,
                )
            )
            continue
        count = node.expression
        days = unit in ("DAY", "WEEK")
        words = {"DAY": "days", "WEEK": "days", "HOUR": "hours", "MINUTE": "minutes"}
        word = words.get(unit, "seconds")
        if isinstance(count, exp.Literal) or (
            isinstance(count, exp.Neg) and isinstance(count.this, exp.Literal)
        ):
            value = int(float(count.sql()))  # T-SQL truncates a fractional count
            modifier: exp.Expr = exp.Literal.string(
                f"{value * (7 if unit == 'WEEK' else 1)} {word}"
            )
        else:
            if unit == "WEEK":
                count = exp.Mul(this=exp.paren(count), expression=exp.Literal.number(7))
            modifier = exp.DPipe(
                this=_cast(count, "TEXT"), expression=exp.Literal.string(f" {word}")
            )
        function = "DATE" if kind == DATE and days else "DATETIME"
        node.replace(call(function, node.this, modifier))


def datediff(tree: exp.Expr, backend: str) -> None:
    for node in post_order(tree, exp.DateDiff):
        unit = _unit(node)
        end, start = _unwrap(node.this), _unwrap(node.expression)
        construct = f"DATEDIFF({unit.lower()}, ...)"
        if unit == "MILLISECOND":
            raise not_supported(construct, backend, MILLISECONDS)
        build = _datediff_postgresql if backend == "postgresql" else _datediff_sqlite
        node.replace(build(unit, start, end, construct, backend))


def _datediff_postgresql(
    unit: str, start: exp.Expr, end: exp.Expr, construct: str, backend: str
) -> exp.Expr:
    if unit == "DAY":
        return exp.paren(exp.Sub(this=_cast(end, "DATE"), expression=_cast(start, "DATE")))
    if unit == "WEEK":

        def weeks(value: exp.Expr) -> exp.Expr:
            # Whole weeks since a Sunday long ago (+ 7: never negative, so / floors).
            days = exp.Sub(
                this=_cast(value, "DATE"), expression=_cast(exp.Literal.string(SUNDAY), "DATE")
            )
            return exp.paren(
                exp.Div(
                    this=exp.paren(exp.Add(this=days, expression=exp.Literal.number(7))),
                    expression=exp.Literal.number(7),
                    typed=True,
                )
            )

        return exp.paren(exp.Sub(this=weeks(end), expression=weeks(start)))

    def part(name: str, value: exp.Expr) -> exp.Expr:
        return exp.Extract(this=exp.var(name), expression=_cast(value, "TIMESTAMP"))

    if unit in SECONDS:

        def truncated(value: exp.Expr) -> exp.Expr:
            return call("DATE_TRUNC", exp.Literal.string(unit.lower()), _cast(value, "TIMESTAMP"))

        elapsed = exp.Extract(
            this=exp.var("EPOCH"),
            expression=exp.Sub(this=truncated(end), expression=truncated(start)),
        )
        value: exp.Expr = exp.Div(
            this=elapsed, expression=exp.Literal.number(SECONDS[unit]), typed=True
        )
    else:
        value = exp.Sub(this=part("YEAR", end), expression=part("YEAR", start))
        if unit in ("MONTH", "QUARTER"):
            per_year = 12 if unit == "MONTH" else 4
            end, start = reusable(end, construct, backend), reusable(start, construct, backend)
            value = exp.Add(
                this=exp.Mul(this=exp.paren(value), expression=exp.Literal.number(per_year)),
                expression=exp.Sub(
                    this=part(unit, end.copy()), expression=part(unit, start.copy())
                ),
            )
    return _cast(value, "BIGINT")


def _datediff_sqlite(
    unit: str, start: exp.Expr, end: exp.Expr, construct: str, backend: str
) -> exp.Expr:
    def strftime(fmt: str, value: exp.Expr) -> exp.Expr:
        return _cast(call("STRFTIME", exp.Literal.string(fmt), value), "INTEGER")

    if unit == "DAY":
        days = exp.Sub(
            this=call("JULIANDAY", call("DATE", end)),
            expression=call("JULIANDAY", call("DATE", start)),
        )
        return _cast(days, "INTEGER")
    if unit == "WEEK":

        def weeks(value: exp.Expr) -> exp.Expr:
            # Whole weeks since a Sunday long ago (+ 7: never negative, so / floors).
            days = exp.Sub(
                this=call("JULIANDAY", call("DATE", value)),
                expression=call("JULIANDAY", exp.Literal.string(SUNDAY)),
            )
            since = _cast(exp.Add(this=days, expression=exp.Literal.number(7)), "INTEGER")
            return exp.paren(exp.Div(this=since, expression=exp.Literal.number(7), typed=True))

        return exp.paren(exp.Sub(this=weeks(end), expression=weeks(start)))
    if unit in SECONDS:

        def epoch(value: exp.Expr) -> exp.Expr:
            fmt = SQLITE_TRUNCATED.get(unit)
            return strftime(
                "%s", value if fmt is None else call("STRFTIME", exp.Literal.string(fmt), value)
            )

        elapsed = exp.paren(exp.Sub(this=epoch(end), expression=epoch(start)))
        return exp.paren(
            exp.Div(this=elapsed, expression=exp.Literal.number(SECONDS[unit]), typed=True)
        )
    years: exp.Expr = exp.Sub(this=strftime("%Y", end), expression=strftime("%Y", start))
    if unit == "YEAR":
        return exp.paren(years)
    end, start = reusable(end, construct, backend), reusable(start, construct, backend)
    if unit == "QUARTER":

        def quarter(value: exp.Expr) -> exp.Expr:
            month = exp.Add(this=strftime("%m", value), expression=exp.Literal.number(2))
            return exp.paren(
                exp.Div(this=exp.paren(month), expression=exp.Literal.number(3), typed=True)
            )

        quarters = exp.Sub(this=quarter(end.copy()), expression=quarter(start.copy()))
        return exp.paren(
            exp.Add(
                this=exp.Mul(this=exp.paren(years), expression=exp.Literal.number(4)),
                expression=quarters,
            )
        )
    months = exp.Sub(this=strftime("%m", end.copy()), expression=strftime("%m", start.copy()))
    return exp.paren(
        exp.Add(
            this=exp.Mul(this=exp.paren(years), expression=exp.Literal.number(12)),
            expression=months,
        )
    )
