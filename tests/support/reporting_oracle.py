"""An independent computation of a sample of the reporting corpus, in Python over
``generate_rows`` (no database), following SQL Server's documented meaning.

The corpus's expected rows come from running each statement on the T-SQL engine of the
tests, which is Babelfish, not SQL Server. These functions recompute a sample from the
seeded data itself with T-SQL's rules spelled out (integer AVG truncates, DATEDIFF counts
boundaries, DATEPART(week) and weekday with the us_english DATEFIRST 7, NULLs sort first,
CONVERT styles), so that an engine deviation or a bad generator shows up as a
disagreement. ``ORACLES`` maps a corpus entry's name to a function returning its rows
(JSON-normal values: decimals as ``Decimal``, dates ISO text).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from functools import cache
from typing import Any

from proxy.demo.seed import BASE_MODEL, SeedCounts, generate_rows
from tests.support.reporting import CONTACTS, SEED

Row = dict[str, Any]


@cache
def table(name: str) -> tuple[Row, ...]:
    counts = SeedCounts.for_contacts(CONTACTS)
    columns = BASE_MODEL[name]
    return tuple(dict(zip(columns, r, strict=True)) for r in generate_rows(name, counts, seed=SEED))


def _day(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def datediff_day(start: dt.date, end: dt.date) -> int:
    return (_day(end) - _day(start)).days


def datediff_week(start: dt.date, end: dt.date) -> int:
    """Sunday boundaries crossed (T-SQL counts weeks from Sunday, whatever DATEFIRST)."""

    def sunday_index(d: dt.date) -> int:
        # Days since 1900-01-07 (a Sunday), in whole weeks.
        return (_day(d) - dt.date(1900, 1, 7)).days // 7

    return sunday_index(end) - sunday_index(start)


def datediff_month(start: dt.date, end: dt.date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


def weekday_us(d: dt.date) -> int:
    """DATEPART(weekday, d) with SET DATEFIRST 7 (us_english): Sunday = 1."""
    return (d.isoweekday() % 7) + 1


def week_us(d: dt.date) -> int:
    """DATEPART(week, d), DATEFIRST 7: week 1 holds January 1st; weeks start on Sunday."""
    jan1 = dt.date(d.year, 1, 1)
    return ((_day(d) - jan1).days + weekday_us(jan1) - 1) // 7 + 1


def int_avg(values: list[int]) -> int:
    """AVG over int: the sum divided as integers, truncated toward zero."""
    total = sum(values)
    return int(total / len(values)) if abs(total) < 2**52 else int(Decimal(total) / len(values))


def row_number_top(
    rows: list[Row], part: Callable[[Row], Any], key: Callable[[Row], Any], n: int
) -> dict[Any, list[Row]]:
    groups: dict[Any, list[Row]] = defaultdict(list)
    for r in rows:
        groups[part(r)].append(r)
    return {g: sorted(v, key=key)[:n] for g, v in groups.items()}


def _nulls_first(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


# -- the sample ---------------------------------------------------------------------------


def won_revenue_by_year() -> list[list[Any]]:
    won = [o for o in table("Opportunities") if o["Stage"] == "Closed Won"]
    years = sorted({o["CloseDate"].year for o in won})
    out = []
    for y in years:
        deals = [o for o in won if o["CloseDate"].year == y]
        amounts = [o["Amount"] for o in deals if o["Amount"] is not None]
        out.append([y, len(deals), sum(amounts) if amounts else None])
    return out


def pipeline_by_stage() -> list[list[Any]]:
    out = []
    for stage in sorted({o["Stage"] for o in table("Opportunities")}):
        deals = [o for o in table("Opportunities") if o["Stage"] == stage]
        amounts = [o["Amount"] for o in deals if o["Amount"] is not None]
        avg = (sum(amounts) / len(amounts)).quantize(Decimal("0.000001"), ROUND_DOWN)
        out.append([stage, len(deals), sum(amounts), avg])
    return out


def contacts_by_creation_year() -> list[list[Any]]:
    counts: Counter[int] = Counter()
    active: Counter[int] = Counter()
    for c in table("Contacts"):
        counts[c["CreatedAt"].year] += 1
        active[c["CreatedAt"].year] += int(c["IsActive"])
    return [[y, counts[y], active[y]] for y in sorted(counts)]


def created_by_weekday() -> list[list[Any]]:
    counts = Counter(weekday_us(c["CreatedAt"].date()) for c in table("Contacts"))
    names = {
        weekday_us(dt.date(2024, 1, 7) + dt.timedelta(days=i)): (
            dt.date(2024, 1, 7) + dt.timedelta(days=i)
        ).strftime("%A")
        for i in range(7)
    }
    return [[d, names[d], counts[d]] for d in sorted(counts)]


def _q1_2024() -> list[Row]:
    return [
        c
        for c in table("Contacts")
        if dt.datetime(2024, 1, 1) <= c["CreatedAt"] < dt.datetime(2024, 4, 1)
    ]


def contacts_created_per_week_2024_q1() -> list[list[Any]]:
    counts = Counter(week_us(c["CreatedAt"].date()) for c in _q1_2024())
    return [[w, counts[w]] for w in sorted(counts)]


def contacts_created_per_iso_week_2024_h1() -> list[list[Any]]:
    counts = Counter(c["CreatedAt"].isocalendar()[1] for c in _q1_2024())
    return [[w, counts[w]] for w in sorted(counts)]


def weeks_to_close() -> list[list[Any]]:
    rows = sorted(table("Opportunities"), key=lambda o: o["OpportunityID"])[:15]
    return [
        [
            o["OpportunityID"],
            o["CreatedAt"].isoformat(sep=" "),
            o["CloseDate"].isoformat(),
            datediff_week(o["CreatedAt"], o["CloseDate"]),
        ]
        for o in rows
    ]


def months_to_close() -> list[list[Any]]:
    counts = Counter(datediff_month(o["CreatedAt"], o["CloseDate"]) for o in table("Opportunities"))
    return [[m, counts[m]] for m in sorted(counts)]


def days_to_close_by_stage() -> list[list[Any]]:
    out = []
    closed = [o for o in table("Opportunities") if o["IsClosed"]]
    for stage in sorted({o["Stage"] for o in closed}):
        days = [datediff_day(o["CreatedAt"], o["CloseDate"]) for o in closed if o["Stage"] == stage]
        out.append([stage, min(days), max(days), int_avg(days)])
    return out


def avg_deal_size_integer_avg() -> list[list[Any]]:
    out = []
    for stage in sorted({o["Stage"] for o in table("Opportunities")}):
        deals = [o for o in table("Opportunities") if o["Stage"] == stage]
        probabilities = [o["Probability"] for o in deals]
        # CAST(decimal AS int) truncates toward zero.
        amounts = [int(o["Amount"]) for o in deals if o["Amount"] is not None]
        out.append([stage, int_avg(probabilities), int_avg(amounts)])
    return out


def top3_deals_per_stage_row_number() -> list[list[Any]]:
    with_amount = [o for o in table("Opportunities") if o["Amount"] is not None]
    top = row_number_top(
        with_amount, lambda o: o["Stage"], lambda o: (-o["Amount"], o["OpportunityID"]), 3
    )
    return [
        [stage, o["OpportunityID"], o["Amount"], rn]
        for stage in sorted(top)
        for rn, o in enumerate(top[stage], start=1)
    ]


def top2_accounts_per_industry_cte() -> list[list[Any]]:
    accounts = {a["AccountID"]: a for a in table("Accounts")}
    won: dict[int, Decimal] = defaultdict(Decimal)
    seen: set[int] = set()
    for o in table("Opportunities"):
        if o["Stage"] == "Closed Won":
            seen.add(o["AccountID"])
            if o["Amount"] is not None:
                won[o["AccountID"]] += o["Amount"]
    rows = [
        {
            "Industry": accounts[i]["Industry"],
            "AccountID": i,
            "Name": accounts[i]["Name"],
            "Won": won.get(i),
        }
        for i in seen
    ]
    # ORDER BY Won DESC: NULL sorts last descending in T-SQL (first ascending).
    top = row_number_top(
        rows,
        lambda r: r["Industry"],
        lambda r: (r["Won"] is None, -(r["Won"] or 0), r["AccountID"]),
        2,
    )
    return [[g, r["AccountID"], r["Name"], r["Won"]] for g in sorted(top) for r in top[g]]


def string_agg_stages_per_account() -> list[list[Any]]:
    by_account: dict[int, list[Row]] = defaultdict(list)
    for o in table("Opportunities"):
        by_account[o["AccountID"]].append(o)
    return [
        [
            a,
            ", ".join(
                o["Stage"]
                for o in sorted(by_account[a], key=lambda o: (o["Stage"], o["OpportunityID"]))
            ),
        ]
        for a in sorted(by_account)[:10]
    ]


def gap_between_deals_lag() -> list[list[Any]]:
    ordered = sorted(
        table("Opportunities"), key=lambda o: (o["AccountID"], o["CreatedAt"], o["OpportunityID"])
    )
    out = []
    for i, o in enumerate(ordered[:20]):
        prev = ordered[i - 1] if i and ordered[i - 1]["AccountID"] == o["AccountID"] else None
        gap = datediff_day(prev["CreatedAt"], o["CreatedAt"]) if prev else None
        out.append([o["AccountID"], o["OpportunityID"], o["CreatedAt"].isoformat(sep=" "), gap])
    return out


def running_total_revenue_by_month() -> list[list[Any]]:
    sums: dict[dt.date, Decimal] = defaultdict(Decimal)
    for o in table("Opportunities"):
        d = o["CloseDate"]
        if o["Stage"] == "Closed Won" and d.year == 2023 and o["Amount"] is not None:
            sums[d.replace(day=1)] += o["Amount"]
    running, out = Decimal(0), []
    for month in sorted(sums):
        running += sums[month]
        out.append([month.isoformat(), sums[month], running])
    return out


def isnull_lead_source() -> list[list[Any]]:
    counts = Counter(c["LeadSource"] or "(none)" for c in table("Contacts"))
    return [[s, counts[s]] for s in sorted(counts)]


def accounts_without_opportunities() -> list[list[Any]]:
    used = {o["AccountID"] for o in table("Opportunities")}
    return [[a["AccountID"], a["Name"]] for a in table("Accounts") if a["AccountID"] not in used]


def count_star_vs_count_column() -> list[list[Any]]:
    contacts = table("Contacts")
    return [
        [
            len(contacts),
            sum(c["Phone"] is not None for c in contacts),
            sum(c["BirthDate"] is not None for c in contacts),
            sum(c["Revenue"] is None for c in contacts),
        ]
    ]


def close_date_convert_styles() -> list[list[Any]]:
    rows = sorted(table("Opportunities"), key=lambda o: o["OpportunityID"])[:5]
    return [
        [
            o["OpportunityID"],
            o["CloseDate"].strftime("%Y-%m-%d"),
            o["CloseDate"].strftime("%m/%d/%Y"),
            o["CloseDate"].strftime("%d/%m/%Y"),
            o["CloseDate"].strftime("%Y%m%d"),
        ]
        for o in rows
    ]


def created_at_convert_120_126() -> list[list[Any]]:
    """Style 120 is ``yyyy-mm-dd hh:mi:ss``; 126 is ISO 8601 ``yyyy-mm-ddThh:mi:ss``
    (SQL Server's CAST and CONVERT documentation)."""
    rows = sorted(table("Contacts"), key=lambda c: c["ContactID"])[:5]
    return [
        [
            c["ContactID"],
            c["CreatedAt"].strftime("%Y-%m-%d %H:%M:%S"),
            c["CreatedAt"].strftime("%Y-%m-%dT%H:%M:%S"),
        ]
        for c in rows
    ]


def format_close_date() -> list[list[Any]]:
    rows = sorted(table("Opportunities"), key=lambda o: o["OpportunityID"])[:5]
    return [[o["OpportunityID"], o["CloseDate"].strftime("%Y-%m")] for o in rows]


def with_rollup_legacy_syntax() -> list[list[Any]]:
    counts = Counter(o["Stage"] for o in table("Opportunities"))
    return [[s, counts[s]] for s in sorted(counts)] + [[None, sum(counts.values())]]


def score_stdev() -> list[list[Any]]:
    out = []
    with_department = [c for c in table("Contacts") if c["Department"] is not None]
    for d in sorted({c["Department"] for c in with_department}):
        scores = [c["LeadScore"] for c in with_department if c["Department"] == d]
        mean = sum(scores) / len(scores)
        stdev = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1))
        out.append([d, len(scores), int_avg(scores), stdev])
    return out


def trim_function() -> list[list[Any]]:
    rows = sorted(table("Contacts"), key=lambda c: c["ContactID"])[:5]
    # LEN ignores trailing spaces: the two leading ones count.
    return [[c["ContactID"], c["FirstName"], len(c["FirstName"]) + 2] for c in rows]


def null_ordering_asc() -> list[list[Any]]:
    rows = sorted(table("Contacts"), key=lambda c: (_nulls_first(c["Title"]), c["ContactID"]))
    return [[c["ContactID"], c["Title"]] for c in rows[:8]]


def lead_score_buckets() -> list[list[Any]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for c in table("Contacts"):
        s = c["LeadScore"]
        groups["hot" if s >= 80 else "warm" if s >= 50 else "cold"].append(s)
    rows = [[g, len(v), int_avg(v)] for g, v in groups.items()]
    return sorted(rows, key=lambda r: -r[2])


def quarter_to_date_datediff_quarter() -> list[list[Any]]:
    """DATEDIFF(quarter) counts quarter boundaries crossed."""

    def quarters(d: dt.date) -> int:
        return d.year * 4 + (d.month - 1) // 3

    counts = Counter(
        quarters(o["CloseDate"]) - quarters(o["CreatedAt"]) for o in table("Opportunities")
    )
    return [[q, counts[q]] for q in sorted(counts)]


def hours_between_created_and_updated() -> list[list[Any]]:
    """DATEDIFF(hour/minute) counts hour/minute boundaries, not elapsed time."""
    rows = [
        o
        for o in sorted(table("Opportunities"), key=lambda o: o["OpportunityID"])
        if o["UpdatedAt"] is not None
    ][:10]

    def floor(d: dt.datetime, seconds: int) -> int:
        return int((d - dt.datetime(1900, 1, 1)).total_seconds()) // seconds

    return [
        [
            o["OpportunityID"],
            floor(o["UpdatedAt"], 3600) - floor(o["CreatedAt"], 3600),
            floor(o["UpdatedAt"], 60) - floor(o["CreatedAt"], 60),
        ]
        for o in rows
    ]


def years_between_birth_and_creation() -> list[list[Any]]:
    # Integer division truncates toward zero (all ages are positive here).
    counts = Counter(
        (c["CreatedAt"].year - c["BirthDate"].year) // 10 * 10
        for c in table("Contacts")
        if c["BirthDate"] is not None
    )
    return [[a, counts[a]] for a in sorted(counts)]


def revenue_by_quarter_datepart() -> list[list[Any]]:
    sums: dict[tuple[int, int], Decimal | None] = {}
    for o in table("Opportunities"):
        if o["Stage"] == "Closed Won":
            key = (o["CloseDate"].year, (o["CloseDate"].month - 1) // 3 + 1)
            total = sums.get(key)
            if o["Amount"] is not None:
                sums[key] = (total or Decimal(0)) + o["Amount"]
            else:
                sums.setdefault(key, None)  # SUM over only NULLs is NULL
    return [[y, q, sums[(y, q)]] for y, q in sorted(sums)]


def day_of_year_first_contacts() -> list[list[Any]]:
    rows = sorted(table("Contacts"), key=lambda c: c["ContactID"])[:10]
    return [
        [
            c["ContactID"],
            c["CreatedAt"].isoformat(sep=" "),
            c["CreatedAt"].timetuple().tm_yday,
            c["CreatedAt"].day,
        ]
        for c in rows
    ]


def _add_months(d: dt.date, months: int) -> dt.date:
    """DATEADD(month): the same day, clamped to the last day of the target month."""
    y, m = divmod(d.year * 12 + d.month - 1 + months, 12)
    m += 1
    last = (dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(y, m, min(d.day, last))


def _eomonth(d: dt.date) -> dt.date:
    return _add_months(d.replace(day=1), 1) - dt.timedelta(days=1)


def month_end_plus_one_month() -> list[list[Any]]:
    rows = [
        o
        for o in sorted(table("Opportunities"), key=lambda o: o["OpportunityID"])
        if o["Amount"] is not None
    ][:12]
    return [
        [
            o["OpportunityID"],
            o["CloseDate"].isoformat(),
            _add_months(_eomonth(o["CloseDate"]), 1).isoformat(),
        ]
        for o in rows
    ]


def renewals_a_year_after_close() -> list[list[Any]]:
    won = [o for o in table("Opportunities") if o["Stage"] == "Closed Won"]
    rows = sorted(won, key=lambda o: (-o["CloseDate"].toordinal(), o["OpportunityID"]))[:10]
    return [
        [
            o["OpportunityID"],
            o["CloseDate"].isoformat(),
            _add_months(o["CloseDate"], 12).isoformat(),
        ]
        for o in rows
    ]


def last_n_days_dateadd() -> list[list[Any]]:
    end = dt.datetime(2025, 6, 30)
    start = end - dt.timedelta(days=90)
    return [[sum(start <= c["CreatedAt"] < end for c in table("Contacts"))]]


def days_since_last_touch() -> list[list[Any]]:
    rows = sorted(
        (c for c in table("Contacts") if c["UpdatedAt"] is not None),
        key=lambda c: (c["UpdatedAt"], c["ContactID"]),
    )[:10]
    return [
        [
            c["ContactID"],
            c["UpdatedAt"].isoformat(sep=" "),
            datediff_day(c["UpdatedAt"], dt.date(2026, 1, 1)),
        ]
        for c in rows
    ]


ORACLES: dict[str, Callable[[], list[list[Any]]]] = {
    f.__name__: f
    for f in (
        won_revenue_by_year,
        pipeline_by_stage,
        contacts_by_creation_year,
        created_by_weekday,
        contacts_created_per_week_2024_q1,
        contacts_created_per_iso_week_2024_h1,
        weeks_to_close,
        months_to_close,
        days_to_close_by_stage,
        avg_deal_size_integer_avg,
        top3_deals_per_stage_row_number,
        top2_accounts_per_industry_cte,
        string_agg_stages_per_account,
        gap_between_deals_lag,
        running_total_revenue_by_month,
        isnull_lead_source,
        accounts_without_opportunities,
        count_star_vs_count_column,
        close_date_convert_styles,
        created_at_convert_120_126,
        format_close_date,
        with_rollup_legacy_syntax,
        score_stdev,
        trim_function,
        null_ordering_asc,
        lead_score_buckets,
        quarter_to_date_datediff_quarter,
        hours_between_created_and_updated,
        years_between_birth_and_creation,
        revenue_by_quarter_datepart,
        day_of_year_first_contacts,
        month_end_plus_one_month,
        renewals_a_year_after_close,
        last_n_days_dateadd,
        days_since_last_touch,
    )
}
