"""A query request as the pipeline takes it, and its parameters as a driver binds them.

``validate_request`` turns a decoded JSON body into a ``QueryRequest`` or says exactly
what is wrong (400); ``bind_params`` orders the caller's values the way the generated
SQL wants them, with the row cap's bound value where the rewriter put one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.config import Settings
from proxy.errors import InvalidRequest
from rewriter.errors import InvalidParameters
from rewriter.row_cap import RowCap

__all__ = ["QueryRequest", "bind_params", "validate_request"]

# Values JSON can carry that every driver binds as the same SQL type.
_BINDABLE = (str, int, float, bool, type(None))
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class QueryRequest:
    tenant: str | int
    sql: str
    params: Sequence[Any] | Mapping[str, Any] = ()
    dialect: str = "tsql"
    max_rows: int = 1000
    timeout_ms: int = 5000
    missing_columns: str = "error"
    allow_unfiltered: bool = False  # an UPDATE/DELETE without WHERE may run


def bind_params(
    order: Sequence[int | str | RowCap],
    given: Sequence[Any] | Mapping[str, Any],
    positional_expected: int,
    *,
    max_rows: int | None = None,
) -> list[Any]:
    """The driver's bind values, in the order the generated SQL wants them.

    A ``RowCap`` entry binds ``max_rows + 1`` (one more row than returned, so the
    executor can tell ``truncated``), or the statement's own row count if smaller.
    """
    refs = [_reference(n) for n in order]
    if isinstance(given, Mapping):
        by_name = {str(k).lstrip("@").casefold(): v for k, v in given.items()}
        needed = {n.casefold() for n in refs if isinstance(n, str)}
        missing = sorted(needed - by_name.keys())
        if missing:
            raise InvalidParameters(
                f"missing values for parameters: {', '.join('@' + m for m in missing)}"
            )
        if positional_expected:
            raise InvalidParameters("the statement uses '?' parameters: send params as a list")
        values = [None if n is None else by_name[str(n).casefold()] for n in refs]
    else:
        if len(given) != positional_expected:
            raise InvalidParameters(
                f"the statement has {positional_expected} '?' parameters "
                f"but {len(given)} values were sent"
            )
        if any(isinstance(n, str) for n in refs):
            raise InvalidParameters("the statement uses @name parameters: send params as an object")
        values = [None if n is None else given[n] for n in refs if not isinstance(n, str)]
    for i, entry in enumerate(order):
        if isinstance(entry, RowCap):
            values[i] = _row_cap(entry, values[i], max_rows)
    for v in values:
        if not isinstance(v, _BINDABLE):
            raise InvalidParameters("parameter values must be strings, numbers, booleans or null")
        if isinstance(v, int) and not isinstance(v, bool) and not -_INT64 <= v < _INT64:
            raise InvalidParameters("integer parameters must fit in 64 bits")
    return values


def _reference(entry: int | str | RowCap) -> int | str | None:
    """The request parameter an entry of ``param_order`` reads, if any."""
    return entry.param if isinstance(entry, RowCap) else entry


def _row_cap(cap: RowCap, given: Any, max_rows: int | None) -> int:
    if max_rows is None:
        raise ValueError("a plan with a row cap needs max_rows")
    own = given if cap.param is not None else cap.count
    if own is None and cap.param is None:
        return max_rows + 1
    if isinstance(own, bool) or not isinstance(own, int) or own < 0:
        raise InvalidParameters("a row count (TOP, FETCH, LIMIT) must be a non-negative integer")
    return min(own, max_rows + 1)


def validate_request(body: Any, settings: Settings) -> QueryRequest:
    """Turn a decoded JSON body into a ``QueryRequest``, or say exactly what is wrong."""
    q = settings.query
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    allowed = {
        "tenant", "sql", "params", "dialect", "max_rows", "timeout_ms", "missing_columns",
        "allow_unfiltered",
    }  # fmt: skip
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)}")
    tenant = body.get("tenant")
    if isinstance(tenant, bool) or not isinstance(tenant, str | int) or tenant == "":
        raise InvalidRequest("'tenant' must be a customer id or a domain name")
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidRequest("'sql' must be a non-empty string")
    params = body.get("params", [])
    if not isinstance(params, list | dict):
        raise InvalidRequest("'params' must be a list (for ?) or an object (for @name)")
    dialect = body.get("dialect", q.default_dialect)
    if dialect not in ("tsql", "postgres", "sqlite"):
        raise InvalidRequest("'dialect' must be one of tsql, postgres, sqlite")
    max_rows = _bounded_int(body, "max_rows", q.default_max_rows, q.max_rows_cap)
    timeout_ms = _bounded_int(body, "timeout_ms", q.default_timeout_ms, q.max_timeout_ms)
    missing = body.get("missing_columns", "error")
    if missing not in ("error", "null"):
        raise InvalidRequest("'missing_columns' must be 'error' or 'null'")
    allow_unfiltered = body.get("allow_unfiltered", False)
    if not isinstance(allow_unfiltered, bool):
        raise InvalidRequest("'allow_unfiltered' must be true or false")
    return QueryRequest(
        tenant, sql, params, dialect, max_rows, timeout_ms, missing, allow_unfiltered
    )


def _bounded_int(body: Mapping[str, Any], key: str, default: int, cap: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"'{key}' must be a positive integer")
    return min(value, cap)
