"""What a wire session answers itself (``proxy.frontends.pgwire.session``): pure."""

from __future__ import annotations

import pytest

from proxy.frontends.pgwire.session import (
    SHORT_TEXT,
    Begin,
    End,
    Fixed,
    Refused,
    Savepoint,
    Set,
    Show,
    Version,
    command,
    numbered_to_positional,
    short_texts,
    tenant_from,
    user_name,
)


@pytest.mark.parametrize(
    ("params", "tenant"),
    [
        ({"options": "-c tenantgate.tenant=beta.example", "database": "x", "user": "a.b"},
         "beta.example"),
        ({"options": "-ctenantgate.tenant=2", "database": "x"}, "2"),
        ({"options": "--tenantgate.tenant=3 -c search_path=public"}, "3"),
        ({"options": "-c search_path=public", "database": "beta.example"}, "beta.example"),
        ({"database": "", "user": "app.gamma.example"}, "gamma.example"),
        ({"user": "app"}, None),
        ({"options": "-c 'unbalanced", "database": "d"}, "d"),
    ],
)  # fmt: skip
def test_the_tenant_of_a_startup_packet(params: dict[str, str], tenant: str | None) -> None:
    assert tenant_from(params) == tenant


def test_the_user_without_its_tenant() -> None:
    assert user_name({"user": "app.beta.example"}) == "app"
    assert user_name({"user": "app"}) == "app"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("BEGIN", Begin(None)),
        ("begin work;", Begin(None)),
        ("START TRANSACTION ISOLATION LEVEL REPEATABLE READ", Begin("repeatable_read")),
        ("BEGIN ISOLATION LEVEL serializable ;", Begin("serializable")),
        ("COMMIT", End(commit=True, tag="COMMIT")),
        ("end", End(commit=True, tag="COMMIT")),
        ("ROLLBACK;", End(commit=False, tag="ROLLBACK")),
        ("abort", End(commit=False, tag="ROLLBACK")),
        ("SET application_name = 'x y'", Set("application_name", "x y")),
        ("SET SESSION statement_timeout TO 1000", Set("statement_timeout", "1000")),
        ("SET TIME ZONE 'UTC'", Set("timezone", "UTC")),
        ("RESET statement_timeout", Set("statement_timeout", None)),
        ("DISCARD ALL", Set("all", None)),
        ("SHOW TimeZone", Show("timezone")),
        ("select current_setting('server_version')", Show("server_version")),
        ("SELECT version()", Version("version")),
        ("select pg_catalog.version() as v", Version("v")),
        ("SELECT 1", None),
        ("SELECT * FROM Contacts WHERE Title = 'BEGIN'", None),
        ("BEGIN; SELECT 1", None),  # not a command: the rewriter refuses two statements
        ("UPDATE Settings SET a = 1 WHERE b = 2", None),
        ('SAVEPOINT "_pg3_1"', Savepoint(release=False)),
        ("RELEASE SAVEPOINT a;", Savepoint(release=True)),
        ("SELECT set_config('TimeZone', 'UTC', false)", Set("timezone", "UTC", echo=True)),
        ("select current_schema()", Fixed("current_schema", "public")),
        ("show transaction isolation level", Show("transaction_isolation")),
    ],
)
def test_commands(sql: str, expected: object) -> None:
    assert command(sql) == expected


@pytest.mark.parametrize("sql", ["ROLLBACK TO SAVEPOINT a", "rollback to a", "BEGIN READ ONLY"])
def test_what_is_refused(sql: str) -> None:
    refused = command(sql)
    assert isinstance(refused, Refused) and refused.sqlstate == "0A000"


@pytest.mark.parametrize(
    ("sql", "converted", "order"),
    [
        ("SELECT 1", "SELECT 1", ()),
        ("SELECT $1", "SELECT ?", (0,)),
        ("SELECT $2, $1, $2", "SELECT ?, ?, ?", (1, 0, 1)),
        ("SELECT '$1', $1 -- $2\n", "SELECT '$1', ? -- $2\n", (0,)),
        ("SELECT $$ $1 $$, $1", "SELECT $$ $1 $$, ?", (0,)),
        ("SELECT $0", "SELECT $0", ()),
        ("SELECT $1::int, $2 ", "SELECT ? ::int, ? ", (0, 1)),
        ("SELECT $1, ?", "SELECT $1, ?", ()),  # a mix: the rewriter refuses it
        ("SELECT 'unterminated $1", "SELECT 'unterminated $1", ()),
    ],
)
def test_numbered_parameters_become_positional(
    sql: str, converted: str, order: tuple[int, ...]
) -> None:
    assert numbered_to_positional(sql) == (converted, order)


def test_short_texts_are_remembered_and_long_ones_are_not() -> None:
    calls: list[str] = []

    @short_texts(4)
    def length(text: str) -> int:
        calls.append(text)
        return len(text)

    short, long = "x" * SHORT_TEXT, "y" * (SHORT_TEXT + 1)
    assert [length(short), length(short), length(long), length(long)] == [
        len(short), len(short), len(long), len(long),
    ]  # fmt: skip
    assert calls == [short, long, long]
