"""A query request as the pipeline takes it, and its parameters as a driver binds them.

A front end makes the ``QueryRequest``: it validates what its caller sent and applies
the defaults and caps of ``[query]`` (HTTP: ``proxy.frontends.http.models``).
``bind_params`` orders the caller's values the way the generated SQL wants them, with
the row cap's bound value and the literals it lifted where the rewriter put them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rewriter.errors import InvalidParameters
from rewriter.lift import Lifted
from rewriter.row_cap import RowCap

__all__ = ["PREPARATION_SLACK_S", "QueryRequest", "bind_params"]

PREPARATION_SLACK_S = 0.01
"""Preparation up to this long does not shorten the statement's own timeout: one that
changed with every request would cost a PostgreSQL tenant a ``SET statement_timeout``
round trip each time."""

# Values JSON can carry that every driver binds as the same SQL type.
_BINDABLE = (str, int, float, bool, type(None))
_PLAIN = frozenset(_BINDABLE)
_INT64 = 2**63


# The __init__ is written out: mypyc compiles it, where a dataclass's generated one stays
# interpreted (and a frozen one's sets each field through object.__setattr__): a wire
# statement makes one of these (docs/decisions.md, "Compiling the hot path with mypyc").
@dataclass(init=False, slots=True)
class QueryRequest:
    tenant: str | int
    sql: str
    params: Sequence[Any] | Mapping[str, Any]
    dialect: str
    max_rows: int
    timeout_ms: int
    missing_columns: str
    allow_unfiltered: bool
    """An UPDATE/DELETE without WHERE may run."""

    def __init__(
        self,
        tenant: str | int,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] = (),
        dialect: str = "tsql",
        *,
        max_rows: int = 1000,
        timeout_ms: int = 5000,
        missing_columns: str = "error",
        allow_unfiltered: bool = False,
    ) -> None:
        self.tenant = tenant
        self.sql = sql
        self.params = params
        self.dialect = dialect
        self.max_rows = max_rows
        self.timeout_ms = timeout_ms
        self.missing_columns = missing_columns
        self.allow_unfiltered = allow_unfiltered


def bind_params(
    order: Sequence[int | str | RowCap | Lifted],
    given: Sequence[Any] | Mapping[str, Any],
    positional_expected: int,
    *,
    max_rows: int | None = None,
) -> list[Any]:
    """The driver's bind values, in the order the generated SQL wants them.

    A ``RowCap`` entry binds ``max_rows + 1`` (one more row than returned, so the
    executor can tell ``truncated``), or the statement's own row count if smaller. A
    ``Lifted`` entry binds its literal's text.
    """
    if (
        type(given) is list
        and len(given) == positional_expected
        and all(type(v) in _PLAIN for v in given)
    ):
        # The usual request: ``?`` values of plain JSON types, in a list. What the
        # general path below checks for them holds already, but the row cap's value and
        # an integer's range.
        values: list[Any] = []
        for entry in order:
            if type(entry) is int:
                v = given[entry]
                if type(v) is int and not -_INT64 <= v < _INT64:
                    raise InvalidParameters("integer parameters must fit in 64 bits")
                values.append(v)
            elif type(entry) is Lifted:
                values.append(entry.text)
            elif isinstance(entry, RowCap) and not isinstance(entry.param, str):
                own = None if entry.param is None else given[entry.param]
                values.append(_row_cap(entry, own, max_rows))
            else:
                break  # an @name in a plan for '?' values: the general path says so
        else:
            return values
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
        elif isinstance(entry, Lifted):
            values[i] = entry.text
    for v in values:
        if not isinstance(v, _BINDABLE):
            raise InvalidParameters("parameter values must be strings, numbers, booleans or null")
        if isinstance(v, int) and not isinstance(v, bool) and not -_INT64 <= v < _INT64:
            raise InvalidParameters("integer parameters must fit in 64 bits")
    return values


def _reference(entry: int | str | RowCap | Lifted) -> int | str | None:
    """The request parameter an entry of ``param_order`` reads, if any."""
    if isinstance(entry, Lifted):
        return None
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
