"""The wire codec against byte strings built by hand from the protocol's message layouts
(https://www.postgresql.org/docs/current/protocol-message-formats.html)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from proxy.frontends.pgwire import protocol as pq


def i16(n: int) -> bytes:
    return struct.pack("!h", n)


def i32(n: int) -> bytes:
    return struct.pack("!i", n)


def msg(kind: bytes, payload: bytes) -> bytes:
    return kind + i32(len(payload) + 4) + payload


def fed(data: bytes, read: Callable[[asyncio.StreamReader], Awaitable[Any]]) -> Any:
    """``read`` on a real StreamReader holding ``data`` and then EOF."""

    async def run() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read(reader)

    return asyncio.run(run())


def read_message(data: bytes, max_bytes: int = 1 << 20) -> tuple[bytes, bytes]:
    message: tuple[bytes, bytes] = fed(data, lambda r: pq.Messages(r, max_bytes=max_bytes).next())
    return message


def violation(sqlstate: str = "08P01") -> Any:
    return pytest.raises(pq.ProtocolViolation, check=lambda e: e.sqlstate == sqlstate)


# -- startup ---------------------------------------------------------------------------------


def startup(body: bytes) -> bytes:
    return i32(len(body) + 4) + body


def test_startup_message_with_parameters() -> None:
    body = i32(196608) + b"user\0app\0database\0beta.example\0options\0-c a=b\0\0"
    message = fed(startup(body), pq.read_startup)
    assert message == pq.StartupMessage(
        pq.PROTOCOL_3, {"user": "app", "database": "beta.example", "options": "-c a=b"}
    )


def test_startup_minor_version_is_returned_for_the_caller_to_judge() -> None:
    message = fed(startup(i32(196610) + b"user\0app\0\0"), pq.read_startup)
    assert message == pq.StartupMessage(196610, {"user": "app"})


def test_startup_without_parameters_and_with_utf8_values() -> None:
    assert fed(startup(i32(196608) + b"\0"), pq.read_startup) == pq.StartupMessage(196608, {})
    body = i32(196608) + "user\0zoë\0\0".encode()
    assert fed(startup(body), pq.read_startup).params == {"user": "zoë"}


def test_ssl_gssenc_and_cancel_requests() -> None:
    assert fed(startup(i32(80877103)), pq.read_startup) == pq.SSLRequest()
    assert fed(startup(i32(80877104)), pq.read_startup) == pq.GSSENCRequest()
    cancel = startup(i32(80877102) + i32(4242) + struct.pack("!I", 0xDEADBEEF))
    assert fed(cancel, pq.read_startup) == pq.CancelRequest(4242, 0xDEADBEEF)


def test_cancel_request_reads_back_what_backend_key_data_sent() -> None:
    key = pq.backend_key_data(7, 2**31 - 1)
    assert key == b"K" + i32(12) + i32(7) + i32(2**31 - 1)
    cancel = startup(i32(80877102) + key[5:])
    assert fed(cancel, pq.read_startup) == pq.CancelRequest(7, 2**31 - 1)


def test_startup_packets_in_sequence_on_one_stream() -> None:
    async def two(reader: asyncio.StreamReader) -> list[object]:
        return [await pq.read_startup(reader), await pq.read_startup(reader)]

    data = startup(i32(80877103)) + startup(i32(196608) + b"user\0u\0\0")
    assert fed(data, two) == [pq.SSLRequest(), pq.StartupMessage(196608, {"user": "u"})]


@pytest.mark.parametrize(
    ("data", "sqlstate"),
    [
        (i32(7) + b"\0\0\0", "08P01"),  # too short for a version
        (i32(3), "08P01"),  # shorter than its own length field
        (i32(-1), "08P01"),
        (i32(10_001) + b"\0" * 10, "08P01"),  # over MAX_STARTUP_BYTES: refused before reading
        (startup(i32(131072) + b"x" * 64), "0A000"),  # protocol 2.0
        (startup(i32(80877105)), "0A000"),  # an unknown 1234.x code
        (startup(i32(80877103) + b"\0"), "08P01"),  # SSLRequest with a body
        (startup(i32(80877104) + i32(0)), "08P01"),
        (startup(i32(80877102) + i32(1)), "08P01"),  # cancel request without its secret
        (startup(i32(80877102) + i32(1) + b"\0" * 32), "08P01"),  # 3.2's long keys
        (startup(i32(196608)), "08P01"),  # no terminator
        (startup(i32(196608) + b"user\0app\0"), "08P01"),  # no terminator after a pair
        (startup(i32(196608) + b"user\0app"), "08P01"),  # value without its NUL
        (startup(i32(196608) + b"user\0"), "08P01"),  # key without a value
        (startup(i32(196608) + b"user\0app\0\0x"), "08P01"),  # bytes after the terminator
        (startup(i32(196608) + b"user\0a\0user\0b\0\0"), "08P01"),  # duplicate key
        (startup(i32(196608) + b"user\0\xff\xfe\0\0"), "22021"),  # not UTF-8
    ],
)
def test_startup_violations(data: bytes, sqlstate: str) -> None:
    with violation(sqlstate):
        fed(data, pq.read_startup)


def test_oversized_startup_is_refused_before_its_body_arrives() -> None:
    async def read(reader: asyncio.StreamReader) -> object:
        return await pq.read_startup(reader)

    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(i32(1 << 30))  # no body and no EOF: reading it would hang
        await asyncio.wait_for(read(reader), 5)

    with violation():
        asyncio.run(run())


@pytest.mark.parametrize("data", [b"", i32(8)[:2], i32(16) + i32(80877102)])
def test_startup_cut_short_is_the_client_leaving(data: bytes) -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        fed(data, pq.read_startup)


# -- framing ---------------------------------------------------------------------------------


def test_read_message_frames_consecutive_messages() -> None:
    async def three(reader: asyncio.StreamReader) -> list[tuple[bytes, bytes]]:
        messages = pq.Messages(reader, max_bytes=100)
        first = await messages.next()  # one read takes all three in
        return [first, messages.buffered() or (b"", b""), await messages.next()]

    data = msg(b"Q", b"SELECT 1\0") + msg(b"S", b"") + msg(b"X", b"")
    assert fed(data, three) == [(b"Q", b"SELECT 1\0"), (b"S", b""), (b"X", b"")]


def test_a_message_split_over_reads_is_put_together() -> None:
    data = msg(b"Q", b"x" * 100_000 + b"\0") + msg(b"S", b"")

    async def run() -> list[tuple[bytes, bytes]]:
        reader = asyncio.StreamReader()
        messages = pq.Messages(reader, max_bytes=1 << 20)

        async def feed() -> None:
            for i in range(0, len(data), 7_000):  # in pieces, as a socket may give them
                reader.feed_data(data[i : i + 7_000])
                await asyncio.sleep(0)
            reader.feed_eof()

        feeding = asyncio.create_task(feed())
        got = [await messages.next(), await messages.next()]
        await feeding
        with pytest.raises(asyncio.IncompleteReadError):
            await messages.next()
        return got

    assert asyncio.run(run()) == [(b"Q", b"x" * 100_000 + b"\0"), (b"S", b"")]


def test_read_message_length_bounds() -> None:
    assert read_message(msg(b"Q", b"x" * 96), max_bytes=100) == (b"Q", b"x" * 96)
    with violation("54000"):
        read_message(msg(b"Q", b"x" * 97), max_bytes=100)
    for length in (3, 0, -1, -(2**31)):
        with violation():
            read_message(b"Q" + i32(length))


def test_oversized_message_is_refused_before_its_body_arrives() -> None:
    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"Q" + i32(2**31 - 1))  # no body, no EOF
        await asyncio.wait_for(pq.Messages(reader, max_bytes=1 << 20).next(), 5)

    with violation("54000") as caught:
        asyncio.run(run())
    assert "'Q' (Query)" in caught.value.message


@pytest.mark.parametrize("data", [b"", b"Q", b"Q\0\0\0", msg(b"Q", b"SELECT 1\0")[:-1]])
def test_truncated_frame_is_the_client_leaving(data: bytes) -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        read_message(data)


# -- frontend messages -------------------------------------------------------------------------


def test_query() -> None:
    assert pq.parse_frontend(b"Q", b"SELECT 'x'\0") == pq.Query("SELECT 'x'")
    assert pq.parse_frontend(b"Q", b"\0") == pq.Query("")
    assert pq.parse_frontend(b"Q", "SELECT 'é'\0".encode()) == pq.Query("SELECT 'é'")


def test_parse() -> None:
    payload = b"s1\0SELECT $1, $2\0" + i16(2) + i32(23) + struct.pack("!I", 4294967295)
    assert pq.parse_frontend(b"P", payload) == pq.Parse("s1", "SELECT $1, $2", (23, 4294967295))
    assert pq.parse_frontend(b"P", b"\0SELECT 1\0" + i16(0)) == pq.Parse("", "SELECT 1", ())


def test_bind_with_text_binary_and_null_parameters() -> None:
    payload = (
        b"p1\0s1\0"
        + i16(3) + i16(0) + i16(1) + i16(0)
        + i16(3) + i32(2) + b"42" + i32(4) + i32(7) + i32(-1)
        + i16(1) + i16(1)
    )  # fmt: skip
    assert pq.parse_frontend(b"B", payload) == pq.Bind(
        "p1", "s1", (0, 1, 0), (b"42", i32(7), None), (1,)
    )


def test_bind_format_counts_zero_and_one() -> None:
    payload = b"\0\0" + i16(0) + i16(2) + i32(1) + b"1" + i32(0) + i16(0)
    assert pq.parse_frontend(b"B", payload) == pq.Bind("", "", (), (b"1", b""), ())
    payload = b"\0\0" + i16(1) + i16(1) + i16(2) + i32(-1) + i32(-1) + i16(2) + i16(0) + i16(1)
    assert pq.parse_frontend(b"B", payload) == pq.Bind("", "", (1,), (None, None), (0, 1))


def test_describe_execute_close() -> None:
    assert pq.parse_frontend(b"D", b"S" + b"s1\0") == pq.Describe("S", "s1")
    assert pq.parse_frontend(b"D", b"P\0") == pq.Describe("P", "")
    assert pq.parse_frontend(b"E", b"\0" + i32(0)) == pq.Execute("", 0)
    assert pq.parse_frontend(b"E", b"c1\0" + i32(100)) == pq.Execute("c1", 100)
    assert pq.parse_frontend(b"E", b"\0" + i32(-5)) == pq.Execute("", 0)  # <= 0: all rows
    assert pq.parse_frontend(b"C", b"Ss1\0") == pq.Close("S", "s1")
    assert pq.parse_frontend(b"C", b"P\0") == pq.Close("P", "")


def test_sync_flush_terminate() -> None:
    assert pq.parse_frontend(b"S", b"") == pq.Sync()
    assert pq.parse_frontend(b"H", b"") == pq.Flush()
    assert pq.parse_frontend(b"X", b"") == pq.Terminate()


@pytest.mark.parametrize(
    ("kind", "payload", "sqlstate"),
    [
        # strings without their NUL, bytes after the last field
        (b"Q", b"", "08P01"),
        (b"Q", b"SELECT 1", "08P01"),
        (b"Q", b"SELECT 1\0\0", "08P01"),
        (b"Q", b"SELECT 1\0x", "08P01"),
        (b"Q", b"SELECT '\xc3\x28'\0", "22021"),
        (b"P", b"s1\0SELECT 1\0", "08P01"),  # no count
        (b"P", b"s1\0SELECT 1\0\0", "08P01"),  # half a count
        (b"P", b"s1\0SELECT 1", "08P01"),
        (b"P", b"s1\0SELECT 1\0" + i16(2) + i32(23), "08P01"),  # fewer OIDs than counted
        (b"P", b"s1\0SELECT 1\0" + i16(1) + i32(23) + b"\0", "08P01"),  # trailing
        (b"P", b"\xff\0SELECT 1\0" + i16(0), "22021"),
        (b"B", b"", "08P01"),
        (b"B", b"\0", "08P01"),
        (b"B", b"\0\0", "08P01"),
        (b"B", b"\0\0" + i16(0) + i16(1), "08P01"),  # a parameter missing
        (b"B", b"\0\0" + i16(0) + i16(1) + i32(5) + b"abc", "08P01"),  # value cut short
        (b"B", b"\0\0" + i16(0) + i16(1) + i32(-2) + i16(0), "08P01"),  # length below -1
        (b"B", b"\0\0" + i16(0) + i16(0), "08P01"),  # no result-format count
        (b"B", b"\0\0" + i16(0) + i16(0) + i16(1), "08P01"),  # result format missing
        (b"B", b"\0\0" + i16(0) + i16(0) + i16(0) + b"\0", "08P01"),  # trailing
        (b"B", b"\0\0" + i16(2) + i16(0) + i16(0) + i16(1) + i32(-1) + i16(0), "08P01"),
        (b"B", b"\0\0" + i16(2) + i16(0) + i16(0) + i16(3) + i32(-1) * 3 + i16(0), "08P01"),
        (b"B", b"\0\0" + i16(1) + i16(2) + i16(0) + i16(0), "22023"),  # format code 2
        (b"B", b"\0\0" + i16(0) + i16(0) + i16(1) + i16(-1), "22023"),
        (b"B", b"\0\0" + i16(3), "08P01"),  # format codes cut short
        (b"B", b"\xc0\0\0" + i16(0) + i16(0) + i16(0), "22021"),
        (b"D", b"", "08P01"),
        (b"D", b"X\0", "08P01"),
        (b"D", b"S", "08P01"),
        (b"D", b"Sname", "08P01"),
        (b"D", b"S\0\0", "08P01"),
        (b"C", b"s\0", "08P01"),
        (b"C", b"P\0x", "08P01"),
        (b"E", b"\0", "08P01"),
        (b"E", b"\0" + i16(1), "08P01"),
        (b"E", b"\0" + i32(1) + b"\0", "08P01"),
        (b"E", i32(1), "08P01"),
        (b"S", b"\0", "08P01"),
        (b"H", b"x", "08P01"),
        (b"X", b"\0\0", "08P01"),
    ],
)
def test_malformed_frontend_messages(kind: bytes, payload: bytes, sqlstate: str) -> None:
    with violation(sqlstate):
        pq.parse_frontend(kind, payload)


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        (b"p", "password"),
        (b"d", "CopyData"),
        (b"c", "CopyDone"),
        (b"f", "CopyFail"),
        (b"F", "FunctionCall"),
        (b"Z", "'Z'"),
        (b"\0", "0x00"),
        (b"\xff", "0xff"),
        (b"", "(none)"),
    ],
)
def test_unknown_or_refused_types_are_named(kind: bytes, named: str) -> None:
    with violation() as caught:
        pq.parse_frontend(kind, b"")
    assert named in caught.value.message


def test_violation_texts_never_carry_the_sql() -> None:
    secret = b"SELECT 'hunter2'"
    for kind, payload in [(b"Q", secret + b"\0x"), (b"P", b"\0" + secret + b"\0\0")]:
        with pytest.raises(pq.ProtocolViolation) as caught:
            pq.parse_frontend(kind, payload)
        assert "hunter2" not in caught.value.message


# -- password phase ----------------------------------------------------------------------------


def test_password_messages() -> None:
    assert pq.parse_password(b"s3cret\0") == "s3cret"
    assert pq.parse_password(b"\0") == ""
    for bad, sqlstate in [(b"", "08P01"), (b"pw", "08P01"), (b"pw\0x", "08P01")]:
        with violation(sqlstate):
            pq.parse_password(bad)
    with violation("22021"):
        pq.parse_password(b"\x80\0")


def test_sasl_messages() -> None:
    first = b"n,,n=,r=abc"
    payload = b"SCRAM-SHA-256\0" + i32(len(first)) + first
    assert pq.parse_sasl_initial(payload) == ("SCRAM-SHA-256", first)
    assert pq.parse_sasl_initial(b"SCRAM-SHA-256\0" + i32(-1)) == ("SCRAM-SHA-256", b"")
    assert pq.parse_sasl_response(b"c=biws,r=abc,p=xyz") == b"c=biws,r=abc,p=xyz"
    for bad in [
        b"SCRAM-SHA-256",
        b"SCRAM-SHA-256\0",
        b"SCRAM-SHA-256\0" + i32(5) + b"abc",
        b"SCRAM-SHA-256\0" + i32(2) + b"abc",
        b"SCRAM-SHA-256\0" + i32(-2),
        b"SCRAM-SHA-256\0" + i32(-1) + b"x",
    ]:
        with violation():
            pq.parse_sasl_initial(bad)


# -- backend messages --------------------------------------------------------------------------


def test_authentication_messages() -> None:
    assert pq.authentication_ok() == b"R" + i32(8) + i32(0)
    assert pq.authentication_cleartext() == b"R" + i32(8) + i32(3)
    sasl = i32(10) + b"SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0"
    assert pq.authentication_sasl(["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]) == msg(b"R", sasl)
    assert pq.authentication_sasl_continue(b"r=x,s=y,i=4096") == msg(
        b"R", i32(11) + b"r=x,s=y,i=4096"
    )
    assert pq.authentication_sasl_final(b"v=abc") == msg(b"R", i32(12) + b"v=abc")


def test_session_messages() -> None:
    assert pq.parameter_status("TimeZone", "UTC") == msg(b"S", b"TimeZone\0UTC\0")
    assert pq.ready_for_query(b"I") == b"Z" + i32(5) + b"I"
    assert pq.ready_for_query(b"T") == b"Z\0\0\0\x05T"
    assert pq.ready_for_query(b"E") == b"Z\0\0\0\x05E"
    with pytest.raises(ValueError, match="transaction status"):
        pq.ready_for_query(b"X")
    assert pq.command_complete("SELECT 3") == msg(b"C", b"SELECT 3\0")
    assert pq.empty_query_response() == b"I" + i32(4)
    assert pq.parse_complete() == b"1" + i32(4)
    assert pq.bind_complete() == b"2" + i32(4)
    assert pq.close_complete() == b"3" + i32(4)
    assert pq.no_data() == b"n" + i32(4)
    assert pq.portal_suspended() == b"s" + i32(4)
    assert pq.parameter_description([23, 25]) == msg(b"t", i16(2) + i32(23) + i32(25))
    assert pq.parameter_description([]) == msg(b"t", i16(0))


def test_row_description() -> None:
    fields = [
        pq.Field("id", 20, 8),
        pq.Field("naïve", 25, format=1, table_oid=16384, column=2, type_modifier=7),
    ]
    expected = (
        i16(2)
        + b"id\0" + i32(0) + i16(0) + i32(20) + i16(8) + i32(-1) + i16(0)
        + "naïve\0".encode() + i32(16384) + i16(2) + i32(25) + i16(-1) + i32(7) + i16(1)
    )  # fmt: skip
    assert pq.row_description(fields) == msg(b"T", expected)
    assert pq.row_description([]) == msg(b"T", i16(0))


def test_data_rows() -> None:
    row = [b"1", None, b"", b"x" * 2000]
    expected = msg(b"D", i16(4) + i32(1) + b"1" + i32(-1) + i32(0) + i32(2000) + b"x" * 2000)
    assert pq.data_row(row) == expected
    assert pq.data_row([]) == msg(b"D", i16(0))
    assert pq.data_rows([row, [], [None]]) == (
        expected + msg(b"D", i16(0)) + msg(b"D", i16(1) + i32(-1))
    )
    assert pq.data_rows(iter([])) == b""


def test_error_and_notice_responses() -> None:
    assert pq.error_response("42601", "syntax error") == msg(
        b"E", b"SERROR\0VERROR\0C42601\0Msyntax error\0\0"
    )
    full = pq.error_response("28P01", "no", severity="FATAL", detail="d", hint="h")
    assert full == msg(b"E", b"SFATAL\0VFATAL\0C28P01\0Mno\0Dd\0Hh\0\0")
    assert pq.notice_response("01000", "careful") == msg(
        b"N", b"SNOTICE\0VNOTICE\0C01000\0Mcareful\0\0"
    )
    assert pq.notice_response("01000", "w", severity="WARNING") == msg(
        b"N", b"SWARNING\0VWARNING\0C01000\0Mw\0\0"
    )


def test_text_that_would_break_framing_is_made_safe() -> None:
    # A NUL would end a field early; a lone surrogate cannot be encoded at all.
    assert pq.error_response("XX000", "a\0b\udcff") == msg(
        b"E", b"SERROR\0VERROR\0CXX000\0Mab?\0\0"
    )
    assert pq.row_description([pq.Field("a\0b", 25)])[7:10] == b"ab\0"


def test_violation_carries_its_sqlstate() -> None:
    exc = pq.ProtocolViolation("too big", "54000")
    assert (exc.message, exc.sqlstate, str(exc)) == ("too big", "54000", "too big")
    assert pq.ProtocolViolation("bad").sqlstate == "08P01"


def _ahead(data: bytes, portal: str = "") -> bool:
    async def run() -> bool:
        reader = asyncio.StreamReader()
        reader.feed_data(msg(b"H", b"") + data)  # a Flush to read, and the rest buffered
        messages = pq.Messages(reader, max_bytes=1 << 20)
        assert await messages.next() == (b"H", b"")
        return messages.another_statement_ahead(portal)

    return bool(asyncio.run(run()))


def test_another_statement_ahead_of_the_sync() -> None:
    execute = msg(b"E", b"\0" + i32(0))
    named = msg(b"E", b"cur\0" + i32(2))
    sync = msg(b"S", b"")
    bind = msg(b"B", b"\0\0" + b"\0\0" * 3)
    assert not _ahead(execute + sync), "this portal's own Execute, then Sync"
    assert not _ahead(named + named + sync, "cur"), "the same portal, row by row"
    assert _ahead(execute + bind + execute + sync), "a second Bind: another statement"
    assert _ahead(named + sync), "another portal's Execute"
    assert _ahead(execute), "no Sync read yet: not known, so assumed"
    assert not _ahead(sync + bind + execute), "after the Sync: the next run's"
