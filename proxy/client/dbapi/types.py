"""Type objects, constructors, and values across the JSON boundary both ways.

The API reports a stable type name per column (``integer``, ``decimal``, ``number``,
``string``, ``boolean``, ``date``, ``datetime``, ``time``, ``binary``, ``uuid`` or
``unknown``). That name is ``cursor.description``'s ``type_code``, and each PEP 249
type object compares equal to the names of its group::

    STRING    string, uuid
    BINARY    binary
    NUMBER    integer, decimal, number, boolean
    DATETIME  date, datetime, time
    ROWID     (none: the API has no row ids)

JSON has no decimals, dates or bytes, so the service sends them as strings (base64 for
bytes). The cursor turns them back by their column's type (``decode_row``): a
``decimal`` column gives ``Decimal``, ``date``/``datetime``/``time`` give the
``datetime`` classes, ``binary`` gives ``bytes``, ``uuid`` gives ``UUID``. A consumer
such as pandas then sees the same Python types it would from psycopg or pyodbc.

Parameters go the other way (``encode_param``): the API takes strings, numbers,
booleans and null, and the database casts a string where its column wants a date or a
decimal. Dates and times become ISO 8601 (a space between date and time, as SQLite's
own timestamps and every backend read it), decimals and UUIDs their ``str``. Bytes
have no form the API takes (``NotSupportedError``), nor have NaN and infinities
(``DataError``).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from proxy.client.dbapi.errors import (
    DataError,
    InterfaceError,
    NotSupportedError,
    ProgrammingError,
)

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "Date",
    "DateFromTicks",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "TypeObject",
    "decode_rows",
    "decoders",
    "encode_param",
]


class TypeObject:
    """A PEP 249 type object: equal to each API type name of its group."""

    def __init__(self, name: str, *type_names: str) -> None:
        self.name = name
        self.type_names = frozenset(type_names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TypeObject):
            return self is other
        return other in self.type_names

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<TypeObject {self.name}>"


STRING = TypeObject("STRING", "string", "uuid")
BINARY = TypeObject("BINARY", "binary")
NUMBER = TypeObject("NUMBER", "integer", "decimal", "number", "boolean")
DATETIME = TypeObject("DATETIME", "date", "datetime", "time")
ROWID = TypeObject("ROWID")

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> datetime.date:  # noqa: N802 - the PEP's name
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> datetime.time:  # noqa: N802 - the PEP's name
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> datetime.datetime:  # noqa: N802 - the PEP's name
    return Timestamp(*time.localtime(ticks)[:6])


# -- parameters --------------------------------------------------------------------------


def encode_param(value: Any) -> Any:
    """One parameter as the API takes it (see the module's docstring)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(
            "NaN and infinities cannot be sent (JSON has none)", code="invalid_parameters"
        )
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise NotSupportedError("the API takes no binary parameters", code="binary_parameter")
    raise ProgrammingError(
        f"a parameter of type {type(value).__name__} cannot be sent; use str, int, float, "
        "bool, None, Decimal, date, time, datetime or UUID",
        code="unsupported_parameter",
    )


# -- results -----------------------------------------------------------------------------


def _decimal(value: Any) -> decimal.Decimal:
    # A float goes through its repr, not its binary value: 0.1 stays Decimal("0.1").
    return decimal.Decimal(value if isinstance(value, str) else repr(value))


def _binary(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


Decoder = Callable[[Any], Any]
DECODERS: dict[str, Decoder] = {
    "decimal": _decimal,
    "date": datetime.date.fromisoformat,
    "datetime": datetime.datetime.fromisoformat,
    "time": datetime.time.fromisoformat,
    "binary": _binary,
    "uuid": uuid.UUID,
}
"""API type name → the function that turns its JSON value back into a Python value."""


def decoders(type_names: Sequence[str]) -> list[tuple[int, Decoder]] | None:
    """The columns that need decoding, with their decoder; ``None`` when none does."""
    found = [(i, DECODERS[t]) for i, t in enumerate(type_names) if t in DECODERS]
    return found or None


def decode_rows(rows: list[list[Any]], type_names: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows as tuples, each value of a typed column turned back into its Python type."""
    plan = decoders(type_names)
    if plan is None:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        values = list(row)
        for i, decode in plan:
            value = values[i]
            if value is not None:
                try:
                    values[i] = decode(value)
                except (ValueError, TypeError, ArithmeticError, binascii.Error) as exc:
                    raise InterfaceError(
                        f"a {type_names[i]} value the driver cannot read",
                        code="undecodable_value",
                    ) from exc
        out.append(tuple(values))
    return out
