"""The HTTP front end's request models (proxy.frontends.http.models): what they accept,
the 400 that names the field when they do not, and never anything else."""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import DIALECTS, ControllerSettings, QuerySettings, Settings, TokenSettings
from proxy.drivers.base import ISOLATION_LEVELS
from proxy.errors import InvalidCustomField, InvalidRequest
from proxy.frontends.http.models import (
    BATCH,
    CUSTOM_FIELD,
    QUERY,
    RECORD,
    TRANSACTION,
    TRANSACTION_BATCH,
    TRANSACTION_QUERY,
    Body,
    CustomFieldBody,
    Dialect,
    Isolation,
    Kind,
    QueryBody,
    custom_field,
    query_request,
)
from proxy.pipeline.request import QueryRequest
from tenancy import ddl

SETTINGS = Settings(
    controller=ControllerSettings(connection_string="Driver=SQLite3;Database=/c.db"),
    tokens=(TokenSettings(name="t", sha256="a" * 64),),
)


def raw(body: Any) -> bytes:
    return orjson.dumps(body)


def refusal(body: Any, decode: Any = QUERY.decode) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        decode(body if isinstance(body, bytes) else raw(body))
    return info.value


# -- the query body --------------------------------------------------------------------


def test_a_typical_body_becomes_a_query_request_with_the_defaults() -> None:
    body = {"tenant": "beta.example", "sql": "SELECT * FROM Contacts WHERE ContactID = ?"}
    req = query_request(raw({**body, "params": [5]}), SETTINGS)
    q = SETTINGS.query
    assert req == QueryRequest(
        "beta.example", body["sql"], [5], q.default_dialect, max_rows=q.default_max_rows,
        timeout_ms=q.default_timeout_ms, missing_columns="error", allow_unfiltered=False,
    )  # fmt: skip


def test_every_field_is_read() -> None:
    body = {
        "tenant": 7, "sql": "DELETE FROM t", "params": {"@a": None}, "dialect": "sqlite",
        "max_rows": 3, "timeout_ms": 40, "missing_columns": "null", "allow_unfiltered": True,
    }  # fmt: skip
    assert query_request(raw(body), SETTINGS) == QueryRequest(**body)


def test_the_configuration_gives_the_defaults_and_the_caps() -> None:
    query = QuerySettings(
        default_dialect="postgres", default_max_rows=7, max_rows_cap=9,
        default_timeout_ms=11, max_timeout_ms=13,
    )  # fmt: skip
    configured = Settings(controller=SETTINGS.controller, tokens=SETTINGS.tokens, query=query)
    req = query_request(raw({"tenant": 1, "sql": "SELECT 1"}), configured)
    assert (req.dialect, req.max_rows, req.timeout_ms) == ("postgres", 7, 11)
    big = {"tenant": 1, "sql": "SELECT 1", "timeout_ms": 10**9}
    req = query_request(raw(big | {"max_rows": 10**18}), configured)
    assert (req.max_rows, req.timeout_ms) == (9, 13)
    # Beyond 64 bits too (orjson cannot encode it; msgspec decodes it): capped, not a 500.
    text = b'{"tenant": 1, "sql": "SELECT 1", "max_rows": 100000000000000000000000}'
    assert query_request(text, configured).max_rows == 9


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ("x", "the body must be a JSON object"),
        (None, "the body must be a JSON object"),
        ({"sql": "SELECT 1"}, "'tenant' must be a customer id or a domain name"),
        ({"tenant": True, "sql": "SELECT 1"}, "'tenant' must be a customer id or a domain name"),
        ({"tenant": "", "sql": "SELECT 1"}, "'tenant' must be a customer id or a domain name"),
        ({"tenant": 1.5, "sql": "SELECT 1"}, "'tenant' must be a customer id or a domain name"),
        ({"tenant": 1}, "'sql' must be a non-empty string"),
        ({"tenant": 1, "sql": "  "}, "'sql' must be a non-empty string"),
        ({"tenant": 1, "sql": "\n\t"}, "'sql' must be a non-empty string"),
        ({"tenant": 1, "sql": 5}, "'sql' must be a non-empty string"),
        ({"tenant": 1, "sql": "SELECT 1", "params": "x"},
         "'params' must be a list (for ?) or an object (for @name)"),
        ({"tenant": 1, "sql": "SELECT 1", "params": None},
         "'params' must be a list (for ?) or an object (for @name)"),
        ({"tenant": 1, "sql": "SELECT 1", "dialect": "mysql"},
         "'dialect' must be one of tsql, postgres, sqlite"),
        ({"tenant": 1, "sql": "SELECT 1", "dialect": None},
         "'dialect' must be one of tsql, postgres, sqlite"),
        ({"tenant": 1, "sql": "SELECT 1", "max_rows": 0}, "'max_rows' must be a positive integer"),
        ({"tenant": 1, "sql": "SELECT 1", "max_rows": "5"},
         "'max_rows' must be a positive integer"),
        ({"tenant": 1, "sql": "SELECT 1", "max_rows": 5.0},
         "'max_rows' must be a positive integer"),
        ({"tenant": 1, "sql": "SELECT 1", "max_rows": True},
         "'max_rows' must be a positive integer"),
        ({"tenant": 1, "sql": "SELECT 1", "max_rows": None},
         "'max_rows' must be a positive integer"),
        ({"tenant": 1, "sql": "SELECT 1", "timeout_ms": -1},
         "'timeout_ms' must be a positive integer"),
        ({"tenant": 1, "sql": "SELECT 1", "missing_columns": "skip"},
         "'missing_columns' must be 'error' or 'null'"),
        ({"tenant": 1, "sql": "DELETE FROM t", "allow_unfiltered": "true"},
         "'allow_unfiltered' must be true or false"),
        ({"tenant": 1, "sql": "DELETE FROM t", "allow_unfiltered": 1},
         "'allow_unfiltered' must be true or false"),
        ({"tenant": 1, "sql": "SELECT 1", "sqll": "typo"}, "unknown fields: sqll"),
        ({"zz": 1, "tenant": 1, "aa": 2, "sql": "SELECT 1"}, "unknown fields: aa, zz"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_refused_with_a_sentence_naming_the_field(
    body: Any, message: str
) -> None:
    error = refusal(body)
    assert type(error) is InvalidRequest and error.code == "invalid_request"
    assert error.message == message
    if message.startswith("'"):
        assert error.details == {"field": message.split("'")[1]}


@pytest.mark.parametrize("body", [QUERY, BATCH, TRANSACTION, TRANSACTION_QUERY, TRANSACTION_BATCH])
def test_every_field_of_a_statement_body_has_its_sentence(body: Body[Any]) -> None:
    fields = set(body.type.__struct_fields__)
    assert fields <= set(body._messages)


@pytest.mark.parametrize(
    ("text", "start"),
    [
        (b"", "the body is not valid JSON: "),
        (b"{not json", "the body is not valid JSON: "),
        (b'{"tenant": 1, "sql": "SELECT 1"} x', "the body is not valid JSON: "),
        (b'{"tenant": 1, "sql": "a\\ud800"}', "the body is not valid JSON: "),
        (b"\xff", "the body is not valid JSON: "),
        (b"NaN", "the body is not valid JSON: "),
        # The type refuses `tenant` before the parser reaches the broken end.
        (b'{"tenant": true, "sql": ', "the body is not valid JSON: "),
        (b'{"tenant": 1, "sql": "x", "params": [1e400]}', "'params': Number out of range"),
    ],
)
def test_what_is_not_json_says_so(text: bytes, start: str) -> None:
    error = refusal(text)
    assert type(error) is InvalidRequest and error.message.startswith(start), error.message


def test_large_integer_params_pass_to_bind_params() -> None:
    # bind_params refuses integers beyond 64 bits with invalid_parameters (a 400).
    text = b'{"tenant": 1, "sql": "SELECT ?", "params": [100000000000000000000000]}'
    assert query_request(text, SETTINGS).params == [10**23]


# -- the custom-field body -------------------------------------------------------------


def test_the_creatable_kinds_are_tenancys() -> None:
    assert typing.get_args(Kind) == ddl.CREATABLE_KINDS


def test_the_dialects_are_the_rewriters() -> None:
    assert set(typing.get_args(Dialect)) == DIALECTS


def test_the_isolation_levels_are_the_drivers() -> None:
    assert typing.get_args(Isolation) == ISOLATION_LEVELS


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "Region", "type": "text", "length": 50},
         {"name": "Region", "type": "text", "length": 50, "nullable": True, "default": None}),
        ({"name": "amount", "type": "decimal", "precision": 9, "scale": 2, "nullable": False,
          "default": "1.50"},
         {"name": "amount", "type": "decimal", "precision": 9, "scale": 2, "nullable": False,
          "default": "1.50"}),
        ({"name": "n", "type": "integer"},
         {"name": "n", "type": "integer", "nullable": True, "default": None}),
    ],
)  # fmt: skip
def test_a_custom_field_body_reaches_field_spec_as_sent(body: Any, expected: Any) -> None:
    fields = custom_field(raw(body))
    assert fields == expected
    assert ddl.field_spec(fields) == ddl.field_spec(body)


def add(text: bytes) -> ddl.FieldSpec:
    """What POST .../custom-fields does: the model, then field_spec as CustomFields.add
    runs it (its FieldError becomes InvalidCustomField)."""
    fields = custom_field(text)
    try:
        return ddl.field_spec(fields)
    except ddl.FieldError as exc:
        raise InvalidCustomField(exc.message, field=exc.field) from None


CUSTOM_FIELD_REFUSED: list[Any] = [
    [1],
    {"type": "integer"},
    {"name": "", "type": "integer"},
    {"name": "1bad", "type": "integer"},
    {"name": "x" * 129, "type": "integer"},
    {"name": 5, "type": "integer"},
    {"name": "ok", "type": "money"},
    {"name": "ok", "type": "text"},
    {"name": "ok", "type": "text", "length": 0},
    {"name": "ok", "type": "text", "length": 4001},
    {"name": "ok", "type": "text", "length": "5"},
    {"name": "ok", "type": "integer", "length": 5},
    {"name": "ok", "type": "integer", "length": None},
    {"name": "ok", "type": "integer", "scale": 50},
    {"name": "ok", "type": "decimal", "precision": 39, "scale": 2},
    {"name": "ok", "type": "decimal", "precision": 4, "scale": 5},
    {"name": "ok", "type": "integer", "nullable": "no"},
    {"name": "ok", "type": "integer", "nullable": None},
    {"name": "ok", "type": "integer", "nullable": False},
    {"name": "ok", "type": "integer", "default": "x"},
    {"name": "ok", "type": "integer", "colour": "red"},
    {"name": "ok\n", "type": "integer"},
]


@pytest.mark.parametrize("body", CUSTOM_FIELD_REFUSED, ids=repr)
def test_custom_field_refusals_keep_field_specs_sentences(body: Any) -> None:
    with pytest.raises(ddl.FieldError) as expected:
        ddl.field_spec(body)
    with pytest.raises(InvalidCustomField) as error:  # the model, or field_spec after it
        add(raw(body))
    assert error.value.code == "invalid_custom_field"
    assert error.value.message == expected.value.message
    assert error.value.details.get("field") == expected.value.field


def test_the_custom_field_model_names_every_field_spec_key() -> None:
    assert set(CustomFieldBody.__struct_fields__) == {
        "name", "type", "length", "precision", "scale", "nullable", "default",
    }  # fmt: skip


# -- record bodies ---------------------------------------------------------------------


def test_record_bodies_are_objects_with_at_least_one_field() -> None:
    body = {"FirstName": "Ada", "Custom_Region": None, "LeadScore": 1.5, "IsActive": True}
    assert RECORD.decode(raw(body)) == body
    for bad in ([1], {}, "x", None):
        error = refusal(bad, RECORD.decode)
        assert type(error) is InvalidRequest
        assert error.message == "the body must be a JSON object with at least one field"
    error = refusal(b'{"LeadScore": 1e400}', RECORD.decode)
    assert error.message.startswith("the body does not fit: Number out of range")


# -- never anything but a 400 ------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # what orjson can encode
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from([*QueryBody.__struct_fields__, *CustomFieldBody.__struct_fields__, "x"])
BODIES = JSON | st.dictionaries(KEYS, JSON, max_size=6)


@settings(max_examples=400, deadline=None)
@given(body=BODIES)
def test_any_json_is_accepted_or_refused_with_a_400(body: Any) -> None:
    text = orjson.dumps(body)
    for decode in (
        lambda b: query_request(b, SETTINGS), add, RECORD.decode, CUSTOM_FIELD.decode,
    ):  # fmt: skip
        try:
            decode(text)
        except InvalidRequest as exc:
            assert exc.message


@settings(max_examples=300, deadline=None)
@given(text=st.binary(max_size=64) | BODIES.map(lambda b: orjson.dumps(b)[:-1]))
def test_any_bytes_are_accepted_or_refused_with_a_400(text: bytes) -> None:
    for decode in (QUERY.decode, CUSTOM_FIELD.decode, RECORD.decode):
        try:
            decode(text)
        except InvalidRequest as exc:
            assert exc.message
