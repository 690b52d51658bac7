"""The ``pg_catalog`` queries of psql's ``\\d``, SQLAlchemy and Django, answered from metadata.

Clients introspect a PostgreSQL server by reading its catalog. A tenant's catalog is not
tenantgate's to show (its server may be SQLite or SQL Server, and may hold other
tenants' tables), so those statements are answered here, from the tenant's
``TableMetadata`` alone:

* ``answer`` parses the statement (PostgreSQL dialect). A statement that is not one
  ``SELECT`` whose every relation is a known catalog relation is "not a catalog query"
  (``None``): the session sends it down the pipeline as usual.
* The catalog relations live in an in-memory SQLite database built from the metadata:
  ``pg_namespace`` (``public``), ``pg_class`` (one row per table, plus one per
  primary-key index), ``pg_attribute``, ``pg_type``, ``pg_index``, ``pg_constraint``
  and empty tables for the rest of what psql reads (policies, publications...). One
  database per set of table shapes (their fingerprints), cached: tenants with the
  default schema share one.
* The client's statement is rewritten (sqlglot, PostgreSQL to SQLite): its relations
  lose their ``pg_catalog.`` qualifier, ``$n`` parameters become literals, ``x =
  ANY(ARRAY[...])`` becomes ``IN``, ``::regclass`` casts become lookups,
  ``OPERATOR(pg_catalog.~)`` a regular-expression match. Python functions stand in for
  ``format_type``, ``pg_table_is_visible``, ``pg_get_expr``, ``obj_description``...
* Booleans are 0/1 in SQLite. Result types come from sqlglot's type annotation of the
  PostgreSQL statement over the catalog's schema; boolean columns are turned back
  into ``True``/``False``.

A statement that reads only catalog relations but that this module cannot run
(arrays of ``unnest ... WITH ORDINALITY``, ``array_agg``, ``json_build_object``...)
raises ``CatalogQueryUnsupported``: it must never be forwarded to a real catalog.

Names match case-insensitively, as everywhere in tenantgate: ``\\d Contacts`` (which
psql folds to ``^(contacts)$``) finds ``Contacts``, where a real server would not.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

if TYPE_CHECKING:
    from tenancy.metadata import TableMetadata

__all__ = ["Answer", "CatalogQueryUnsupported", "answer"]


class CatalogQueryUnsupported(Exception):
    """A statement that reads only the catalog, in a form this module cannot answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A catalog query's result: column names, their stable type names, rows."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    """``proxy.drivers.base.TYPE_NAMES`` values: ``integer``, ``boolean``, ``string``."""
    rows: list[tuple[object, ...]]


# -- the catalog's shape ------------------------------------------------------------

_B, _I, _T = "bool", "bigint", "text"

_RELATIONS: dict[str, dict[str, str]] = {
    "pg_namespace": {"oid": _I, "nspname": _T, "nspowner": _I},
    "pg_class": {
        "oid": _I,
        "relname": _T,
        "relnamespace": _I,
        "relkind": _T,
        "relowner": _I,
        "relam": _I,
        "relpersistence": _T,
        "relispartition": _B,
        "relchecks": _I,
        "relhasindex": _B,
        "relhasrules": _B,
        "relhastriggers": _B,
        "relrowsecurity": _B,
        "relforcerowsecurity": _B,
        "reltablespace": _I,
        "reloftype": _I,
        "relreplident": _T,
        "reltoastrelid": _I,
        "reloptions": _T,
        "reltype": _I,
    },
    "pg_attribute": {
        "attrelid": _I,
        "attname": _T,
        "atttypid": _I,
        "atttypmod": _I,
        "attnum": _I,
        "attnotnull": _B,
        "attisdropped": _B,
        "atthasdef": _B,
        "attidentity": _T,
        "attgenerated": _T,
        "attcollation": _I,
        "attoptions": _T,
    },
    "pg_type": {
        "oid": _I,
        "typname": _T,
        "typtype": _T,
        "typnotnull": _B,
        "typcollation": _I,
        "typarray": _I,
        "typdelim": _T,
        "typnamespace": _I,
    },
    "pg_index": {
        "indexrelid": _I,
        "indrelid": _I,
        "indisprimary": _B,
        "indisunique": _B,
        "indisclustered": _B,
        "indisvalid": _B,
        "indisreplident": _B,
        "indkey": _T,
        "indexprs": _T,
        "indpred": _T,
        "indnkeyatts": _I,
        "indnullsnotdistinct": _B,
        "indoption": _T,
    },
    "pg_constraint": {
        "oid": _I,
        "conname": _T,
        "conrelid": _I,
        "contype": _T,
        "conindid": _I,
        "confrelid": _I,
        "conkey": _T,
        "confkey": _T,
        "condeferrable": _B,
        "condeferred": _B,
        "conparentid": _I,
        "connamespace": _I,
    },
    "pg_am": {"oid": _I, "amname": _T},
    "pg_attrdef": {"oid": _I, "adrelid": _I, "adnum": _I, "adbin": _T},
    "pg_collation": {"oid": _I, "collname": _T},
    "pg_description": {"objoid": _I, "classoid": _I, "objsubid": _I, "description": _T},
    "pg_policy": {
        "polname": _T,
        "polpermissive": _B,
        "polroles": _T,
        "polqual": _T,
        "polwithcheck": _T,
        "polrelid": _I,
        "polcmd": _T,
    },
    "pg_statistic_ext": {
        "oid": _I,
        "stxrelid": _I,
        "stxnamespace": _I,
        "stxname": _T,
        "stxkind": _T,
        "stxstattarget": _I,
    },
    "pg_publication": {"oid": _I, "pubname": _T, "puballtables": _B},
    "pg_publication_namespace": {"pnpubid": _I, "pnnspid": _I},
    "pg_publication_rel": {"prpubid": _I, "prrelid": _I, "prqual": _T, "prattrs": _T},
    "pg_inherits": {"inhrelid": _I, "inhparent": _I, "inhseqno": _I, "inhdetachpending": _B},
    "pg_depend": {
        "classid": _I,
        "objid": _I,
        "objsubid": _I,
        "refclassid": _I,
        "refobjid": _I,
        "refobjsubid": _I,
        "deptype": _T,
    },
    "pg_tablespace": {"oid": _I, "spcname": _T},
    "pg_sequence": {
        "seqrelid": _I,
        "seqstart": _I,
        "seqincrement": _I,
        "seqmin": _I,
        "seqmax": _I,
        "seqcache": _I,
        "seqcycle": _B,
    },
    "pg_roles": {"oid": _I, "rolname": _T},
    "pg_trigger": {"oid": _I, "tgrelid": _I, "tgname": _T, "tgisinternal": _B},
    "pg_rewrite": {"oid": _I, "ev_class": _I, "rulename": _T},
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
class _Catalog:
    db: sqlite3.Connection
    lock: threading.Lock
    names: dict[int, str]
    """Oid → relation name (``::regclass`` output)."""
    oids: dict[str, int]
    """Case-folded relation name → oid (``'name'::regclass`` input)."""
    types: dict[tuple[int, int], str]


def _build(
    tables: Mapping[str, TableMetadata], primary_keys: Mapping[str, Sequence[str]]
) -> _Catalog:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    for relation, columns in _RELATIONS.items():
        body = ", ".join(f'"{c}" {"INTEGER" if t != _T else "TEXT"}' for c, t in columns.items())
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
            oid=oid,
            relname=table.name,
            relnamespace=_PUBLIC,
            relkind="r",
            relowner=10,
            relam=2,
            relpersistence="p",
            relispartition=0,
            relchecks=0,
            relhasindex=int(bool(pk)),
            relhasrules=0,
            relhastriggers=0,
            relrowsecurity=0,
            relforcerowsecurity=0,
            reltablespace=0,
            reloftype=0,
            relreplident="d",
            reltoastrelid=0,
            reltype=0,
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
            _add_sequence(insert, names, oids, table, identity, oid)
        if pk:
            keys = " ".join(str(table.column_names.index(c) + 1) for c in pk)
            index_name = f"{table.name}_pkey"
            names[oid + 1] = index_name
            insert(
                "pg_class",
                oid=oid + 1,
                relname=index_name,
                relnamespace=_PUBLIC,
                relkind="i",
                relowner=10,
                relam=_BTREE,
                relpersistence="p",
                relispartition=0,
                relchecks=0,
                relhasindex=0,
                relhasrules=0,
                relhastriggers=0,
                relrowsecurity=0,
                relforcerowsecurity=0,
                reltablespace=0,
                reloftype=0,
                relreplident="n",
                reltoastrelid=0,
                reltype=0,
            )
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
    _register(db, names=names, oids=oids, types=types, tables=tables, primary_keys=primary_keys)
    return _Catalog(db, threading.Lock(), names, oids, types)


def _add_sequence(
    insert: Any,
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
    insert(
        "pg_class",
        oid=oid,
        relname=name,
        relnamespace=_PUBLIC,
        relkind="S",
        relowner=10,
        relam=0,
        relpersistence="p",
        relispartition=0,
        relchecks=0,
        relhasindex=0,
        relhasrules=0,
        relhastriggers=0,
        relrowsecurity=0,
        relforcerowsecurity=0,
        reltablespace=0,
        reloftype=0,
        relreplident="n",
        reltoastrelid=0,
        reltype=0,
    )
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


def _quoted(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


_CACHE: dict[tuple[object, ...], _Catalog] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 256


def _catalog_for(
    tables: Mapping[str, TableMetadata], primary_keys: Mapping[str, Sequence[str]]
) -> _Catalog:
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


# -- rewriting the client's statement -------------------------------------------------

_SCHEMAS = frozenset({"pg_catalog", "information_schema", ""})


def _is_catalog_query(tree: exp.Expr) -> bool:
    """One query whose every relation is a catalog relation (and there is at least one)."""
    if not isinstance(tree, exp.Query):
        return False
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found = False
    for table in tree.find_all(exp.Table):
        name = table.name
        if not name:
            continue  # a table function (unnest(...)): its arguments are checked elsewhere
        if name in ctes and not table.db:
            continue
        if table.db not in _SCHEMAS or name not in _RELATIONS:
            return False
        found = True
    return found


def _literal(value: object) -> exp.Expr:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Literal.number(int(value))
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _cast_kind(cast: exp.Cast) -> str:
    to = cast.to
    kind = to.args.get("kind")
    if isinstance(kind, exp.Dot):
        return str(kind.expression.name).casefold()
    if to.this == exp.DataType.Type.USERDEFINED and kind is not None:
        return str(kind).casefold()
    return to.sql("postgres").casefold()


def _rewrite(tree: exp.Expr, params: Sequence[object]) -> exp.Expr:
    """The statement in SQLite's terms, over the catalog's tables (two passes: names and
    values first, so that the structural rewrites of the second see plain nodes)."""

    def leaves(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Parameter):
            index = int(node.name) - 1
            if not 0 <= index < len(params):
                raise CatalogQueryUnsupported(f"parameter ${index + 1} has no value")
            return _literal(params[index])
        if isinstance(node, exp.Table) and node.db in _SCHEMAS:
            node.set("db", None)
            node.set("catalog", None)
        elif isinstance(node, exp.Column) and node.args.get("db") is not None:
            node.set("db", None)
        elif isinstance(node, exp.Dot) and node.this.name == "pg_catalog":
            inner: exp.Expr = node.expression.transform(leaves, copy=False)
            return inner
        elif isinstance(node, exp.Collate):
            collated: exp.Expr = node.this
            return collated
        return node

    def structure(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Operator):
            operator = str(node.args.get("operator", "")).rsplit(".", 1)[-1]
            if operator == "~":
                return exp.RegexpLike(this=node.this, expression=node.expression)
            raise CatalogQueryUnsupported(f"operator {operator}")
        if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any):
            inner = node.expression.this
            inner = inner.this if isinstance(inner, exp.Paren) else inner
            if isinstance(inner, exp.Array):
                return exp.In(this=node.this, expressions=list(inner.expressions))
        if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
            # int2vector columns (conkey, indkey) are held as PostgreSQL prints them: "1 2".
            return exp.Anonymous(this="tg_at", expressions=[node.this, node.expressions[0]])
        if isinstance(node, exp.Cast):
            kind = _cast_kind(node)
            if kind in ("regclass", "oid") and isinstance(node.this, exp.Literal):
                return exp.Anonymous(this="tg_regclass_in", expressions=[node.this])
            if kind == "regclass":
                parent = node.parent
                shown = isinstance(parent, exp.Alias | exp.Select) or (
                    isinstance(parent, exp.Cast) and _cast_kind(parent) == "text"
                )
                name = "tg_regclass_out" if shown else "tg_regclass_in"
                return exp.Anonymous(this=name, expressions=[node.this])
            if kind in ("text", "varchar", "integer", "int", "bigint", "oid", "name", "char"):
                # SQLite compares by value and the answer's text is the same either way.
                uncast: exp.Expr = node.this
                return uncast
        return node

    return tree.transform(leaves, copy=True).transform(structure, copy=False)


_ALWAYS_EMPTY = frozenset(
    {
        "pg_policy",
        "pg_statistic_ext",
        "pg_publication",
        "pg_publication_namespace",
        "pg_publication_rel",
        "pg_inherits",
        "pg_trigger",
        "pg_rewrite",
        "pg_attrdef",
        "pg_collation",
        "pg_description",
    }
)
"""Relations that hold no rows for any tenant: no policies, triggers, comments..."""


def _surely_empty(tree: exp.Expr) -> bool:
    """True when every branch inner-joins an always-empty relation and aggregates nothing.

    psql's ``\\d`` reads policies, statistics, publications, triggers and partitions
    with functions and array operators that SQLite lacks; their answer is known without
    running them.
    """
    if isinstance(tree, exp.Union):
        return _surely_empty(tree.left) and _surely_empty(tree.right)
    if not isinstance(tree, exp.Select):
        return False
    if tree.args.get("group") is None and any(
        agg.parent_select is tree for s in tree.selects for agg in s.find_all(exp.AggFunc)
    ):
        return False  # one row even over nothing (count(*))
    sources: list[exp.Expr] = []
    from_ = tree.args.get("from_") or tree.args.get("from")
    if from_ is not None:
        sources.append(from_.this)
    for join in tree.args.get("joins") or ():
        if not join.side and join.kind.upper() not in ("OUTER", "FULL"):
            sources.append(join.this)
    return any(isinstance(t, exp.Table) and t.name in _ALWAYS_EMPTY for t in sources)


_UNSUPPORTED = (exp.ArrayAgg, exp.Explode, exp.Unnest, exp.JSONObject)


def _schema() -> dict[str, dict[str, str]]:
    return {
        name: {c: ("boolean" if t == _B else t) for c, t in cols.items()}
        for name, cols in _RELATIONS.items()
    }


_ANNOTATE_SCHEMA: dict[str, object] = {"pg_catalog": _schema(), "public": _schema()}


def _result_types(tree: exp.Expr) -> list[str] | None:
    """Each output column's stable type name, from sqlglot's annotation, if it works."""
    try:
        qualified = qualify(
            tree.copy(),
            schema=_ANNOTATE_SCHEMA,
            dialect="postgres",
            db="pg_catalog",
            validate_qualify_columns=False,
            identify=False,
        )
        typed = annotate_types(qualified, schema=_ANNOTATE_SCHEMA, dialect="postgres")
    except (SqlglotError, KeyError, ValueError, TypeError, AttributeError):
        return None
    if not isinstance(typed, exp.Query):
        return None
    out = []
    for select in typed.selects:
        kind = select.type.this if select.type is not None else None
        if kind == exp.DataType.Type.BOOLEAN:
            out.append("boolean")
        elif kind in exp.DataType.INTEGER_TYPES:
            out.append("integer")
        else:
            out.append("string")
    return out


def _figure_name(node: exp.Expr) -> str | None:
    """The name PostgreSQL gives an unaliased output column (its ``FigureColname``)."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column):
        return node.name
    if isinstance(node, exp.Dot):
        return _figure_name(node.expression)
    if isinstance(node, exp.Cast):
        inner = _figure_name(node.this)
        return inner if inner is not None else _cast_kind(node)
    if isinstance(node, exp.Case):
        default = node.args.get("default")
        found = _figure_name(default) if default is not None else None
        return found if found is not None else "case"
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
        return _figure_name(node.this.selects[0])
    if isinstance(node, exp.Array):
        return "array"
    if isinstance(node, exp.Anonymous):
        return str(node.this).casefold()
    if isinstance(node, exp.Func) and not isinstance(node, exp.Predicate | exp.Binary):
        return node.sql_name().casefold()
    if isinstance(node, exp.Boolean):
        return "bool"
    return None


def _column_names(tree: exp.Query) -> list[str]:
    return [_figure_name(select) or "?column?" for select in tree.selects]


def answer(
    sql: str,
    tables: Mapping[str, TableMetadata],
    params: Sequence[object] = (),
    *,
    primary_keys: Mapping[str, Sequence[str]] | None = None,
) -> Answer | None:
    """The answer to ``sql`` if it reads only the catalog, else ``None``.

    ``tables`` are the tenant's tables (name → metadata); ``params`` the values of
    ``$1``, ``$2``...; ``primary_keys`` (name → key columns) what the tenant's catalog
    says of them, if known. Raises ``CatalogQueryUnsupported`` for a catalog query this
    module cannot run.
    """
    try:
        parsed = sqlglot.parse(sql, read="postgres")
    except SqlglotError:
        return None
    statements = [s for s in parsed if s is not None]
    if len(statements) != 1 or not _is_catalog_query(statements[0]):
        return None
    tree = statements[0]
    assert isinstance(tree, exp.Query)
    if _surely_empty(tree):
        names = _column_names(tree)
        return Answer(tuple(names), tuple(_result_types(tree) or ["string"] * len(names)), [])
    if tree.find(*_UNSUPPORTED) is not None or any(
        isinstance(f, exp.Anonymous)
        and str(f.this).casefold()
        in ("json_build_object", "array_to_string", "generate_subscripts")
        for f in tree.find_all(exp.Anonymous)
    ):
        raise CatalogQueryUnsupported("arrays and JSON of the catalog are not answered yet")
    try:
        rewritten = _rewrite(tree, params).sql("sqlite")
    except SqlglotError as error:
        raise CatalogQueryUnsupported(str(error)) from None
    catalog = _catalog_for(tables, primary_keys or {})
    try:
        with catalog.lock:
            rows = catalog.db.execute(rewritten).fetchall()
    except sqlite3.Error as error:
        raise CatalogQueryUnsupported(str(error)) from None
    names = _column_names(tree)
    kinds = _result_types(tree) or ["string"] * len(names)
    booleans = [i for i, k in enumerate(kinds) if k == "boolean"]
    converted: list[tuple[object, ...]] = []
    for row in rows:
        if booleans:
            values: list[Any] = list(row)
            for i in booleans:
                if values[i] is not None:
                    values[i] = bool(values[i])
            converted.append(tuple(values))
        else:
            converted.append(tuple(row))
    return Answer(tuple(names), tuple(kinds), converted)
