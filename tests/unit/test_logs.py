"""``proxy.logs``: a record is one line whatever its message holds, and a traceback's
lines cannot pass for records (issue #9, item 8)."""

from __future__ import annotations

import logging
import re

import pytest

from proxy.cli.serve import LOG_FORMAT
from proxy.logs import SafeFormatter, escape

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
