"""The public API: ParsedStatement, Plan, bind(), error details, parameter order."""

from __future__ import annotations

import dataclasses

import pytest
import sqlglot

from rewriter import (
    ConstructNotAllowed,
    InvalidParameters,
    Limits,
    ParsedStatement,
    Plan,
    SqlParseError,
    UnknownColumn,
    UnknownTable,
    parse_statement,
    rewrite,
)
from rewriter.markers import MARKER_PREFIX
from tests.unit.rewriter.shapes import CONTACTS, SCHEMA, Shape


def plan_for(sql: str, backend: str = "sqlite", **kwargs: str) -> Plan:
    return rewrite(parse_statement(sql), tables=SCHEMA, backend=backend, **kwargs)


def test_parsed_statement_fields() -> None:
    parsed = parse_statement(
        "WITH big AS (SELECT AccountID FROM Opportunities) "
        "SELECT c.FirstName FROM dbo.Contacts c JOIN big b ON b.AccountID = c.AccountID "
        "WHERE c.Email = ? AND c.LastName = ?"
    )
    assert isinstance(parsed, ParsedStatement)
    assert parsed.tables == frozenset({"contacts", "opportunities"})  # CTE name excluded
    assert parsed.statement_class == "read"
    assert parsed.positional_params == 2
    assert parsed.named_params == ()
    assert parsed.dialect == "tsql"
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.sql = "x"  # type: ignore[misc]


def test_named_params_distinct_in_first_appearance_order() -> None:
    parsed = parse_statement(
        "SELECT FirstName FROM Contacts WHERE LastName = @b AND Email = @a OR FirstName = @b"
    )
    assert parsed.named_params == ("b", "a")
    assert parsed.positional_params == 0


def test_rewrite_does_not_mutate_the_parsed_tree() -> None:
    parsed = parse_statement("SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID = ?")
    before = parsed.expression.sql("tsql")
    for backend in ("sqlserver", "postgresql", "sqlite"):
        rewrite(parsed, tables=SCHEMA, backend=backend)
    assert parsed.expression.sql("tsql") == before


def test_the_same_parse_gives_plans_per_tenant_shape() -> None:
    parsed = parse_statement("SELECT * , CUSTOM_FIELDS() FROM contacts")
    other = Shape(
        name="CONTACTS",
        column_names=("ContactID", "FirstName", "Loyalty"),
        base_columns=("ContactID", "FirstName"),
    )
    plan = rewrite(parsed, tables={"contacts": other}, backend="sqlite")
    assert plan.columns == ("ContactID", "FirstName", "Loyalty")
    assert 'FROM "CONTACTS" AS "contacts"' in plan.sql


def test_tables_mapping_keys_are_case_insensitive() -> None:
    plan = rewrite(
        parse_statement("SELECT FirstName FROM contacts"),
        tables={"Contacts": CONTACTS},
        backend="sqlite",
    )
    assert plan.columns == ("FirstName",)


def test_positional_params_follow_text_order_not_tree_order() -> None:
    sql = "SELECT TOP (?) FirstName FROM Contacts WHERE AccountID = ? AND ContactID > ?"
    assert plan_for(sql, "sqlserver").param_order == (0, 1, 2)
    # LIMIT moves to the end on the other backends; the binds move with it.
    assert plan_for(sql, "postgresql").param_order == (1, 2, 0)
    assert plan_for(sql, "sqlite").param_order == (1, 2, 0)


def test_offset_fetch_becomes_limit_offset_on_sqlite() -> None:
    sql = "SELECT FirstName FROM Contacts ORDER BY ContactID OFFSET ? ROWS FETCH NEXT ? ROWS ONLY"
    plan = plan_for(sql, "sqlite")
    assert plan.sql.endswith("LIMIT ? OFFSET ?")
    assert plan.param_order == (1, 0)


def test_mixed_parameters_refused() -> None:
    with pytest.raises(InvalidParameters):
        parse_statement("SELECT FirstName FROM Contacts WHERE ContactID = ? OR AccountID = @a")


def test_binds_never_become_literals() -> None:
    plan = plan_for("SELECT FirstName FROM Contacts WHERE ContactID = @id", "postgresql")
    assert "$" not in plan.sql and "%s" not in plan.sql and "@" not in plan.sql
    assert plan.sql.count("?") == 1
    assert plan.param_order == ("id",)


@pytest.mark.parametrize(
    ("catalog", "schema", "expected"),
    [
        ("Tenant2", "dbo", "FROM [Tenant2].[dbo].[Contacts] AS [c]"),
        ("Tenant2", None, "FROM [Tenant2]..[Contacts] AS [c]"),
        (None, "dbo", "FROM [dbo].[Contacts] AS [c]"),
        (None, None, "FROM [Contacts] AS [c]"),
        ("we]ird", "s", "FROM [we]]ird].[s].[Contacts] AS [c]"),
    ],
)
def test_bind_sqlserver(catalog: str | None, schema: str | None, expected: str) -> None:
    plan = plan_for("SELECT c.FirstName FROM Contacts c", "sqlserver")
    sql = plan.bind(catalog=catalog, schema=schema)
    assert expected in sql
    assert MARKER_PREFIX not in sql
    assert len(sqlglot.parse(sql, read="tsql")) == 1


@pytest.mark.parametrize(
    ("catalog", "schema", "expected"),
    [
        (None, "tenant_2", 'FROM "tenant_2"."Contacts" AS "c"'),
        ("db2", "public", 'FROM "db2"."public"."Contacts" AS "c"'),
        ("db2", None, 'FROM "Contacts" AS "c"'),
        (None, None, 'FROM "Contacts" AS "c"'),
        (None, 'we"ird', 'FROM "we""ird"."Contacts" AS "c"'),
    ],
)
def test_bind_postgresql(catalog: str | None, schema: str | None, expected: str) -> None:
    plan = plan_for("SELECT c.FirstName FROM Contacts c", "postgresql")
    sql = plan.bind(catalog=catalog, schema=schema)
    assert expected in sql
    assert MARKER_PREFIX not in sql


def test_bind_qualifies_every_table_and_is_string_replacement() -> None:
    plan = plan_for(
        "SELECT c.FirstName FROM Contacts c WHERE EXISTS "
        "(SELECT 1 FROM Opportunities o WHERE o.ContactID = c.ContactID)",
        "sqlserver",
    )
    assert plan.sql.count(MARKER_PREFIX + "catalog__") == 2
    sql = plan.bind(catalog="T9", schema="dbo")
    assert sql.count("[T9].[dbo].") == 2
    assert sql == plan.sql.replace(f"[{MARKER_PREFIX}catalog__].", "[T9].").replace(
        f"[{MARKER_PREFIX}schema__].", "[dbo]."
    )


def test_sqlite_is_not_qualified() -> None:
    plan = plan_for("SELECT FirstName FROM Contacts", "sqlite")
    assert MARKER_PREFIX not in plan.sql
    assert plan.bind(catalog="x", schema="y") == plan.sql


def test_unknown_table_details() -> None:
    with pytest.raises(UnknownTable) as caught:
        rewrite(
            parse_statement("SELECT * FROM Archived"),
            tables=SCHEMA,
            backend="sqlite",
            tenant_label="beta.example",
        )
    assert caught.value.details == {"table": "archived", "tenant": "beta.example"}
    assert "archived" in caught.value.message and "beta.example" in caught.value.message


def test_unknown_column_details() -> None:
    with pytest.raises(UnknownColumn) as caught:
        plan_for("SELECT c.Nope FROM Contacts c", tenant_label="beta.example")
    assert caught.value.details == {"column": "Nope", "table": "Contacts", "tenant": "beta.example"}


def test_marker_prefix_refused_in_any_case() -> None:
    with pytest.raises(ConstructNotAllowed):
        parse_statement("SELECT 1 AS [__TENANTGATE_P0__]")


def test_parse_error_carries_line_and_column() -> None:
    with pytest.raises(SqlParseError) as caught:
        parse_statement("SELECT FirstName\nFROM Contacts\nWHERE (")
    assert "line 3" in caught.value.message


def test_invalid_options_are_programming_errors() -> None:
    parsed = parse_statement("SELECT 1 AS x")
    with pytest.raises(ValueError, match="backend"):
        rewrite(parsed, tables={}, backend="oracle")
    with pytest.raises(ValueError, match="missing_columns"):
        rewrite(parsed, tables={}, backend="sqlite", missing_columns="ignore")


def test_plan_is_frozen_and_tenant_free() -> None:
    plan = plan_for("SELECT FirstName FROM Contacts WHERE ContactID = ?", "postgresql")
    assert plan.statement_class == "read" and plan.backend == "postgresql"
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.sql = ""  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "sqlserver"])
def test_thousands_of_markers_keep_their_order(backend: str) -> None:
    # Markers in a long IN list and in rows of a VALUES list are swapped for the
    # rewriter's own in bulk (params.mark); each ? still binds its own parameter.
    # Past the default limits, which are the service's concern, not this one's.
    limits = Limits(max_params=10_000, max_in_list=10_000)

    def plan_for(sql: str, backend: str) -> Plan:
        return rewrite(parse_statement(sql, limits=limits), tables=SCHEMA, backend=backend)

    keys = ", ".join("?" * 5000)
    plan = plan_for(f"SELECT FirstName FROM Contacts WHERE ContactID IN ({keys})", backend)
    assert plan.param_order == tuple(range(5000))
    assert plan.sql.count("?") == 5000
    rows = ", ".join("(?, ?)" for _ in range(1000))
    plan = plan_for(f"INSERT INTO Contacts (FirstName, LastName) VALUES {rows}", backend)
    assert plan.param_order[:2000] == tuple(range(2000))
