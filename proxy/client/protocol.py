"""The client's requests and answers, without I/O: what ``Client`` and ``AsyncClient`` share.

Each API operation is a function that returns a ``Call``: the method, path, JSON body
and headers to send, and ``decode``, which turns the answer into the value the caller
gets (or raises the error it carries). The sync and async clients only send calls:
``call.decode(http.request(...))`` or ``call.decode(await http.request(...))``. So the
two cannot drift apart in what they send or how they read it, and every rule here is
tested as plain functions (tests/unit/client/).

Parameters are encoded for JSON here once: dates and times as ISO strings
(``YYYY-MM-DD HH:MM:SS`` for date-times, what the records API and every backend
accept), ``Decimal`` and ``UUID`` as strings; anything else that JSON cannot carry is
a ``TypeError`` before anything is sent.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from proxy.client.errors import (
    ClientTimeout,
    ConnectError,
    ProtocolError,
    TenantgateError,
    TransportError,
    error_for,
)
from proxy.client.models import Column, Params, Result, Statement, StatementLike

__all__ = [
    "NDJSON",
    "Call",
    "batch",
    "begin",
    "client_headers",
    "columns_of",
    "commit",
    "decode_result",
    "encode_json",
    "error_from",
    "query",
    "query_body",
    "record_get",
    "record_insert",
    "record_patch",
    "request_headers",
    "rollback",
    "statement_body",
    "stream",
    "timeout_for",
    "transport_error",
    "tx_batch",
    "tx_query",
]

T = TypeVar("T")

NDJSON = "application/x-ndjson"
USER_AGENT = "tenantgate-client/1"
TIMEOUT_MARGIN_S = 5.0
"""How much longer than a statement's own ``timeout_ms`` the client waits for the
answer: the server's timeout must fire first, so that the caller gets its clear
``statement_timeout`` rather than a ``ClientTimeout`` that says nothing of the statement."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request of the API and how to read its answer."""

    method: str
    path: str
    decode: Callable[[httpx.Response], T]
    body: bytes | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    wait_s: float | None = None
    """The least read timeout this call needs (its statement's ``timeout_ms`` plus a
    margin); the client waits the longer of this and its own timeout."""


# -- encoding --------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent to tenantgate")


def encode_json(body: Any) -> bytes:
    """``body`` as compact JSON; NaN and infinities are refused (JSON has none)."""
    return json.dumps(body, default=_jsonable, separators=(",", ":"), allow_nan=False).encode()


def _params(params: Params) -> list[Any] | dict[str, Any]:
    if isinstance(params, Mapping):
        return dict(params)
    if isinstance(params, str | bytes):
        raise TypeError("params must be a sequence or a mapping, not a string")
    return list(params)


def _options(
    body: dict[str, Any],
    *,
    max_rows: int | None = None,
    timeout_ms: int | None = None,
    dialect: str | None = None,
    missing_columns: str | None = None,
    allow_unfiltered: bool = False,
    isolation: str | None = None,
) -> dict[str, Any]:
    # Absent rather than null: the server's defaults apply, and its caps.
    for name, value in (
        ("max_rows", max_rows),
        ("timeout_ms", timeout_ms),
        ("dialect", dialect),
        ("missing_columns", missing_columns),
        ("isolation", isolation),
    ):
        if value is not None:
            body[name] = value
    if allow_unfiltered:
        body["allow_unfiltered"] = True
    return body


def query_body(
    tenant: str | int | None,
    sql: str,
    params: Params = (),
    *,
    max_rows: int | None = None,
    timeout_ms: int | None = None,
    dialect: str | None = None,
    missing_columns: str | None = None,
    allow_unfiltered: bool = False,
) -> dict[str, Any]:
    """A ``/v1/query`` body; without ``tenant`` (``None``) a transaction's query body."""
    body: dict[str, Any] = {} if tenant is None else {"tenant": tenant}
    body["sql"] = sql
    body["params"] = _params(params)
    return _options(
        body,
        max_rows=max_rows,
        timeout_ms=timeout_ms,
        dialect=dialect,
        missing_columns=missing_columns,
        allow_unfiltered=allow_unfiltered,
    )


def statement_body(statement: StatementLike) -> dict[str, Any]:
    """One statement of a batch body, from a ``Statement``, ``(sql, params)`` or SQL."""
    if isinstance(statement, str):
        statement = Statement(statement)
    elif isinstance(statement, tuple):
        if len(statement) != 2:
            raise TypeError("a batch statement tuple is (sql, params)")
        statement = Statement(statement[0], statement[1])
    elif not isinstance(statement, Statement):
        raise TypeError(f"not a statement: {type(statement).__name__}")
    return query_body(
        None,
        statement.sql,
        statement.params,
        max_rows=statement.max_rows,
        missing_columns=statement.missing_columns,
        allow_unfiltered=statement.allow_unfiltered,
    )


def _batch_body(
    tenant: str | int | None,
    statements: Iterable[StatementLike],
    *,
    isolation: str | None,
    timeout_ms: int | None,
    max_rows: int | None,
    dialect: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {} if tenant is None else {"tenant": tenant}
    body["statements"] = [statement_body(s) for s in statements]
    return _options(
        body, isolation=isolation, timeout_ms=timeout_ms, max_rows=max_rows, dialect=dialect
    )


def _segment(value: str | int) -> str:
    return quote(str(value), safe="")


def _wait(timeout_ms: int | None) -> float | None:
    return None if timeout_ms is None else timeout_ms / 1000 + TIMEOUT_MARGIN_S


def client_headers(token: str, headers: Mapping[str, str] | None) -> dict[str, str]:
    """Every request's headers: the caller's, then the token (which always wins)."""
    merged = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    merged.update(headers or {})
    merged["Authorization"] = f"Bearer {token}"
    return merged


def request_headers(call: Call[Any]) -> dict[str, str]:
    headers = dict(call.headers)
    if call.body is not None:
        headers["Content-Type"] = "application/json"
    return headers


def timeout_for(base: httpx.Timeout, call: Call[Any]) -> httpx.Timeout:
    """``base``, with a read timeout long enough for the call's own statement timeout."""
    if call.wait_s is None or base.read is None or base.read >= call.wait_s:
        return base
    return httpx.Timeout(base.connect, read=call.wait_s, write=base.write, pool=base.pool)


def transport_error(exc: httpx.TransportError) -> TenantgateError:
    """httpx's failure without an answer, as the client's class for it.

    A connect that timed out is a ``ConnectError``: nothing was sent. Any other timeout
    is a ``ClientTimeout``, after which a write may or may not have happened.
    """
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectError(f"cannot reach tenantgate: {text}")
    if isinstance(exc, httpx.TimeoutException):
        return ClientTimeout(f"no answer from tenantgate in time: {text}")
    return TransportError(f"the exchange with tenantgate failed: {text}")


# -- decoding --------------------------------------------------------------------------


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date; tenantgate sends seconds


def error_from(response: httpx.Response) -> TenantgateError:
    """The exception an error answer carries; its status's class when it has no body
    of the API's (a proxy in front of tenantgate answering 502, say)."""
    request_id = response.headers.get("x-request-id")
    retry_after = _retry_after(response.headers)
    try:
        error = json.loads(response.content)["error"]
        code, message = error["code"], error["message"]
    except (ValueError, TypeError, KeyError):
        error = code = message = None
    if not isinstance(code, str) or not isinstance(message, str):
        return error_for(
            response.status_code,
            None,
            f"HTTP {response.status_code} {response.reason_phrase} without an error body",
            request_id=request_id,
            retry_after=retry_after,
        )
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    return error_for(
        response.status_code,
        code,
        message,
        details=details,
        request_id=request_id,
        retry_after=retry_after,
    )


def _json(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise error_from(response)
    try:
        return json.loads(response.content)
    except ValueError:
        raise ProtocolError(
            f"HTTP {response.status_code}: the answer is not JSON",
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from None


def columns_of(raw: Any) -> list[Column]:
    return [Column(c["name"], c["type"]) for c in raw]


def decode_result(raw: Any) -> Result:
    """A ``/v1/query`` result object as a ``Result``."""
    try:
        return Result(
            columns_of(raw["columns"]),
            raw["rows"],
            raw["row_count"],
            bool(raw.get("truncated", False)),
        )
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"not a query result: missing {exc}") from None


def _result(response: httpx.Response) -> Result:
    return decode_result(_json(response))


def _results(response: httpx.Response) -> list[Result]:
    raw = _json(response)
    try:
        return [decode_result(r) for r in raw["results"]]
    except (KeyError, TypeError):
        raise ProtocolError("not a batch answer: no results") from None


def _object(response: httpx.Response) -> dict[str, Any]:
    raw = _json(response)
    if not isinstance(raw, dict):
        raise ProtocolError("the answer is not a JSON object")
    return raw


def _record(response: httpx.Response) -> tuple[dict[str, Any], str]:
    values = _object(response)
    etag = response.headers.get("etag")
    if etag is None:
        raise ProtocolError("a record answer without its ETag")
    return values, etag


# -- calls -----------------------------------------------------------------------------


def query(
    tenant: str | int,
    sql: str,
    params: Params = (),
    *,
    max_rows: int | None = None,
    timeout_ms: int | None = None,
    dialect: str | None = None,
    missing_columns: str | None = None,
    allow_unfiltered: bool = False,
) -> Call[Result]:
    body = query_body(
        tenant,
        sql,
        params,
        max_rows=max_rows,
        timeout_ms=timeout_ms,
        dialect=dialect,
        missing_columns=missing_columns,
        allow_unfiltered=allow_unfiltered,
    )
    return Call("POST", "/v1/query", _result, encode_json(body), wait_s=_wait(timeout_ms))


def stream(
    tenant: str | int,
    sql: str,
    params: Params = (),
    *,
    max_rows: int | None = None,
    timeout_ms: int | None = None,
    dialect: str | None = None,
    missing_columns: str | None = None,
) -> Call[None]:
    """``/v1/query`` asking for NDJSON; the answer is read by a ``RowDecoder``, and
    ``decode`` only raises the error of an answer that is not a stream."""
    body = query_body(
        tenant,
        sql,
        params,
        max_rows=max_rows,
        timeout_ms=timeout_ms,
        dialect=dialect,
        missing_columns=missing_columns,
    )
    return Call(
        "POST",
        "/v1/query",
        stream_opened,
        encode_json(body),
        headers={"Accept": NDJSON},
        wait_s=_wait(timeout_ms),
    )


def stream_opened(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_from(response)


def batch(
    tenant: str | int,
    statements: Iterable[StatementLike],
    *,
    isolation: str | None = None,
    timeout_ms: int | None = None,
    max_rows: int | None = None,
    dialect: str | None = None,
) -> Call[list[Result]]:
    body = _batch_body(
        tenant,
        statements,
        isolation=isolation,
        timeout_ms=timeout_ms,
        max_rows=max_rows,
        dialect=dialect,
    )
    return Call("POST", "/v1/batch", _results, encode_json(body), wait_s=_wait(timeout_ms))


def begin(tenant: str | int, *, isolation: str | None = None) -> Call[dict[str, Any]]:
    body = _options({"tenant": tenant}, isolation=isolation)
    return Call("POST", "/v1/transactions", _object, encode_json(body))


def _tx(tx_id: str, action: str) -> str:
    return f"/v1/transactions/{_segment(tx_id)}/{action}"


def tx_query(
    tx_id: str,
    sql: str,
    params: Params = (),
    *,
    max_rows: int | None = None,
    timeout_ms: int | None = None,
    dialect: str | None = None,
    missing_columns: str | None = None,
    allow_unfiltered: bool = False,
) -> Call[Result]:
    body = query_body(
        None,
        sql,
        params,
        max_rows=max_rows,
        timeout_ms=timeout_ms,
        dialect=dialect,
        missing_columns=missing_columns,
        allow_unfiltered=allow_unfiltered,
    )
    return Call("POST", _tx(tx_id, "query"), _result, encode_json(body), wait_s=_wait(timeout_ms))


def tx_batch(
    tx_id: str,
    statements: Iterable[StatementLike],
    *,
    timeout_ms: int | None = None,
    max_rows: int | None = None,
    dialect: str | None = None,
) -> Call[list[Result]]:
    body = _batch_body(
        None, statements, isolation=None, timeout_ms=timeout_ms, max_rows=max_rows,
        dialect=dialect,
    )  # fmt: skip
    return Call("POST", _tx(tx_id, "batch"), _results, encode_json(body), wait_s=_wait(timeout_ms))


def commit(tx_id: str) -> Call[dict[str, Any]]:
    return Call("POST", _tx(tx_id, "commit"), _object)


def rollback(tx_id: str) -> Call[dict[str, Any]]:
    return Call("POST", _tx(tx_id, "rollback"), _object)


def _records_path(tenant: str | int, table: str) -> str:
    return f"/v1/tenants/{_segment(tenant)}/tables/{_segment(table)}/records"


def record_get(
    tenant: str | int, table: str, key: Any, *, custom: bool = False
) -> Call[tuple[dict[str, Any], str]]:
    """A record's fields and ETag: base fields, or base and custom with ``custom``."""
    path = f"{_records_path(tenant, table)}/{_segment(key)}"
    return Call("GET", path, _record, query={"custom": "true"} if custom else {})


def record_patch(
    tenant: str | int,
    table: str,
    key: Any,
    fields: Mapping[str, Any],
    *,
    if_match: str | None,
    custom: bool = False,
) -> Call[tuple[dict[str, Any], str]]:
    path = f"{_records_path(tenant, table)}/{_segment(key)}"
    headers = {} if if_match is None else {"If-Match": if_match}
    return Call(
        "PATCH",
        path,
        _record,
        encode_json(dict(fields)),
        query={"custom": "true"} if custom else {},
        headers=headers,
    )


def record_insert(tenant: str | int, table: str, fields: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """``{"table", "key", "primary_key"}`` of the new row."""
    return Call("POST", _records_path(tenant, table), _object, encode_json(dict(fields)))


# -- what the sync and async objects share ----------------------------------------------


class TransactionCore:
    """An interactive transaction's state and calls; ``Transaction`` and
    ``AsyncTransaction`` add only the sending.

    ``state``: ``new`` (not begun), ``open``, then ``committed`` or ``rolled_back``.
    A statement the database failed leaves it ``open`` here: the server has aborted it,
    answers ``transaction_aborted`` to anything but ``rollback``, and the context
    manager's rollback ends it cleanly.
    """

    def __init__(self, tenant: str | int, isolation: str | None) -> None:
        self.tenant = tenant
        self.isolation = isolation
        self.state = "new"
        self.info: dict[str, Any] = {}
        """The server's answer to the begin: ``tenant``, ``idle_timeout_ms``..."""

    @property
    def id(self) -> str:
        if not self.info:
            raise RuntimeError("the transaction has not begun")
        return str(self.info["id"])

    def begin_call(self) -> Call[dict[str, Any]]:
        if self.state != "new":
            raise RuntimeError(f"the transaction has already begun ({self.state})")
        return begin(self.tenant, isolation=self.isolation)

    def began(self, info: dict[str, Any]) -> None:
        if not isinstance(info.get("id"), str):
            raise ProtocolError("the transaction's begin answered no id")
        self.info = info
        self.state = "open"

    def open_id(self) -> str:
        if self.state != "open":
            raise RuntimeError(f"the transaction is not open ({self.state})")
        return self.id
