from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.config import ControllerSettings, Settings, TokenSettings
from proxy.errors import InvalidRequest
from proxy.frontends.http.models import query_request
from proxy.pipeline.request import QueryRequest, bind_params
from rewriter import RowCap
from rewriter.errors import InvalidParameters

SETTINGS = Settings(
    controller=ControllerSettings(connection_string="Driver=SQLite3;Database=/c.db"),
    tokens=(TokenSettings(name="t", sha256="a" * 64),),
)


def validate_request(body: Any, settings: Settings) -> QueryRequest:
    """A decoded body as the HTTP front end validates it (from its JSON bytes)."""
    return query_request(orjson.dumps(body), settings)


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


# -- the row cap (rewriter.row_cap): max_rows + 1, or the statement's own count ---------

MAX_ROWS = 10


@pytest.mark.parametrize(
    ("order", "given", "expected", "values"),
    [
        # No count of its own: one row more than max_rows, so `truncated` is visible.
        ((RowCap(),), [], 0, [11]),
        ((0, RowCap()), ["x"], 1, ["x", 11]),
        (("acct", RowCap()), {"acct": 3}, 0, [3, 11]),
        # A literal TOP/FETCH/LIMIT recorded in the plan: the smaller one wins.
        ((RowCap(count=5),), [], 0, [5]),
        ((RowCap(count=0),), [], 0, [0]),
        ((RowCap(count=10),), [], 0, [10]),
        ((RowCap(count=100_000),), [], 0, [11]),
        # TOP (?) / FETCH NEXT @n: the caller's value, read where the plan says.
        ((1, RowCap(param=0)), [3, "x"], 2, ["x", 3]),
        ((1, RowCap(param=0)), [500, "x"], 2, ["x", 11]),
        ((0, RowCap(param=2), 1), ["a", "offset", 4], 3, ["a", 4, "offset"]),
        (("n", RowCap(param="n")), {"@N": 2}, 0, [2, 2]),
        # Only the cap reads it, so a count beyond 64 bits is just "more than max_rows".
        ((RowCap(param="n"),), {"n": 2**70}, 0, [11]),
    ],
)
def test_row_cap_binds_max_rows_plus_one_or_the_smaller_own_count(
    order: tuple[int | str | RowCap, ...], given: object, expected: int, values: list[object]
) -> None:
    assert bind_params(order, given, expected, max_rows=MAX_ROWS) == values


@pytest.mark.parametrize(
    ("order", "given", "expected"),
    [
        ((RowCap(param=0),), [-1], 1),
        ((RowCap(param=0),), ["5"], 1),
        ((RowCap(param=0),), [None], 1),
        ((RowCap(param=0),), [True], 1),
        ((RowCap(param=0),), [2.5], 1),
        ((RowCap(param="n"),), {}, 0),  # a name only the cap reads is still required
        ((RowCap(param="n"),), [5], 0),
        ((RowCap(param=0),), {"n": 5}, 1),
    ],
)
def test_row_cap_refuses_bad_counts(order, given, expected) -> None:
    with pytest.raises(InvalidParameters):
        bind_params(order, given, expected, max_rows=MAX_ROWS)


def test_row_cap_needs_max_rows() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        bind_params((RowCap(),), [], 0)


@pytest.mark.parametrize(
    ("order", "given"),
    [
        ((1, 0, 0), ["a", 2]),
        ((0, RowCap()), [7]),
        ((RowCap(param=0),), [3]),
        ((RowCap(param=0),), [5000]),
        ((RowCap(param=0),), [-1]),
        ((RowCap(param=0),), [True]),
        ((RowCap(param="n"),), [3]),
        (("x", 0), [1]),
        ((0, 1), [1, 2.5]),
        ((0,), [2**63]),
        ((0,), [-(2**63)]),
        ((0,), [None]),
        ((0,), [[1]]),
        ((), []),
    ],
)
def test_the_list_fast_path_answers_as_the_general_path(order, given) -> None:
    """A list of plain values takes a shortcut; a tuple of the same values does not."""

    def outcome(values: Any) -> Any:
        try:
            return bind_params(order, values, len(given), max_rows=10)
        except InvalidParameters as exc:
            return ("refused", exc.message)

    assert outcome(list(given)) == outcome(tuple(given))
