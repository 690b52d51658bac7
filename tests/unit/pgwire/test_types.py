"""Wire formats of values and parameters (``proxy.frontends.pgwire.types``): pure.

Agreement with a real PostgreSQL, byte for byte, is tests/integration/test_pgwire_types.py;
these pin the properties that hold for every value (round trips, the row encoder's
format choices, the errors) and the cases no sample table lists.
"""

from __future__ import annotations

import datetime
import decimal
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.drivers.base import TYPE_NAMES
from proxy.frontends.pgwire import types
from proxy.frontends.pgwire.types import (
    OIDS,
    ParamError,
    decode_param,
    encode_binary,
    encode_text,
    row_encoder,
    type_size,
)

D = decimal.Decimal


def test_every_type_name_has_an_oid_and_size() -> None:
    # json and string[]: the session's catalog answers (proxy.frontends.pgwire.catalog).
    assert set(TYPE_NAMES.values()) | {"unknown", "json", "string[]"} == set(OIDS)
    assert type_size(OIDS["integer"]) == 8
    assert type_size(OIDS["string"]) == -1
    assert type_size(OIDS["decimal"]) == -1
    assert type_size(OIDS["uuid"]) == 16


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        (True, b"t"),
        (False, b"f"),
        (-7, b"-7"),
        (D("1E+2"), b"100"),
        (D("-0.00"), b"0.00"),
        (D("1.2300"), b"1.2300"),
        (D("-1E-7"), b"-0.0000001"),
        (1e15, b"1e+15"),
        (123.0, b"123"),
        (-2.5e-05, b"-2.5e-05"),
        (datetime.datetime(2024, 1, 2, 3, 4, 5, 120), b"2024-01-02 03:04:05.00012"),
        (datetime.time(3, 4, 5), b"03:04:05"),
        (b"\x01\xab", b"\\x01ab"),
        (bytearray(b"\xff"), b"\\xff"),
        pytest.param(memoryview(b""), b"\\x", id="memoryview(b'')"),  # a stable id for xdist
        ("ü", "ü".encode()),
        ([1, 2], b"[1, 2]"),  # anything else: its str()
    ],
    ids=repr,
)
def test_encode_text(value: object, text: bytes | None) -> None:
    assert encode_text(value) == text


def test_subclasses_are_encoded_as_their_base() -> None:
    class Name(str):
        pass

    class Flag(int):
        pass

    assert encode_text(Name("x")) == b"x"
    assert encode_text(Flag(3)) == b"3"


@settings(max_examples=400, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_reads_back_exactly(value: float) -> None:
    text = encode_text(value)
    assert text is not None
    assert float(text) == value
    assert b"E" not in text and not text.endswith(b".0")


@settings(max_examples=300, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_numeric_binary_round_trips(value: decimal.Decimal) -> None:
    data = encode_binary(value, 1700)
    assert data is not None
    back = decode_param(data, 1700, 1)
    assert back == encode_text(value).decode()  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-2_451_545, max_value=2_145_031_948))
def test_day_text_is_the_proleptic_gregorian_calendar(days: int) -> None:
    text = decode_param(struct.pack(">i", days), 1082, 1)
    assert isinstance(text, str)
    date = datetime.date(2000, 1, 1).toordinal() + days
    if 1 <= date <= datetime.date.max.toordinal():
        assert text == datetime.date.fromordinal(date).isoformat()
    else:
        assert text.endswith(" BC") or int(text.split("-")[0]) > 9999


def test_binary_encoders_convert_or_refuse() -> None:
    assert encode_binary("12", 20) == struct.pack(">q", 12)  # SQLite: text in an integer column
    assert encode_binary(D("3"), 23) == struct.pack(">i", 3)
    assert encode_binary(1.5, 1700) == encode_binary(D("1.5"), 1700)
    assert encode_binary(datetime.date(2000, 1, 2), 1114) == struct.pack(">q", 86_400_000_000)
    assert encode_binary(str(uuid.UUID(int=1)), 2950) == uuid.UUID(int=1).bytes
    assert encode_binary(42, 25) == b"42"
    assert encode_binary(None, 20) is None
    with pytest.raises(TypeError):
        encode_binary(b"x", 20)
    with pytest.raises(ValueError):
        encode_binary("twelve", 20)
    with pytest.raises(ValueError, match="int"):
        encode_binary(2**40, 23)
    with pytest.raises(ValueError, match="numeric"):
        encode_binary(D("1E+200000"), 1700)


def test_row_encoder_formats() -> None:
    row = [1, "a", None, True]
    oids = [20, 25, 25, 16]
    text = [b"1", b"a", None, b"t"]
    assert row_encoder(oids, [])(row) == text
    assert row_encoder(oids, [0])(row) == text
    binary = [struct.pack(">q", 1), b"a", None, b"\x01"]
    assert row_encoder(oids, [1])(row) == binary
    assert row_encoder(oids, [1, 0, 0, 0])(row) == [binary[0], *text[1:]]
    with pytest.raises(ValueError, match="3 result formats for 4 columns"):
        row_encoder(oids, [0, 0, 0])
    with pytest.raises(ValueError, match="neither"):
        row_encoder(oids, [2])


@pytest.mark.parametrize(
    ("data", "oid", "fmt", "value"),
    [
        (None, 20, 0, None),
        (b"42", 0, 0, "42"),
        (b" -42 ", 20, 0, -42),
        (b"1.5", 701, 0, 1.5),
        (b"0x1p-2", 701, 0, 0.25),
        (b"0.1", 700, 0, struct.unpack(">f", struct.pack(">f", 0.1))[0]),
        (b"1e2", 1700, 0, "100"),
        (b"Of", 16, 0, False),
        (b"Y", 16, 0, True),
        (b"2024-01-02T03:04:05.100+02:00", 1114, 0, "2024-01-02 03:04:05.1"),
        (b"2024-01-02T03:04:05+02:00", 1184, 0, "2024-01-02 01:04:05+00"),
        (b"2024-01-02 03:04", 1184, 0, "2024-01-02 03:04:00"),
        (b"-infinity", 1082, 0, "-infinity"),
        (b"00:00:00.5", 1083, 0, "00:00:00.5"),
        (struct.pack(">q", 86_400_000_000), 1083, 1, "24:00:00"),
        (struct.pack(">q", -1), 1114, 1, "1999-12-31 23:59:59.999999"),
        (struct.pack(">i", -730_120), 1082, 1, "0001-12-31 BC"),
        (struct.pack(">hhHH", 0, 0, 0, 2), 1700, 1, "0.00"),
        (b"\x02", 16, 1, True),
    ],
    ids=repr,
)
def test_decode_param(data: bytes | None, oid: int, fmt: int, value: object) -> None:
    decoded = decode_param(data, oid, fmt)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(
    ("data", "oid", "fmt", "sqlstate"),
    [
        (b"1.0", 20, 0, "22P02"),
        (b"\xff", 25, 0, "22021"),
        (b"a\x00b", 25, 0, "22021"),
        (b"a\x00b", 25, 1, "22021"),
        (b"32768", 21, 0, "22003"),
        (b"1e400", 701, 0, "22003"),
        (b"1e-50", 700, 0, "22003"),
        (b"yesterday", 1082, 0, "22007"),
        (b"2024-13-01", 1082, 0, "22008"),
        (b"\\x00", 17, 0, "0A000"),
        (b"\x00", 17, 1, "0A000"),
        (b"{}", 114, 0, "0A000"),
        (b"x", 0, 1, "0A000"),
        (b"\x00\x00\x00\x01", 20, 1, "22P03"),
        (struct.pack(">hhHH", 1, 0, 0, 0), 1700, 1, "22P03"),
        (struct.pack(">hhHHh", 1, 0, 0, 0, 10_000), 1700, 1, "22P03"),
        (struct.pack(">hhHH", 0, 0, 0x1234, 0), 1700, 1, "22P03"),
        (b"\x00" * 4, 1700, 1, "22P03"),
        (struct.pack(">i", 2_145_031_949), 1082, 1, "22008"),
        (b"1", 20, 2, "08P01"),
    ],
    ids=repr,
)
def test_decode_param_refuses(data: bytes, oid: int, fmt: int, sqlstate: str) -> None:
    with pytest.raises(ParamError) as caught:
        decode_param(data, oid, fmt)
    assert caught.value.sqlstate == sqlstate
    assert data.decode(errors="replace") not in caught.value.message or len(data) < 2


def test_param_error_names_the_type_not_the_value() -> None:
    with pytest.raises(ParamError, match="bigint parameter") as caught:
        decode_param(b"s3cret", 20, 0)
    assert "s3cret" not in caught.value.message


def test_module_exports() -> None:
    assert set(types.__all__) == {
        "OIDS", "ParamError", "decode_param", "encode_binary", "encode_text", "row_encoder",
        "type_size",
    }  # fmt: skip


def test_a_text_array_in_binary_from_its_text_form() -> None:
    """The catalog's arrays come in PostgreSQL's text form; asyncpg asks for binary."""
    items = ["a", "b c", None, 'x"y', "p\\q", "", "NULL", "a,b", "{x}"]
    text = '{a,"b c",NULL,"x\\"y","p\\\\q","","NULL","a,b","{x}"}'
    encoded = encode_binary(text, 1009)
    assert encoded == encode_binary(items, 1009)
    assert encoded is not None and encoded[:12] == struct.pack("!iiI", 1, 1, 25)
    assert encode_binary("{}", 1009) == struct.pack("!iiI", 0, 0, 25)
