"""The wire formats of proxy.frontends.pgwire.types against a real PostgreSQL.

For each sample, PostgreSQL itself computes the value (a SQL literal) and sends it in the
text and the binary format; what ``encode_text``/``encode_binary`` make of the Python
value must be those very bytes. For parameters, PostgreSQL parses the same bytes
``decode_param`` reads; both must accept the same ones and agree on the value (compared
through PostgreSQL's text output), or both refuse.
"""

from __future__ import annotations

import datetime
import decimal
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import pq
from psycopg.conninfo import make_conninfo

from proxy.frontends.pgwire.types import (
    OIDS,
    ParamError,
    decode_param,
    encode_binary,
    encode_text,
    type_size,
)
from tests.support.pg import PgServer

D = decimal.Decimal
BIG = "123456789012345678901234567890.123456789"
PLUS2 = datetime.timezone(datetime.timedelta(hours=2))
U = uuid.UUID("cf2c8587-0cb5-4fd1-9a2b-2beaeb710ef0")

# SQL expression, the Python value a driver would return for it, its OID.
SAMPLES: list[tuple[str, object, int]] = [
    ("0::int8", 0, 20),
    ("(-9223372036854775808)::int8", -(2**63), 20),
    ("9223372036854775807::int8", 2**63 - 1, 20),
    ("(-2147483648)::int4", -(2**31), 23),
    ("(-32768)::int2", -32768, 21),
    ("true", True, 16),
    ("false", False, 16),
    ("1.5::float8", 1.5, 701),
    ("0.1::float8", 0.1, 701),
    ("1::float8", 1.0, 701),
    ("'-0'::float8", -0.0, 701),
    ("1e14::float8", 1e14, 701),
    ("1e15::float8", 1e15, 701),
    ("123456789012345.6::float8", 123456789012345.6, 701),
    ("1234567890123456::float8", 1234567890123456.0, 701),
    ("1.5e-5::float8", 1.5e-5, 701),
    ("0.0001::float8", 0.0001, 701),
    ("0.00012345::float8", 0.00012345, 701),
    ("-1.7976931348623157e308::float8", -1.7976931348623157e308, 701),
    ("5e-324::float8", 5e-324, 701),
    ("2.2250738585072014e-308::float8", 2.2250738585072014e-308, 701),
    ("1e22::float8", 1e22, 701),
    ("'Infinity'::float8", float("inf"), 701),
    ("'-Infinity'::float8", float("-inf"), 701),
    ("'NaN'::float8", float("nan"), 701),
    ("0.5::float4", 0.5, 700),
    ("0::numeric", D(0), 1700),
    ("0.00::numeric", D("0.00"), 1700),
    ("'-0.00'::numeric", D("-0.00"), 1700),
    ("100::numeric", D("1E+2"), 1700),
    ("1.50::numeric", D("1.50"), 1700),
    ("-12345.678::numeric", D("-12345.678"), 1700),
    ("0.001::numeric", D("0.001"), 1700),
    ("0.00001234::numeric", D("0.00001234"), 1700),
    ("10000::numeric", D(10000), 1700),
    ("100000000.00000001::numeric", D("100000000.00000001"), 1700),
    (f"{BIG}::numeric", D(BIG), 1700),
    ("1e30::numeric", D("1E+30"), 1700),
    ("'NaN'::numeric", D("NaN"), 1700),
    ("'Infinity'::numeric", D("Infinity"), 1700),
    ("'-Infinity'::numeric", D("-Infinity"), 1700),
    ("''::text", "", 25),
    ("'héllo ✓'::text", "héllo ✓", 25),
    ("'x'::varchar", "x", 1043),
    ("'2024-05-06'::date", datetime.date(2024, 5, 6), 1082),
    ("'0001-01-01'::date", datetime.date(1, 1, 1), 1082),
    ("'9999-12-31'::date", datetime.date(9999, 12, 31), 1082),
    ("'1999-12-31'::date", datetime.date(1999, 12, 31), 1082),
    ("'2024-05-06 07:08:09'::timestamp", datetime.datetime(2024, 5, 6, 7, 8, 9), 1114),
    ("'2024-05-06 07:08:09.5'::timestamp", datetime.datetime(2024, 5, 6, 7, 8, 9, 500000), 1114),
    ("'1970-01-01 00:00:00.000001'::timestamp", datetime.datetime(1970, 1, 1, 0, 0, 0, 1), 1114),
    ("'0001-01-01 00:00:00'::timestamp", datetime.datetime(1, 1, 1), 1114),
    ("'2024-05-06 07:08:09'::timestamp", datetime.datetime(2024, 5, 6, 9, 8, 9, 0, PLUS2), 1114),
    ("'07:08:09'::time", datetime.time(7, 8, 9), 1083),
    ("'23:59:59.999999'::time", datetime.time(23, 59, 59, 999999), 1083),
    ("'00:00:00.12'::time", datetime.time(0, 0, 0, 120000), 1083),
    ("'\\x'::bytea", b"", 17),
    ("'\\x00ff10'::bytea", b"\x00\xff\x10", 17),
    (f"'{U}'::uuid", U, 2950),
]  # fmt: skip


@pytest.fixture(scope="module")
def conn(pg: PgServer) -> Iterator[pq.PGconn]:
    info = make_conninfo(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=pg.admin_database
    )
    connection = pq.PGconn.connect(info.encode())
    assert connection.status == pq.ConnStatus.OK, connection.error_message
    _ok(connection.exec_(b"SET TimeZone = 'UTC'"), pq.ExecStatus.COMMAND_OK)
    yield connection
    connection.finish()


def _ok(result: pq.PGresult, status: pq.ExecStatus = pq.ExecStatus.TUPLES_OK) -> pq.PGresult:
    assert result.status == status, result.error_message
    return result


def _select(conn: pq.PGconn, sql: str, fmt: int) -> bytes | None:
    result = _ok(conn.exec_params(f"SELECT {sql}".encode(), [], result_format=fmt))
    return result.get_value(0, 0)


def _described(conn: pq.PGconn, sql: str) -> tuple[int, int]:
    result = _ok(conn.exec_params(f"SELECT {sql}".encode(), []))
    return result.ftype(0), result.fsize(0)


@pytest.mark.parametrize(("sql", "value", "oid"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_text_output_is_postgresqls(conn: pq.PGconn, sql: str, value: object, oid: int) -> None:
    assert encode_text(value) == _select(conn, sql, 0)


@pytest.mark.parametrize(("sql", "value", "oid"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_binary_output_is_postgresqls(conn: pq.PGconn, sql: str, value: object, oid: int) -> None:
    assert encode_binary(value, oid) == _select(conn, sql, 1)


def test_announced_types_and_sizes_are_postgresqls(conn: pq.PGconn) -> None:
    casts = {20: "int8", 21: "int2", 23: "int4", 16: "bool", 701: "float8", 700: "float4",
             1700: "numeric", 25: "text", 1043: "varchar", 1082: "date", 1114: "timestamp",
             1184: "timestamptz", 1083: "time", 17: "bytea", 2950: "uuid",
             114: "json", 1009: "text[]"}  # fmt: skip
    assert set(OIDS.values()) <= set(casts)
    for oid, name in casts.items():
        assert _described(conn, f"NULL::{name}") == (oid, type_size(oid)), name


# Parameter OID, how PostgreSQL prints the parsed value for comparison (a cast), inputs.
TEXT_PARAMS: list[tuple[int, str, list[str]]] = [
    (20, "text", ["0", "-9223372036854775808", " 42 ", "+7", "9223372036854775808", "1.0",
                  "1e3", "", "0x10", "\u0661"]),
    (23, "text", ["2147483647", "2147483648", "-2147483649", "12a"]),
    (21, "text", ["32767", "32768", "-32768"]),
    (701, "text", ["1.5", " -2.5e-3 ", "Infinity", "-inf", "NaN", "nan", "1e308", "1e309",
                   ".5", "5.", "1_0", "", "0x1p3", "1e-400"]),
    (700, "float8", ["0.1", "3.4e38", "1e39", "1e-50", "Infinity", "1e-40", "-0", "nan"]),
    (1700, "text", ["1.50", "1e2", "-0.00", "NaN", " 12.3400 ", "Infinity", "-inf", "1e-3",
                    ".5", "abc", "", "1_000"]),
    (16, "text", ["t", "true", "TRUE", "tr", "y", "yes", "on", "1", "f", "false", "n", "no",
                  "off", "0", " true ", "o", "of", "2", "", "truee"]),
    (1082, "text", ["2024-05-06", "0001-01-01", "9999-12-31", "2024-02-30", "garbage",
                    "infinity", "-Infinity"]),
    (1114, "text", ["2024-05-06 07:08:09", "2024-05-06T07:08:09.5", "2024-05-06 07:08:09.000001",
                    "2024-05-06 07:08:09+02:00", "2024-05-06", "nope"]),
    (1184, "text", ["2024-05-06 07:08:09+02:00", "2024-05-06T07:08:09.25+00:00"]),
    (1083, "text", ["07:08:09", "07:08:09.120", "23:59:59.999999", "25:00:00"]),
    (2950, "text", [str(U), str(U).upper(), "{" + str(U) + "}", U.hex, "not-a-uuid"]),
    (25, "text", ["", "héllo"]),
    (0, "text", ["anything 'at' all"]),
]  # fmt: skip

_TEXT_CASES = [(oid, cast, text) for oid, cast, texts in TEXT_PARAMS for text in texts]


def _parsed(conn: pq.PGconn, data: bytes, oid: int, fmt: int, cast: str) -> bytes | str:
    """What PostgreSQL makes of a parameter, printed as text; its SQLSTATE if it refuses."""
    result = conn.exec_params(
        f"SELECT $1::{cast}".encode() if oid else b"SELECT $1::text",
        [data], [oid], [fmt], result_format=0,
    )  # fmt: skip
    if result.status != pq.ExecStatus.TUPLES_OK:
        return str(result.error_field(pq.DiagnosticField.SQLSTATE), "ascii")
    value = result.get_value(0, 0)
    assert value is not None
    return value


def _ours(data: bytes, oid: int, fmt: int, cast: str) -> bytes | str:
    try:
        value = decode_param(data, oid, fmt)
    except ParamError as exc:
        return exc.sqlstate
    if cast == "float8" and isinstance(value, float):
        return encode_text(value) or b""
    if isinstance(value, bool):
        return b"true" if value else b"false"  # bool::text, unlike bool output
    text = encode_text(value)
    assert text is not None
    return text


@pytest.mark.parametrize(
    ("oid", "cast", "text"), _TEXT_CASES, ids=[f"{o}:{t!r}" for o, _, t in _TEXT_CASES]
)
def test_text_parameters_are_read_as_postgresql_reads_them(
    conn: pq.PGconn, oid: int, cast: str, text: str
) -> None:
    data = text.encode()
    assert _ours(data, oid, 0, cast) == _parsed(conn, data, oid, 0, cast)


BINARY_PARAMS: list[tuple[int, str, bytes]] = [
    (20, "text", struct.pack(">q", -(2**63))),
    (23, "text", struct.pack(">i", 123456)),
    (21, "text", struct.pack(">h", -2)),
    (23, "text", b"\x00\x01"),
    (701, "text", struct.pack(">d", 0.1)),
    (701, "text", struct.pack(">d", float("-inf"))),
    (700, "float8", struct.pack(">f", 0.1)),
    (16, "text", b"\x01"),
    (16, "text", b"\x00"),
    (25, "text", "héllo".encode()),
    (1043, "text", b"v"),
    (1082, "text", struct.pack(">i", 0)),
    (1082, "text", struct.pack(">i", -730119)),
    (1082, "text", struct.pack(">i", 2**31 - 1)),
    (1082, "text", struct.pack(">i", -(2**31))),
    (1114, "text", struct.pack(">q", 2**63 - 1)),
    (1114, "text", struct.pack(">q", 2**62)),
    (1114, "text", struct.pack(">q", -(2**62))),
    (1114, "text", struct.pack(">q", -211_813_488_000_000_000)),
    (1114, "text", struct.pack(">q", -211_813_488_000_000_001)),
    (1114, "text", struct.pack(">q", -63_113_904_000_000_001)),
    (1082, "text", struct.pack(">i", -2_451_545)),
    (1082, "text", struct.pack(">i", -2_451_546)),
    (1082, "text", struct.pack(">i", 2_145_031_948)),
    (1082, "text", struct.pack(">i", 2_145_031_949)),
    (1082, "text", struct.pack(">i", -730_120)),
    (1083, "text", struct.pack(">q", 86_400_000_000)),
    (1083, "text", struct.pack(">q", 86_400_000_001)),
    (1083, "text", struct.pack(">q", -1)),
    (1083, "text", struct.pack(">i", 1)),
    (1114, "text", struct.pack(">q", 768_000_000_123_456)),
    (1114, "text", struct.pack(">q", -1)),
    (1184, "text", struct.pack(">q", 0)),
    (1083, "text", struct.pack(">q", 86_399_999_999)),
    (2950, "text", U.bytes),
    (2950, "text", U.bytes[:15]),
    (17, "text", b"\x00\x01"),
    (1700, "text", struct.pack(">hhHHh", 1, -1, 0, 2, 1299)),  # dscale hides digits
    (1700, "text", struct.pack(">hhHHh", 1, -1, 0x4000, 2, 1299)),
    (1700, "text", struct.pack(">hhHHhh", 2, 0, 0, 0, 12, 5000)),
]


@pytest.mark.parametrize(
    ("oid", "cast", "data"), BINARY_PARAMS, ids=[f"{o}:{d.hex()}" for o, _, d in BINARY_PARAMS]
)
def test_binary_parameters_are_read_as_postgresql_reads_them(
    conn: pq.PGconn, oid: int, cast: str, data: bytes
) -> None:
    ours, theirs = _ours(data, oid, 1, cast), _parsed(conn, data, oid, 1, cast)
    if oid == 17:
        assert ours == "0A000"  # bytea parameters are refused: the pipeline binds no bytes
    elif isinstance(theirs, str):
        assert isinstance(ours, str), f"PostgreSQL refused ({theirs}), we read {ours!r}"
    else:
        assert ours == theirs


@pytest.mark.parametrize(("sql", "value", "oid"), [s for s in SAMPLES if s[2] == 1700])
def test_numeric_binary_round_trips_through_postgresql(
    conn: pq.PGconn, sql: str, value: Any, oid: int
) -> None:
    data = encode_binary(value, 1700)
    assert data is not None
    assert _ours(data, 1700, 1, "text") == _parsed(conn, data, 1700, 1, "text")
