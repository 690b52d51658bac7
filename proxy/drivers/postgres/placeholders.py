"""``?`` markers to libpq's ``$1``, ``$2``, …, outside PostgreSQL's quoted text and comments.

The rewriter writes PostgreSQL SQL with ``?`` markers (the ODBC convention every
driver receives); the extended protocol numbers its parameters (``statements`` sends
the statement through libpq itself, not through psycopg's ``%s`` conversion, so a
literal ``%`` needs no escaping).

A ``?`` is a marker unless it sits inside

* a string constant ``'...'`` (``''`` is a quote), including ``E'...'``, where a
  backslash escapes the next character (``E'\\''`` is one quote), and the ``B``,
  ``X``, ``N`` and ``U&`` prefixes, which quote like plain strings;
* a quoted identifier ``"..."`` (``""`` is a quote);
* a dollar-quoted string ``$tag$...$tag$`` (``$$...$$`` too); a ``$`` that continues
  an identifier (``a$b``) or starts a positional parameter (``$1``) opens nothing;
* a ``--`` comment (to the end of the line) or a ``/* */`` comment, which nests.

Text that is never closed (an unterminated quote) holds no markers: the server
rejects the statement anyway. Backslashes in plain ``'...'`` strings are literal, as
with ``standard_conforming_strings = on``, PostgreSQL's default since 9.1. PostgreSQL
operators spelt with ``?`` (jsonb's ``?``, ``?|``, ``?&``) cannot be written: every
bare ``?`` is a marker, as with psqlODBC.

Translations are cached per SQL text (the rewriter's plan cache hands out the same
text for the same statement shape), in an LRU bounded by the text it holds.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

__all__ = ["CACHE_CHARS", "CACHE_SIZE", "marker_count", "to_numbered"]

CACHE_SIZE = 4096
"""SQL texts whose translation is kept, at most."""
CACHE_CHARS = 4 << 20
"""Characters of text the cache may hold: each entry counts its SQL and its
translation (one byte a character for ASCII text). A text is a few hundred bytes to
~25 KB (818 columns, whose translation costs ~1.2 ms): 4 Mi characters keep about 90
of the widest, thousands of the usual (a tenant's text differs from another's only
where the schema is in it: schema-per-tenant layouts). A count alone let 4,096 statements near the
100,000 characters of ``query.max_sql_chars`` hold 800 MB."""

# Where something interesting may start; everything between two hits is plain text.
_INTERESTING = re.compile(r"""[?'"$]|--|/\*""")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_COMMENT_TOKEN = re.compile(r"/\*|\*/")


def _ident_char(char: str) -> bool:
    return char.isalnum() or char in "_$" or char >= "\u0080"


class _Translations:
    """An LRU of translations bounded by count and by the text it holds, thread-safe."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = 0

    @property
    def size(self) -> int:
        return len(self._entries)

    @property
    def chars(self) -> int:
        return self._chars

    def get(self, sql: str) -> tuple[str, int] | None:
        # No lock on the hot path: each OrderedDict call is atomic under the GIL, and
        # ``put`` (which keeps the count) takes the lock.
        entries = self._entries
        found = entries.get(sql)
        if found is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs about 1 µs per call
                entries.move_to_end(sql)
            except KeyError:  # evicted by another thread in between
                pass
            self.hits += 1
        return found

    def put(self, sql: str, value: tuple[str, int]) -> None:
        weight = _weight(sql, value[0])
        if weight > self.max_chars:
            return
        with self._lock:
            if sql in self._entries:
                return
            entries = self._entries
            entries[sql] = value
            self._chars += weight
            while len(entries) > self.max_entries or self._chars > self.max_chars:
                old_sql, (old_numbered, _) = entries.popitem(last=False)
                self._chars -= _weight(old_sql, old_numbered)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0
            self.hits = 0


def _weight(sql: str, numbered: str) -> int:
    # Untranslated text is returned as it is: one object, counted once.
    return len(sql) + (0 if numbered is sql else len(numbered))


_CACHE = _Translations(CACHE_SIZE, CACHE_CHARS)


def to_numbered(sql: str) -> tuple[str, int]:
    """``sql`` with its ``?`` markers as ``$1``, ``$2``, … (libpq's), and their count."""
    found = _CACHE.get(sql)
    if found is None:
        found = _translate(sql)
        _CACHE.put(sql, found)
    return found


def _translate(sql: str) -> tuple[str, int]:
    if "?" not in sql:
        return sql, 0
    pieces = _split_at_markers(sql)
    out = [pieces[0]]
    for number, piece in enumerate(pieces[1:], start=1):
        out.append(f"${number}")
        out.append(piece)
    return "".join(out), len(pieces) - 1


def marker_count(sql: str) -> int:
    """How many ``?`` markers ``sql`` holds (for tests and checks)."""
    return len(_split_at_markers(sql)) - 1


def _split_at_markers(sql: str) -> list[str]:
    """``sql`` cut at each marker ``?`` (the markers themselves dropped)."""
    pieces: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    while True:
        match = _INTERESTING.search(sql, i)
        if match is None:
            break
        found = match.group()
        at = match.start()
        if found == "?":
            pieces.append(sql[start:at])
            start = i = at + 1
        elif found == "'":
            i = _skip_string(sql, at, escapes=_is_escape_string(sql, at))
        elif found == '"':
            i = _skip_quoted(sql, at, '"')
        elif found == "--":
            newline = sql.find("\n", at + 2)
            i = n if newline < 0 else newline + 1
        elif found == "/*":
            i = _skip_block_comment(sql, at)
        else:  # "$"
            i = _skip_dollar_quote(sql, at)
    pieces.append(sql[start:])
    return pieces


def _is_escape_string(sql: str, quote_at: int) -> bool:
    """Whether the quote at ``quote_at`` opens ``E'...'`` (not ``namE'...``)."""
    if quote_at == 0 or sql[quote_at - 1] not in "eE":
        return False
    return quote_at == 1 or not _ident_char(sql[quote_at - 2])


def _skip_string(sql: str, at: int, *, escapes: bool) -> int:
    """The index after the string constant opening at ``at`` (``len(sql)`` if open)."""
    n = len(sql)
    i = at + 1
    while i < n:
        char = sql[i]
        if escapes and char == "\\":
            i += 2
            continue
        if char == "'":
            if i + 1 < n and sql[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_quoted(sql: str, at: int, quote: str) -> int:
    n = len(sql)
    i = at + 1
    while True:
        close = sql.find(quote, i)
        if close < 0:
            return n
        if close + 1 < n and sql[close + 1] == quote:
            i = close + 2
            continue
        return close + 1


def _skip_block_comment(sql: str, at: int) -> int:
    depth = 1
    i = at + 2
    while depth:
        match = _COMMENT_TOKEN.search(sql, i)
        if match is None:
            return len(sql)
        depth += 1 if match.group() == "/*" else -1
        i = match.end()
    return i


def _skip_dollar_quote(sql: str, at: int) -> int:
    if at > 0 and _ident_char(sql[at - 1]):
        return at + 1  # part of an identifier such as a$b, or of a closing tag
    match = _DOLLAR_TAG.match(sql, at)
    if match is None:
        return at + 1  # $1 or a lone $
    tag = match.group()
    close = sql.find(tag, match.end())
    return len(sql) if close < 0 else close + len(tag)
