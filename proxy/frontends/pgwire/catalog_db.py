"""The in-memory catalog that ``proxy.frontends.pgwire.catalog`` answers from.

An SQLite database shaped like the part of ``pg_catalog`` that psql, SQLAlchemy and
Django read, filled from a tenant's ``TableMetadata`` and primary keys: its schema
``public``, one ``pg_class`` row per table (plus its primary-key index and, for a
one-column integer key, the identity sequence), the columns in ``pg_attribute`` with
PostgreSQL's spelling of their types (``pg_type``: any backend's declared type
mapped to the PostgreSQL type it reads as), and empty relations for what no tenant
has (policies, triggers, publications, comments). Python functions registered on the
connection stand in for PostgreSQL's (``format_type``, ``pg_get_indexdef``...).

One database per set of table shapes (fingerprints and keys), cached: tenants with the
default schema share one. Oids are synthetic, from 16384 in name order; a statement may
take at most ``STEP_BUDGET`` progress-handler calls.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenancy.metadata import TableMetadata

__all__ = ["BOOL", "RELATIONS", "TEXT", "Catalog", "catalog_for", "pg_type"]

# -- the catalog's shape ------------------------------------------------------------

BOOL, _I, TEXT = "bool", "bigint", "text"

RELATIONS: dict[str, dict[str, str]] = {
    "pg_namespace": {"oid": _I, "nspname": TEXT, "nspowner": _I},
    "pg_class": {
        "oid": _I,
        "relname": TEXT,
        "relnamespace": _I,
        "relkind": TEXT,
        "relowner": _I,
        "relam": _I,
        "relpersistence": TEXT,
        "relispartition": BOOL,
        "relchecks": _I,
        "relhasindex": BOOL,
        "relhasrules": BOOL,
        "relhastriggers": BOOL,
        "relrowsecurity": BOOL,
        "relforcerowsecurity": BOOL,
        "reltablespace": _I,
        "reloftype": _I,
        "relreplident": TEXT,
        "reltoastrelid": _I,
        "reloptions": TEXT,
        "reltype": _I,
    },
    "pg_attribute": {
        "attrelid": _I,
        "attname": TEXT,
        "atttypid": _I,
        "atttypmod": _I,
        "attnum": _I,
        "attnotnull": BOOL,
        "attisdropped": BOOL,
        "atthasdef": BOOL,
        "attidentity": TEXT,
        "attgenerated": TEXT,
        "attcollation": _I,
        "attoptions": TEXT,
    },
    "pg_type": {
        "oid": _I,
        "typname": TEXT,
        "typtype": TEXT,
        "typnotnull": BOOL,
        "typcollation": _I,
        "typarray": _I,
        "typdelim": TEXT,
        "typnamespace": _I,
    },
    "pg_index": {
        "indexrelid": _I,
        "indrelid": _I,
        "indisprimary": BOOL,
        "indisunique": BOOL,
        "indisclustered": BOOL,
        "indisvalid": BOOL,
        "indisreplident": BOOL,
        "indkey": TEXT,
        "indexprs": TEXT,
        "indpred": TEXT,
        "indnkeyatts": _I,
        "indnullsnotdistinct": BOOL,
        "indoption": TEXT,
        "indclass": TEXT,
        "indcollation": TEXT,
    },
    "pg_opclass": {
        "oid": _I,
        "opcname": TEXT,
        "opcdefault": BOOL,
        "opcmethod": _I,
        "opcintype": _I,
    },
    "pg_constraint": {
        "oid": _I,
        "conname": TEXT,
        "conrelid": _I,
        "contype": TEXT,
        "conindid": _I,
        "confrelid": _I,
        "conkey": TEXT,
        "confkey": TEXT,
        "condeferrable": BOOL,
        "condeferred": BOOL,
        "conparentid": _I,
        "connamespace": _I,
    },
    "pg_am": {"oid": _I, "amname": TEXT},
    "pg_attrdef": {"oid": _I, "adrelid": _I, "adnum": _I, "adbin": TEXT},
    "pg_collation": {"oid": _I, "collname": TEXT, "collnamespace": _I},
    "pg_description": {"objoid": _I, "classoid": _I, "objsubid": _I, "description": TEXT},
    "pg_policy": {
        "polname": TEXT,
        "polpermissive": BOOL,
        "polroles": TEXT,
        "polqual": TEXT,
        "polwithcheck": TEXT,
        "polrelid": _I,
        "polcmd": TEXT,
    },
    "pg_statistic_ext": {
        "oid": _I,
        "stxrelid": _I,
        "stxnamespace": _I,
        "stxname": TEXT,
        "stxkind": TEXT,
        "stxstattarget": _I,
    },
    "pg_publication": {"oid": _I, "pubname": TEXT, "puballtables": BOOL},
    "pg_publication_namespace": {"pnpubid": _I, "pnnspid": _I},
    "pg_publication_rel": {"prpubid": _I, "prrelid": _I, "prqual": TEXT, "prattrs": TEXT},
    "pg_inherits": {"inhrelid": _I, "inhparent": _I, "inhseqno": _I, "inhdetachpending": BOOL},
    "pg_depend": {
        "classid": _I,
        "objid": _I,
        "objsubid": _I,
        "refclassid": _I,
        "refobjid": _I,
        "refobjsubid": _I,
        "deptype": TEXT,
    },
    "pg_tablespace": {"oid": _I, "spcname": TEXT},
    "pg_sequence": {
        "seqrelid": _I,
        "seqstart": _I,
        "seqincrement": _I,
        "seqmin": _I,
        "seqmax": _I,
        "seqcache": _I,
        "seqcycle": BOOL,
    },
    "pg_roles": {"oid": _I, "rolname": TEXT},
    "pg_trigger": {"oid": _I, "tgrelid": _I, "tgname": TEXT, "tgisinternal": BOOL},
    "pg_rewrite": {"oid": _I, "ev_class": _I, "rulename": TEXT},
}
"""Catalog relation → its columns (the subset these clients read) and their types."""

_CLASS_OIDS = {"pg_class": 1259, "pg_constraint": 2606, "pg_type": 1247, "pg_namespace": 2615}
"""``'pg_class'::regclass`` and friends: the real servers' fixed oids."""

_PUBLIC, _PG_CATALOG, _BTREE = 2200, 11, 403
_FIRST_OID = 16384
"""Where PostgreSQL starts user objects' oids: a client never sees a clash with its own."""


@dataclass(frozen=True, slots=True)
class _PgType:
    oid: int
    typmod: int
    text: str
    """What ``format_type(oid, typmod)`` prints."""


_SCALARS: dict[str, tuple[int, str]] = {
    "bool": (16, "boolean"),
    "boolean": (16, "boolean"),
    "bit": (16, "boolean"),
    "smallint": (21, "smallint"),
    "int2": (21, "smallint"),
    "tinyint": (21, "smallint"),
    "integer": (23, "integer"),
    "int": (23, "integer"),
    "int4": (23, "integer"),
    "bigint": (20, "bigint"),
    "int8": (20, "bigint"),
    "real": (700, "real"),
    "float4": (700, "real"),
    "double precision": (701, "double precision"),
    "float8": (701, "double precision"),
    "float": (701, "double precision"),
    "text": (25, "text"),
    "ntext": (25, "text"),
    "clob": (25, "text"),
    "date": (1082, "date"),
    "time": (1083, "time without time zone"),
    "time without time zone": (1083, "time without time zone"),
    "timestamp": (1114, "timestamp without time zone"),
    "timestamp without time zone": (1114, "timestamp without time zone"),
    "datetime": (1114, "timestamp without time zone"),
    "datetime2": (1114, "timestamp without time zone"),
    "smalldatetime": (1114, "timestamp without time zone"),
    "timestamp with time zone": (1184, "timestamp with time zone"),
    "timestamptz": (1184, "timestamp with time zone"),
    "datetimeoffset": (1184, "timestamp with time zone"),
    "uuid": (2950, "uuid"),
    "uniqueidentifier": (2950, "uuid"),
    "bytea": (17, "bytea"),
    "blob": (17, "bytea"),
    "varbinary": (17, "bytea"),
    "binary": (17, "bytea"),
    "image": (17, "bytea"),
    "numeric": (1700, "numeric"),
    "decimal": (1700, "numeric"),
    "money": (1700, "numeric"),
}
_VARCHARS = ("character varying", "varchar", "nvarchar", "nvarchar2", "varchar2")
_CHARS = ("character", "char", "nchar", "bpchar")
_SHAPE = re.compile(r"\A\s*([a-z][a-z0-9 _]*?)\s*(?:\(\s*(\d+|max)\s*(?:,\s*(\d+)\s*)?\))?\s*\Z")

_TYPE_NAMES = {
    16: "bool",
    21: "int2",
    23: "int4",
    20: "int8",
    700: "float4",
    701: "float8",
    25: "text",
    1043: "varchar",
    1042: "bpchar",
    1082: "date",
    1083: "time",
    1114: "timestamp",
    1184: "timestamptz",
    2950: "uuid",
    17: "bytea",
    1700: "numeric",
}


def pg_type(declared: str) -> _PgType:
    """The PostgreSQL type that a column declared ``declared`` (any backend) shows as."""
    match = _SHAPE.match(declared.casefold())
    if match is None:
        return _PgType(25, -1, "text")
    name, first, second = match.group(1), match.group(2), match.group(3)
    size = None if first in (None, "max") else int(first)
    if name in _VARCHARS:
        if size is None:
            return _PgType(1043, -1, "character varying")
        return _PgType(1043, size + 4, f"character varying({size})")
    if name in _CHARS:
        length = 1 if size is None else size
        return _PgType(1042, length + 4, f"character({length})")
    if name in ("numeric", "decimal") and size is not None:
        scale = int(second or 0)
        return _PgType(1700, ((size << 16) | scale) + 4, f"numeric({size},{scale})")
    oid, text = _SCALARS.get(name, (25, "text"))
    return _PgType(oid, -1, text)


# -- building a tenant's catalog ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Catalog:
    db: sqlite3.Connection
    lock: threading.Lock
    budget: _Budget
    names: dict[int, str]
    """Oid → relation name (``::regclass`` output)."""
    oids: dict[str, int]
    """Case-folded relation name → oid (``'name'::regclass`` input)."""
    types: dict[tuple[int, int], str]


def _build(
    tables: Mapping[str, TableMetadata], primary_keys: Mapping[str, Sequence[str]]
) -> Catalog:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    for relation, columns in RELATIONS.items():
        body = ", ".join(f'"{c}" {"INTEGER" if t != TEXT else "TEXT"}' for c, t in columns.items())
        db.execute(f'CREATE TABLE "{relation}" ({body})')
    names: dict[int, str] = {}
    oids: dict[str, int] = {}
    types: dict[tuple[int, int], str] = {}

    def insert(relation: str, **values: object) -> None:
        cols = ", ".join(f'"{c}"' for c in values)
        marks = ", ".join("?" * len(values))
        db.execute(f'INSERT INTO "{relation}" ({cols}) VALUES ({marks})', tuple(values.values()))

    insert("pg_namespace", oid=_PUBLIC, nspname="public", nspowner=10)
    insert("pg_namespace", oid=_PG_CATALOG, nspname="pg_catalog", nspowner=10)
    insert("pg_am", oid=_BTREE, amname="btree")
    insert("pg_am", oid=2, amname="heap")
    for oid, name in _TYPE_NAMES.items():
        insert(
            "pg_type",
            oid=oid,
            typname=name,
            typtype="b",
            typnotnull=0,
            typcollation=100 if oid in (25, 1043, 1042) else 0,
            typarray=0,
            typdelim=",",
            typnamespace=_PG_CATALOG,
        )
    for name, oid in _CLASS_OIDS.items():
        oids[name] = oid
        oids[f"pg_catalog.{name}"] = oid
        names[oid] = name
    # Oids in name order, ten apart: the table, its primary-key index, its constraint.
    for position, key in enumerate(sorted(tables, key=str.casefold)):
        table = tables[key]
        oid = _FIRST_OID + 10 * position
        names[oid] = table.name
        oids[table.name.casefold()] = oid
        pk = [c for c in (table.lookup(n) for n in primary_keys.get(key, ())) if c is not None]
        insert(
            "pg_class",
            **_relation(oid, table.name, "r", relam=2, relhasindex=int(bool(pk)), relreplident="d"),
        )
        # A one-column integer key is how the default schema spells an identity column
        # on every backend (SQLite's rowid, IDENTITY(1,1), GENERATED ... AS IDENTITY).
        identity = pk[0] if len(pk) == 1 else None
        for number, column in enumerate(table.columns, start=1):
            shape = pg_type(column.type_name)
            types[(shape.oid, shape.typmod)] = shape.text
            insert(
                "pg_attribute",
                attrelid=oid,
                attname=column.name,
                atttypid=shape.oid,
                atttypmod=shape.typmod,
                attnum=number,
                # A key column is never null (SQLite's rowid key says it may be).
                attnotnull=int(not column.nullable or column.name in pk),
                attisdropped=0,
                atthasdef=0,
                attgenerated="",
                attidentity="d" if column.name == identity and shape.oid in (20, 21, 23) else "",
                attcollation=100 if shape.oid in (25, 1043, 1042) else 0,
            )
        if identity is not None and pg_type(table.type_of(identity) or "").oid in (20, 21, 23):
            _add_sequence(
                insert, names=names, oids=oids, table=table, column=identity, table_oid=oid
            )
        if pk:
            keys = " ".join(str(table.column_names.index(c) + 1) for c in pk)
            index_name = f"{table.name}_pkey"
            names[oid + 1] = index_name
            insert("pg_class", **_relation(oid + 1, index_name, "i", relam=_BTREE))
            insert(
                "pg_index",
                indexrelid=oid + 1,
                indrelid=oid,
                indisprimary=1,
                indisunique=1,
                indisclustered=0,
                indisvalid=1,
                indisreplident=0,
                indkey=keys,
                indnkeyatts=len(pk),
                indnullsnotdistinct=0,
                indoption=" ".join("0" * len(pk)),
            )
            insert(
                "pg_constraint",
                oid=oid + 2,
                conname=index_name,
                conrelid=oid,
                contype="p",
                conindid=oid + 1,
                confrelid=0,
                conkey=keys,
                confkey=None,
                condeferrable=0,
                condeferred=0,
                conparentid=0,
                connamespace=_PUBLIC,
            )
    # A statement is the client's own SQL: a recursive CTE must not hold the worker.
    budget = _Budget()
    db.set_progress_handler(budget, 10_000)
    _register(db, names=names, oids=oids, types=types, tables=tables, primary_keys=primary_keys)
    return Catalog(db, threading.Lock(), budget, names, oids, types)


STEP_BUDGET = 500
"""Progress-handler calls (10,000 SQLite VM steps each) one statement may take: the
clients' statements take a few hundred thousand steps in all, a runaway one stops here."""


class _Budget:
    """A progress handler that aborts a statement after ``STEP_BUDGET`` calls."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return int(self.calls > STEP_BUDGET)


def _add_sequence(
    insert: Any,
    *,
    names: dict[int, str],
    oids: dict[str, int],
    table: TableMetadata,
    column: str,
    table_oid: int,
) -> None:
    """The sequence PostgreSQL makes for an identity column, as its catalog shows it:
    psql's ``\\d`` lists it, Django and SQLAlchemy read its options."""
    oid, name = table_oid + 3, _sequence_name(table.name, column)
    names[oid] = name
    oids[name.casefold()] = oid
    insert("pg_class", **_relation(oid, name, "S"))
    insert(
        "pg_depend",
        classid=1259,
        objid=oid,
        objsubid=0,
        refclassid=1259,
        refobjid=table_oid,
        refobjsubid=table.column_names.index(column) + 1,
        deptype="i",
    )
    big = pg_type(table.type_of(column) or "").oid == 20
    insert(
        "pg_sequence",
        seqrelid=oid,
        seqstart=1,
        seqincrement=1,
        seqmin=1,
        seqmax=(1 << 63) - 1 if big else (1 << 31) - 1,
        seqcache=1,
        seqcycle=0,
    )


def _relation(oid: int, name: str, kind: str, **overrides: object) -> dict[str, object]:
    """A ``pg_class`` row: a relation of ``kind`` (r table, i index, S sequence) in
    ``public``, with what PostgreSQL shows for a plain one, but ``overrides``."""
    row: dict[str, object] = {
        "oid": oid, "relname": name, "relnamespace": _PUBLIC, "relkind": kind,
        "relowner": 10, "relam": 0, "relpersistence": "p", "relispartition": 0,
        "relchecks": 0, "relhasindex": 0, "relhasrules": 0, "relhastriggers": 0,
        "relrowsecurity": 0, "relforcerowsecurity": 0, "reltablespace": 0, "reloftype": 0,
        "relreplident": "n", "reltoastrelid": 0, "reltype": 0,
    }  # fmt: skip
    row.update(overrides)
    return row


def _sequence_name(table: str, column: str) -> str:
    return f"{table}_{column}_seq"


def _register(
    db: sqlite3.Connection,
    *,
    names: Mapping[int, str],
    oids: Mapping[str, int],
    types: Mapping[tuple[int, int], str],
    tables: Mapping[str, TableMetadata],
    primary_keys: Mapping[str, Sequence[str]],
) -> None:
    def regexp(pattern: str | None, value: str | None) -> int | None:
        if pattern is None or value is None:
            return None
        # Case-insensitive: tenantgate's names are (psql folds `\d Contacts`).
        return int(re.search(pattern, value, re.IGNORECASE) is not None)

    def format_type(oid: int | None, typmod: int | None) -> str | None:
        if oid is None:
            return None
        found = types.get((oid, -1 if typmod is None else typmod))
        return found if found is not None else _TYPE_NAMES.get(oid, "text")

    def regclass_in(value: object) -> int | None:
        if value is None or isinstance(value, int):
            return value
        text = str(value)
        if text.isdigit():
            return int(text)
        schema, dot, name = text.partition(".")
        if dot and schema.strip('"').casefold() in ("public", "pg_catalog"):
            text = name
        return oids.get(text.strip('"').casefold())

    def serial_sequence(table: str | None, column: str | None) -> str | None:
        oid = regclass_in(table)
        if oid is None or column is None:
            return None
        name = _sequence_name(names.get(oid, ""), column.strip('"'))
        return f"public.{_quoted(name)}" if name.casefold() in oids else None

    def regclass_out(value: object) -> str | None:
        if value is None:
            return None
        oid = regclass_in(value)
        return names.get(oid, str(value)) if oid is not None else str(value)

    def constraintdef(oid: int | None, *_: object) -> str | None:
        row = db.execute(
            "SELECT c.conrelid, c.conkey FROM pg_constraint c WHERE c.oid = ?", (oid,)
        ).fetchone()
        if row is None:
            return None
        table = next(t for t in tables.values() if t.name == names.get(row[0]))
        cols = ", ".join(_quoted(table.column_names[int(k) - 1]) for k in row[1].split())
        return f"PRIMARY KEY ({cols})"

    def indexdef(oid: int | None, *_: object) -> str | None:
        row = db.execute(
            "SELECT i.indrelid, i.indkey FROM pg_index i WHERE i.indexrelid = ?", (oid,)
        ).fetchone()
        if row is None:
            return None
        table = next(t for t in tables.values() if t.name == names.get(row[0]))
        cols = ", ".join(_quoted(table.column_names[int(k) - 1]) for k in row[1].split())
        return (
            f"CREATE UNIQUE INDEX {_quoted(names[oid or 0])} ON {_quoted(table.name)} "
            f"USING btree ({cols})"
        )

    def null(*_: object) -> None:
        return None

    db.create_function("regexp", 2, regexp, deterministic=True)
    db.create_function("format_type", 2, format_type, deterministic=True)
    db.create_function("tg_regclass_in", 1, regclass_in, deterministic=True)
    db.create_function("tg_regclass_out", 1, regclass_out, deterministic=True)
    db.create_function("tg_at", 2, _element, deterministic=True)
    db.create_function("tg_vector_json", 1, _vector_json, deterministic=True)
    db.create_function("tg_array", 1, _array_text, deterministic=True)
    db.create_function("tg_sorted_array", 1, _sorted_array_text, deterministic=True)
    db.create_function("current_setting", 1, _setting, deterministic=True)
    db.create_function("pg_collation_is_visible", 1, lambda _oid: 1, deterministic=True)
    db.create_function("pg_get_constraintdef", -1, constraintdef)
    db.create_function("pg_get_indexdef", -1, indexdef)
    db.create_function("pg_table_is_visible", 1, lambda oid: int(oid in names), deterministic=True)
    db.create_function("pg_get_userbyid", 1, lambda _oid: "tenantgate", deterministic=True)
    db.create_function("current_schema", 0, lambda: "public", deterministic=True)
    db.create_function("to_regtype", 1, null, deterministic=True)
    for name in (
        "pg_get_expr",
        "obj_description",
        "col_description",
        "shobj_description",
        "pg_get_statisticsobjdef_columns",
    ):
        db.create_function(name, -1, null, deterministic=True)
    db.create_function("pg_get_serial_sequence", 2, serial_sequence, deterministic=True)
    # A table is its own only partition ancestor (there are no partitioned tables).
    db.create_function("pg_partition_ancestors", 1, regclass_in, deterministic=True)
    db.create_function("pg_relation_is_publishable", 1, lambda _oid: 0, deterministic=True)


def _element(vector: str | None, index: int | None) -> int | None:
    """``vector[index + 1]`` of an int2vector held as text (``index`` is 0-based)."""
    if vector is None or index is None:
        return None
    items = vector.split()
    return int(items[index]) if 0 <= index < len(items) else None


def _setting(name: str | None) -> str | None:
    return {"default_table_access_method": "heap", "search_path": '"$user", public'}.get(
        (name or "").casefold()
    )


def _vector_json(vector: str | None) -> str:
    """An int2vector held as text (``"1 2"``) as a JSON array, for ``json_each``."""
    return json.dumps([int(v) for v in (vector or "").split()])


def _array_text(items: str | None) -> str | None:
    """A JSON array as PostgreSQL prints a one-dimensional array: ``{a,"b c"}``."""
    if items is None:
        return None
    out = []
    for item in json.loads(items):
        if item is None:
            out.append("NULL")
            continue
        text = str(item).lower() if isinstance(item, bool) else str(item)
        if text == "" or text.upper() == "NULL" or re.search(r'[{},"\\\s]', text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(text)
    return "{" + ",".join(out) + "}"


def _sorted_array_text(pairs: str | None) -> str | None:
    """``[[key, element], ...]`` as the array of its elements in key order."""
    if pairs is None:
        return None
    ordered = sorted(json.loads(pairs), key=lambda pair: (pair[0] is None, pair[0]))
    return _array_text(json.dumps([element for _, element in ordered]))


def _quoted(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


_CACHE: dict[tuple[object, ...], Catalog] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 256


def catalog_for(
    tables: Mapping[str, TableMetadata], primary_keys: Mapping[str, Sequence[str]]
) -> Catalog:
    # Keyed by shapes, not tenants: every tenant with the default schema shares one.
    key = tuple(
        sorted((t.fingerprint, tuple(primary_keys.get(name, ()))) for name, t in tables.items())
    )
    with _CACHE_LOCK:
        found = _CACHE.get(key)
    if found is not None:
        return found
    made = _build(tables, primary_keys)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        return _CACHE.setdefault(key, made)
