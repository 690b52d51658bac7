"""PostgreSQL's wire formats for the values tenantgate returns and the parameters it binds.

Result columns carry one of the stable type names of ``proxy.drivers.base.TYPE_NAMES``;
``OIDS`` names the PostgreSQL type announced for each in RowDescription. Values go out
in the text format exactly as a real PostgreSQL server prints them (so a client cannot
tell the difference), or in the binary format a client asked for in Bind.

A column's announced type and its values may disagree: SQLite is dynamically typed, so
an ``integer`` column can hold a string. The text encoders therefore dispatch on each
value's own Python type, never on the column's OID; the binary encoders convert what
they can and raise ``TypeError``/``ValueError`` for what they cannot (the caller answers with an
error rather than send bytes the client would misread).

Parameters arrive in Bind as bytes in text or binary format, typed by an OID (0 when the
client leaves the type to the server). ``decode_param`` turns them into what the
pipeline binds: int, float, str, bool or None. Types without such a value (a date, a
uuid, an exact numeric) become strings the backends cast, normalised to ISO forms so a
string comparison in SQLite sees the same text PostgreSQL would print.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import struct
import uuid
from collections.abc import Callable, Sequence

from proxy.errors import chained

__all__ = [
    "OIDS",
    "ParamError",
    "decode_param",
    "encode_binary",
    "encode_text",
    "row_encoder",
    "type_size",
]

BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT = 16, 17, 18, 19, 20, 21, 23, 25
FLOAT4, FLOAT8, UNKNOWN, BPCHAR, VARCHAR = 700, 701, 705, 1042, 1043
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID = 1082, 1083, 1114, 1184, 1700, 2950

OIDS: dict[str, int] = {
    "integer": INT8,
    "decimal": NUMERIC,
    "number": FLOAT8,
    "string": TEXT,
    "boolean": BOOL,
    "date": DATE,
    "datetime": TIMESTAMP,
    "time": TIME,
    "binary": BYTEA,
    "uuid": UUID,
    "unknown": TEXT,
    # Only the session's catalog answers have these (proxy.frontends.pgwire.catalog):
    # their values are already in PostgreSQL's text form.
    "json": 114,
    "string[]": 1009,
}
"""Stable type name of a result column -> the OID RowDescription announces."""

_SIZES: dict[int, int] = {
    BOOL: 1, CHAR: 1, NAME: 64, INT8: 8, INT2: 2, INT4: 4, FLOAT4: 4, FLOAT8: 8,
    DATE: 4, TIME: 8, TIMESTAMP: 8, TIMESTAMPTZ: 8, UUID: 16, UNKNOWN: -2,
}  # fmt: skip

_TEXT_LIKE = frozenset({0, TEXT, VARCHAR, BPCHAR, NAME, CHAR, UNKNOWN})
"""Parameter OIDs whose value is the text itself (0: the client left the type open)."""

_EPOCH_DATE = datetime.date(2000, 1, 1)
_EPOCH = datetime.datetime(2000, 1, 1)
_EPOCH_ORDINAL = _EPOCH_DATE.toordinal()
_INT8 = struct.Struct(">q")
_INT4 = struct.Struct(">i")
_INT2 = struct.Struct(">h")
_FLOAT8 = struct.Struct(">d")
_FLOAT4 = struct.Struct(">f")
_INT4_MAX, _INT8_MAX = 2**31 - 1, 2**63 - 1  # a date's and a timestamp's infinity
_DAY_MICROS = 86_400_000_000
# PostgreSQL's ranges (4714-11-24 BC to 5874897 AD, timestamps to 294276 AD), in days
# and microseconds since 2000-01-01.
_MIN_DAY, _END_DAY = -2_451_545, 2_145_031_949
_MIN_MICROS, _END_MICROS = -211_813_488_000_000_000, 9_223_371_331_200_000_000
_NUMERIC_HEAD = struct.Struct(">hhHH")

_NUMERIC_POS, _NUMERIC_NEG, _NUMERIC_NAN = 0x0000, 0x4000, 0xC000
_NUMERIC_PINF, _NUMERIC_NINF = 0xD000, 0xF000
_INFINITY_DSCALE = 0x20


def type_size(oid: int) -> int:
    """RowDescription's ``typlen`` for ``oid``: bytes of a fixed-size type, -1 otherwise."""
    return _SIZES.get(oid, -1)


class ParamError(Exception):
    """A Bind parameter that cannot be bound; ``sqlstate`` is what the server answers.

    22P02 malformed text, 22P03 malformed binary, 22003 out of range, 22021 bytes that
    are not UTF-8, 0A000 a type tenantgate does not bind. The message names the
    parameter's type, never its value (a parameter may be a secret).
    """

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


# -- text output ----------------------------------------------------------------------


def _float_text(value: float) -> str:
    """float8 as PostgreSQL 12+ prints it: the shortest digits that read back exactly,
    in plain notation for decimal exponents -4..14 and ``1e+15`` style beyond."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    # repr gives the shortest round-tripping digits; only the layout differs from PG's.
    sign, digits, exponent = decimal.Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + int(exponent)  # position of the decimal point in ``digits``
    magnitude = point - 1
    if -4 <= magnitude < 15:
        if point <= 0:
            body = "0." + "0" * -point + text
        elif point >= len(text):
            body = text + "0" * (point - len(text))
        else:
            body = text[:point] + "." + text[point:]
    else:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        body = f"{mantissa}e{'-' if magnitude < 0 else '+'}{abs(magnitude):02d}"
    return "-" + body if sign else body


def _decimal_text(value: decimal.Decimal) -> str:
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    text = format(value, "f")  # never an exponent: Decimal('1E+2') -> '100'
    return text[1:] if value.is_zero() and text.startswith("-") else text


def _fraction(micro: int) -> str:
    return "" if not micro else ("." + f"{micro:06d}".rstrip("0"))


def _datetime_text(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        # The column is announced as timestamp (without time zone): its UTC wall time.
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}{_fraction(value.microsecond)}"
    )


def _time_text(value: datetime.time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}{_fraction(value.microsecond)}"


def _bytes_text(value: bytes | bytearray | memoryview) -> str:
    return "\\x" + bytes(value).hex()


_TEXT: dict[type, Callable[[object], bytes]] = {
    str: lambda v: v.encode(),  # type: ignore[attr-defined]
    int: lambda v: str(v).encode(),
    bool: lambda v: b"t" if v else b"f",
    float: lambda v: _float_text(v).encode(),  # type: ignore[arg-type]
    decimal.Decimal: lambda v: _decimal_text(v).encode(),  # type: ignore[arg-type]
    datetime.datetime: lambda v: _datetime_text(v).encode(),  # type: ignore[arg-type]
    datetime.date: lambda v: v.isoformat().encode(),  # type: ignore[attr-defined]
    datetime.time: lambda v: _time_text(v).encode(),  # type: ignore[arg-type]
    bytes: lambda v: _bytes_text(v).encode(),  # type: ignore[arg-type]
    bytearray: lambda v: _bytes_text(v).encode(),  # type: ignore[arg-type]
    memoryview: lambda v: _bytes_text(v).encode(),  # type: ignore[arg-type]
    uuid.UUID: lambda v: str(v).encode(),
}
"""Text encoder by a value's exact type (subclasses go through ``_text_slow``)."""


def _text_slow(value: object) -> bytes:
    for cls in type(value).__mro__:
        encoder = _TEXT.get(cls)
        if encoder is not None:
            return encoder(value)
    return str(value).encode()


def encode_text(value: object) -> bytes | None:
    """``value`` in PostgreSQL's text output format; ``None`` is SQL NULL."""
    if value is None:
        return None
    encoder = _TEXT.get(type(value))
    return encoder(value) if encoder is not None else _text_slow(value)


# -- binary output --------------------------------------------------------------------


def _as_int(value: object) -> int:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, decimal.Decimal | float) and value == int(value):
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"a {type(value).__name__} value has no integer binary form")


def _as_float(value: object) -> float:
    if isinstance(value, int | float | decimal.Decimal | str):
        return float(value)
    raise TypeError(f"a {type(value).__name__} value has no float binary form")


def _as_decimal(value: object) -> decimal.Decimal:
    if isinstance(value, bool):
        raise TypeError("a bool value has no numeric binary form")
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, int | str):
        return decimal.Decimal(value)
    if isinstance(value, float):
        return decimal.Decimal(repr(value))  # the digits PostgreSQL would cast from
    raise TypeError(f"a {type(value).__name__} value has no numeric binary form")


def _numeric_binary(value: decimal.Decimal) -> bytes:
    """PostgreSQL's numeric_send: base-10000 digits, weight of the first, sign, scale."""
    if value.is_nan():
        return _NUMERIC_HEAD.pack(0, 0, _NUMERIC_NAN, 0)
    if value.is_infinite():
        # PostgreSQL sends dscale 32 with an infinity: its header's bits, read as a scale.
        sign = _NUMERIC_PINF if value > 0 else _NUMERIC_NINF
        return _NUMERIC_HEAD.pack(0, 0, sign, _INFINITY_DSCALE)
    negative, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    dscale = max(0, -exponent)
    digits = "".join(map(str, digit_tuple)) + "0" * max(0, exponent)
    integer, fraction = (digits[:-dscale], digits[-dscale:]) if dscale else (digits, "")
    if len(fraction) < dscale:  # fewer digits than the scale: 0.001 is digits '1'
        fraction = fraction.rjust(dscale, "0")
    integer = integer.lstrip("0")
    integer = integer.rjust(-(-len(integer) // 4) * 4, "0")
    fraction = fraction.ljust(-(-len(fraction) // 4) * 4, "0")
    groups = [int(integer[i : i + 4]) for i in range(0, len(integer), 4)]
    groups += [int(fraction[i : i + 4]) for i in range(0, len(fraction), 4)]
    weight = len(integer) // 4 - 1
    while groups and groups[0] == 0:  # PostgreSQL strips leading and trailing zero digits
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        return _NUMERIC_HEAD.pack(0, 0, _NUMERIC_POS, dscale)
    sign = _NUMERIC_NEG if negative else _NUMERIC_POS
    head = _NUMERIC_HEAD.pack(len(groups), weight, sign, dscale)
    return head + struct.pack(f">{len(groups)}h", *groups)


def _as_date(value: object) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        return datetime.date.fromisoformat(value.strip())
    raise TypeError(f"a {type(value).__name__} value has no date binary form")


def _as_datetime(value: object) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = datetime.datetime.fromisoformat(value.strip())
    else:
        raise TypeError(f"a {type(value).__name__} value has no timestamp binary form")
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return moment


def _micros(delta: datetime.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _timestamp_binary(value: object) -> bytes:
    return _INT8.pack(_micros(_as_datetime(value) - _EPOCH))


def _time_binary(value: object) -> bytes:
    if isinstance(value, str):
        value = datetime.time.fromisoformat(value.strip())
    if not isinstance(value, datetime.time):
        raise TypeError(f"a {type(value).__name__} value has no time binary form")
    seconds = value.hour * 3600 + value.minute * 60 + value.second
    return _INT8.pack(seconds * 1_000_000 + value.microsecond)


def _bytea_binary(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"a {type(value).__name__} value has no bytea binary form")


def _uuid_binary(value: object) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, str):
        return uuid.UUID(value).bytes
    raise TypeError(f"a {type(value).__name__} value has no uuid binary form")


def _text_binary(value: object) -> bytes:
    encoded = encode_text(value)
    assert encoded is not None
    return encoded


_BINARY: dict[int, Callable[[object], bytes]] = {
    INT8: lambda v: _INT8.pack(_as_int(v)),
    INT4: lambda v: _INT4.pack(_as_int(v)),
    INT2: lambda v: _INT2.pack(_as_int(v)),
    FLOAT8: lambda v: _FLOAT8.pack(_as_float(v)),
    FLOAT4: lambda v: _FLOAT4.pack(_as_float(v)),
    BOOL: lambda v: b"\x01" if v else b"\x00",
    BYTEA: _bytea_binary,
    DATE: lambda v: _INT4.pack(_as_date(v).toordinal() - _EPOCH_ORDINAL),
    TIMESTAMP: _timestamp_binary,
    TIME: _time_binary,
    UUID: _uuid_binary,
    NUMERIC: lambda v: _numeric_binary(_as_decimal(v)),
}
"""Binary encoder by announced OID; the text-like types send their text output."""


TEXT_ARRAY = OIDS["string[]"]
_ARRAY_ELEMENT = re.compile(r'"((?:[^"\\]|\\.)*)"|([^,]+)', re.DOTALL)


def _text_array_binary(value: object) -> bytes:
    """A one-dimensional text[] in the binary form: from a list, or from PostgreSQL's
    text form (``{a,"b c",NULL}``, how the catalog's arrays come)."""
    if isinstance(value, str):
        inner = value.strip()
        if not (inner.startswith("{") and inner.endswith("}")):
            raise ValueError("a text[] value is not an array")
        items: list[str | None] = []
        for quoted, bare in _ARRAY_ELEMENT.findall(inner[1:-1]):
            if bare:
                items.append(None if bare.strip().upper() == "NULL" else bare.strip())
            else:
                items.append(re.sub(r"\\(.)", r"\1", quoted))
    elif isinstance(value, list | tuple):
        items = [None if v is None else str(v) for v in value]
    else:
        raise TypeError(f"{type(value).__name__} is not a text[] value")
    if not items:
        return _ARRAY_HEAD.pack(0, 0, TEXT)
    parts = [
        _ARRAY_HEAD.pack(1, int(None in items), TEXT),
        _INT4.pack(len(items)),
        _INT4.pack(1),
    ]
    for item in items:
        if item is None:
            parts.append(_INT4.pack(-1))
        else:
            encoded = item.encode()
            parts += (_INT4.pack(len(encoded)), encoded)
    return b"".join(parts)


_ARRAY_HEAD = struct.Struct("!iiI")
_BINARY[TEXT_ARRAY] = _text_array_binary


def _binary_encoder(oid: int) -> Callable[[object], bytes]:
    encoder = _BINARY.get(oid)
    return _text_binary if encoder is None else _checked(encoder, oid)


def encode_binary(value: object, oid: int) -> bytes | None:
    """``value`` in the binary format of type ``oid``; ``None`` is SQL NULL.

    Raises ``TypeError`` when the value has no such form, ``ValueError`` when it does not
    fit: text that is no number, an integer past the type's range.
    """
    if value is None:
        return None
    return _binary_encoder(oid)(value)


def _checked(encoder: Callable[[object], bytes], oid: int) -> Callable[[object], bytes]:
    """``encoder`` raising ``ValueError`` where ``struct`` raises its own error (a value
    past the type's range)."""

    def encode(value: object) -> bytes:
        try:
            return encoder(value)
        except struct.error as exc:
            raise chained(
                ValueError(f"value out of range for the {_type_name(oid)} binary form"), exc
            )

    return encode


def row_encoder(
    type_oids: Sequence[int], formats: Sequence[int]
) -> Callable[[Sequence[object]], list[bytes | None]]:
    """An encoder of whole rows, its per-column choices made once.

    ``formats`` is Bind's list of result formats: empty means all text, one entry
    applies to every column, otherwise one per column (a length mismatch is the
    client's protocol error: ``ValueError``).
    """
    count = len(type_oids)
    if len(formats) == 1:
        formats = list(formats) * count
    elif formats and len(formats) != count:
        raise ValueError(f"{len(formats)} result formats for {count} columns")
    if any(f not in (0, 1) for f in formats):
        raise ValueError("a result format is neither 0 (text) nor 1 (binary)")
    if not any(formats):
        text = _TEXT
        slow = _text_slow

        def text_row(row: Sequence[object]) -> list[bytes | None]:
            # The hot path (pgbench, most drivers): one dict lookup per value.
            return [None if v is None else (text.get(type(v)) or slow)(v) for v in row]

        return text_row

    encoders: list[Callable[[object], bytes]] = [
        _binary_encoder(oid) if fmt else _text_binary
        for oid, fmt in zip(type_oids, formats, strict=True)
    ]

    def mixed_row(row: Sequence[object]) -> list[bytes | None]:
        return [None if v is None else enc(v) for enc, v in zip(encoders, row, strict=True)]

    return mixed_row


# -- parameters -----------------------------------------------------------------------

_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_FLOAT_TEXT = re.compile(
    r"\s*[+-]?(?:(?P<mantissa>[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)\s*",
    re.ASCII | re.IGNORECASE,
)
_HEX_FLOAT_TEXT = re.compile(
    r"\s*[+-]?0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?\s*",
    re.ASCII | re.IGNORECASE,
)
"""C's strtod, which PostgreSQL's float input calls, also reads hexadecimal floats."""
_DATE_SHAPE = re.compile(r"\s*[0-9]+-[0-9]+-[0-9]+|\s*[0-9]+:[0-9]+", re.ASCII)
"""A date or time that has the shape but not the values: 22008, not 22007."""
_INFINITIES = {"infinity": "infinity", "+infinity": "infinity", "-infinity": "-infinity"}
_NUMERIC_TEXT = re.compile(
    r"\s*(?:[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|infinity|inf)|nan)\s*",
    re.ASCII | re.IGNORECASE,
)
_INT_RANGES = {INT2: 1 << 15, INT4: 1 << 31, INT8: 1 << 63}
_TYPE_NAMES = {
    BOOL: "boolean", BYTEA: "bytea", INT8: "bigint", INT2: "smallint", INT4: "integer",
    FLOAT4: "real", FLOAT8: "double precision", DATE: "date", TIME: "time",
    TIMESTAMP: "timestamp", TIMESTAMPTZ: "timestamp with time zone", NUMERIC: "numeric",
    UUID: "uuid", TEXT: "text", VARCHAR: "character varying",
}  # fmt: skip


def _type_name(oid: int) -> str:
    return _TYPE_NAMES.get(oid, f"type {oid}")


def _malformed(oid: int, fmt: int) -> ParamError:
    form = "binary" if fmt else "text"
    return ParamError(
        "22P03" if fmt else "22P02", f"invalid {form} value for a {_type_name(oid)} parameter"
    )


def _out_of_range(oid: int) -> ParamError:
    return ParamError("22003", f"value out of range for a {_type_name(oid)} parameter")


def _bool_text(text: str) -> bool | None:
    """PostgreSQL's boolin: case-insensitive prefixes of true/false/yes/no, on/off, 1/0."""
    word = text.strip().lower()
    if not word:
        return None
    for full, result, least in (
        ("true", True, 1), ("false", False, 1), ("yes", True, 1), ("no", False, 1),
        ("on", True, 2), ("off", False, 2), ("1", True, 1), ("0", False, 1),
    ):  # fmt: skip
        if least <= len(word) <= len(full) and full.startswith(word):
            return result
    return None


def _float_param(text: str, oid: int) -> float:
    """float4in/float8in: overflow and underflow to zero are errors, not infinity or 0."""
    match = _FLOAT_TEXT.fullmatch(text)
    if match is not None:
        real = float(text)
        mantissa = match.group("mantissa")
        nonzero = mantissa is not None and mantissa.strip("0.") != ""
    elif _HEX_FLOAT_TEXT.fullmatch(text):
        real = float.fromhex(text.strip())
        nonzero = real != 0  # fromhex raises OverflowError rather than round to inf
    else:
        raise _malformed(oid, 0)
    if math.isnan(real):
        return real
    finite = match is None or match.group("mantissa") is not None
    if finite and (math.isinf(real) or (nonzero and real == 0)):
        raise _out_of_range(oid)
    if oid == FLOAT4 and finite:
        # Single precision, as the parameter would hold it (rounded via double: the
        # last bit may differ from strtof's in rare double-rounding cases).
        try:
            real = _FLOAT4.unpack(_FLOAT4.pack(real))[0]
        except OverflowError:
            raise chained(_out_of_range(oid), None)
        if nonzero and real == 0:
            raise _out_of_range(oid)
    return real


def _timestamptz_text(moment: datetime.datetime) -> str:
    """In UTC when an offset is given; without one, the backend's session zone applies."""
    if moment.tzinfo is None:
        return _datetime_text(moment)
    return _datetime_text(moment) + "+00"


def _decode_text(text: str, oid: int) -> object:
    if oid in _TEXT_LIKE:
        return text
    if oid in _INT_RANGES:
        if not _INT_TEXT.fullmatch(text):
            raise _malformed(oid, 0)
        number = int(text)
        limit = _INT_RANGES[oid]
        if not -limit <= number < limit:
            raise _out_of_range(oid)
        return number
    if oid in (FLOAT8, FLOAT4):
        return _float_param(text, oid)
    if oid == NUMERIC:
        if not _NUMERIC_TEXT.fullmatch(text):
            raise _malformed(oid, 0)
        return _decimal_text(decimal.Decimal(text.strip()))
    if oid == BOOL:
        truth = _bool_text(text)
        if truth is None:
            raise _malformed(oid, 0)
        return truth
    if oid in (DATE, TIMESTAMP, TIMESTAMPTZ):
        infinity = _INFINITIES.get(text.strip().lower())
        if infinity is not None:
            return infinity
    try:
        if oid == DATE:
            return datetime.date.fromisoformat(text.strip()).isoformat()
        if oid == TIMESTAMP:
            # PostgreSQL ignores an offset given to a timestamp without time zone.
            moment = datetime.datetime.fromisoformat(text.strip())
            return _datetime_text(moment.replace(tzinfo=None))
        if oid == TIMESTAMPTZ:
            return _timestamptz_text(datetime.datetime.fromisoformat(text.strip()))
        if oid == TIME:
            return _time_text(datetime.time.fromisoformat(text.strip()))
        if oid == UUID:
            return str(uuid.UUID(text.strip()))
    except ValueError:
        if oid in (DATE, TIMESTAMP, TIMESTAMPTZ, TIME):
            state = "22008" if _DATE_SHAPE.match(text) else "22007"
            raise chained(
                ParamError(state, f"invalid value for a {_type_name(oid)} parameter"), None
            )
        raise chained(_malformed(oid, 0), None)
    raise ParamError("0A000", f"parameters of {_type_name(oid)} are not supported")


def _numeric_from_binary(data: bytes) -> str:
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(data)
    if len(data) != 8 + 2 * ndigits:
        raise _malformed(NUMERIC, 1)
    if sign == _NUMERIC_NAN:
        return "NaN"
    if sign in (_NUMERIC_PINF, _NUMERIC_NINF):
        return "Infinity" if sign == _NUMERIC_PINF else "-Infinity"
    if sign not in (_NUMERIC_POS, _NUMERIC_NEG) or dscale & 0xC000:
        raise _malformed(NUMERIC, 1)
    groups = struct.unpack_from(f">{ndigits}h", data, 8)
    if any(not 0 <= g < 10_000 for g in groups):
        raise _malformed(NUMERIC, 1)
    digits = "".join(f"{g:04d}" for g in groups) or "0"
    exponent = (weight + 1 - ndigits) * 4
    value = decimal.Decimal(f"{'-' if sign == _NUMERIC_NEG else ''}{digits}E{exponent}")
    with decimal.localcontext() as context:
        context.prec = max(28, len(digits) + abs(exponent) + dscale + 1)
        # numeric_recv truncates digits that dscale hides; it does not round them.
        value = value.quantize(decimal.Decimal(1).scaleb(-dscale), decimal.ROUND_DOWN)
    return _decimal_text(value)


def _datetime_out_of_range(oid: int) -> ParamError:
    return ParamError("22008", f"value out of range for a {_type_name(oid)} parameter")


def _clock_text(micros: int) -> str:
    seconds, micro = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}{_fraction(micro)}"


def _day_text(days: int, clock: str | None = None) -> str:
    """Day ``days`` after 2000-01-01 as PostgreSQL prints it, past Python's years 1..9999
    too: the proleptic Gregorian calendar (H. Hinnant's civil_from_days), ``BC`` years."""
    z = days + 10_957 + 719_468  # days since 0000-03-01
    era, doe = divmod(z, 146_097)
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    text = f"{year if year > 0 else 1 - year:04d}-{month:02d}-{day:02d}"
    if clock is not None:
        text += " " + clock
    return text if year > 0 else text + " BC"


def _decode_binary(data: bytes, oid: int) -> object:
    if oid == 0:
        raise ParamError("0A000", "a binary parameter needs a declared type")
    if oid in _TEXT_LIKE:
        return data.decode()  # UnicodeDecodeError: the caller's 22021
    size = _SIZES.get(oid)
    if size is not None and size > 0 and len(data) != size:
        raise _malformed(oid, 1)
    if oid == INT8:
        return _INT8.unpack(data)[0]
    if oid == INT4:
        return _INT4.unpack(data)[0]
    if oid == INT2:
        return _INT2.unpack(data)[0]
    if oid == FLOAT8:
        return _FLOAT8.unpack(data)[0]
    if oid == FLOAT4:
        return _FLOAT4.unpack(data)[0]
    if oid == BOOL:
        return data != b"\x00"
    if oid == NUMERIC:
        if len(data) < 8:
            raise _malformed(oid, 1)
        return _numeric_from_binary(data)
    if oid == UUID:
        return str(uuid.UUID(bytes=data))
    if oid == DATE:
        days = _INT4.unpack(data)[0]
        if days in (_INT4_MAX, -_INT4_MAX - 1):
            return "infinity" if days > 0 else "-infinity"
        if not _MIN_DAY <= days < _END_DAY:
            raise _datetime_out_of_range(oid)
        return _day_text(days)
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        micros = _INT8.unpack(data)[0]
        if micros in (_INT8_MAX, -_INT8_MAX - 1):
            return "infinity" if micros > 0 else "-infinity"
        if not _MIN_MICROS <= micros < _END_MICROS:
            raise _datetime_out_of_range(oid)
        days, micros = divmod(micros, _DAY_MICROS)
        return _day_text(days, _clock_text(micros)) + ("+00" if oid == TIMESTAMPTZ else "")
    if oid == TIME:
        micros = _INT8.unpack(data)[0]
        if not 0 <= micros <= _DAY_MICROS:
            raise _datetime_out_of_range(oid)
        return _clock_text(micros)
    raise ParamError("0A000", f"binary parameters of {_type_name(oid)} are not supported")


def decode_param(data: bytes | None, oid: int, fmt: int) -> object:
    """A Bind parameter as the pipeline binds it: int, float, str, bool or None.

    ``oid`` is the parameter's type (0: unspecified, read as text), ``fmt`` its format
    code (0 text, 1 binary). Raises ``ParamError`` for what cannot be bound.
    """
    if data is None:
        return None
    if fmt not in (0, 1):
        raise ParamError("08P01", f"unknown parameter format code {fmt}")
    raw = bytes(data)
    try:
        value = _decode_binary(raw, oid) if fmt else _decode_text(raw.decode(), oid)
    except UnicodeDecodeError:
        raise chained(
            ParamError("22021", f"a {_type_name(oid)} parameter is not valid UTF-8"), None
        )
    if type(value) is str and "\x00" in value:
        # PostgreSQL's text types cannot hold NUL; SQLite's could, so refuse it here.
        raise ParamError("22021", f"a {_type_name(oid)} parameter contains a NUL character")
    return value
