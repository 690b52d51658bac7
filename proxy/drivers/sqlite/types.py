"""Values by declared type, as the ODBC path (sqliteodbc) gives them.

SQLite stores a value in one of five storage classes whatever the column declares;
sqliteodbc converts each value to the column's declared type, and callers depend on
that shape (a ``BOOLEAN`` is ``true``, a ``DATETIME`` an ISO date-time). The native
driver does the same with sqlite3's declared-type converters (``PARSE_DECLTYPES``:
the first word of the declared type picks the converter), so a tenant's answers keep
their shape whichever driver serves it:

==============================  ===================  ===========================
declared type (first word)      value                as sqliteodbc 0.9998
==============================  ===================  ===========================
BOOLEAN, BOOL, BIT              ``bool``             same
DATE                            ``datetime.date``    same
DATETIME, TIMESTAMP             ``datetime``         same
TIME                            ``datetime.time``    same
NUMERIC                         ``float``            same
DECIMAL                         ``decimal.Decimal``  a string; both are JSON "1.5"
==============================  ===================  ===========================

A stored value that does not read as its declared type (text in a ``DATE`` column)
comes back as the text it is, never an error: SQLite allowed it in, the caller should
see it. Expression columns have no declared type and keep their storage class.
Converters are process-wide (sqlite3's registry); only connections opened with
``detect_types`` (this driver's) use them.
"""

from __future__ import annotations

import datetime
import decimal
import sqlite3
from collections.abc import Callable

__all__ = ["DETECT_TYPES", "register"]

DETECT_TYPES = sqlite3.PARSE_DECLTYPES


def _tolerant(parse: Callable[[str], object]) -> Callable[[bytes], object]:
    def convert(raw: bytes) -> object:
        text = raw.decode("utf-8", "replace")
        try:
            return parse(text)
        except (ValueError, ArithmeticError):
            return text

    return convert


def _boolean(text: str) -> object:
    lowered = text.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    number = float(lowered)  # ValueError: kept as text
    return number != 0


def _datetime(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.strip())


_CONVERTERS: dict[str, Callable[[str], object]] = {
    "BOOLEAN": _boolean,
    "BOOL": _boolean,
    "BIT": _boolean,
    "DATE": lambda text: datetime.date.fromisoformat(text.strip()),
    "DATETIME": _datetime,
    "TIMESTAMP": _datetime,
    "TIME": lambda text: datetime.time.fromisoformat(text.strip()),
    "NUMERIC": float,
    "DECIMAL": decimal.Decimal,
}


def register() -> None:
    for name, parse in _CONVERTERS.items():
        sqlite3.register_converter(name, _tolerant(parse))
