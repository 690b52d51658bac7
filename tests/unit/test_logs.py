"""``proxy.logs``: a record is one line whatever its message holds, and a traceback's
lines cannot pass for records (issue #9, item 8)."""

from __future__ import annotations

import logging
import re

import orjson
import pytest

from proxy import context
from proxy.cli.serve import LOG_FORMAT
from proxy.logs import JsonFormatter, RequestFields, SafeFormatter, escape

FORGED = "2026-01-01 00:00:00,000 INFO tenantgate forged"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("tenantgate", logging.WARNING, __file__, 1, message, args, exc_info)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, ünïcödé", "plain text, ünïcödé"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("esc \x1b[31m red", "esc \\x1b[31m red"),
        ("nul \x00 del \x7f", "nul \\x00 del \\x7f"),
        ("line\u2028separator\x85next", "line\\u2028separator\\x85next"),
    ],
)
def test_escape(text: str, expected: str) -> None:
    assert escape(text) == expected


def test_a_record_is_one_line_whatever_its_arguments_hold() -> None:
    formatter = SafeFormatter(LOG_FORMAT)
    text = formatter.format(_record("driver said: %s", f"no such column\n{FORGED}"))
    assert "\n" not in text
    assert text.endswith(f"driver said: no such column\\n{FORGED}")


def _inner() -> None:
    raise KeyError(f"inner\n{FORGED}")


def _fail() -> None:
    try:
        _inner()
    except KeyError as inner:
        raise RuntimeError(f"outer\r\n{FORGED}") from inner


def test_a_traceback_cannot_forge_a_record() -> None:
    formatter = SafeFormatter(LOG_FORMAT)
    try:
        _fail()
    except RuntimeError as exc:
        text = formatter.format(_record("unhandled error", exc=exc))
    first, *rest = text.split("\n")
    assert RECORD_START.match(first) and first.endswith("unhandled error")
    assert rest, "the traceback follows"
    assert all(line.startswith("    ") for line in rest)
    assert not [line for line in rest if RECORD_START.match(line.lstrip("\r"))]
    assert any("RuntimeError: outer" in line for line in rest)
    assert any("inner" in line for line in rest)


def _stamped(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    RequestFields().filter(record)
    return formatter.format(record)


def test_records_made_during_a_request_carry_its_id_and_tenant() -> None:
    ctx, token = context.begin("req-7f")
    try:
        ctx.tenant = "beta.example"
        inside = _stamped(SafeFormatter(LOG_FORMAT), _record("reading %s", "Contacts"))
        as_json = orjson.loads(_stamped(JsonFormatter(), _record("reading %s", "Contacts")))
    finally:
        context.end(token)
    outside = _stamped(SafeFormatter(LOG_FORMAT), _record("idle"))
    assert inside.endswith(" WARNING tenantgate [req-7f beta.example] reading Contacts")
    assert outside.endswith(" WARNING tenantgate idle")
    assert {k: as_json[k] for k in ("level", "logger", "message", "request_id", "tenant")} == {
        "level": "warning",
        "logger": "tenantgate",
        "message": "reading Contacts",
        "request_id": "req-7f",
        "tenant": "beta.example",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", as_json["time"])


def test_a_json_record_is_one_line_with_its_traceback_inside() -> None:
    try:
        _fail()
    except RuntimeError as exc:
        text = _stamped(JsonFormatter(), _record(f"failed\n{FORGED}", exc=exc))
    assert "\n" not in text
    entry = orjson.loads(text)
    assert entry["message"] == f"failed\n{FORGED}"
    assert "KeyError" in entry["exception"] and "RuntimeError" in entry["exception"]
    assert "request_id" not in entry


@pytest.mark.parametrize(
    "given",
    [b"", b"x" * 65, b"has space", b"new\nline", b"semi;colon", "ünï".encode(), b"quote'"],
)
def test_a_malformed_request_id_is_replaced(given: bytes) -> None:
    made = context.request_id_from(given)
    assert made != given.decode("utf-8", "replace")
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", made)


def test_a_well_formed_request_id_is_kept_and_made_ones_differ() -> None:
    for given in (b"0f8e2c1a-5b6d-4e3f-9a8b-7c6d5e4f3a2b", b"a", b"trace:01.x_y-z", b"9" * 64):
        assert context.request_id_from(given) == given.decode()
    assert len({context.request_id_from(None) for _ in range(1000)}) == 1000
