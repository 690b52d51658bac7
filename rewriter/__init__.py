"""Pure SQL work: parse, validate, expand, qualify, transpile. sqlglot only, no I/O.

    parsed = parse_statement(sql, dialect="tsql")
    plan = rewrite(parsed, tables={...}, backend="postgresql")
    sql = plan.bind(catalog=None, schema="public")

See ``docs/rewriter.md`` for the passes, the decisions and sqlglot's surprises.
"""

from __future__ import annotations

from rewriter.errors import (
    AmbiguousColumn,
    ConstructNotAllowed,
    ConstructNotSupportedOnBackend,
    CrossDatabaseReference,
    InvalidParameters,
    MultipleStatements,
    RewriteError,
    SqlParseError,
    StatementNotAllowed,
    StatementTooLarge,
    UnfilteredWrite,
    UnknownColumn,
    UnknownTable,
)
from rewriter.limits import DEFAULT_LIMITS, Limits
from rewriter.parse import ParsedStatement, parse_statement
from rewriter.plan import Plan, rewrite
from rewriter.row_cap import RowCap
from rewriter.shapes import TableShape

__all__ = [
    "DEFAULT_LIMITS",
    "AmbiguousColumn",
    "ConstructNotAllowed",
    "ConstructNotSupportedOnBackend",
    "CrossDatabaseReference",
    "InvalidParameters",
    "Limits",
    "MultipleStatements",
    "ParsedStatement",
    "Plan",
    "RewriteError",
    "RowCap",
    "SqlParseError",
    "StatementNotAllowed",
    "StatementTooLarge",
    "TableShape",
    "UnfilteredWrite",
    "UnknownColumn",
    "UnknownTable",
    "parse_statement",
    "rewrite",
]
