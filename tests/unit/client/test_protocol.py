"""The client's requests and answers as plain functions (``proxy.client.protocol``)."""

from __future__ import annotations

import datetime
import decimal
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.client import errors, protocol, streaming
from proxy.client.models import Column, Result, Statement

ROOT = Path(__file__).resolve().parents[3]


def _body(call: protocol.Call[Any]) -> Any:
    assert call.body is not None
    return json.loads(call.body)


def test_query_body_sends_only_what_was_given() -> None:
    call = protocol.query("beta.example", "SELECT 1")
    assert (call.method, call.path, call.wait_s) == ("POST", "/v1/query", None)
    assert _body(call) == {"tenant": "beta.example", "sql": "SELECT 1", "params": []}
    call = protocol.query(
        2, "UPDATE Contacts SET FirstName = @n", {"n": "Ada"}, max_rows=5, timeout_ms=1500,
        dialect="tsql", missing_columns="null", allow_unfiltered=True,
    )  # fmt: skip
    assert _body(call) == {
        "tenant": 2, "sql": "UPDATE Contacts SET FirstName = @n", "params": {"n": "Ada"},
        "max_rows": 5, "timeout_ms": 1500, "dialect": "tsql", "missing_columns": "null",
        "allow_unfiltered": True,
    }  # fmt: skip
    assert call.wait_s == 1.5 + protocol.TIMEOUT_MARGIN_S
    assert protocol.request_headers(call) == {"Content-Type": "application/json"}


def test_params_are_encoded_for_json() -> None:
    values = (
        datetime.datetime(2024, 5, 1, 10, 0, 0),
        datetime.date(2024, 5, 1),
        datetime.time(9, 30),
        decimal.Decimal("1.50"),
        uuid.UUID(int=1),
        None,
        True,
        3,
    )
    assert _body(protocol.query(1, "SELECT ?", values))["params"] == [
        "2024-05-01 10:00:00", "2024-05-01", "09:30:00", "1.50",
        "00000000-0000-0000-0000-000000000001", None, True, 3,
    ]  # fmt: skip


@pytest.mark.parametrize("params", [[b"bytes"], [object()], [float("nan")], "abc"])
def test_params_json_cannot_carry_are_refused_before_sending(params: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        protocol.query(1, "SELECT ?", params)


def test_batch_bodies_take_three_statement_shapes() -> None:
    call = protocol.batch(
        "beta.example",
        ["SELECT 1", ("SELECT ?", [2]), Statement("DELETE FROM T", (), max_rows=3,
                                                  allow_unfiltered=True)],
        isolation="serializable", timeout_ms=2000, max_rows=10,
    )  # fmt: skip
    assert call.path == "/v1/batch"
    assert _body(call) == {
        "tenant": "beta.example",
        "statements": [
            {"sql": "SELECT 1", "params": []},
            {"sql": "SELECT ?", "params": [2]},
            {"sql": "DELETE FROM T", "params": [], "max_rows": 3, "allow_unfiltered": True},
        ],
        "isolation": "serializable", "timeout_ms": 2000, "max_rows": 10,
    }  # fmt: skip
    with pytest.raises(TypeError):
        protocol.batch(1, [("SELECT 1",)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        protocol.batch(1, [42])  # type: ignore[list-item]


def test_transaction_calls() -> None:
    assert _body(protocol.begin("a.example", isolation="repeatable_read")) == {
        "tenant": "a.example", "isolation": "repeatable_read"}  # fmt: skip
    assert _body(protocol.begin(3)) == {"tenant": 3}
    tx = "ab/c"  # quoted: an id is never a path of its own
    assert protocol.tx_query(tx, "SELECT 1").path == "/v1/transactions/ab%2Fc/query"
    assert "tenant" not in _body(protocol.tx_query(tx, "SELECT 1"))
    batch = _body(protocol.tx_batch(tx, ["SELECT 1"], timeout_ms=10))
    assert batch == {"statements": [{"sql": "SELECT 1", "params": []}], "timeout_ms": 10}
    assert protocol.commit(tx).path == "/v1/transactions/ab%2Fc/commit"
    assert protocol.rollback(tx).body is None


def test_transaction_core_states() -> None:
    core = protocol.TransactionCore("a.example", None)
    with pytest.raises(RuntimeError):
        _ = core.id
    with pytest.raises(RuntimeError):
        core.open_id()
    with pytest.raises(errors.ProtocolError):
        core.began({"no": "id"})
    core.began({"id": "t1", "idle_timeout_ms": 30000})
    assert core.state == "open" and core.open_id() == "t1"
    with pytest.raises(RuntimeError):
        core.begin_call()


def test_record_calls() -> None:
    get = protocol.record_get("beta.example", "Contacts", 5, custom=True)
    assert (get.method, dict(get.query)) == ("GET", {"custom": "true"})
    assert get.path == "/v1/tenants/beta.example/tables/Contacts/records/5"
    patch = protocol.record_patch(2, "Contacts", "a b", {"FirstName": "Ada"}, if_match='"b1"')
    assert patch.path.endswith("/records/a%20b") and patch.headers == {"If-Match": '"b1"'}
    assert _body(patch) == {"FirstName": "Ada"} and not patch.query
    insert = protocol.record_insert(2, "Contacts", {"FirstName": "Ada"})
    assert (insert.method, insert.path) == ("POST", "/v1/tenants/2/tables/Contacts/records")
    answer = httpx.Response(200, json={"FirstName": "Ada"}, headers={"ETag": '"b00"'})
    assert get.decode(answer) == ({"FirstName": "Ada"}, '"b00"')
    with pytest.raises(errors.ProtocolError):
        get.decode(httpx.Response(200, json={"FirstName": "Ada"}))


def test_decode_results() -> None:
    raw = {"columns": [{"name": "n", "type": "integer"}], "rows": [[1], [2]], "row_count": 2,
           "truncated": True}  # fmt: skip
    result = protocol.query(1, "SELECT n").decode(httpx.Response(200, json=raw))
    assert result == Result([Column("n", "integer")], [[1], [2]], 2, True)
    assert result.records() == [{"n": 1}, {"n": 2}] and result.scalar() == 1
    batch = protocol.batch(1, ["SELECT n"]).decode(httpx.Response(200, json={"results": [raw]}))
    assert batch == [result]
    with pytest.raises(errors.ProtocolError):
        protocol.query(1, "SELECT n").decode(httpx.Response(200, content=b"<html>"))
    with pytest.raises(errors.ProtocolError):
        protocol.query(1, "SELECT n").decode(httpx.Response(200, json={"rows": []}))
    with pytest.raises(errors.ProtocolError):
        protocol.batch(1, ["SELECT n"]).decode(httpx.Response(200, json={"result": []}))
    with pytest.raises(errors.UnknownTenant):
        protocol.query(1, "SELECT n").decode(
            httpx.Response(404, json={"error": {"code": "unknown_tenant", "message": "m"}})
        )


def _lines(*items: Any) -> list[str]:
    return [json.dumps(item) for item in items]


def test_row_decoder_reads_a_stream() -> None:
    decoder = streaming.RowDecoder()
    lines = _lines({"columns": [{"name": "id", "type": "integer"}]}, [1], [2],
                   {"row_count": 2, "truncated": False})  # fmt: skip
    rows = [row for line in [*lines, ""] if (row := decoder.feed(line)) is not None]
    decoder.finish()
    assert rows == [[1], [2]] and decoder.columns == [Column("id", "integer")]
    assert (decoder.row_count, decoder.truncated) == (2, False)
    with pytest.raises(errors.ProtocolError):
        decoder.feed("[3]")


def test_row_decoder_raises_an_error_trailer() -> None:
    decoder = streaming.RowDecoder()
    for line in _lines({"columns": []}, [1]):
        decoder.feed(line)
    trailer = {"error": {"code": "statement_timeout", "message": "too slow"}, "row_count": 1}
    with pytest.raises(errors.StatementTimeout) as caught:
        decoder.feed(json.dumps(trailer))
    assert caught.value.status == 504 and caught.value.details == {"row_count": 1}
    assert caught.value.message == "too slow"


@pytest.mark.parametrize(
    "lines",
    [
        ["[1]"],  # no header
        ['{"columns": 3}'],
        ['{"columns": []}', "not json"],
        ['{"columns": []}', "3"],
    ],
)
def test_row_decoder_refuses_what_is_not_a_stream(lines: list[str]) -> None:
    decoder = streaming.RowDecoder()
    with pytest.raises(errors.ProtocolError):
        for line in lines:
            decoder.feed(line)


def test_a_stream_cut_short_is_an_error() -> None:
    decoder = streaming.RowDecoder()
    for line in _lines({"columns": []}, [1]):
        decoder.feed(line)
    with pytest.raises(errors.ProtocolError, match="without its trailer"):
        decoder.finish()


def test_timeout_leaves_room_for_the_statement_timeout() -> None:
    base = httpx.Timeout(10.0)
    assert protocol.timeout_for(base, protocol.query(1, "SELECT 1")) is base
    assert protocol.timeout_for(base, protocol.query(1, "SELECT 1", timeout_ms=2000)) is base
    longer = protocol.timeout_for(base, protocol.query(1, "SELECT 1", timeout_ms=60000))
    assert longer.read == 60 + protocol.TIMEOUT_MARGIN_S and longer.connect == 10.0


def test_headers_keep_the_token_last() -> None:
    headers = protocol.client_headers("tok", {"Authorization": "x", "X-Request-ID": "r1"})
    assert headers["Authorization"] == "Bearer tok" and headers["X-Request-ID"] == "r1"


def test_the_client_imports_nothing_of_the_server() -> None:
    """A service that only calls tenantgate must not load sqlglot or the server."""
    code = (
        "import sys, proxy.client, proxy.client.records\n"
        "heavy = ('sqlglot', 'rewriter', 'tenancy', 'msgspec', 'starlette', 'pyodbc',"
        " 'psycopg', 'orjson', 'prometheus_client', 'cachetools')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or (m.startswith('proxy.') and not m.startswith('proxy.client')))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", f"proxy.client imports {done.stdout.strip()}"
