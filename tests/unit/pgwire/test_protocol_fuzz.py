"""Arbitrary bytes into the wire parsers: a message or a ProtocolViolation, nothing else.

Whatever a client sends, the server must be able to answer it with an ErrorResponse or
serve it; any other exception would be a traceback on a caller's input. Each property is
bounded (``max_examples``) so the file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.frontends.pgwire import protocol as pq

KINDS = st.one_of(
    st.sampled_from(list(b"QPBDECSHXpdcfF")).map(lambda b: bytes([b])), st.binary(max_size=2)
)
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Names and SQL with NULs excluded (they terminate strings); any other code point.
TEXT = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=30)
VALUES = st.one_of(st.none(), st.binary(max_size=40))


def _z(text: str) -> bytes:
    return text.encode() + b"\0"


def encode_parse(message: pq.Parse) -> bytes:
    oids = message.param_oids
    return _z(message.name) + _z(message.sql) + struct.pack(f"!H{len(oids)}I", len(oids), *oids)


def encode_bind(message: pq.Bind) -> bytes:
    parts = [_z(message.portal), _z(message.statement)]
    parts.append(
        struct.pack(
            f"!H{len(message.param_formats)}h", len(message.param_formats), *message.param_formats
        )
    )
    parts.append(struct.pack("!H", len(message.params)))
    for value in message.params:
        parts.append(
            struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
        )
    parts.append(
        struct.pack(
            f"!H{len(message.result_formats)}h",
            len(message.result_formats),
            *message.result_formats,
        )
    )
    return b"".join(parts)


@st.composite
def binds(draw: st.DrawFn) -> pq.Bind:
    params = tuple(draw(st.lists(VALUES, max_size=6)))
    formats = st.integers(0, 1)
    shape = draw(st.sampled_from(["none", "one", "each"]))
    count = {"none": 0, "one": 1, "each": len(params)}[shape]
    param_formats = tuple(draw(st.lists(formats, min_size=count, max_size=count)))
    result_formats = tuple(draw(st.lists(formats, max_size=6)))
    return pq.Bind(draw(TEXT), draw(TEXT), param_formats, params, result_formats)


@FAST
@given(KINDS, st.binary(max_size=64))
def test_any_bytes_parse_or_violate(kind: bytes, payload: bytes) -> None:
    try:
        message = pq.parse_frontend(kind, payload)
    except pq.ProtocolViolation as exc:
        assert exc.sqlstate in {"08P01", "22021", "22023"}
    else:
        assert kind in {b"Q", b"P", b"B", b"D", b"E", b"C", b"S", b"H", b"X"}
        assert type(message).__name__


@FAST
@given(binds(), st.data())
def test_bind_round_trips_and_survives_any_cut_or_flip(
    message: pq.Bind, data: st.DataObject
) -> None:
    payload = encode_bind(message)
    assert pq.parse_frontend(b"B", payload) == message
    cut = data.draw(st.integers(0, len(payload) - 1))
    with contextlib.suppress(pq.ProtocolViolation):
        pq.parse_frontend(b"B", payload[:cut])
    at = data.draw(st.integers(0, len(payload) - 1))
    flipped = (
        payload[:at] + bytes([payload[at] ^ data.draw(st.integers(1, 255))]) + payload[at + 1 :]
    )
    with contextlib.suppress(pq.ProtocolViolation):
        pq.parse_frontend(b"B", flipped)


@FAST
@given(TEXT, TEXT, st.lists(st.integers(0, 2**32 - 1), max_size=8))
def test_parse_round_trips(name: str, sql: str, oids: list[int]) -> None:
    message = pq.Parse(name, sql, tuple(oids))
    assert pq.parse_frontend(b"P", encode_parse(message)) == message


def _read_startup(data: bytes) -> object:
    async def run() -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await pq.read_startup(reader)

    return asyncio.run(run())


STARTUP_HEADS = st.sampled_from([196608, 196610, 131072, 80877102, 80877103, 80877104, 0])


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.tuples(STARTUP_HEADS, st.binary(max_size=40)).map(
            lambda t: struct.pack("!ii", len(t[1]) + 8, t[0]) + t[1]
        ),
    )
)
def test_any_startup_bytes_read_or_violate(data: bytes) -> None:
    try:
        message = _read_startup(data)
    except (pq.ProtocolViolation, asyncio.IncompleteReadError):
        return
    assert isinstance(
        message, pq.StartupMessage | pq.SSLRequest | pq.GSSENCRequest | pq.CancelRequest
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(TEXT.filter(bool), TEXT, max_size=5))
def test_startup_parameters_round_trip(params: dict[str, str]) -> None:
    body = (
        struct.pack("!i", pq.PROTOCOL_3)
        + b"".join(_z(k) + _z(v) for k, v in params.items())
        + b"\0"
    )
    data = struct.pack("!i", len(body) + 4) + body
    if len(data) > pq.MAX_STARTUP_BYTES:
        return
    assert _read_startup(data) == pq.StartupMessage(pq.PROTOCOL_3, params)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(VALUES, max_size=5), max_size=5))
def test_data_rows_frame_back_into_their_values(rows: list[list[bytes | None]]) -> None:
    out = pq.data_rows(rows)
    assert out == b"".join(pq.data_row(r) for r in rows)
    pos, seen = 0, []
    while pos < len(out):
        kind, length = struct.unpack_from("!ci", out, pos)
        assert kind == b"D"
        body = out[pos + 5 : pos + 1 + length]
        (count,) = struct.unpack_from("!h", body)
        at, values = 2, []
        for _ in range(count):
            (size,) = struct.unpack_from("!i", body, at)
            at += 4
            values.append(None if size == -1 else body[at : at + size])
            at += max(size, 0)
        assert at == len(body)
        seen.append(values)
        pos += 1 + length
    assert seen == rows
