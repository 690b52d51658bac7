"""Custom fields as data: validation, per-backend types, and the DDL that adds or drops them.

Pure: no I/O, no sqlglot. ``proxy.admin`` runs what this module builds, and
``proxy.records`` uses its value checks.

* ``field_spec(body)`` validates a request to add a column (name, logical type,
  nullability, default) and raises ``FieldError`` with a sentence saying what is wrong.
* ``add_column_sql`` / ``drop_column_sql`` render the DDL with every identifier quoted
  (so reserved words and mixed case are safe) and the default as a literal that this
  module *re-formats* from the validated value (an ``int``, a ``Decimal``, a ``date``...):
  the caller's text is never pasted in, except a text default, whose quotes are doubled.
  DDL takes no bind parameters on any of the three backends, which is why the default is
  a literal at all.
* ``field_type(type_name, backend)`` reads a catalog type name (``character
  varying(50)``, ``nvarchar(max)``, ``NUMERIC(18,2)``...) back into a ``FieldType``, and
  ``coerce_value`` checks a JSON value against it and returns what to bind.

Type mapping (``text`` keeps its length on SQLite as ``VARCHAR(n)`` rather than
``TEXT``: SQLite ignores it, but the catalog then reports the length, so a listing shows
it and writes are checked against it, as on the other backends):

    logical        sqlserver       postgresql      sqlite
    text(n)        NVARCHAR(n)     VARCHAR(n)      VARCHAR(n)
    integer        INT             INTEGER         INTEGER
    decimal(p,s)   DECIMAL(p,s)    NUMERIC(p,s)    NUMERIC(p,s)
    boolean        BIT             BOOLEAN         BOOLEAN
    date           DATE            DATE            DATE
    datetime       DATETIME2       TIMESTAMP       DATETIME
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from rewriter.markers import MARKER_PREFIX
from rewriter.type_names import declared_type
from tenancy.backends import BackendKind, quote_identifier

__all__ = [
    "COLUMN_LIMITS",
    "CREATABLE_KINDS",
    "FieldError",
    "FieldSpec",
    "FieldType",
    "add_column_sql",
    "coerce_value",
    "drop_column_sql",
    "field_spec",
    "field_type",
    "quote",
    "render_literal",
    "table_name",
    "use_database_sql",
    "validate_name",
]

CREATABLE_KINDS = ("text", "integer", "decimal", "boolean", "date", "datetime")

# Columns per ordinary table. PostgreSQL counts dropped columns too (they stay in
# pg_attribute until the table is rewritten), so the backend may refuse earlier than this.
COLUMN_LIMITS: dict[BackendKind, int] = {
    BackendKind.SQLSERVER: 1024,
    BackendKind.POSTGRESQL: 1600,
    BackendKind.SQLITE: 2000,
}

MAX_NAME = 128
MAX_TEXT_LENGTH = 4000  # NVARCHAR(n) stops at 4000; above that SQL Server needs MAX
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT_BITS = {16: 2**15, 32: 2**31, 64: 2**63}


class FieldError(ValueError):
    """A custom-field request or a record value that does not pass validation."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class FieldType:
    """A column's type as the API speaks of it.

    ``kind`` is one of ``CREATABLE_KINDS``, or ``float`` / ``other`` for types a column
    added outside tenantgate may have. ``length`` ``None`` on text means unbounded;
    ``bits`` is an integer's range.
    """

    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    bits: int = 64

    def sql(self, backend: BackendKind | str) -> str:
        kind = BackendKind(backend)
        if self.kind == "text":
            word = "NVARCHAR" if kind is BackendKind.SQLSERVER else "VARCHAR"
            return f"{word}({self.length})"
        if self.kind == "decimal":
            word = "DECIMAL" if kind is BackendKind.SQLSERVER else "NUMERIC"
            return f"{word}({self.precision},{self.scale})"
        names = {
            "integer": ("INT", "INTEGER", "INTEGER"),
            "boolean": ("BIT", "BOOLEAN", "BOOLEAN"),
            "date": ("DATE", "DATE", "DATE"),
            "datetime": ("DATETIME2", "TIMESTAMP", "DATETIME"),
        }
        if self.kind not in names:
            raise ValueError(f"no DDL type for kind {self.kind!r}")
        order = (BackendKind.SQLSERVER, BackendKind.POSTGRESQL, BackendKind.SQLITE)
        return names[self.kind][order.index(kind)]

    def describe(self) -> dict[str, Any]:
        """The JSON form used by the API."""
        out: dict[str, Any] = {"type": self.kind}
        if self.kind == "text":
            out["length"] = self.length
        if self.kind == "decimal":
            out["precision"] = self.precision
            out["scale"] = self.scale
        return out


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: FieldType
    nullable: bool
    default: Any  # validated and normalised (int, Decimal, bool, date, datetime, str) or None


# -- validation of an add request ---------------------------------------------------


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise FieldError("'name' must be a non-empty string", field="name")
    if len(name) > MAX_NAME:
        raise FieldError(f"'name' must be at most {MAX_NAME} characters", field="name")
    if not _NAME.fullmatch(name):
        raise FieldError(
            "'name' may contain only letters, digits and underscores and must not start "
            "with a digit",
            field="name",
        )
    if MARKER_PREFIX in name.casefold():
        raise FieldError(f"'name' may not contain {MARKER_PREFIX!r}, reserved", field="name")
    return name


def _positive_int(body: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FieldError(f"'{key}' must be an integer from {low} to {high}", field=key)
    return value


def field_spec(body: object) -> FieldSpec:
    """A validated request to add a custom field."""
    if not isinstance(body, Mapping):
        raise FieldError("the body must be a JSON object")
    allowed = {"name", "type", "length", "precision", "scale", "nullable", "default"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise FieldError(f"unknown fields: {', '.join(map(str, unknown))}")
    name = validate_name(body.get("name"))
    kind = body.get("type")
    if kind not in CREATABLE_KINDS:
        raise FieldError(f"'type' must be one of {', '.join(CREATABLE_KINDS)}", field="type")
    extra = {"text": {"length"}, "decimal": {"precision", "scale"}}.get(kind, set())
    stray = sorted({"length", "precision", "scale"} & set(body) - extra)
    if stray:
        raise FieldError(f"{', '.join(stray)} do not apply to type {kind}", field=stray[0])
    if kind == "text":
        ftype = FieldType("text", length=_positive_int(body, "length", 1, MAX_TEXT_LENGTH))
    elif kind == "decimal":
        precision = _positive_int(body, "precision", 1, 38)
        scale = _positive_int(body, "scale", 0, precision)
        ftype = FieldType("decimal", precision=precision, scale=scale)
    elif kind == "integer":
        ftype = FieldType("integer", bits=32)
    else:
        ftype = FieldType(kind)
    nullable = body.get("nullable", True)
    if not isinstance(nullable, bool):
        raise FieldError("'nullable' must be true or false", field="nullable")
    default = body.get("default")
    if default is not None:
        default = _normalise(default, ftype, "default")
    elif not nullable:
        # Required on every backend, not only on a non-empty table: SQLite refuses a NOT
        # NULL column without a default even on an empty table, and a table that is empty
        # when checked may not be when the ALTER runs.
        raise FieldError(
            "a NOT NULL field needs a 'default' for the existing rows", field="default"
        )
    return FieldSpec(name, ftype, nullable, default)


# -- values -------------------------------------------------------------------------


def _normalise(value: Any, ftype: FieldType, where: str) -> Any:
    """``value`` (decoded JSON) as the Python value of ``ftype``; ``FieldError`` if unfit."""
    kind = ftype.kind
    if kind == "text":
        if not isinstance(value, str):
            raise FieldError(f"{where}: a string is expected", field=where)
        if "\x00" in value:
            raise FieldError(f"{where}: NUL characters are not allowed", field=where)
        if ftype.length is not None and len(value) > ftype.length:
            raise FieldError(f"{where}: longer than {ftype.length} characters", field=where)
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"{where}: an integer is expected", field=where)
        bound = _INT_BITS.get(ftype.bits, 2**63)
        if not -bound <= value < bound:
            raise FieldError(f"{where}: out of range for a {ftype.bits}-bit integer", field=where)
        return value
    if kind == "decimal":
        return _decimal(value, ftype, where)
    if kind == "float":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise FieldError(f"{where}: a finite number is expected", field=where)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise FieldError(f"{where}: true or false is expected", field=where)
        return value
    # Already-normalised values (a FieldSpec's default) pass again: JSON never makes them.
    if kind == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise FieldError(f"{where}: a date 'YYYY-MM-DD' is expected", field=where)
    if kind == "datetime":
        if isinstance(value, dt.datetime):
            return value
        if isinstance(value, str) and re.fullmatch(
            r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?", value
        ):
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                pass
        raise FieldError(
            f"{where}: a date-time 'YYYY-MM-DD HH:MM[:SS[.ffffff]]' without a time zone "
            "is expected",
            field=where,
        )
    raise FieldError(f"{where}: columns of this type cannot be written here", field=where)


def _decimal(value: Any, ftype: FieldType, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise FieldError(f"{where}: a number or a numeric string is expected", field=where)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise FieldError(f"{where}: not a number", field=where) from None
    if not number.is_finite():
        raise FieldError(f"{where}: not a finite number", field=where)
    precision, scale = ftype.precision, ftype.scale
    if precision is None or scale is None:
        return number
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    places = max(0, -exponent)
    if places > scale:
        raise FieldError(f"{where}: more than {scale} decimal places", field=where)
    whole = max(0, len(digits) + exponent)
    if whole > precision - scale:
        raise FieldError(f"{where}: too large for decimal({precision},{scale})", field=where)
    return number


def coerce_value(value: Any, ftype: FieldType, where: str) -> Any:
    """The bind value for ``value`` written to a column of ``ftype``.

    Dates, date-times and decimals are bound as canonical strings (every driver binds a
    ``str``; ``proxy.records`` adds a CAST where the backend needs one).
    """
    if value is None:
        return None
    normal = _normalise(value, ftype, where)
    if isinstance(normal, Decimal):
        return format(normal, "f")
    if isinstance(normal, dt.datetime):
        return normal.isoformat(sep=" ")
    if isinstance(normal, dt.date):
        return normal.isoformat()
    return normal


def render_literal(value: Any, ftype: FieldType, backend: BackendKind | str) -> str:
    """A validated value as a SQL literal of ``backend``: rebuilt from the Python value."""
    kind = BackendKind(backend)
    normal = _normalise(value, ftype, "default")
    if isinstance(normal, bool):
        if kind is BackendKind.POSTGRESQL:
            return "TRUE" if normal else "FALSE"
        return "1" if normal else "0"
    if isinstance(normal, int):
        return str(normal)
    if isinstance(normal, Decimal):
        return format(normal, "f")
    if isinstance(normal, dt.datetime):
        return "'" + normal.isoformat(sep=" ") + "'"
    if isinstance(normal, dt.date):
        return "'" + normal.isoformat() + "'"
    if isinstance(normal, str):
        quoted = "'" + normal.replace("'", "''") + "'"
        return "N" + quoted if kind is BackendKind.SQLSERVER else quoted
    raise FieldError("default: unsupported value", field="default")


# -- reading catalog types back -----------------------------------------------------

# Integer names by the range they hold (anything else an integer by SQLite's affinity).
_INTEGER_BITS = {
    "int": 32, "integer": 32, "int4": 32, "serial": 32, "bigint": 64, "int8": 64,
    "bigserial": 64, "smallint": 16, "int2": 16, "tinyint": 16, "mediumint": 32,
}  # fmt: skip
_FIELD_KINDS = frozenset({"text", "integer", "decimal", "float", "boolean", "date", "datetime"})


def field_type(type_name: str, backend: BackendKind | str) -> FieldType:
    """The ``FieldType`` of a catalog type name (``kind`` ``other`` when unknown).

    The name is read by ``rewriter.type_names``, the one table of declared types. A
    time of day, and a timestamp with a time zone, are ``other``: the records API
    binds a datetime as a zone-less timestamp, which would shift a zoned value by the
    session's time zone instead of refusing it.
    """
    declared = declared_type(type_name)
    kind = declared.kind
    if kind not in _FIELD_KINDS or declared.zoned:
        return FieldType("other")
    first = declared.arguments[0] if declared.arguments else None
    if kind == "text":
        length = int(first) if first is not None and first.isdigit() else None
        return FieldType("text", length=length)
    if kind == "integer":
        # SQLite's INTEGER holds 64 bits whatever it is called.
        if BackendKind(backend) is BackendKind.SQLITE:
            return FieldType("integer", bits=64)
        return FieldType("integer", bits=_INTEGER_BITS.get(declared.name, 64))
    if kind == "decimal":
        if first is not None and first.isdigit():
            second = declared.arguments[1] if len(declared.arguments) > 1 else ""
            scale = int(second) if second.isdigit() else 0
            return FieldType("decimal", precision=int(first), scale=scale)
        return FieldType("decimal")
    return FieldType(kind)


# -- DDL ----------------------------------------------------------------------------


def quote(name: str, backend: BackendKind | str) -> str:
    """A delimited identifier: ``[name]`` (``]`` doubled) or ``"name"`` (``"`` doubled)."""
    try:
        return quote_identifier(name, backend)
    except ValueError as exc:
        raise FieldError(str(exc)) from None


def table_name(
    table: str, backend: BackendKind | str, catalog: str | None, schema: str | None
) -> str:
    """The tenant's table, qualified as its location says (database, schema)."""
    parts = [p for p in (catalog, schema) if p] + [table]
    return ".".join(quote(p, backend) for p in parts)


def default_constraint_name(table: str, column: str) -> str:
    """SQL Server's name for the default of a column tenantgate added.

    Named rather than system-generated so that the drop can remove it first (SQL Server
    refuses to drop a column that still has a default constraint). Hashed to stay within
    128 characters and unique within the schema.
    """
    digest = hashlib.sha256(f"{table.casefold()}\x00{column.casefold()}".encode()).hexdigest()
    return f"DF_tg_{digest[:24]}"


def add_column_sql(
    spec: FieldSpec, table: str, backend: BackendKind | str, *, catalog: str | None = None,
    schema: str | None = None,
) -> str:  # fmt: skip
    kind = BackendKind(backend)
    target = table_name(table, kind, catalog, schema)
    column = (
        f"{quote(spec.name, kind)} {spec.type.sql(kind)} {'NULL' if spec.nullable else 'NOT NULL'}"
    )
    if kind is BackendKind.SQLSERVER:
        sql = f"ALTER TABLE {target} ADD {column}"
        if spec.default is not None:
            constraint = quote(default_constraint_name(table, spec.name), kind)
            literal = render_literal(spec.default, spec.type, kind)
            sql += f" CONSTRAINT {constraint} DEFAULT {literal}"
            if spec.nullable:
                return _with_values_sql(sql)
        return sql
    sql = f"ALTER TABLE {target} ADD COLUMN {column}"
    if spec.default is not None:
        sql += f" DEFAULT {render_literal(spec.default, spec.type, kind)}"
    return sql


def _with_values_sql(add: str) -> str:
    """``add`` (an ``ALTER TABLE ... ADD`` of a NULL column with a default) such that
    existing rows get the default, as on PostgreSQL and SQLite.

    SQL Server does that by itself for a NOT NULL column, but leaves a NULL column's
    existing rows NULL unless the statement says ``WITH VALUES``. Babelfish refuses
    ``WITH VALUES`` ("'VALUES' is not currently supported") and fills the rows anyway,
    as PostgreSQL does; the batch picks the form by ``SERVERPROPERTY('Babelfish')``
    (NULL on SQL Server), through a variable because Babelfish's ``EXEC (...)`` takes no
    expression.
    """
    return (
        "DECLARE @tg_sql nvarchar(max) = CASE WHEN SERVERPROPERTY('Babelfish') IS NULL "
        f"THEN {_nstring(add + ' WITH VALUES')} ELSE {_nstring(add)} END; EXEC (@tg_sql);"
    )


def use_database_sql(database: str) -> str:
    """T-SQL that makes ``database`` the session's current database."""
    if not database or len(database) > MAX_NAME:
        raise FieldError("a SQL Server database name must be 1 to 128 characters")
    return f"USE {quote(database, BackendKind.SQLSERVER)}"


def drop_column_sql(
    column: str, table: str, backend: BackendKind | str, *, catalog: str | None = None,
    schema: str | None = None,
) -> list[str]:  # fmt: skip
    """The statements that drop ``column``, in order."""
    kind = BackendKind(backend)
    target = table_name(table, kind, catalog, schema)
    drop = f"ALTER TABLE {target} DROP COLUMN {quote(column, kind)}"
    if kind is BackendKind.SQLSERVER:
        return [_drop_default_sql(target, column), drop]
    return [drop]


def _drop_default_sql(target: str, column: str) -> str:
    """T-SQL that drops the column's default constraint, whatever its name.

    SQL Server refuses to drop a column that has a default. The constraint is looked up
    rather than assumed to be tenantgate's ``DF_tg_`` one: a column added outside
    tenantgate has a system-named default. Runs in the tenant's database (the admin API
    switches to it), where ``sys.default_constraints`` lists that database's constraints.

    Babelfish keeps a default as a PostgreSQL column default: it lists a made-up name
    that ``DROP CONSTRAINT`` does not find, and drops the column with its default
    anyway, so the constraint step is skipped there (``SERVERPROPERTY('Babelfish')`` is
    NULL on SQL Server). The statement text is built in a variable because Babelfish's
    ``EXEC (...)`` takes no expression.
    """
    return (
        "DECLARE @tg_default sysname = (SELECT TOP (1) d.name "
        "FROM sys.default_constraints AS d JOIN sys.columns AS c "
        "ON c.object_id = d.parent_object_id AND c.column_id = d.parent_column_id "
        f"WHERE d.parent_object_id = OBJECT_ID({_nstring(target)}) "
        f"AND c.name = {_nstring(column)}); "
        "DECLARE @tg_sql nvarchar(max) = "
        f"{_nstring(f'ALTER TABLE {target} DROP CONSTRAINT ')} + QUOTENAME(@tg_default); "
        "IF @tg_default IS NOT NULL AND SERVERPROPERTY('Babelfish') IS NULL EXEC (@tg_sql);"
    )


def _nstring(text: str) -> str:
    """A T-SQL Unicode string literal of ``text``."""
    return "N'" + text.replace("'", "''") + "'"
