"""AST transforms applied just before generation: T-SQL meaning on each backend.

sqlglot's dialects cannot be subclassed when its compiled extension (sqlglotc) is
installed, so every correction to its translation is a small pure transform of the
tree, one concern per module. Each is a rule of the pipeline (``rewriter.rules.RULES``,
which names the backends each serves and runs them in a fixed order, each over the
tree as the previous ones left it) and runs on the qualified, parameter-marked tree,
for one backend; a construct a backend cannot express faithfully is refused with
``ConstructNotSupportedOnBackend`` naming the construct and the backend.

The T-SQL-meaning transforms run only when the logical SQL is T-SQL; a statement
written in the backend's own dialect means what that dialect means.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

# The node types each transform acts on (a subclass counts: some select by
# ``isinstance``): its rule's ``triggers``. A transform with none of them in the tree
# would do nothing, so its rule is skipped.
TRIGGERS: Mapping[str, tuple[type[exp.Expr], ...]] = {
    "pivot_to_aggregates": (exp.Pivot,),
    "grouping_sets": (exp.Rollup, exp.Cube, exp.GroupingSets, exp.GroupingId),
    "range_offsets": (exp.WindowSpec,),
    "try_casts": (exp.TryCast, exp.Convert),
    "date_intervals": (exp.Interval,),
    "date_styles": (exp.Convert,),
    "convert_to_cast": (exp.Convert,),
    "integer_avg": (exp.Avg,),
    "decimal_division": (exp.Div,),
    "string_plus": (exp.Add, exp.Sub),
    "casts": (exp.Cast,),
    "tsql_text_casts": (exp.Cast,),  # TRY_CAST is a Cast
    "tsql_text_casts_from_sqlite": (exp.Cast,),
    "bit_comparisons": (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Values),
    "date_functions": (
        exp.Extract,
        exp.Year,
        exp.Month,
        exp.Day,
        exp.TimeToStr,
        exp.LastDay,
        exp.DateFromParts,
        exp.TimestampTrunc,
        exp.Interval,
        exp.Date,
        exp.Anonymous,  # SQLite's date(d, ...) / datetime(d, ...)
    ),
    "dateadd": (exp.DateAdd,),
    "datediff": (exp.DateDiff,),
    "now": (exp.CurrentTimestamp, exp.Anonymous),
    "len_ignores_trailing_spaces": (exp.Length,),
    "like_patterns": (exp.Like,),
    "string_functions": (
        *(exp.Concat, exp.ConcatWs, exp.GroupConcat, exp.Substring),
        *(exp.Repeat, exp.Reverse, exp.Stuff),
    ),
    "number_functions": (exp.Round, exp.Floor, exp.Ceil, exp.Pow, exp.Sqrt, exp.Sign),
    "left_right": (exp.Left, exp.Right),
    "national_literals": (exp.National,),
}
