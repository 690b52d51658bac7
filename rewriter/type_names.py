"""Declared type names and the logical kind of value each holds: the one table of them.

A column's declared type, as a catalog spells it (SQL Server's ``nvarchar(50)``,
PostgreSQL's ``format_type`` such as ``character varying(50)`` or ``timestamp(3)
with time zone``, SQLite's free-form ``VARYING CHARACTER(20)``), is read here and
nowhere else. Two readers share it:

* the rewriter (``rewriter.transforms.types``): what kind of value an expression
  yields, for transforms that depend on operand types;
* ``tenancy.ddl.field_type``: what values a column takes through the records API, and
  the custom-field type a column is listed as.

Kinds: ``text``, ``integer``, ``decimal`` (exact, with a scale), ``float``, ``date``,
``datetime``, ``time``, ``boolean``; ``None`` for a name that holds none of them
(``uuid``, ``interval``, ``point``, ``bytea``). Names SQLite has never heard of follow
its affinity rules (a name containing ``CHAR``, ``CLOB`` or ``TEXT`` is text, one
containing ``INT`` an integer). ``zoned`` marks a datetime or time that carries a time
zone (``timestamptz``, ``datetimeoffset``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = [
    "BOOLEAN",
    "DATE",
    "DATETIME",
    "DECIMAL",
    "FLOAT",
    "INTEGER",
    "NUMBERS",
    "TEMPORAL",
    "TEXT",
    "TIME",
    "DeclaredType",
    "declared_type",
    "kind_of_type_name",
]

TEXT = "text"
INTEGER = "integer"
DECIMAL = "decimal"  # exact numeric with a scale: DECIMAL, NUMERIC, MONEY
FLOAT = "float"
DATE = "date"
DATETIME = "datetime"
TIME = "time"
BOOLEAN = "boolean"
NUMBERS = frozenset({INTEGER, DECIMAL, FLOAT})
TEMPORAL = frozenset({DATE, DATETIME, TIME})

# Declared type names (SQL Server, PostgreSQL ``format_type``, SQLite) by kind; words
# are single-word names, and the phrases after "|" are names of several words.
_NAMES: dict[str, str] = {}
for _kind, _names in {
    TEXT: "char character varchar nchar nvarchar text ntext clob string citext "
    "bpchar|character varying|national character varying|national character",
    INTEGER: "int integer bigint smallint tinyint mediumint int2 int4 int8 serial bigserial",
    DECIMAL: "decimal numeric money smallmoney",
    FLOAT: "real float double float4 float8|double precision",
    DATE: "date",
    DATETIME: "datetime datetime2 smalldatetime timestamp timestamptz datetimeoffset"
    "|timestamp without time zone|timestamp with time zone",
    TIME: "time timetz|time without time zone|time with time zone",
    BOOLEAN: "bit boolean bool",
}.items():
    _words, _, _phrases = _names.partition("|")
    for _name in [*_words.split(), *filter(None, _phrases.split("|"))]:
        _NAMES[_name] = _kind

_ZONED = frozenset(
    {"timestamptz", "timestamp with time zone", "datetimeoffset", "timetz", "time with time zone"}
)
_ARGUMENTS = re.compile(r"\s*\(([^()]*)\)")
_INT_WORD = re.compile(r"\bint")


@dataclass(frozen=True, slots=True)
class DeclaredType:
    """A declared type name, read."""

    name: str
    """The name without its arguments, casefolded, spaces collapsed:
    ``'timestamp with time zone'`` for ``TIMESTAMP(3) WITH TIME ZONE``."""
    kind: str | None
    arguments: tuple[str, ...] = ()
    """What the parentheses held, split at commas: ``('18', '2')``, ``('max',)``."""
    zoned: bool = False


@functools.lru_cache(maxsize=1024)
def declared_type(type_name: str) -> DeclaredType:
    """``'numeric(18, 2)'`` -> ``DeclaredType('numeric', 'decimal', ('18', '2'))``."""
    folded = type_name.casefold()
    found = _ARGUMENTS.search(folded)
    arguments = tuple(a.strip() for a in found.group(1).split(",")) if found else ()
    name = " ".join(_ARGUMENTS.sub(" ", folded).split())
    kind = _NAMES.get(name)
    if kind is None:
        kind = _affinity(name)
    return DeclaredType(name, kind, arguments, name in _ZONED)


def kind_of_type_name(type_name: str) -> str | None:
    """``'character varying(50)'`` -> ``'text'``; unknown names -> ``None``."""
    return declared_type(type_name).kind


def _affinity(name: str) -> str | None:
    # SQLite's rules for names it has never heard of ("VARYING CHARACTER").
    if any(part in name for part in ("char", "clob", "text")):
        return TEXT
    if _INT_WORD.search(name) and "interval" not in name and "point" not in name:
        return INTEGER
    return None
