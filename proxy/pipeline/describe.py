"""A statement described before it runs: its parameters' and result columns' types.

Drivers that prepare (asyncpg, JDBC) ask for both after sending the text and before
binding a value; the PostgreSQL wire front end answers them with ParameterDescription
and RowDescription. ``describe`` prepares the statement as ``Service.query`` would
(the same tenant check, scope check, caches, plan and staleness healing), with a stand-in
value per parameter, and reads the types from the tenant's metadata
(``rewriter.infer``). Nothing runs on the backend.

The types are the stable names results carry (``ResultColumn.type``), chosen as the
tenant's driver will load the values, so that a column is announced as what its values
will be: a SQLite ``NUMERIC`` column reads as ``float`` (``number``) while PostgreSQL's
``numeric`` is ``decimal``; PostgreSQL types psycopg loads as text (``money``,
``interval``, ``json``) are ``string``; a SQL Server ``uniqueidentifier`` arrives as a
string (pyodbc's ``native_uuid`` is off). What metadata cannot tell is ``unknown``.

Why metadata, not the backend (docs/decisions.md, "Describing a statement before it
runs"): it costs no round trip, and it types parameters (which no driver here reports)
and SQLite results (whose types come from the rows, and there are none before running).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from cachetools import LRUCache

from proxy.auth import Principal
from proxy.drivers.base import ResultColumn
from proxy.pipeline.request import QueryRequest
from proxy.pipeline.service import Service
from rewriter.infer import TypeHint, infer
from rewriter.parse import ParsedStatement
from rewriter.type_names import declared_type
from tenancy.backends import BackendKind
from tenancy.metadata import TableMetadata

__all__ = ["Description", "describe", "stable_type"]


@dataclass(frozen=True, slots=True)
class Description:
    params: tuple[str, ...]
    """One stable type name per ``?``, in text order (``unknown``: the front end
    announces text). Empty for a statement with ``@name`` parameters."""
    columns: tuple[ResultColumn, ...] | None
    """The result's columns, ``None`` for a statement without a result set (a write
    without OUTPUT/RETURNING)."""


async def describe(service: Service, principal: Principal, req: QueryRequest) -> Description:
    """Describe ``req`` for ``principal``; ``req.params`` is not read.

    Refuses what ``Service.query`` would refuse before running: an unknown tenant or
    table, a statement the token's scopes do not allow, an unknown column...
    """
    parsed = service.plans.parse(req.sql, dialect=req.dialect)
    prepared = await service.prepare(principal, dataclasses.replace(req, params=_stand_ins(parsed)))
    location = prepared.tenant.location
    shapes: dict[str, TableMetadata | None] = {}
    for name in sorted(parsed.tables):
        # Loaded (or healed) by ``prepare`` a moment ago: normally a cache hit.
        found, meta = service.metadata.peek(location, name)
        shapes[name] = meta if found else await service.table(prepared.tenant, name)
    backend = location.kind
    key = (req.sql, req.dialect, backend, req.missing_columns, *map(_fingerprint, shapes.values()))
    with _LOCK:
        cached = _DESCRIBED.get(key)
    if cached is not None:
        return cached.description
    inferred = infer(parsed, tables=shapes, backend=backend, missing_columns=req.missing_columns)
    params = tuple(stable_type(hint, backend) for hint in inferred.params)
    plan = prepared.plan
    if inferred.columns is None and plan.statement_class != "read":
        description = Description(params, None)
    else:
        hints = inferred.columns or ()
        if len(hints) != len(plan.columns):  # pragma: no cover - the same shapes made both
            hints = tuple(TypeHint() for _ in plan.columns)
        columns = tuple(
            ResultColumn(name, stable_type(hint, backend))
            for name, hint in zip(plan.columns, hints, strict=True)
        )
        description = Description(params, columns)
    entry = _Entry(description, _bytes(req.sql, description))
    if entry.size <= _MAX_ENTRY_BYTES:  # one huge text would evict hundreds of others
        with _LOCK:
            _DESCRIBED[key] = entry
    return description


@dataclass(frozen=True, slots=True)
class _Entry:
    description: Description
    size: int


def _fingerprint(meta: TableMetadata | None) -> str | None:
    return None if meta is None else meta.fingerprint


def _bytes(sql: str, description: Description) -> int:
    """Roughly what an entry holds: its key (the text, 64-character fingerprints) and
    its names (the column objects are the plan's names, the type names interned)."""
    text = len(sql) if sql.isascii() else 4 * len(sql)
    return 1_000 + text + 16 * len(description.params) + 100 * len(description.columns or ())


_DESCRIBED: LRUCache[tuple[str | None, ...], _Entry] = LRUCache(
    maxsize=4 << 20, getsizeof=lambda entry: entry.size
)
"""Descriptions by (text, dialect, backend, missing-columns policy, each table's
fingerprint): tenants whose tables have one shape share them, as they share plans.
About 4 MB at most. A process's services normally share one loop; the lock is for
those that do not (tests run several, each on a loop of its own)."""
_LOCK = threading.Lock()
_MAX_ENTRY_BYTES = 256 << 10


def _stand_ins(parsed: ParsedStatement) -> list[int] | dict[str, int]:
    """Values that bind anywhere a parameter may stand, a row count (LIMIT ?) too."""
    if parsed.named_params:
        return dict.fromkeys(parsed.named_params, 0)
    return [0] * parsed.positional_params


# -- declared type names -> stable type names, as each backend's driver loads them ----

_KINDS: Mapping[str | None, str] = {
    "text": "string",
    "integer": "integer",
    "decimal": "decimal",
    "float": "number",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
    "boolean": "boolean",
    None: "unknown",
}
"""A ``rewriter.type_names`` kind -> the stable name of the values it holds."""

_POSTGRES: Mapping[str, str] = {
    "uuid": "uuid",
    "bytea": "binary",
    "oid": "integer",
    # psycopg loads these as their text (proxy.drivers.postgres.types).
    "money": "string",
    "bit": "string",
    "bit varying": "string",
    "varbit": "string",
    "timetz": "string",
    "time with time zone": "string",
}
_SQLSERVER: Mapping[str, str] = {
    "uniqueidentifier": "string",  # pyodbc's native_uuid is off: a GUID is its text
    "timestamp": "binary",  # SQL Server's timestamp is rowversion, 8 bytes
    "rowversion": "binary",
    "binary": "binary",
    "varbinary": "binary",
    "image": "binary",
}
_SQLITE_CONVERTED: Mapping[str, str] = {
    "BOOLEAN": "boolean",
    "BOOL": "boolean",
    "BIT": "boolean",
    "DATE": "date",
    "DATETIME": "datetime",
    "TIMESTAMP": "datetime",
    "TIME": "time",
    "NUMERIC": "number",
    "DECIMAL": "decimal",
}
"""The declared types whose first word picks a converter (proxy.drivers.sqlite.types)."""
_FIRST_WORD = re.compile(r"[^\s(]*")


def stable_type(hint: TypeHint, backend: BackendKind | str) -> str:
    """The stable type name of the values ``hint`` describes on ``backend``."""
    if hint.declared is None:
        return _KINDS.get(hint.kind, "unknown")
    kind = BackendKind(backend)
    if kind is BackendKind.SQLITE:
        return _sqlite(hint.declared)
    declared = declared_type(hint.declared)
    if kind is BackendKind.POSTGRESQL:
        if declared.name.endswith("]"):
            return "string"  # an array, loaded as its text
        special = _POSTGRES.get(declared.name)
        if special is not None:
            return special
        # Every type psycopg has no loader for arrives as its text.
        return "string" if declared.kind is None else _KINDS[declared.kind]
    return _SQLSERVER.get(declared.name) or _KINDS[declared.kind]


def _sqlite(type_name: str) -> str:
    """As sqlite3's converters (the first word) or else SQLite's affinity rules read it."""
    match = _FIRST_WORD.match(type_name.strip())
    first = match.group().upper() if match else ""
    converted = _SQLITE_CONVERTED.get(first)
    if converted is not None:
        return converted
    upper = type_name.upper()
    if "INT" in upper:
        return "integer"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "string"
    if "BLOB" in upper:
        return "binary"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "number"
    return "unknown"
