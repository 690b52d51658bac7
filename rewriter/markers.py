"""Reserved text the rewriter uses inside SQL, and the dialect tables.

Everything that starts with ``MARKER_PREFIX`` belongs to the rewriter: parameter
markers that become ``?`` after generation, and the catalog/schema markers that
``Plan.bind`` replaces with a tenant's location. Input that contains the prefix is
refused at parse time, so a marker found in generated SQL is always ours.
"""

from __future__ import annotations

import re
from typing import Final

MARKER_PREFIX: Final = "__tenantgate_"

# Comment attached to each ``?`` token before parsing: carries its text position.
POSITION_TAG: Final = MARKER_PREFIX + "q"
# Variable the rewriter puts where a parameter was; found again in the output text.
PARAM_MARKER: Final = MARKER_PREFIX + "p{}__"
PARAM_MARKER_RE: Final = re.compile(re.escape(MARKER_PREFIX) + r"p(\d+)__")
CATALOG_MARKER: Final = MARKER_PREFIX + "catalog__"
SCHEMA_MARKER: Final = MARKER_PREFIX + "schema__"

# Keys in ``Expr.meta`` (copied along with the tree).
META_POSITION: Final = "tenantgate_position"  # text order of a ``?`` placeholder
META_PHYSICAL: Final = "tenantgate_physical"  # exp.Table naming a physical table
META_TARGET: Final = "tenantgate_target"  # exp.Table an INSERT/UPDATE/DELETE writes to
META_ROW_CAP: Final = "tenantgate_row_cap"  # the RowCap of the placeholder ``row_cap`` adds

# Logical-SQL input dialects and the default schema that may qualify a table.
DEFAULT_SCHEMAS: Final[dict[str, str]] = {"tsql": "dbo", "postgres": "public", "sqlite": "main"}

# Backend kind -> sqlglot dialect of the generated SQL.
BACKEND_DIALECTS: Final[dict[str, str]] = {
    "sqlserver": "tsql",
    "postgresql": "postgres",
    "sqlite": "sqlite",
}
