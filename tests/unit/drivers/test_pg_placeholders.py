"""``?`` → ``$n`` for libpq: markers outside PostgreSQL's quoted text and comments."""

from __future__ import annotations

import pytest

from proxy.drivers.postgres import placeholders
from proxy.drivers.postgres.placeholders import CACHE_SIZE, marker_count, to_numbered


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT ?", "SELECT $1"),
        ("SELECT a FROM t WHERE a = ? AND b = ?", "SELECT a FROM t WHERE a = $1 AND b = $2"),
        ("SELECT a FROM t LIMIT ?", "SELECT a FROM t LIMIT $1"),
        ("SELECT ??", "SELECT $1$2"),
        (
            "SELECT a FROM t WHERE b LIKE 'x%' AND c = ?",
            "SELECT a FROM t WHERE b LIKE 'x%' AND c = $1",
        ),
        ("SELECT 10 % 3", "SELECT 10 % 3"),
        ("SELECT '%s'", "SELECT '%s'"),
        ("SELECT '?'", "SELECT '?'"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
        ("SELECT '?''?' || ?", "SELECT '?''?' || $1"),
        ("SELECT E'\\'?', ?", "SELECT E'\\'?', $1"),
        ("SELECT e'a\\\\' , ?", "SELECT e'a\\\\' , $1"),
        ("SELECT 'a\\', ?", "SELECT 'a\\', $1"),
        ("SELECT namE'a\\', ?", "SELECT namE'a\\', $1"),
        ("SELECT B'101', X'1F', N'?', U&'?', ?", "SELECT B'101', X'1F', N'?', U&'?', $1"),
        ('SELECT "a?b", ?', 'SELECT "a?b", $1'),
        ('SELECT "a""?", ?', 'SELECT "a""?", $1'),
        ('SELECT U&"?" FROM t WHERE x = ?', 'SELECT U&"?" FROM t WHERE x = $1'),
        ("SELECT $$?$$, ?", "SELECT $$?$$, $1"),
        ("SELECT $tag$ ? $other$ ? $tag$, ?", "SELECT $tag$ ? $other$ ? $tag$, $1"),
        ("SELECT $é$?$é$, ?", "SELECT $é$?$é$, $1"),
        ("SELECT a$b, ?", "SELECT a$b, $1"),
        ("SELECT a$$b, ?", "SELECT a$$b, $1"),
        ("SELECT $1, ?", "SELECT $1, $1"),
        ("SELECT 1 -- what?\n, ?", "SELECT 1 -- what?\n, $1"),
        ("SELECT 1 -- what? 100%", "SELECT 1 -- what? 100%"),
        ("SELECT /* ? */ ?", "SELECT /* ? */ $1"),
        ("SELECT /* a /* nested ? */ still ? */ ?", "SELECT /* a /* nested ? */ still ? */ $1"),
        ("SELECT 1 - ?", "SELECT 1 - $1"),
        ("SELECT 4 / ?", "SELECT 4 / $1"),
        ("SELECT 'émoji 🎉 ?', ?", "SELECT 'émoji 🎉 ?', $1"),
        ("SELECT ? -- ?", "SELECT $1 -- ?"),
    ],
)
def test_translation(sql: str, expected: str) -> None:
    assert to_numbered(sql) == (expected, marker_count(sql))


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
    assert to_numbered(sql) == (sql, 0)


def test_marker_count() -> None:
    assert marker_count("SELECT ?, '?', \"?\", $$?$$, ? /* ? */ -- ?") == 2


def test_percent_signs_are_left_alone() -> None:
    sql = "SELECT '%' || ? || '%s', 5 % ? /* % */ -- %"
    assert to_numbered(sql) == ("SELECT '%' || $1 || '%s', 5 % $2 /* % */ -- %", 2)


def test_translation_is_cached_and_bounded() -> None:
    cache = placeholders._CACHE
    cache.clear()
    sql = "SELECT ? /* cached */"
    # Equal, not the same object: compiled (proxy/compiled.py), a returned tuple is
    # built anew for the caller.
    assert to_numbered(sql) == to_numbered(sql) == ("SELECT $1 /* cached */", 1)
    assert cache.hits == 1
    for i in range(CACHE_SIZE + 10):
        to_numbered(f"SELECT ? + {i}")
    assert cache.size == CACHE_SIZE


def test_translations_are_bounded_by_their_text(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = placeholders._Translations(CACHE_SIZE, 10_000)
    monkeypatch.setattr(placeholders, "_CACHE", cache)
    for i in range(20):
        to_numbered(f"SELECT ? /* {i} */ " + "x" * 1000)
    assert cache.chars <= 10_000 and cache.size == 4  # 2,000+ characters an entry
    to_numbered("SELECT ? " + "x" * 20_000)  # larger than the whole cache: not kept
    assert cache.size == 4
