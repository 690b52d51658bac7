"""What the rewriter accepts per backend, as data: one example per construct.

``CONSTRUCTS`` lists the constructs users write (``DATEADD(month, n, d)``,
``LAG(x, n, default) OVER (...)``), each with a logical statement over ``SCHEMA``
that uses it. ``support`` runs each example through ``parse_statement`` and
``rewrite`` for every backend and records what happened: accepted, or the refusal's
code and message. The table in ``docs/rewriter.md`` ("Constructs per backend") is
``markdown_table()``'s output, and ``tests/unit/rewriter/test_catalog.py`` fails when
the two differ, so the documentation is the allow-list's own behaviour, not a copy.

Whether an accepted construct is *right* on each backend is proven elsewhere: the
``tests/fixtures/rewriter/transpile_*.toml`` cases run on real PostgreSQL, SQLite and
the T-SQL engine and compare rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from rewriter.errors import RewriteError
from rewriter.markers import BACKEND_DIALECTS
from rewriter.parse import parse_statement
from rewriter.plan import rewrite

BACKENDS: tuple[str, ...] = ("sqlserver", "postgresql", "sqlite")
GROUPS: tuple[str, ...] = ("dates", "strings", "numbers", "aggregates", "windows", "grouping")


@dataclass(frozen=True, slots=True)
class _Shape:
    """A table of the catalog's schema (``rewriter.shapes.TableShape`` + ``type_of``)."""

    name: str
    types: Mapping[str, str]
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_names", tuple(self.types))

    @property
    def base_columns(self) -> Sequence[str]:
        return self.column_names

    @property
    def custom_columns(self) -> Sequence[str]:
        return ()

    @property
    def fingerprint(self) -> str:
        return f"catalog:{self.name}"

    def lookup(self, name: str) -> str | None:
        if name in self.types:
            return name
        matches = [c for c in self.column_names if c.casefold() == name.casefold()]
        return matches[0] if len(matches) == 1 else None

    def type_of(self, name: str) -> str | None:
        return self.types.get(name)


SCHEMA: Mapping[str, _Shape] = {
    shape.name.casefold(): shape
    for shape in (
        _Shape(
            "Opportunities",
            {
                "OpportunityId": "int",
                "AccountId": "int",
                "Name": "nvarchar(200)",
                "Stage": "nvarchar(40)",
                "Amount": "decimal(18,2)",
                "Probability": "int",
                "CloseDate": "date",
                "CreatedAt": "datetime",
            },
        ),
        _Shape(
            "Contacts",
            {
                "ContactId": "int",
                "FirstName": "nvarchar(50)",
                "LastName": "nvarchar(50)",
                "City": "nvarchar(100)",
                "LeadScore": "int",
                "Revenue": "decimal(18,2)",
                "BirthDate": "date",
                "CreatedAt": "datetime",
                "IsActive": "bit",
            },
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Construct:
    """A construct as a user writes it, and a statement over ``SCHEMA`` that uses it."""

    group: str  # one of ``GROUPS``
    name: str  # as written: "DATEPART(week, d)", "d + INTERVAL 'n' MONTH"
    sql: str
    dialect: str = "tsql"  # the logical SQL dialect of ``sql``


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    code: str = ""  # the refusal's error code
    message: str = ""


# Grouped as in ``GROUPS``; within a group, in the order a reader looks for them.
CONSTRUCTS: tuple[Construct, ...] = (
    # -- dates ----------------------------------------------------------------------
    Construct("dates", "GETDATE()", "SELECT GETDATE() AS now"),
    Construct(
        "dates", "DATEADD(day, n, d)", "SELECT DATEADD(day, 3, CloseDate) FROM Opportunities"
    ),
    Construct(
        "dates", "DATEADD(month, n, d)", "SELECT DATEADD(month, 1, CloseDate) FROM Opportunities"
    ),
    Construct(
        "dates",
        "DATEDIFF(day, a, b)",
        "SELECT DATEDIFF(day, CreatedAt, CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEADD(quarter, n, d)",
        "SELECT DATEADD(quarter, 1, CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates", "DATEADD(year, n, d)", "SELECT DATEADD(year, -1, CreatedAt) FROM Opportunities"
    ),
    Construct(
        "dates", "DATEADD(hour, n, d)", "SELECT DATEADD(hour, 6, CreatedAt) FROM Opportunities"
    ),
    Construct(
        "dates",
        "DATEADD(dayofyear | weekday, n, d)",
        "SELECT DATEADD(weekday, 1, CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates", "DATEADD(month, ?, d)", "SELECT DATEADD(month, ?, CloseDate) FROM Opportunities"
    ),
    Construct(
        "dates",
        "DATEADD(millisecond, n, d)",
        "SELECT DATEADD(millisecond, 5, CreatedAt) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEDIFF(week, a, b)",
        "SELECT DATEDIFF(week, CreatedAt, CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEDIFF(month, a, b)",
        "SELECT DATEDIFF(month, CreatedAt, CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEDIFF(quarter, a, b)",
        "SELECT DATEDIFF(quarter, CreatedAt, CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEDIFF(year, a, b)",
        "SELECT DATEDIFF(year, CreatedAt, CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEDIFF(hour | minute | second, a, b)",
        "SELECT DATEDIFF(minute, CreatedAt, GETDATE()) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEDIFF(millisecond, a, b)",
        "SELECT DATEDIFF(millisecond, CreatedAt, GETDATE()) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEPART(year | quarter | month | day, d)",
        "SELECT DATEPART(quarter, CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEPART(dayofyear, d)",
        "SELECT DATEPART(dayofyear, CloseDate) FROM Opportunities",
    ),
    Construct("dates", "DATEPART(week, d)", "SELECT DATEPART(week, CloseDate) FROM Opportunities"),
    Construct(
        "dates", "DATEPART(weekday, d)", "SELECT DATEPART(weekday, CloseDate) FROM Opportunities"
    ),
    Construct(
        "dates", "DATEPART(iso_week, d)", "SELECT DATEPART(iso_week, CloseDate) FROM Opportunities"
    ),
    Construct(
        "dates",
        "DATEPART(hour | minute | second, d)",
        "SELECT DATEPART(hour, CreatedAt) FROM Opportunities",
    ),
    Construct(
        "dates",
        "DATEPART(millisecond, d)",
        "SELECT DATEPART(millisecond, CreatedAt) FROM Opportunities",
    ),
    Construct(
        "dates", "DATEPART(tzoffset, d)", "SELECT DATEPART(tzoffset, CreatedAt) FROM Opportunities"
    ),
    Construct(
        "dates",
        "YEAR(d), MONTH(d), DAY(d)",
        "SELECT YEAR(CloseDate), MONTH(CloseDate), DAY(CloseDate) FROM Opportunities",
    ),
    Construct(
        "dates", "DATENAME(month, d)", "SELECT DATENAME(month, CloseDate) FROM Opportunities"
    ),
    Construct(
        "dates", "DATENAME(weekday, d)", "SELECT DATENAME(weekday, CloseDate) FROM Opportunities"
    ),
    Construct(
        "dates",
        "DATENAME(day | year | quarter ..., d)",
        "SELECT DATENAME(year, CloseDate) FROM Opportunities",
    ),
    Construct("dates", "EOMONTH(d)", "SELECT EOMONTH(CloseDate) FROM Opportunities"),
    Construct("dates", "EOMONTH(d, n)", "SELECT EOMONTH(CreatedAt, -1) FROM Opportunities"),
    Construct(
        "dates",
        "DATEFROMPARTS(y, m, d)",
        "SELECT DATEFROMPARTS(YEAR(CloseDate), MONTH(CloseDate), 1) FROM Opportunities",
    ),
    Construct(
        "dates", "DATETRUNC(month, d)", "SELECT DATETRUNC(month, CloseDate) FROM Opportunities"
    ),
    Construct(
        "dates", "DATETRUNC(week, d)", "SELECT DATETRUNC(week, CreatedAt) FROM Opportunities"
    ),
    Construct(
        "dates", "DATETRUNC(hour, d)", "SELECT DATETRUNC(hour, CreatedAt) FROM Opportunities"
    ),
    Construct(
        "dates",
        "CONVERT(varchar, d, 23)",
        "SELECT CONVERT(varchar, CreatedAt, 23) FROM Opportunities",
    ),
    Construct(
        "dates",
        "CONVERT(varchar, d, 101)",
        "SELECT CONVERT(varchar, CreatedAt, 101) FROM Opportunities",
    ),
    Construct(
        "dates",
        "CONVERT(varchar, d, 103)",
        "SELECT CONVERT(varchar, CreatedAt, 103) FROM Opportunities",
    ),
    Construct(
        "dates",
        "CONVERT(varchar, d, 112)",
        "SELECT CONVERT(varchar, CreatedAt, 112) FROM Opportunities",
    ),
    Construct(
        "dates",
        "CONVERT(varchar, d, 120)",
        "SELECT CONVERT(varchar, CreatedAt, 120) FROM Opportunities",
    ),
    Construct(
        "dates",
        "CONVERT(varchar, d, 121)",
        "SELECT CONVERT(varchar, CreatedAt, 121) FROM Opportunities",
    ),
    Construct(
        "dates",
        "CONVERT(varchar, d, 126)",
        "SELECT CONVERT(varchar, CreatedAt, 126) FROM Opportunities",
    ),
    Construct(
        "dates", "CONVERT(varchar, text, 23)", "SELECT CONVERT(varchar, City, 23) FROM Contacts"
    ),
    Construct(
        "dates",
        "CONVERT(varchar, d, 109) (other styles)",
        "SELECT CONVERT(varchar, CreatedAt, 109) FROM Opportunities",
    ),
    Construct(
        "dates", "FORMAT(d, format)", "SELECT FORMAT(CloseDate, 'yyyy-MM') FROM Opportunities"
    ),
    Construct(
        "dates", "d + INTERVAL ...", "SELECT CloseDate + INTERVAL '3' MONTH FROM Opportunities"
    ),
    Construct(
        "dates",
        "EXTRACT(YEAR FROM d)",
        "SELECT EXTRACT(YEAR FROM CloseDate) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "date_part('dow', d)",
        "SELECT date_part('dow', CloseDate) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "EXTRACT(ISODOW FROM d)",
        "SELECT EXTRACT(ISODOW FROM CloseDate) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "EXTRACT(WEEK FROM d)",
        "SELECT EXTRACT(WEEK FROM CloseDate) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "EXTRACT(EPOCH FROM d)",
        "SELECT EXTRACT(EPOCH FROM CreatedAt) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "date_trunc('month', d)",
        "SELECT date_trunc('month', CloseDate) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "date_trunc('week', d)",
        "SELECT date_trunc('week', CreatedAt) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "date_trunc('second', d)",
        "SELECT date_trunc('second', CreatedAt) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "d + INTERVAL 'n month'",
        "SELECT CloseDate + INTERVAL '3 month' FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "d - INTERVAL 'n day'",
        "SELECT CreatedAt - INTERVAL '1 day' FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "d + INTERVAL '1 year 2 months'",
        "SELECT CloseDate + INTERVAL '1 year 2 months' FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "to_char(d, format)",
        "SELECT to_char(CloseDate, 'YYYY-MM') FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "dates",
        "strftime('%Y-%m', d)",
        "SELECT strftime('%Y-%m', CloseDate) FROM Opportunities",
        dialect="sqlite",
    ),
    Construct(
        "dates",
        "strftime('%W', d)",
        "SELECT strftime('%W', CloseDate) FROM Opportunities",
        dialect="sqlite",
    ),
    Construct(
        "dates",
        "date(d, '+1 month')",
        "SELECT date(CloseDate, '+1 month') FROM Opportunities",
        dialect="sqlite",
    ),
    Construct(
        "dates",
        "date(d, 'weekday 0')",
        "SELECT date(CloseDate, 'weekday 0') FROM Opportunities",
        dialect="sqlite",
    ),
    Construct("dates", "date(d)", "SELECT date(CreatedAt) FROM Opportunities", dialect="postgres"),
    # -- strings --------------------------------------------------------------------
    Construct("strings", "LEN(s)", "SELECT LEN(FirstName) FROM Contacts"),
    Construct("strings", "s + t", "SELECT FirstName + ' ' + LastName FROM Contacts"),
    Construct(
        "strings",
        "CONCAT(a, b, ...)",
        "SELECT CONCAT(FirstName, ' ', LastName, LeadScore) FROM Contacts",
    ),
    Construct(
        "strings",
        "CONCAT(s, decimal)",
        "SELECT CONCAT(FirstName, Revenue) FROM Contacts",
    ),
    Construct(
        "strings",
        "CONCAT(s, ?)",
        "SELECT CONCAT(FirstName, ?) FROM Contacts",
    ),
    Construct(
        "strings",
        "CONCAT_WS(sep, a, b, ...)",
        "SELECT CONCAT_WS(', ', City, LastName) FROM Contacts",
    ),
    Construct(
        "strings",
        "CONCAT_WS(column, a, ...)",
        "SELECT CONCAT_WS(City, FirstName, LastName) FROM Contacts",
    ),
    Construct(
        "strings",
        "STRING_AGG(x, sep)",
        "SELECT City, STRING_AGG(LastName, ', ') FROM Contacts GROUP BY City",
    ),
    Construct(
        "strings",
        "STRING_AGG(x, sep) WITHIN GROUP (ORDER BY ...)",
        "SELECT STRING_AGG(LastName, ', ') WITHIN GROUP (ORDER BY LastName) FROM Contacts",
    ),
    Construct(
        "strings",
        "TRIM(s), LTRIM(s), RTRIM(s)",
        "SELECT TRIM(FirstName), LTRIM(City), RTRIM(LastName) FROM Contacts",
    ),
    Construct(
        "strings",
        "REPLACE(s, a, b)",
        "SELECT REPLACE(City, '-', ' ') FROM Contacts",
    ),
    Construct(
        "strings",
        "SUBSTRING(s, start, n)",
        "SELECT SUBSTRING(LastName, LeadScore - 5, 3) FROM Contacts",
    ),
    Construct(
        "strings",
        "UPPER(s), LOWER(s)",
        "SELECT UPPER(FirstName), LOWER(LastName) FROM Contacts",
    ),
    Construct(
        "strings",
        "REPLICATE(s, n)",
        "SELECT REPLICATE(FirstName, 2) FROM Contacts",
    ),
    Construct(
        "strings",
        "REPLICATE(expression, n)",
        "SELECT REPLICATE(UPPER(FirstName), 2) FROM Contacts",
    ),
    Construct(
        "strings",
        "REVERSE(s)",
        "SELECT REVERSE(LastName) FROM Contacts",
    ),
    Construct(
        "strings",
        "STUFF(s, start, n, r)",
        "SELECT STUFF(LastName, 2, 1, '*') FROM Contacts",
    ),
    Construct(
        "strings",
        "STUFF(s, column, n, r)",
        "SELECT STUFF(LastName, LeadScore, 1, '*') FROM Contacts",
    ),
    Construct(
        "strings",
        "TRY_CAST(x AS type)",
        "SELECT TRY_CAST(City AS INT) FROM Contacts",
    ),
    Construct(
        "strings",
        "TRY_CONVERT(type, x)",
        "SELECT TRY_CONVERT(INT, City) FROM Contacts",
    ),
    # -- numbers --------------------------------------------------------------------
    Construct("numbers", "bit = 1", "SELECT COUNT(*) FROM Contacts WHERE IsActive = 1"),
    Construct(
        "numbers", "bit > 0, bit IN (0, 1)", "SELECT COUNT(*) FROM Contacts WHERE IsActive > 0"
    ),
    Construct("numbers", "ROUND(x, n)", "SELECT ROUND(Amount, 1) FROM Opportunities"),
    Construct(
        "numbers",
        "ROUND(x, -n)",
        "SELECT ROUND(Probability, -1) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "ROUND(x, n, 1)",
        "SELECT ROUND(Amount, 1, 1) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "ROUND(float, n)",
        "SELECT ROUND(CAST(Amount AS FLOAT), 1) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "NULLIF(a, b)",
        "SELECT NULLIF(Probability, 0) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "FLOOR(x), CEILING(x)",
        "SELECT FLOOR(Amount), CEILING(Probability) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "ABS(x), SIGN(x)",
        "SELECT ABS(Amount), SIGN(Probability) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "POWER(int, y)",
        "SELECT POWER(Probability, 2) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "POWER(float, y)",
        "SELECT POWER(CAST(Amount AS FLOAT), 2) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "POWER(decimal, y)",
        "SELECT POWER(Amount, 2) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "SQRT(x)",
        "SELECT SQRT(Amount) FROM Opportunities",
    ),
    Construct(
        "numbers",
        "int / int, int % int",
        "SELECT Probability / 3, Probability % 3 FROM Opportunities",
    ),
    Construct(
        "numbers",
        "decimal / n",
        "SELECT Amount / 4 FROM Opportunities",
    ),
    # -- aggregates -----------------------------------------------------------------
    Construct(
        "aggregates",
        "COUNT(DISTINCT x)",
        "SELECT COUNT(DISTINCT Stage) FROM Opportunities",
    ),
    Construct(
        "aggregates",
        "SUM(CASE WHEN ... THEN x END)",
        "SELECT SUM(CASE WHEN Probability > 50 THEN Amount ELSE 0 END) FROM Opportunities",
    ),
    Construct(
        "aggregates",
        "COUNT(CASE WHEN ... THEN 1 END)",
        "SELECT COUNT(CASE WHEN Probability > 50 THEN 1 END) FROM Opportunities",
    ),
    Construct(
        "aggregates",
        "AVG(int) (integer result)",
        "SELECT AVG(Probability) FROM Opportunities",
    ),
    Construct(
        "aggregates",
        "STDEV(x)",
        "SELECT STDEV(Amount) FROM Opportunities",
    ),
    Construct(
        "aggregates",
        "STDEVP(x)",
        "SELECT STDEVP(Amount) FROM Opportunities",
    ),
    Construct(
        "aggregates",
        "VAR(x)",
        "SELECT VAR(Amount) FROM Opportunities",
    ),
    Construct(
        "aggregates",
        "VARP(x)",
        "SELECT VARP(Amount) FROM Opportunities",
    ),
    # -- windows --------------------------------------------------------------------
    Construct(
        "windows",
        "ROW_NUMBER() OVER (...)",
        "SELECT ROW_NUMBER() OVER (PARTITION BY Stage ORDER BY Amount) FROM Opportunities",
    ),
    Construct(
        "windows",
        "RANK() / DENSE_RANK() OVER (...)",
        "SELECT RANK() OVER (ORDER BY Amount), DENSE_RANK() OVER (ORDER BY Amount) FROM "
        "Opportunities",
    ),
    Construct(
        "windows",
        "SUM(x) OVER (PARTITION BY ...)",
        "SELECT SUM(Amount) OVER (PARTITION BY Stage) FROM Opportunities",
    ),
    Construct(
        "windows",
        "AVG(int) OVER (...) (integer result)",
        "SELECT AVG(Probability) OVER (PARTITION BY Stage) FROM Opportunities",
    ),
    Construct(
        "windows",
        "SUM(x) OVER (ORDER BY ...) (default frame)",
        "SELECT SUM(Amount) OVER (ORDER BY CloseDate) FROM Opportunities",
    ),
    Construct(
        "windows",
        "ROWS BETWEEN n PRECEDING AND n FOLLOWING",
        "SELECT AVG(Amount) OVER (ORDER BY CloseDate ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) "
        "FROM Opportunities",
    ),
    Construct(
        "windows",
        "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW",
        "SELECT SUM(Amount) OVER (ORDER BY CloseDate RANGE BETWEEN UNBOUNDED PRECEDING AND "
        "CURRENT ROW) FROM Opportunities",
    ),
    Construct(
        "windows",
        "RANGE BETWEEN n PRECEDING AND CURRENT ROW",
        "SELECT SUM(Amount) OVER (ORDER BY Probability RANGE BETWEEN 10 PRECEDING AND CURRENT "
        "ROW) FROM Opportunities",
    ),
    Construct(
        "windows",
        "RANGE BETWEEN n PRECEDING AND CURRENT ROW",
        "SELECT SUM(Amount) OVER (ORDER BY Probability RANGE BETWEEN 10 PRECEDING AND CURRENT "
        "ROW) FROM Opportunities",
        dialect="postgres",
    ),
    Construct(
        "windows",
        "LAG(x) / LEAD(x) OVER (...)",
        "SELECT LAG(Amount) OVER (ORDER BY CloseDate), LEAD(Amount) OVER (ORDER BY CloseDate) "
        "FROM Opportunities",
    ),
    Construct(
        "windows",
        "LAG(x, n, default) OVER (...)",
        "SELECT LAG(Amount, 2, 0) OVER (PARTITION BY Stage ORDER BY CloseDate) FROM Opportunities",
    ),
    Construct(
        "windows",
        "NTILE(n) OVER (...)",
        "SELECT NTILE(4) OVER (ORDER BY Amount DESC) FROM Opportunities",
    ),
    Construct(
        "windows",
        "FIRST_VALUE(x) / LAST_VALUE(x) OVER (...)",
        "SELECT FIRST_VALUE(Name) OVER (PARTITION BY Stage ORDER BY CloseDate), LAST_VALUE(Name) "
        "OVER (PARTITION BY Stage ORDER BY CloseDate ROWS BETWEEN UNBOUNDED PRECEDING AND "
        "UNBOUNDED FOLLOWING) FROM Opportunities",
    ),
    Construct(
        "windows",
        "PERCENT_RANK() / CUME_DIST() OVER (...)",
        "SELECT PERCENT_RANK() OVER (ORDER BY Amount), CUME_DIST() OVER (ORDER BY Amount) FROM "
        "Opportunities",
    ),
    Construct(
        "windows",
        "LAG(x) OVER (...) without ORDER BY",
        "SELECT LAG(Amount) OVER (PARTITION BY Stage) FROM Opportunities",
    ),
    Construct(
        "windows",
        "LAG(x) OVER (... ROWS ...)",
        "SELECT LAG(Amount) OVER (ORDER BY CloseDate ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) "
        "FROM Opportunities",
    ),
    Construct(
        "windows",
        "COUNT(DISTINCT x) OVER (...)",
        "SELECT COUNT(DISTINCT Stage) OVER (PARTITION BY AccountId) FROM Opportunities",
    ),
    Construct(
        "windows",
        "NTH_VALUE(x, n) OVER (...)",
        "SELECT NTH_VALUE(Name, 2) OVER (ORDER BY Amount) FROM Opportunities",
    ),
    # -- grouping -------------------------------------------------------------------
    Construct(
        "grouping",
        "GROUP BY ROLLUP (...)",
        "SELECT Stage, SUM(Amount) FROM Opportunities GROUP BY ROLLUP (Stage)",
    ),
    Construct(
        "grouping",
        "GROUP BY ... WITH ROLLUP",
        "SELECT Stage, SUM(Amount) FROM Opportunities GROUP BY Stage WITH ROLLUP",
    ),
    Construct(
        "grouping",
        "GROUP BY CUBE (...)",
        "SELECT Stage, AccountId, SUM(Amount) FROM Opportunities GROUP BY CUBE (Stage, AccountId)",
    ),
    Construct(
        "grouping",
        "GROUP BY ... WITH CUBE",
        "SELECT Stage, SUM(Amount) FROM Opportunities GROUP BY Stage WITH CUBE",
    ),
    Construct(
        "grouping",
        "GROUP BY GROUPING SETS (...)",
        "SELECT Stage, AccountId, SUM(Amount) FROM Opportunities GROUP BY GROUPING SETS ((Stage, "
        "AccountId), (Stage), ())",
    ),
    Construct(
        "grouping",
        "GROUPING(x)",
        "SELECT Stage, GROUPING(Stage), SUM(Amount) FROM Opportunities GROUP BY ROLLUP (Stage)",
    ),
    Construct(
        "grouping",
        "GROUPING_ID(x, y)",
        "SELECT Stage, AccountId, GROUPING_ID(Stage, AccountId) FROM Opportunities GROUP BY "
        "ROLLUP (Stage, AccountId)",
    ),
    Construct(
        "grouping",
        "GROUPING(x) without ROLLUP / CUBE",
        "SELECT Stage, GROUPING(Stage) FROM Opportunities GROUP BY Stage",
    ),
    Construct(
        "grouping",
        "PIVOT (agg(x) FOR c IN ([v], ...))",
        "SELECT * FROM (SELECT AccountId, Stage, Amount FROM Opportunities) AS s PIVOT "
        "(SUM(Amount) FOR Stage IN ([won], [lost])) AS p",
    ),
    Construct(
        "grouping",
        "PIVOT on a table",
        "SELECT * FROM Opportunities PIVOT (SUM(Amount) FOR Stage IN ([won], [lost])) AS p",
    ),
    Construct(
        "grouping",
        "UNPIVOT",
        "SELECT AccountId, k, v FROM (SELECT AccountId, Amount, Probability FROM Opportunities) "
        "AS s UNPIVOT (v FOR k IN (Amount, Probability)) AS u",
    ),
)


def outcome(construct: Construct, backend: str) -> Outcome:
    try:
        rewrite(
            parse_statement(construct.sql, dialect=construct.dialect),
            tables=SCHEMA,
            backend=backend,
        )
    except RewriteError as error:
        return Outcome(False, error.code, error.message)
    return Outcome(True)


def support() -> Iterator[tuple[Construct, dict[str, Outcome]]]:
    for construct in CONSTRUCTS:
        yield construct, {backend: outcome(construct, backend) for backend in BACKENDS}


def _cell(result: Outcome) -> str:
    if result.accepted:
        return "yes"
    return f"no: {result.message}".replace("|", "\\|")


def markdown_table() -> str:
    """The "Constructs per backend" table of ``docs/rewriter.md``."""
    header = ["construct", *BACKENDS]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    group = ""
    for construct, results in support():
        if construct.group != group:
            group = construct.group
            lines.append(f"| **{group}** |" + " |" * len(BACKENDS))
        name = f"`{construct.name}`"
        if construct.dialect != "tsql":
            name += f" ({construct.dialect})"
        lines.append("| " + " | ".join([name, *(_cell(results[b]) for b in BACKENDS)]) + " |")
    return "\n".join(lines) + "\n"


assert set(BACKEND_DIALECTS) == set(BACKENDS)
