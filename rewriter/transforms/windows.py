"""``RANGE n PRECEDING / FOLLOWING``: a frame of the rows whose ORDER BY value lies
within ``n`` of the current row's.

T-SQL has no such frame (its RANGE takes only UNBOUNDED and CURRENT ROW), so a T-SQL
statement that writes one is refused on every backend. In the postgres and sqlite
logical dialects it is their own frame: it runs on PostgreSQL and SQLite, which both
require exactly one ORDER BY expression (the allow-list checks that) and mean the same
by it when that expression is a number (PostgreSQL refuses an integer offset over a
date; SQLite would compare text); it is refused on SQL Server, which cannot express it.
"""

from __future__ import annotations

from sqlglot import exp

from rewriter.errors import ConstructNotAllowed
from rewriter.functions import not_supported
from rewriter.transforms.types import Types
from rewriter.type_names import NUMBERS

CONSTRUCT = "RANGE n PRECEDING / FOLLOWING (a RANGE frame with an offset)"
ALTERNATIVE = "use ROWS n PRECEDING over unique ORDER BY values, or a correlated subquery"


def has_offset(spec: exp.Expr) -> bool:
    return str(spec.args.get("kind") or "").upper() == "RANGE" and any(
        isinstance(spec.args.get(bound), exp.Expr) for bound in ("start", "end")
    )


def range_offsets(tree: exp.Expr, backend: str, dialect: str, types: Types) -> None:
    for spec in tree.find_all(exp.WindowSpec):
        if not has_offset(spec):
            continue
        if dialect == "tsql":
            raise ConstructNotAllowed(
                f"{CONSTRUCT} is not supported: T-SQL has no such frame; {ALTERNATIVE}",
                construct=CONSTRUCT,
            )
        if backend == "sqlserver":
            raise not_supported(
                CONSTRUCT,
                backend,
                f"SQL Server's RANGE takes only UNBOUNDED and CURRENT ROW; {ALTERNATIVE}",
            )
        window = spec.parent
        order = window.args.get("order") if isinstance(window, exp.Window) else None
        keys = order.expressions if isinstance(order, exp.Order) else []
        if len(keys) != 1 or types.of(keys[0].this) not in NUMBERS:
            raise not_supported(
                CONSTRUCT, backend, "its one ORDER BY expression must be a number here"
            )
