"""PostgreSQL protocol 3.0 messages: framing, parsing and encoding, nothing else.

Pure functions over bytes, so every path can be tested without a socket; only the two
``read_*`` coroutines touch an ``asyncio.StreamReader``. What a message means, and in
which state it may arrive, is ``connection``'s business.

Every message after startup is a type byte, an int32 length that counts itself, and a
payload. The startup packet has no type byte: its first int32 after the length says
what it is (a protocol version, or one of the special request codes). Lengths are checked
before a body is read, so a client cannot make the server buffer a message larger than
the configured limit.

Parsing is strict, as PostgreSQL's own: a string without its NUL, a count that does not
match the bytes that follow, or bytes left over after the last field are each a
``ProtocolViolation``. The server answers one with an ErrorResponse carrying its
SQLSTATE. Error texts name the message type and what was wrong, never the SQL or a
password, so they are safe to log.

Encoders return complete messages (type, length, payload), so a caller can append them
to one output buffer and write it once. ``data_row`` and ``data_rows`` sit on every
result's path: they build one list of parts and join it once, and take the common
length prefixes from a table instead of packing each one.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from proxy.errors import chained

__all__ = [
    "MAX_STARTUP_BYTES",
    "PROTOCOL_3",
    "Bind",
    "CancelRequest",
    "Close",
    "Describe",
    "Execute",
    "Field",
    "Flush",
    "Frontend",
    "GSSENCRequest",
    "Messages",
    "Parse",
    "ProtocolViolation",
    "Query",
    "SSLRequest",
    "StartupMessage",
    "Sync",
    "Terminate",
    "authentication_cleartext",
    "authentication_ok",
    "authentication_sasl",
    "authentication_sasl_continue",
    "authentication_sasl_final",
    "backend_key_data",
    "bind_complete",
    "close_complete",
    "command_complete",
    "data_row",
    "data_rows",
    "empty_query_response",
    "error_response",
    "no_data",
    "notice_response",
    "parameter_description",
    "parameter_status",
    "parse_complete",
    "parse_frontend",
    "parse_password",
    "parse_sasl_initial",
    "parse_sasl_response",
    "parse_startup",
    "portal_suspended",
    "read_startup",
    "ready_for_query",
    "row_description",
]

PROTOCOL_3 = 196608
"""Protocol 3.0 as the startup packet spells it: major 3 in the high 16 bits, minor 0."""

MAX_STARTUP_BYTES = 10_000
"""The longest startup packet accepted, length field included (PostgreSQL's own limit)."""

_CANCEL_CODE = 80877102  # 1234.5678
_SSL_CODE = 80877103  # 1234.5679
_GSSENC_CODE = 80877104  # 1234.5680

_I16 = struct.Struct("!h")
_U16 = struct.Struct("!H")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_CANCEL = struct.Struct("!II")
_HEADER = struct.Struct("!ci")
_DATA_ROW_HEAD = struct.Struct("!cih")
_FIELD = struct.Struct("!IhIhih")
_AUTH = struct.Struct("!cii")


class ProtocolViolation(Exception):
    """A malformed, oversized or unexpected message.

    The server answers with an ErrorResponse carrying ``sqlstate``: ``08P01``
    (protocol_violation) unless a more precise one applies, such as ``54000`` for a
    message over the size limit or ``22021`` for a string that is not UTF-8.
    """

    def __init__(self, message: str, sqlstate: str = "08P01") -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate


# -- startup phase ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StartupMessage:
    version: int
    params: dict[str, str]


@dataclass(frozen=True)
class SSLRequest:
    pass


@dataclass(frozen=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True)
class CancelRequest:
    pid: int
    secret: int


async def read_startup(
    reader: asyncio.StreamReader,
) -> StartupMessage | SSLRequest | GSSENCRequest | CancelRequest:
    """The next startup-phase packet; ``asyncio.IncompleteReadError`` if the client left."""
    (length,) = _I32.unpack(await reader.readexactly(4))
    if length < 8 or length > MAX_STARTUP_BYTES:
        raise ProtocolViolation(f"invalid length of startup packet: {length}")
    return parse_startup(await reader.readexactly(length - 4))


def parse_startup(body: bytes) -> StartupMessage | SSLRequest | GSSENCRequest | CancelRequest:
    """A startup-phase packet from its body (the bytes after the length field).

    A version other than 3.x is refused here (``0A000``, as PostgreSQL does), since
    the body of another major version has another layout. A 3.x minor version is
    returned as sent: whether to accept it is the caller's decision.
    """
    if len(body) < 4:
        raise ProtocolViolation(f"invalid length of startup packet: {len(body) + 4}")
    (code,) = _U32.unpack_from(body)
    if code == _CANCEL_CODE:
        if len(body) != 12:
            raise ProtocolViolation("invalid length of cancel request packet")
        pid, secret = _CANCEL.unpack_from(body, 4)
        return CancelRequest(pid, secret)
    if code in (_SSL_CODE, _GSSENC_CODE):
        if len(body) != 4:
            raise ProtocolViolation("invalid length of encryption request packet")
        return SSLRequest() if code == _SSL_CODE else GSSENCRequest()
    if code >> 16 != 3:
        raise ProtocolViolation(
            f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: server supports 3.0",
            "0A000",
        )
    params: dict[str, str] = {}
    pos, end = 4, len(body)
    while True:
        if pos >= end:
            raise ProtocolViolation("invalid startup packet layout: expected terminator")
        if body[pos] == 0:
            if pos != end - 1:
                raise ProtocolViolation(
                    "invalid startup packet layout: expected terminator as last byte"
                )
            return StartupMessage(code, params)
        key, pos = _cstring(body, pos, "startup packet")
        value, pos = _cstring(body, pos, "startup packet")
        if key in params:
            raise ProtocolViolation(f"duplicate startup parameter {key[:63]!r}")
        params[key] = value


# -- regular phase ----------------------------------------------------------------------------


_CHUNK = 64 * 1024
"""What one read asks the socket for: a whole pipeline of small messages at once."""


class Messages:
    """The messages of one client after its startup packet, as (type byte, payload).

    Read a chunk at a time into one buffer and cut from there: a driver sends Bind,
    Describe, Execute and Sync in one packet, and two ``readexactly`` per message
    cost more than the rest of reading them (cProfile under pgbench, ``docs/decisions.md``).
    The buffer holds at most one message beyond a chunk: ``max_bytes`` bounds the
    length field (which counts itself), and a longer message is refused from its
    header, before its body is read (``54000``). The end of the stream in the middle
    of a message raises ``asyncio.IncompleteReadError``, as ``readexactly`` does.
    """

    __slots__ = ("_buffer", "_max", "_pos", "_reader")

    def __init__(self, reader: asyncio.StreamReader, *, max_bytes: int) -> None:
        self._reader = reader
        self._max = max_bytes
        self._buffer: bytes | bytearray = b""
        """The chunk read last, as read (a slice of it is the one copy of a message), or,
        while a message spans chunks, a bytearray they are gathered in."""
        self._pos = 0

    def buffered(self) -> tuple[bytes, bytes] | None:
        """The next message if the buffer holds all of it, else ``None``."""
        buffer, pos = self._buffer, self._pos
        size = len(buffer)
        if size - pos < 5:
            return None
        kind, length = _HEADER.unpack_from(buffer, pos)
        if length < 4:
            raise ProtocolViolation(f"invalid message length {length} in a {_name(kind)} message")
        if length > self._max:
            raise ProtocolViolation(
                f"{_name(kind)} message of {length} bytes exceeds the limit of {self._max} bytes",
                "54000",
            )
        end = pos + 1 + length
        if end > size:
            return None
        self._pos = end
        payload = buffer[pos + 5 : end]
        return kind, payload if type(payload) is bytes else bytes(payload)

    def another_statement_ahead(self, portal: str) -> bool:
        """Whether the messages already read show another statement before the next
        Sync: a Bind, or an Execute of a portal other than ``portal``. True too when
        the buffer ends before a Sync: the rest is not known yet."""
        buffer, pos = self._buffer, self._pos
        size = len(buffer)
        name = portal.encode()
        while size - pos >= 5:
            kind, length = _HEADER.unpack_from(buffer, pos)
            end = pos + 1 + length
            if kind == b"S":
                return False
            if kind in (b"B", b"Q") or end > size or length < 4:
                return True
            if kind == b"E" and buffer[pos + 5 : buffer.find(b"\0", pos + 5, end)] != name:
                return True
            pos = end
        return True

    async def next(self) -> tuple[bytes, bytes]:
        """The next message, read from the socket as needed."""
        while True:
            message = self.buffered()
            if message is not None:
                return message
            chunk = await self._reader.read(_CHUNK)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(self._buffer[self._pos :]), None)
            buffer, pos = self._buffer, self._pos
            if pos >= len(buffer):
                self._buffer = chunk
            else:
                # A message cut by the chunk's end: gathered in a bytearray, whose
                # appends are amortised (adding bytes to bytes would copy it all each
                # time: quadratic for a message of many chunks).
                if type(buffer) is bytes:
                    buffer = bytearray(buffer[pos:])
                else:
                    assert isinstance(buffer, bytearray)
                    del buffer[:pos]
                buffer += chunk
                self._buffer = buffer
            self._pos = 0


# Written out, not generated: mypyc compiles a class's own __init__ but leaves a
# dataclass's generated one interpreted (and a frozen one's sets each field through
# object.__setattr__); a few of these are made for every statement.
@dataclass(init=False, slots=True)
class Query:
    sql: str

    def __init__(self, sql: str) -> None:
        self.sql = sql


@dataclass(init=False, slots=True)
class Parse:
    name: str
    sql: str
    param_oids: tuple[int, ...]

    def __init__(self, name: str, sql: str, param_oids: tuple[int, ...]) -> None:
        self.name = name
        self.sql = sql
        self.param_oids = param_oids


@dataclass(init=False, slots=True)
class Bind:
    """Bind as sent: ``param_formats`` has 0 entries (all text), 1 (for all) or one
    per parameter. ``result_formats`` likewise, against the columns, which only the
    caller knows."""

    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]

    def __init__(
        self,
        portal: str,
        statement: str,
        param_formats: tuple[int, ...],
        params: tuple[bytes | None, ...],
        result_formats: tuple[int, ...],
    ) -> None:
        self.portal = portal
        self.statement = statement
        self.param_formats = param_formats
        self.params = params
        self.result_formats = result_formats


@dataclass(init=False, slots=True)
class Describe:
    kind: str
    """'S' statement or 'P' portal."""
    name: str

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name


@dataclass(init=False, slots=True)
class Execute:
    portal: str
    max_rows: int
    """0 = all (a negative count on the wire also means all)."""

    def __init__(self, portal: str, max_rows: int) -> None:
        self.portal = portal
        self.max_rows = max_rows


@dataclass(init=False, slots=True)
class Close:
    kind: str
    """'S' statement or 'P' portal."""
    name: str

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name


@dataclass(frozen=True)
class Sync:
    pass


@dataclass(frozen=True)
class Flush:
    pass


@dataclass(frozen=True)
class Terminate:
    pass


Frontend = Query | Parse | Bind | Describe | Execute | Close | Sync | Flush | Terminate

_SYNC, _FLUSH, _TERMINATE = Sync(), Flush(), Terminate()

_NAMES = {
    b"Q": "Query",
    b"P": "Parse",
    b"B": "Bind",
    b"D": "Describe",
    b"E": "Execute",
    b"C": "Close",
    b"S": "Sync",
    b"H": "Flush",
    b"X": "Terminate",
    b"p": "password",
    b"d": "CopyData",
    b"c": "CopyDone",
    b"f": "CopyFail",
    b"F": "FunctionCall",
}

_REFUSED = {
    b"p": "a password message outside authentication",
    b"d": "CopyData outside COPY (COPY is not supported)",
    b"c": "CopyDone outside COPY (COPY is not supported)",
    b"f": "CopyFail outside COPY (COPY is not supported)",
    b"F": "FunctionCall (the fast-path interface is not supported)",
}


def parse_frontend(kind: bytes, payload: bytes) -> Frontend:
    """The regular-phase message ``kind`` from its payload."""
    if kind == b"Q":
        return _query(payload)
    if kind == b"B":
        return _bind(payload)
    if kind == b"E":
        return _execute(payload)
    if kind in (b"S", b"H", b"X"):
        if payload:
            raise ProtocolViolation(f"{_NAMES[kind]} message has {len(payload)} unexpected bytes")
        return _SYNC if kind == b"S" else _FLUSH if kind == b"H" else _TERMINATE
    if kind == b"P":
        return _parse(payload)
    if kind in (b"D", b"C"):
        return _describe_or_close(kind, payload)
    refused = _REFUSED.get(kind)
    if refused is not None:
        raise ProtocolViolation(f"unexpected message: {refused}")
    raise ProtocolViolation(f"invalid frontend message type {_name(kind)}")


def _query(payload: bytes) -> Query:
    end = payload.find(b"\0")
    if end < 0 or end != len(payload) - 1:
        _string_end_violation("Query", end)
    return Query(_decode(payload[:end], "Query"))


def _parse(payload: bytes) -> Parse:
    name, pos = _cstring(payload, 0, "Parse")
    sql, pos = _cstring(payload, pos, "Parse")
    count, pos = _count(payload, pos, "Parse")
    end = pos + 4 * count
    if end != len(payload):
        raise ProtocolViolation(
            f"Parse message declares {count} parameter types in {len(payload) - pos} bytes"
        )
    return Parse(name, sql, struct.unpack_from(f"!{count}I", payload, pos))


def _bind(payload: bytes) -> Bind:
    portal, pos = _cstring(payload, 0, "Bind")
    statement, pos = _cstring(payload, pos, "Bind")
    param_formats, pos = _formats(payload, pos)
    count, pos = _count(payload, pos, "Bind")
    if len(param_formats) > 1 and len(param_formats) != count:
        raise ProtocolViolation(
            f"bind message has {len(param_formats)} parameter formats but {count} parameters"
        )
    params: list[bytes | None] = []
    size_of = _I32.unpack_from
    total = len(payload)
    for _ in range(count):
        if pos + 4 > total:
            raise ProtocolViolation("Bind message is truncated in its parameter values")
        (size,) = size_of(payload, pos)
        pos += 4
        if size == -1:
            params.append(None)
            continue
        end = pos + size
        if size < 0 or end > total:
            raise ProtocolViolation(f"Bind message has an invalid parameter length {size}")
        params.append(payload[pos:end])
        pos = end
    result_formats, pos = _formats(payload, pos)
    if pos != total:
        raise ProtocolViolation(f"Bind message has {total - pos} unexpected trailing bytes")
    return Bind(portal, statement, param_formats, tuple(params), result_formats)


def _execute(payload: bytes) -> Execute:
    portal, pos = _cstring(payload, 0, "Execute")
    if pos + 4 != len(payload):
        raise ProtocolViolation(f"Execute message has {len(payload) - pos} bytes after its name")
    (max_rows,) = _I32.unpack_from(payload, pos)
    return Execute(portal, max(max_rows, 0))


def _describe_or_close(kind: bytes, payload: bytes) -> Describe | Close:
    what = _NAMES[kind]
    target = payload[:1]
    if target not in (b"S", b"P"):
        raise ProtocolViolation(f"invalid {what} message subtype {_name(target)}")
    name, pos = _cstring(payload, 1, what)
    if pos != len(payload):
        raise ProtocolViolation(
            f"{what} message has {len(payload) - pos} unexpected trailing bytes"
        )
    return Describe(target.decode(), name) if kind == b"D" else Close(target.decode(), name)


# -- password phase (type 'p'; the auth state says which one) ---------------------------------


def parse_password(payload: bytes) -> str:
    """A PasswordMessage's cleartext password."""
    end = payload.find(b"\0")
    if end < 0 or end != len(payload) - 1:
        _string_end_violation("password", end)
    return _decode(payload[:end], "password")


def parse_sasl_initial(payload: bytes) -> tuple[str, bytes]:
    """SASLInitialResponse: (mechanism, client-first data); no data (-1) reads as b""."""
    mechanism, pos = _cstring(payload, 0, "SASLInitialResponse")
    if pos + 4 > len(payload):
        raise ProtocolViolation("SASLInitialResponse message is truncated")
    (size,) = _I32.unpack_from(payload, pos)
    pos += 4
    if size == -1:
        size = 0
    if size < 0 or pos + size != len(payload):
        raise ProtocolViolation(f"SASLInitialResponse message has an invalid data length {size}")
    return mechanism, payload[pos:]


def parse_sasl_response(payload: bytes) -> bytes:
    """SASLResponse: the payload is the mechanism's data, whole."""
    return bytes(payload)


# -- parsing helpers --------------------------------------------------------------------------


def _cstring(payload: bytes, pos: int, what: str) -> tuple[str, int]:
    end = payload.find(b"\0", pos)
    if end == pos:  # the unnamed statement or portal: most Bind, Describe and Execute
        return "", end + 1
    if end < 0:
        raise ProtocolViolation(f"{what} message is truncated: a string has no terminating NUL")
    return _decode(payload[pos:end], what), end + 1


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise chained(
            ProtocolViolation(
                f"invalid byte sequence for encoding UTF8 in a {what} message", "22021"
            ),
            None,
        )


def _string_end_violation(what: str, end: int) -> NoReturn:
    if end < 0:
        raise ProtocolViolation(f"{what} message is truncated: a string has no terminating NUL")
    raise ProtocolViolation(f"{what} message has unexpected bytes after its string")


def _count(payload: bytes, pos: int, what: str) -> tuple[int, int]:
    if pos + 2 > len(payload):
        raise ProtocolViolation(f"{what} message is truncated")
    return _U16.unpack_from(payload, pos)[0], pos + 2


def _formats(payload: bytes, pos: int) -> tuple[tuple[int, ...], int]:
    count, pos = _count(payload, pos, "Bind")
    if not count:
        return (), pos
    end = pos + 2 * count
    if end > len(payload):
        raise ProtocolViolation("Bind message is truncated in its format codes")
    formats: tuple[int, ...] = struct.unpack_from(f"!{count}h", payload, pos)
    for code in formats:
        if code not in (0, 1):
            raise ProtocolViolation(f"unsupported format code: {code}", "22023")
    return formats, end


def _name(kind: bytes) -> str:
    """A type byte for an error text: 'Q' (Query), or its hex when unprintable."""
    if len(kind) == 1 and 0x20 < kind[0] < 0x7F:
        known = _NAMES.get(kind)
        return f"'{kind.decode()}' ({known})" if known else f"'{kind.decode()}'"
    return f"0x{kind.hex()}" if kind else "(none)"


# -- backend messages -------------------------------------------------------------------------


def _message(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload) + 4) + payload


def _cstr(text: str) -> bytes:
    """``text`` NUL-terminated; a NUL inside would end the field early, so it is dropped."""
    raw = text.encode("utf-8", "replace")
    if b"\0" in raw:
        raw = raw.replace(b"\0", b"")
    return raw + b"\0"


_AUTH_OK = _AUTH.pack(b"R", 8, 0)
_AUTH_CLEARTEXT = _AUTH.pack(b"R", 8, 3)


def authentication_ok() -> bytes:
    return _AUTH_OK


def authentication_cleartext() -> bytes:
    return _AUTH_CLEARTEXT


def authentication_sasl(mechanisms: Sequence[str]) -> bytes:
    body = b"".join(_cstr(m) for m in mechanisms) + b"\0"
    return _AUTH.pack(b"R", len(body) + 8, 10) + body


def authentication_sasl_continue(data: bytes) -> bytes:
    return _AUTH.pack(b"R", len(data) + 8, 11) + data


def authentication_sasl_final(data: bytes) -> bytes:
    return _AUTH.pack(b"R", len(data) + 8, 12) + data


def parameter_status(name: str, value: str) -> bytes:
    return _message(b"S", _cstr(name) + _cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    """BackendKeyData; both values unsigned 32-bit, as ``CancelRequest`` reads them."""
    return _message(b"K", _CANCEL.pack(pid, secret))


_READY = {status: _message(b"Z", status) for status in (b"I", b"T", b"E")}


def ready_for_query(status: bytes) -> bytes:
    """ReadyForQuery: ``b'I'`` idle, ``b'T'`` in a transaction, ``b'E'`` in a failed one."""
    try:
        return _READY[status]
    except KeyError:
        raise chained(ValueError(f"invalid transaction status {status!r}"), None)


@dataclass(frozen=True)
class Field:
    """One column of a RowDescription."""

    name: str
    type_oid: int
    type_size: int = -1
    type_modifier: int = -1
    format: int = 0
    table_oid: int = 0
    column: int = 0


def row_description(fields: Sequence[Field]) -> bytes:
    parts = [_U16.pack(len(fields))]
    pack = _FIELD.pack
    for f in fields:
        parts.append(_cstr(f.name))
        parts.append(
            pack(f.table_oid, f.column, f.type_oid, f.type_size, f.type_modifier, f.format)
        )
    return _message(b"T", b"".join(parts))


# Values are mostly short: a table lookup of their length prefix is about twice as fast
# as packing it.
_LENGTHS = tuple(_I32.pack(n) for n in range(1024))
_NULL = _I32.pack(-1)


def data_row(values: Sequence[bytes | None]) -> bytes:
    """DataRow; ``None`` is NULL."""
    parts: list[bytes] = [b""]
    append = parts.append
    lengths, pack = _LENGTHS, _I32.pack
    size = 6  # length field and column count
    for value in values:
        if value is None:
            append(_NULL)
            size += 4
        else:
            n = len(value)
            append(lengths[n] if n < 1024 else pack(n))
            append(value)
            size += 4 + n
    parts[0] = _DATA_ROW_HEAD.pack(b"D", size, len(values))
    return b"".join(parts)


def data_rows(rows: Iterable[Sequence[bytes | None]]) -> bytes:
    """Many DataRows, concatenated: one join for the whole batch."""
    parts: list[bytes] = []
    append = parts.append
    lengths, pack, head = _LENGTHS, _I32.pack, _DATA_ROW_HEAD.pack
    for values in rows:
        at = len(parts)
        append(b"")
        size = 6
        for value in values:
            if value is None:
                append(_NULL)
                size += 4
            else:
                n = len(value)
                append(lengths[n] if n < 1024 else pack(n))
                append(value)
                size += 4 + n
        parts[at] = head(b"D", size, len(values))
    return b"".join(parts)


def command_complete(tag: str) -> bytes:
    return _message(b"C", _cstr(tag))


_EMPTY_QUERY = _message(b"I", b"")


def empty_query_response() -> bytes:
    return _EMPTY_QUERY


def _notice_fields(
    severity: str, sqlstate: str, message: str, detail: str | None, hint: str | None
) -> bytes:
    # S is the (possibly localised) severity, V the same never localised (9.6+).
    sev = _cstr(severity)
    parts = [b"S", sev, b"V", sev, b"C", _cstr(sqlstate), b"M", _cstr(message)]
    if detail is not None:
        parts += (b"D", _cstr(detail))
    if hint is not None:
        parts += (b"H", _cstr(hint))
    parts.append(b"\0")
    return b"".join(parts)


def error_response(
    sqlstate: str,
    message: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    return _message(b"E", _notice_fields(severity, sqlstate, message, detail, hint))


def notice_response(sqlstate: str, message: str, *, severity: str = "NOTICE") -> bytes:
    return _message(b"N", _notice_fields(severity, sqlstate, message, None, None))


_PARSE_COMPLETE = _message(b"1", b"")
_BIND_COMPLETE = _message(b"2", b"")
_CLOSE_COMPLETE = _message(b"3", b"")
_NO_DATA = _message(b"n", b"")
_PORTAL_SUSPENDED = _message(b"s", b"")


def parse_complete() -> bytes:
    return _PARSE_COMPLETE


def bind_complete() -> bytes:
    return _BIND_COMPLETE


def close_complete() -> bytes:
    return _CLOSE_COMPLETE


def no_data() -> bytes:
    return _NO_DATA


def portal_suspended() -> bytes:
    return _PORTAL_SUSPENDED


def parameter_description(oids: Sequence[int]) -> bytes:
    return _message(b"t", struct.pack(f"!H{len(oids)}I", len(oids), *oids))
