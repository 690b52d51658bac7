"""``?`` → ``%s`` for psycopg: markers outside PostgreSQL's quoted text and comments."""

from __future__ import annotations

import pytest

from proxy.drivers.postgres.placeholders import CACHE_SIZE, marker_count, to_psycopg


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT ?", "SELECT %s"),
        ("SELECT a FROM t WHERE a = ? AND b = ?", "SELECT a FROM t WHERE a = %s AND b = %s"),
        ("SELECT a FROM t LIMIT ?", "SELECT a FROM t LIMIT %s"),
        ("SELECT ??", "SELECT %s%s"),
        (
            "SELECT a FROM t WHERE b LIKE 'x%' AND c = ?",
            "SELECT a FROM t WHERE b LIKE 'x%%' AND c = %s",
        ),
        ("SELECT 10 % 3", "SELECT 10 %% 3"),
        ("SELECT '%s'", "SELECT '%%s'"),
        ("SELECT '?'", "SELECT '?'"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ("SELECT '?''?' || ?", "SELECT '?''?' || %s"),
        ("SELECT E'\\'?', ?", "SELECT E'\\'?', %s"),
        ("SELECT e'a\\\\' , ?", "SELECT e'a\\\\' , %s"),
        # A backslash is literal in a plain string: the quote after it closes it.
        ("SELECT 'a\\', ?", "SELECT 'a\\', %s"),
        # nameE'...' is an identifier followed by a plain string, not an E-string.
        ("SELECT namE'a\\', ?", "SELECT namE'a\\', %s"),
        ("SELECT B'101', X'1F', N'?', U&'?', ?", "SELECT B'101', X'1F', N'?', U&'?', %s"),
        ('SELECT "a?b", ?', 'SELECT "a?b", %s'),
        ('SELECT "a""?", ?', 'SELECT "a""?", %s'),
        ('SELECT U&"?" FROM t WHERE x = ?', 'SELECT U&"?" FROM t WHERE x = %s'),
        ("SELECT $$?$$, ?", "SELECT $$?$$, %s"),
        ("SELECT $tag$ ? $other$ ? $tag$, ?", "SELECT $tag$ ? $other$ ? $tag$, %s"),
        ("SELECT $é$?$é$, ?", "SELECT $é$?$é$, %s"),
        ("SELECT a$b, ?", "SELECT a$b, %s"),
        ("SELECT a$$b, ?", "SELECT a$$b, %s"),
        ("SELECT $1, ?", "SELECT $1, %s"),
        ("SELECT 1 -- what?\n, ?", "SELECT 1 -- what?\n, %s"),
        ("SELECT 1 -- what? 100%", "SELECT 1 -- what? 100%%"),
        ("SELECT /* ? */ ?", "SELECT /* ? */ %s"),
        ("SELECT /* a /* nested ? */ still ? */ ?", "SELECT /* a /* nested ? */ still ? */ %s"),
        ("SELECT 1 - ?", "SELECT 1 - %s"),
        ("SELECT 4 / ?", "SELECT 4 / %s"),
        ("SELECT 'émoji 🎉 ?', ?", "SELECT 'émoji 🎉 ?', %s"),
        ("SELECT ? -- ?", "SELECT %s -- ?"),
    ],
)
def test_translation(sql: str, expected: str) -> None:
    assert to_psycopg(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'never closed ?",
        'SELECT "never closed ?',
        "SELECT $x$ never closed ?",
        "SELECT /* never closed ?",
        "SELECT E'never closed \\' ?",
    ],
)
def test_unterminated_text_holds_no_markers(sql: str) -> None:
    assert marker_count(sql) == 0
    assert "%s" not in to_psycopg(sql)


def test_marker_count() -> None:
    assert marker_count("SELECT ?, '?', \"?\", $$?$$, ? /* ? */ -- ?") == 2


def test_every_percent_is_doubled_when_markers_exist() -> None:
    sql = "SELECT '%' || ? || '%', 5 % 2 /* % */ -- %"
    translated = to_psycopg(sql)
    assert translated == "SELECT '%%' || %s || '%%', 5 %% 2 /* %% */ -- %%"


def test_translation_is_cached_and_bounded() -> None:
    to_psycopg.cache_clear()
    sql = "SELECT ? /* cached */"
    assert to_psycopg(sql) is to_psycopg(sql)
    info = to_psycopg.cache_info()
    assert info.hits == 1
    assert info.maxsize == CACHE_SIZE
    for i in range(CACHE_SIZE + 10):
        to_psycopg(f"SELECT ? + {i}")
    assert to_psycopg.cache_info().currsize == CACHE_SIZE
