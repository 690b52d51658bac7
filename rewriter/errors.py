"""Errors the rewriter raises. Every one of them is the caller's doing.

    RewriteError                        (code)
    ├── SqlParseError                   parse_error
    ├── MultipleStatements              multiple_statements
    ├── StatementNotAllowed             statement_not_allowed
    ├── ConstructNotAllowed             construct_not_allowed
    ├── ConstructNotSupportedOnBackend  construct_not_supported_on_backend
    ├── CrossDatabaseReference          cross_database_reference
    ├── UnknownTable                    unknown_table
    ├── UnknownColumn                   unknown_column
    ├── AmbiguousColumn                 ambiguous_column
    ├── UnfilteredWrite                 unfiltered_write
    ├── InvalidParameters               invalid_parameters
    └── StatementTooLarge               statement_too_large

The HTTP status of each is decided in one place, ``proxy.errors``; this module
only names what went wrong. ``details`` carries machine-readable context (the
construct, table or column) that the service copies into the error body.
"""

from __future__ import annotations

from typing import ClassVar


class RewriteError(Exception):
    """A logical statement that tenantgate refuses to run."""

    code: ClassVar[str] = "rewrite_error"

    def __init__(self, message: str, **details: str | int | None) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}


class SqlParseError(RewriteError):
    code = "parse_error"


class MultipleStatements(RewriteError):
    code = "multiple_statements"


class StatementNotAllowed(RewriteError):
    code = "statement_not_allowed"


class ConstructNotAllowed(RewriteError):
    code = "construct_not_allowed"


class ConstructNotSupportedOnBackend(RewriteError):
    code = "construct_not_supported_on_backend"


class CrossDatabaseReference(RewriteError):
    code = "cross_database_reference"


class UnknownTable(RewriteError):
    code = "unknown_table"


class UnknownColumn(RewriteError):
    code = "unknown_column"


class AmbiguousColumn(RewriteError):
    code = "ambiguous_column"


class UnfilteredWrite(RewriteError):
    """An UPDATE or DELETE without WHERE that the request did not explicitly allow."""

    code = "unfiltered_write"


class InvalidParameters(RewriteError):
    code = "invalid_parameters"


class StatementTooLarge(RewriteError):
    """Past one of the statement's limits (``rewriter.limits``): ``limit`` gives its
    value and ``limit_name`` its name (``max_sql_chars``, ``max_params``,
    ``max_depth``, ``max_in_list``, ``max_name_chars``)."""

    code = "statement_too_large"
