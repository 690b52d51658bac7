from __future__ import annotations

import pytest

from proxy.config import ControllerSettings, Settings, TokenSettings
from proxy.errors import InvalidRequest
from proxy.service import bind_params, validate_request
from rewriter.errors import InvalidParameters

SETTINGS = Settings(
    controller=ControllerSettings(connection_string="Driver=SQLite3;Database=/c.db"),
    tokens=(TokenSettings(name="t", sha256="a" * 64),),
)


def test_defaults_and_caps_apply() -> None:
    req = validate_request({"tenant": 2, "sql": "SELECT 1", "max_rows": 10**9}, SETTINGS)
    assert req.max_rows == SETTINGS.query.max_rows_cap
    assert req.timeout_ms == SETTINGS.query.default_timeout_ms
    assert req.dialect == "tsql" and req.missing_columns == "error" and req.params == []
    assert req.allow_unfiltered is False


def test_allow_unfiltered_is_read() -> None:
    body = {"tenant": 2, "sql": "DELETE FROM Contacts", "allow_unfiltered": True}
    assert validate_request(body, SETTINGS).allow_unfiltered is True


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"sql": "SELECT 1"},
        {"tenant": True, "sql": "SELECT 1"},
        {"tenant": "", "sql": "SELECT 1"},
        {"tenant": 1, "sql": "  "},
        {"tenant": 1, "sql": 5},
        {"tenant": 1, "sql": "SELECT 1", "params": "x"},
        {"tenant": 1, "sql": "SELECT 1", "dialect": "mysql"},
        {"tenant": 1, "sql": "SELECT 1", "max_rows": 0},
        {"tenant": 1, "sql": "SELECT 1", "max_rows": "5"},
        {"tenant": 1, "sql": "SELECT 1", "timeout_ms": -1},
        {"tenant": 1, "sql": "SELECT 1", "missing_columns": "skip"},
        {"tenant": 1, "sql": "SELECT 1", "sqll": "typo"},
        {"tenant": 1, "sql": "DELETE FROM t", "allow_unfiltered": "true"},
        {"tenant": 1, "sql": "DELETE FROM t", "allow_unfiltered": 1},
    ],
)
def test_malformed_requests_are_refused(body: object) -> None:
    with pytest.raises(InvalidRequest):
        validate_request(body, SETTINGS)


def test_positional_params_follow_the_generated_order() -> None:
    # The generator may reorder binds (sqlite LIMIT ? OFFSET ?): order maps them back.
    assert bind_params((1, 0), ["offset", "limit"], 2) == ["limit", "offset"]


def test_named_params_repeat_and_ignore_case_and_at_sign() -> None:
    assert bind_params(("id", "Id", "name"), {"@ID": 5, "name": "x"}, 0) == [5, 5, "x"]


@pytest.mark.parametrize(
    ("order", "given", "expected"),
    [
        ((0,), [], 1),
        ((0,), [1, 2], 1),
        (("id",), {}, 0),
        (("id",), [1], 0),
        ((0,), {"a": 1}, 1),
        ((0,), [[1, 2]], 1),
        ((0,), [{"a": 1}], 1),
        ((0,), [2**64], 1),
    ],
)
def test_bad_params_are_invalid_parameters(order, given, expected) -> None:
    with pytest.raises(InvalidParameters):
        bind_params(order, given, expected)
