"""``proxy.pipeline.describe.stable_type``: a declared type as each backend's driver
loads its values (the integration tests check it against executed results)."""

from __future__ import annotations

import pytest

from proxy.pipeline.describe import stable_type
from rewriter.infer import TypeHint
from rewriter.type_names import kind_of_type_name

# (declared type, PostgreSQL, SQL Server, SQLite)
DECLARED = [
    ("integer", "integer", "integer", "integer"),
    ("bigint", "integer", "integer", "integer"),
    ("numeric(18,2)", "decimal", "decimal", "number"),  # sqlite3's NUMERIC converter: float
    ("decimal(18,2)", "decimal", "decimal", "decimal"),
    ("double precision", "number", "number", "number"),
    ("real", "number", "number", "number"),
    ("character varying(50)", "string", "string", "string"),
    ("nvarchar(max)", "string", "string", "string"),
    ("text", "string", "string", "string"),
    ("boolean", "boolean", "boolean", "boolean"),
    ("bit", "string", "boolean", "boolean"),  # PostgreSQL's bit is a bit string
    ("date", "date", "date", "date"),
    ("timestamp without time zone", "datetime", "datetime", "datetime"),
    ("timestamp with time zone", "datetime", "datetime", "datetime"),
    ("timestamp", "datetime", "binary", "datetime"),  # SQL Server's timestamp: rowversion
    ("datetime2(7)", "datetime", "datetime", "unknown"),  # no sqlite3 converter
    ("datetimeoffset", "datetime", "datetime", "unknown"),
    ("time without time zone", "time", "time", "time"),
    ("time with time zone", "string", "time", "time"),
    ("uuid", "uuid", "unknown", "unknown"),
    ("uniqueidentifier", "string", "string", "unknown"),
    ("bytea", "binary", "unknown", "unknown"),
    ("varbinary(16)", "string", "binary", "unknown"),
    ("BLOB", "string", "unknown", "binary"),
    ("money", "string", "decimal", "unknown"),
    ("interval", "string", "unknown", "integer"),  # SQLite: "INT" in the name
    ("jsonb", "string", "unknown", "unknown"),
    ("integer[]", "string", "integer", "integer"),
    ("VARYING CHARACTER(20)", "string", "string", "string"),
    ("", "string", "unknown", "unknown"),
]


@pytest.mark.parametrize(("declared", "postgresql", "sqlserver", "sqlite"), DECLARED)
def test_declared(declared: str, postgresql: str, sqlserver: str, sqlite: str) -> None:
    hint = TypeHint(kind=kind_of_type_name(declared), declared=declared)
    assert stable_type(hint, "postgresql") == postgresql
    assert stable_type(hint, "sqlserver") == sqlserver
    assert stable_type(hint, "sqlite") == sqlite


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("text", "string"),
        ("integer", "integer"),
        ("decimal", "decimal"),
        ("float", "number"),
        ("date", "date"),
        ("datetime", "datetime"),
        ("time", "time"),
        ("boolean", "boolean"),
        (None, "unknown"),
    ],
)
def test_kinds_of_expressions(kind: str | None, expected: str) -> None:
    for backend in ("postgresql", "sqlserver", "sqlite"):
        assert stable_type(TypeHint(kind=kind), backend) == expected
