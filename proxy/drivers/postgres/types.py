"""What PostgreSQL values become in Python, and the type names the API reports.

Results are read in text format. Measured against ``binary=True`` (see the package's
docstring) it is as fast or faster on a point select and on an 818-column row, and
it degrades well: a type psycopg has no loader for (an enum, citext, a PostGIS
geometry) arrives as its text, where binary format would hand out raw bytes.

Every value must be encodable by ``proxy.jsonenc.dumps`` (orjson, plus Decimal and
bytes), so only these types are parsed:

==========================================  ==================  ===========
PostgreSQL                                  Python              type name
==========================================  ==================  ===========
smallint, integer, bigint, oid              int                 integer
numeric                                     Decimal             decimal
real, double precision                      float               number
boolean                                     bool                boolean
date                                        date                date
timestamp, timestamptz                      datetime            datetime
                                            (aware for tz)
time                                        time                time
bytea                                       bytes               binary
uuid                                        UUID                uuid
text, varchar, char(n), name, "char"        str                 string
==========================================  ==================  ===========

Everything else is loaded as its PostgreSQL text and named ``string``, as psqlODBC
returns it: json and jsonb (the document as text: parsing it would change what the
API returned before), interval (``1 day 02:00:00``; a timedelta cannot hold months
and orjson cannot encode it), inet and cidr, arrays (``{1,2,3}``), ranges, money
(``$12.34``, formatted by the server's ``lc_monetary``), timetz (orjson refuses a
time with an offset), xml, bit strings, geometric types, records, and every type
without a built-in OID.

Parameters: psycopg's defaults (str untyped, float as float8, bool, None, Decimal...),
except int, which goes untyped, as its text, like every psqlODBC parameter: the server
types it from where it stands (``id = ?`` an integer, ``name = ?`` text, ``LIMIT ?``
bigint). psycopg would send int2, int4 or int8 by magnitude, which makes
``text_column = 5`` an error that the ODBC path accepted, ``SELECT ?`` an integer where
it was text, and prepares a statement once per magnitude class of its parameters.

date, timestamp and timestamptz values that Python cannot represent (``infinity``,
``-infinity``, years before 1 or after 9999) come back as their text rather than
failing the request: psycopg's fast loaders raise on them, so a result that meets one
is loaded again with ``LENIENT`` (``load_rows``), which only that result pays for.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import postgres
from psycopg.adapt import AdaptersMap, Buffer, Dumper, Loader, Transformer
from psycopg.pq import Format
from psycopg.pq.abc import PGresult
from psycopg.types.string import TextLoader

__all__ = ["ADAPTERS", "LENIENT", "TYPE_BY_OID", "UntypedIntDumper", "load_rows", "type_name"]

_PARSED: dict[str, str] = {
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "oid": "integer",
    "numeric": "decimal",
    "float4": "number",
    "float8": "number",
    "bool": "boolean",
    "date": "date",
    "timestamp": "datetime",
    "timestamptz": "datetime",
    "time": "time",
    "bytea": "binary",
    "uuid": "uuid",
    "text": "string",
    "varchar": "string",
    "bpchar": "string",
    "name": "string",
    '"char"': "string",
}
_LENIENT_TYPES = ("date", "timestamp", "timestamptz", "time")


def _oid(name: str) -> int:
    info = postgres.types.get(name)
    if info is None:  # pragma: no cover - psycopg knows every built-in type
        raise RuntimeError(f"psycopg does not know the built-in type {name}")
    return info.oid


TYPE_BY_OID: dict[int, str] = {_oid(name): type_name for name, type_name in _PARSED.items()}
"""Type OID → stable type name; any OID not listed is loaded as text: ``string``."""


def type_name(oid: int) -> str:
    return TYPE_BY_OID.get(oid, "string")


class UntypedIntDumper(Dumper):
    """An int as its decimal text, of no declared type (see the module docstring)."""

    oid = 0

    def dump(self, obj: int) -> bytes:
        return int.__repr__(obj).encode()


def _build_adapters() -> AdaptersMap:
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_dumper(int, UntypedIntDumper)
    keep = set(TYPE_BY_OID)
    for info in postgres.types:
        for oid in (info.oid, info.array_oid):
            if oid and oid not in keep:
                adapters.register_loader(oid, TextLoader)
    return adapters


ADAPTERS = _build_adapters()
"""The adapters every connection of this driver is made with."""


class _Lenient(Loader):
    """The fast loader of a temporal type, or the value's text when it cannot load it."""

    inner_oid = 0

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        loader_cls = ADAPTERS.get_loader(self.inner_oid, Format.TEXT)
        if loader_cls is None:  # pragma: no cover - registered above
            raise RuntimeError(f"no loader for OID {self.inner_oid}")
        self._inner = loader_cls(oid, context)

    def load(self, data: Buffer) -> Any:
        try:
            return self._inner.load(data)
        except psycopg.DataError:
            return bytes(data).decode("utf-8", "replace")


def _build_lenient() -> AdaptersMap:
    adapters = AdaptersMap(ADAPTERS)
    for name in _LENIENT_TYPES:
        oid = _oid(name)
        cls = type(f"Lenient_{name}", (_Lenient,), {"inner_oid": oid})
        adapters.register_loader(oid, cls)
    return adapters


LENIENT = _build_lenient()
"""``ADAPTERS`` with temporal values out of Python's range loaded as text."""


def load_rows(pgresult: PGresult, row0: int, row1: int) -> list[tuple[Any, ...]]:
    """Rows ``row0:row1`` of ``pgresult`` loaded with ``LENIENT`` (the slow path)."""
    tx = Transformer(LENIENT)
    tx.set_pgresult(pgresult)
    return tx.load_rows(row0, row1, tuple)
