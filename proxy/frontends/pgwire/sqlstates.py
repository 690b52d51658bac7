"""The one table that turns any error into a SQLSTATE for the PostgreSQL wire front end.

The wire's counterpart of ``proxy.frontends.http.statuses``: every stable error code
has the SQLSTATE a PostgreSQL client and its driver understand (psycopg's exception
classes, SQLAlchemy's and Django's retry and integrity handling, JDBC's
``SQLException.getSQLState``). ``tests/unit/pgwire/test_sqlstates.py`` fails if a code
has none. The table is documented in docs/errors.md ("SQLSTATEs on the PostgreSQL wire").

An error that the backend raised carries the backend's own SQLSTATE in
``details['sqlstate']``. That state is forwarded where it is more precise than the
code's and means the same thing to a client: 23505 rather than 23000 lets an ORM tell a
duplicate key from a foreign key, 40001 tells a retry loop to retry. Only states of the
classes allowed per code go through, and never ODBC's own (subclass ``S..``, ``HY...``)
nor class 28 or XX, which would speak of tenantgate's backend login or bugs as if they
were the client's.
"""

from __future__ import annotations

import re

from proxy.errors import ProxyError
from rewriter.errors import RewriteError
from tenancy.errors import TenancyError

__all__ = ["INTERNAL_ERROR", "SQLSTATES", "sqlstate_for"]

SQLSTATES: dict[str, str] = {
    # the request itself
    "invalid_request": "22023",  # invalid_parameter_value
    "request_too_large": "54000",  # program_limit_exceeded
    "statement_too_large": "54000",
    "method_not_allowed": "0A000",  # HTTP only; feature_not_supported
    "not_found": "42704",  # undefined_object
    # identity and limits
    "unauthenticated": "28P01",  # invalid_password
    "forbidden": "42501",  # insufficient_privilege
    "rate_limited": "53400",  # configuration_limit_exceeded: a configured cap, retry later
    "too_many_transactions": "53300",  # too_many_connections: each pins a backend connection
    # the statement (rewriter)
    "parse_error": "42601",  # syntax_error
    "multiple_statements": "42601",  # as PostgreSQL's own "cannot insert multiple commands"
    "statement_not_allowed": "42501",  # a policy, like a role without DDL privileges
    "construct_not_allowed": "0A000",  # mostly "tenantgate does not do X" (FORMAT, /* /*)
    "construct_not_supported_on_backend": "0A000",
    "cross_database_reference": "0A000",  # PostgreSQL's own for a.b.c.d names
    "unknown_table": "42P01",  # undefined_table
    "unknown_column": "42703",  # undefined_column
    "ambiguous_column": "42702",  # ambiguous_column
    "invalid_parameters": "22023",  # invalid_parameter_value (counts are 08P01 in Bind)
    "unfiltered_write": "21000",  # cardinality_violation, as pg-safeupdate answers
    # the tenant
    "invalid_tenant": "3D000",  # invalid_catalog_name: the tenant is the "database"
    "unknown_tenant": "3D000",
    "tenant_misconfigured": "58000",  # system_error: outside the client's reach
    "controller_unavailable": "57P03",  # cannot_connect_now: retry later
    # the backend
    "backend_rejected": "22000",  # data_exception, unless the backend said more
    "backend_object_missing": "42P01",  # 42703 when details say a column is missing
    "constraint_violation": "23000",  # integrity_constraint_violation, or the backend's
    "backend_unavailable": "08006",  # connection_failure
    "pool_saturated": "53300",  # too_many_connections
    "statement_timeout": "57014",  # query_canceled, as statement_timeout in PostgreSQL
    "not_ready": "57P03",
    # transactions
    "transaction_not_found": "25P01",  # no_active_sql_transaction
    "transaction_aborted": "25P02",  # in_failed_sql_transaction: only ROLLBACK is left
    "transaction_busy": "55006",  # object_in_use
    # custom fields and records (HTTP only today; named for completeness)
    "invalid_custom_field": "22023",
    "invalid_field_value": "22000",
    "unsupported_primary_key": "0A000",
    "custom_field_not_found": "42703",
    "record_not_found": "P0002",  # no_data_found
    "column_exists": "42701",  # duplicate_column
    "column_limit_reached": "54011",  # too_many_columns
    "base_column_protected": "42501",
    "precondition_failed": "40001",  # serialization_failure: re-read, then retry
    "internal_error": "XX000",
}
"""Stable error code -> SQLSTATE."""

INTERNAL_ERROR = ("XX000", "internal_error")

_FORWARDED: dict[str, tuple[str, ...]] = {
    "constraint_violation": ("23",),
    "backend_rejected": ("21", "22", "23", "0A", "42", "44", "54", "P0"),
    "backend_unavailable": ("08", "40", "53", "57", "55P03"),
    "pool_saturated": ("53",),
}
"""Per code, the prefixes of backend SQLSTATEs that replace the table's."""

_SQLSTATE = re.compile(r"[0-9A-Z]{5}")


def _backend_state(code: str, error: BaseException) -> str | None:
    prefixes = _FORWARDED.get(code)
    details = getattr(error, "details", None)
    if prefixes is None or not isinstance(details, dict):
        return None
    state = details.get("sqlstate")
    if not isinstance(state, str) or not _SQLSTATE.fullmatch(state) or state[2] == "S":
        return None  # ODBC's own states (42S02, 08S01) mean nothing to a PG client
    return state if state.startswith(prefixes) else None


def sqlstate_for(error: BaseException) -> tuple[str, str]:
    """The SQLSTATE and stable code of ``error``; XX000 only for our own bugs."""
    if not isinstance(error, RewriteError | TenancyError | ProxyError):
        return INTERNAL_ERROR
    code = getattr(error, "code", None)
    if not isinstance(code, str) or code not in SQLSTATES:
        return INTERNAL_ERROR
    forwarded = _backend_state(code, error)
    if forwarded is not None:
        return forwarded, code
    if code == "backend_object_missing" and error.details.get("object_kind") == "column":
        return "42703", code
    return SQLSTATES[code], code
