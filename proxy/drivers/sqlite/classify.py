"""Which statements may run inline on the event loop: plain reads only.

SQLite would say it exactly (``sqlite3_stmt_readonly``), but Python's sqlite3 exposes
no prepared statement, so the statement's text decides, conservatively: a statement
is a *read* when its first keyword (after blanks and comments) is ``SELECT`` or
``VALUES``, or when it starts with ``WITH`` and the first keyword outside parentheses
after it is ``SELECT``/``VALUES`` rather than ``INSERT``/``REPLACE``/``UPDATE``/
``DELETE`` (``WITH c AS (...) DELETE FROM t WHERE ...`` is a write). Strings, quoted
identifiers (``"..."``, ``[...]``, `````...`````) and comments are skipped, so a
keyword inside them decides nothing. Everything else (writes, DDL, PRAGMA, BEGIN,
EXPLAIN, a leading parenthesis) is not a read.

In autocommit mode a mistake costs speed, not correctness: writes go to a worker
thread because a commit may ``fsync`` (and a WAL commit may checkpoint), which must
not happen on the loop; but an autocommit write that *did* run inline would still be
safe to repeat after an inline abort, because SQLite rolls an interrupted or busy
autocommit statement back whole (see ``proxy.drivers.sqlite.execute``). Inside a
transaction an interrupted write makes SQLite roll the whole transaction back, which
the session reports instead of carrying on (``proxy.drivers.sqlite.driver``). A
``SELECT`` cannot write: sqlite3 registers no functions with side effects and
extension loading is off.
"""

from __future__ import annotations

import functools
import re

__all__ = ["is_read_only"]

_READS = frozenset({"select", "values"})
_ENDS_WORD = frozenset(" \t\n\r\f\v(*'\"[`-/")
_WRITES = frozenset({"insert", "replace", "update", "delete"})

# Unrolled loops ('[^']*(?:''[^']*)*') so that long literals scan in C without
# backtracking; an unterminated literal or comment runs to the end of the text.
_TOKEN = re.compile(
    r"""
      \s+
    | --[^\n]*
    | /\*.*?(?:\*/|\Z)
    | '[^']*(?:''[^']*)*'?
    | "[^"]*(?:""[^"]*)*"?
    | `[^`]*(?:``[^`]*)*`?
    | \[[^\]]*\]?
    | (?P<open>\()
    | (?P<close>\))
    | (?P<word>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


_LEADING = re.compile(
    r"(?:\s+|--[^\n]*|/\*.*?(?:\*/|\Z))*"
    r"([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)",
    re.DOTALL,
)


def is_read_only(sql: str) -> bool:
    """Whether ``sql`` is a plain read (see the module).

    The first keyword decides at once for everything but ``WITH``, whose statements
    are scanned once and cached by text (bounded: an 800-column statement is tens of
    KB, and hashing a new copy of it costs more than matching its first word). Texts
    longer than ``_CACHED_CHARS`` are scanned every time, so that the cache holds at
    most 128 texts of 32 KiB.
    """
    head = sql[:7].lower()
    if head.startswith("select") and (len(head) == 6 or head[6] in _ENDS_WORD):
        return True  # the common case, without the regex
    match = _LEADING.match(sql)
    if match is None:
        return False
    word = match.group(1).lower()
    if word in _READS:
        return True
    if word != "with":
        return False
    rest = sql[match.end() :]
    return _cached_with_reads(rest) if len(rest) <= _CACHED_CHARS else _with_reads(rest)


_CACHED_CHARS = 32 * 1024


def _with_reads(rest: str) -> bool:
    """After ``WITH``: is the first keyword outside parentheses a read's or a write's?"""
    depth = 0
    for match in _TOKEN.finditer(rest):
        group = match.lastgroup
        if group == "open":
            depth += 1
        elif group == "close":
            depth -= 1
        elif group == "word" and depth == 0:
            word = match.group().lower()
            if word in _READS:
                return True
            if word in _WRITES:
                return False
    return False


_cached_with_reads = functools.lru_cache(maxsize=128)(_with_reads)
