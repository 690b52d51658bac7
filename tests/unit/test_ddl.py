"""``tenancy.ddl``: custom-field validation, per-backend types and literals, DDL text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from tenancy import ddl
from tenancy.backends import BackendKind

PG, LITE, MSSQL = BackendKind.POSTGRESQL, BackendKind.SQLITE, BackendKind.SQLSERVER


@pytest.mark.parametrize(
    ("body", "mssql", "pg", "lite"),
    [
        ({"type": "text", "length": 50}, "NVARCHAR(50)", "VARCHAR(50)", "VARCHAR(50)"),
        ({"type": "integer"}, "INT", "INTEGER", "INTEGER"),
        (
            {"type": "decimal", "precision": 18, "scale": 2},
            "DECIMAL(18,2)", "NUMERIC(18,2)", "NUMERIC(18,2)",
        ),
        ({"type": "boolean"}, "BIT", "BOOLEAN", "BOOLEAN"),
        ({"type": "date"}, "DATE", "DATE", "DATE"),
        ({"type": "datetime"}, "DATETIME2", "TIMESTAMP", "DATETIME"),
    ],
)  # fmt: skip
def test_type_mapping_per_backend(body: dict[str, Any], mssql: str, pg: str, lite: str) -> None:
    spec = ddl.field_spec({"name": "f", **body})
    assert (spec.type.sql(MSSQL), spec.type.sql(PG), spec.type.sql(LITE)) == (mssql, pg, lite)


@pytest.mark.parametrize(
    "name", ["a", "_x", "Custom_Region", "select", "ORDER", "x" * 128, "A1_b2"]
)
def test_valid_names(name: str) -> None:
    assert ddl.validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "1a", "a b", "a-b", 'a"b', "a]b", "é", "x" * 129, None, 5, "a;", "a\x00",
     # The rewriter's reserved prefix, in any case and anywhere (issue #9, item 7).
     "__tenantgate_x", "__TenantGate_p1__", "a__tenantgate_b"],
)  # fmt: skip
def test_invalid_names(name: Any) -> None:
    with pytest.raises(ddl.FieldError):
        ddl.validate_name(name)


@pytest.mark.parametrize(
    "body",
    [
        "not an object",
        {"name": "a"},
        {"name": "a", "type": "float"},
        {"name": "a", "type": "text"},
        {"name": "a", "type": "text", "length": 0},
        {"name": "a", "type": "text", "length": 4001},
        {"name": "a", "type": "text", "length": True},
        {"name": "a", "type": "integer", "length": 5},
        {"name": "a", "type": "decimal", "precision": 39, "scale": 0},
        {"name": "a", "type": "decimal", "precision": 5, "scale": 6},
        {"name": "a", "type": "decimal", "precision": 5},
        {"name": "a", "type": "integer", "nullable": "no"},
        {"name": "a", "type": "integer", "nullable": False},
        {"name": "a", "type": "integer", "default": 2**31},
        {"name": "a", "type": "integer", "default": "1"},
        {"name": "a", "type": "integer", "default": True},
        {"name": "a", "type": "boolean", "default": 1},
        {"name": "a", "type": "text", "length": 3, "default": "toolong"},
        {"name": "a", "type": "text", "length": 9, "default": "nul\x00"},
        {"name": "a", "type": "decimal", "precision": 4, "scale": 2, "default": "123.4"},
        {"name": "a", "type": "decimal", "precision": 4, "scale": 2, "default": "1.234"},
        {"name": "a", "type": "decimal", "precision": 4, "scale": 2, "default": "NaN"},
        {"name": "a", "type": "decimal", "precision": 4, "scale": 2, "default": "1e400"},
        {"name": "a", "type": "date", "default": "2024-02-30"},
        {"name": "a", "type": "date", "default": "20240101"},
        {"name": "a", "type": "datetime", "default": "2024-01-01T00:00:00+02:00"},
        {"name": "a", "type": "datetime", "default": "2024-01-01'; DROP"},
        {"name": "a", "type": "integer", "color": "red"},
    ],
)
def test_refused_specs(body: Any) -> None:
    with pytest.raises(ddl.FieldError):
        ddl.field_spec(body)


def test_not_null_needs_a_default() -> None:
    spec = ddl.field_spec({"name": "a", "type": "integer", "nullable": False, "default": 0})
    assert spec.nullable is False and spec.default == 0


@pytest.mark.parametrize(
    ("ftype", "value", "backend", "literal"),
    [
        (ddl.FieldType("text", length=20), "it's", PG, "'it''s'"),
        (ddl.FieldType("text", length=20), "it's", MSSQL, "N'it''s'"),
        (ddl.FieldType("text", length=40), "'); DROP TABLE t; --", LITE, "'''); DROP TABLE t; --'"),
        (ddl.FieldType("integer", bits=32), -7, PG, "-7"),
        (ddl.FieldType("decimal", precision=6, scale=2), "0012.5", PG, "12.5"),
        (ddl.FieldType("decimal", precision=6, scale=2), 3, MSSQL, "3"),
        (ddl.FieldType("boolean"), True, PG, "TRUE"),
        (ddl.FieldType("boolean"), False, MSSQL, "0"),
        (ddl.FieldType("boolean"), True, LITE, "1"),
        (ddl.FieldType("date"), "2024-02-29", PG, "'2024-02-29'"),
        (ddl.FieldType("datetime"), "2024-02-29T01:02", LITE, "'2024-02-29 01:02:00'"),
    ],
)  # fmt: skip
def test_literals_are_rebuilt_from_validated_values(
    ftype: ddl.FieldType, value: Any, backend: BackendKind, literal: str
) -> None:
    assert ddl.render_literal(value, ftype, backend) == literal


def test_add_column_sql_per_backend() -> None:
    spec = ddl.field_spec(
        {"name": "Select", "type": "text", "length": 10, "nullable": False, "default": "a"}
    )
    assert ddl.add_column_sql(spec, "Contacts", PG, schema="public") == (
        'ALTER TABLE "public"."Contacts" ADD COLUMN "Select" VARCHAR(10) NOT NULL DEFAULT \'a\''
    )
    assert ddl.add_column_sql(spec, 'We"ird', LITE) == (
        'ALTER TABLE "We""ird" ADD COLUMN "Select" VARCHAR(10) NOT NULL DEFAULT \'a\''
    )
    mssql = ddl.add_column_sql(spec, "Contacts", MSSQL, catalog="t]1", schema="dbo")
    constraint = ddl.default_constraint_name("Contacts", "Select")
    # NOT NULL: SQL Server fills existing rows with the default without WITH VALUES
    # (which Babelfish refuses).
    assert mssql == (
        "ALTER TABLE [t]]1].[dbo].[Contacts] ADD [Select] NVARCHAR(10) NOT NULL "
        f"CONSTRAINT [{constraint}] DEFAULT N'a'"
    )
    nullable = ddl.field_spec({"name": "n", "type": "integer", "default": 7})
    # NULL: without WITH VALUES SQL Server would leave the existing rows NULL; Babelfish
    # refuses the clause and fills them anyway, so the batch picks by engine.
    add = (
        "ALTER TABLE [db].[dbo].[T] ADD [n] INT NULL "
        f"CONSTRAINT [{ddl.default_constraint_name('T', 'n')}] DEFAULT 7"
    )
    assert ddl.add_column_sql(nullable, "T", MSSQL, catalog="db", schema="dbo") == (
        "DECLARE @tg_sql nvarchar(max) = CASE WHEN SERVERPROPERTY('Babelfish') IS NULL "
        f"THEN N'{add} WITH VALUES' ELSE N'{add}' END; EXEC (@tg_sql);"
    )
    quoted = ddl.field_spec({"name": "q", "type": "text", "length": 5, "default": "it's"})
    # The default's quotes are doubled once in the literal and again in the batch text.
    assert "DEFAULT N''it''''s''" in ddl.add_column_sql(quoted, "T", MSSQL, catalog="db")
    plain = ddl.field_spec({"name": "n", "type": "integer"})
    assert ddl.add_column_sql(plain, "T", MSSQL, catalog="db", schema="dbo") == (
        "ALTER TABLE [db].[dbo].[T] ADD [n] INT NULL"
    )


def test_use_database_sql_quotes_the_name() -> None:
    assert ddl.use_database_sql("t]1") == "USE [t]]1]"
    for bad in ("", "x" * 129):
        with pytest.raises(ddl.FieldError):
            ddl.use_database_sql(bad)


def test_drop_column_sql_per_backend() -> None:
    assert ddl.drop_column_sql("c", "T", LITE) == ['ALTER TABLE "T" DROP COLUMN "c"']
    assert ddl.drop_column_sql("c", "T", PG, schema="s") == ['ALTER TABLE "s"."T" DROP COLUMN "c"']
    constraint = ddl.default_constraint_name("T", "c")
    assert len(constraint) <= 128 and constraint == ddl.default_constraint_name("t", "C")
    # SQL Server: first whatever default the column has (named by tenantgate or by the
    # server, for a column added outside), then the column.
    first, drop = ddl.drop_column_sql("c", "T", MSSQL, catalog="db", schema="dbo")
    assert drop == "ALTER TABLE [db].[dbo].[T] DROP COLUMN [c]"
    assert "OBJECT_ID(N'[db].[dbo].[T]') AND c.name = N'c'" in first
    assert "N'ALTER TABLE [db].[dbo].[T] DROP CONSTRAINT ' + QUOTENAME(@tg_default)" in first
    odd, _ = ddl.drop_column_sql("it's", "O'T", MSSQL, catalog="d'b", schema="dbo")
    assert "OBJECT_ID(N'[d''b].[dbo].[O''T]') AND c.name = N'it''s'" in odd


@pytest.mark.parametrize(
    ("type_name", "backend", "expected"),
    [
        ("character varying(50)", PG, ddl.FieldType("text", length=50)),
        ("VARCHAR(50)", LITE, ddl.FieldType("text", length=50)),
        ("nvarchar(max)", MSSQL, ddl.FieldType("text")),
        ("text", PG, ddl.FieldType("text")),
        ("integer", PG, ddl.FieldType("integer", bits=32)),
        ("INTEGER", LITE, ddl.FieldType("integer", bits=64)),
        ("bigint", PG, ddl.FieldType("integer", bits=64)),
        ("int", MSSQL, ddl.FieldType("integer", bits=32)),
        ("numeric(18,2)", PG, ddl.FieldType("decimal", precision=18, scale=2)),
        ("decimal(9,0)", MSSQL, ddl.FieldType("decimal", precision=9, scale=0)),
        ("boolean", PG, ddl.FieldType("boolean")),
        ("bit", MSSQL, ddl.FieldType("boolean")),
        ("timestamp without time zone", PG, ddl.FieldType("datetime")),
        ("DATETIME", LITE, ddl.FieldType("datetime")),
        ("datetime2", MSSQL, ddl.FieldType("datetime")),
        ("date", PG, ddl.FieldType("date")),
        ("double precision", PG, ddl.FieldType("float")),
        ("uuid", PG, ddl.FieldType("other")),
        ("", LITE, ddl.FieldType("other")),
        # Read by rewriter.type_names, the one table of declared types:
        ("timestamp(3) without time zone", PG, ddl.FieldType("datetime")),
        ("citext", PG, ddl.FieldType("text")),
        ("smallmoney", MSSQL, ddl.FieldType("decimal")),
        ("serial", PG, ddl.FieldType("integer", bits=32)),
        ("VARYING CHARACTER(20)", LITE, ddl.FieldType("text", length=20)),
        ("UNSIGNED BIG INT", LITE, ddl.FieldType("integer", bits=64)),
        ("numeric(12)", PG, ddl.FieldType("decimal", precision=12, scale=0)),
        # Zoned values and times of day are not datetimes to the records API.
        ("timestamp with time zone", PG, ddl.FieldType("other")),
        ("timestamptz", PG, ddl.FieldType("other")),
        ("datetimeoffset(7)", MSSQL, ddl.FieldType("other")),
        ("time without time zone", PG, ddl.FieldType("other")),
    ],
)
def test_field_type_reads_catalog_names(
    type_name: str, backend: BackendKind, expected: ddl.FieldType
) -> None:
    assert ddl.field_type(type_name, backend) == expected


@pytest.mark.parametrize(
    ("ftype", "value", "bound"),
    [
        (ddl.FieldType("text", length=5), "abc", "abc"),
        (ddl.FieldType("integer", bits=64), 2**40, 2**40),
        (ddl.FieldType("decimal", precision=10, scale=2), 1.5, "1.5"),
        (ddl.FieldType("decimal", precision=10, scale=2), "-0.25", "-0.25"),
        (ddl.FieldType("date"), "2024-01-31", "2024-01-31"),
        (ddl.FieldType("datetime"), "2024-01-31T10:11:12.5", "2024-01-31 10:11:12.500000"),
        (ddl.FieldType("boolean"), False, False),
        (ddl.FieldType("float"), 2.5, 2.5),
        (ddl.FieldType("other"), None, None),
    ],
)
def test_coerce_value(ftype: ddl.FieldType, value: Any, bound: Any) -> None:
    assert ddl.coerce_value(value, ftype, "f") == bound


@pytest.mark.parametrize(
    ("ftype", "value"),
    [
        (ddl.FieldType("text", length=2), "abc"),
        (ddl.FieldType("text"), 5),
        (ddl.FieldType("integer", bits=32), 2**31),
        (ddl.FieldType("integer", bits=16), -(2**15) - 1),
        (ddl.FieldType("integer"), 1.5),
        (ddl.FieldType("integer"), False),
        (ddl.FieldType("boolean"), "true"),
        (ddl.FieldType("date"), "2024-13-01"),
        (ddl.FieldType("float"), float("inf")),
        (ddl.FieldType("other"), "x"),
    ],
)
def test_coerce_value_refusals(ftype: ddl.FieldType, value: Any) -> None:
    with pytest.raises(ddl.FieldError):
        ddl.coerce_value(value, ftype, "f")


def test_normalised_defaults_keep_python_types() -> None:
    spec = ddl.field_spec(
        {"name": "d", "type": "decimal", "precision": 5, "scale": 1, "default": 2}
    )
    assert spec.default == Decimal(2)
    spec = ddl.field_spec({"name": "d", "type": "date", "default": "2020-01-02"})
    assert spec.default == dt.date(2020, 1, 2)


@pytest.mark.parametrize(
    ("body", "literal"),
    [
        ({"type": "decimal", "precision": 9, "scale": 2, "default": "1.50"}, "DEFAULT 1.50"),
        ({"type": "date", "default": "2024-01-02"}, "DEFAULT '2024-01-02'"),
        ({"type": "datetime", "default": "2024-01-02 03:04"}, "DEFAULT '2024-01-02 03:04:00'"),
        ({"type": "boolean", "default": False}, "DEFAULT FALSE"),
        ({"type": "integer", "default": 7}, "DEFAULT 7"),
    ],
)
def test_every_kind_of_default_renders_from_its_spec(body: dict[str, Any], literal: str) -> None:
    spec = ddl.field_spec({"name": "f", "nullable": False, **body})
    assert ddl.add_column_sql(spec, "T", PG).endswith(f"NOT NULL {literal}")
