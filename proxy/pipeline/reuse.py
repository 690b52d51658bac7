"""Preparations kept for a statement sent again unchanged: what ``Service.prepare``
skips when nothing it read has changed since.

Preparing a statement from the caches alone still reads four of them (the tenant,
its tables' shapes, the parsed statement and the plan) and generates the tenant's
SQL: about 27 µs of a wire transaction's 150 on the test box (cProfile under pgbench;
``docs/decisions.md``, "The wire's cost per statement"). A client that sends the same
text again and again (a prepared statement, an ORM's queries) gets the same answer
every time, until a cache it came from changes. So the answer is kept, keyed
by everything of the request it depends on, with the caches' change counters
(``generation``) at the time it was made:

* a tenant or table entry stored, replaced, dropped or expired anywhere bumps a
  counter, and every kept preparation is made afresh on its next use (coarse, and
  cheap to check: two integers);
* an entry that merely outlives its time-to-live is not a change until a request
  reads it again. So a preparation is reused for ``REUSE_S`` at most: a tenant moved
  on the controller is seen at most that much later than its cache entry says.

What depends on the caller is checked again each time: the token's tenants and
statement classes, and the values bound to the statement.

Bounded by count and by the text held (the caller's statement and the tenant's SQL,
which for an 800-column ``SELECT *`` is about 20 KB): a client sending thousands of
long texts cannot fill memory through it, and a text past ``MAX_ENTRY_CHARS`` is not
kept at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# Imported for real, not for type checking only: compiled by mypyc (``proxy.compiled``),
# a dataclass's field types are looked up when the module loads.
import rewriter
from tenancy.resolver import Tenant

if TYPE_CHECKING:
    from proxy.pipeline.request import QueryRequest

__all__ = ["MAX_CHARS", "MAX_ENTRY_CHARS", "REUSE_S", "Kept", "Reuse"]

REUSE_S = 1.0
"""How long a kept preparation may be reused while no cache changes."""
MAX_CHARS = 8 * 1024 * 1024
"""The text all kept preparations may hold, statement and SQL together."""
MAX_ENTRY_CHARS = 128 * 1024

Key = tuple[str | int, str, str, str, bool]
Stamp = tuple[int, int]
"""The tenant cache's and the metadata cache's ``generation``."""


@dataclass(frozen=True, slots=True)
class Kept:
    """A preparation, less its bound values."""

    tenant: Tenant
    plan: rewriter.Plan
    sql: str
    positional: int
    """The ``?`` values the statement takes (``ParsedStatement.positional_params``)."""
    stamp: Stamp
    until: float
    chars: int
    """The text it holds (the key's statement and ``sql``)."""


class Reuse:
    """Kept preparations by request, at most ``maxsize`` of them and ``max_chars`` of
    text (the oldest made goes first).

    Used from the event loop only: a preparation made in a worker thread (after a
    cache miss) is not kept, and the next request's is.
    """

    def __init__(
        self, *, maxsize: int = 4096, max_chars: int = MAX_CHARS, window_s: float = REUSE_S
    ) -> None:
        if maxsize <= 0 or max_chars <= 0 or not window_s > 0:
            raise ValueError("maxsize, max_chars and window_s must be positive")
        self._maxsize = maxsize
        self._max_chars = max_chars
        self._window = window_s
        self._kept: dict[Key, Kept] = {}
        self._chars = 0
        self._hits = 0
        self._misses = 0

    @staticmethod
    def key(req: QueryRequest) -> Key:
        """What of a request its preparation depends on (its values are bound apart)."""
        return (req.tenant, req.sql, req.dialect, req.missing_columns, req.allow_unfiltered)

    def get(self, key: Key, stamp: Stamp, now: float) -> Kept | None:
        kept = self._kept.get(key)
        if kept is not None and kept.stamp == stamp and now < kept.until:
            self._hits += 1
            return kept
        self._misses += 1
        return None

    def put(
        self,
        key: Key,
        *,
        tenant: Tenant,
        plan: rewriter.Plan,
        sql: str,
        positional: int,
        stamp: Stamp,
        now: float,
    ) -> None:
        kept = self._kept
        old = kept.pop(key, None)  # made afresh: the newest, last
        if old is not None:
            self._chars -= old.chars
        chars = len(key[1]) + len(sql)
        if chars > min(MAX_ENTRY_CHARS, self._max_chars):
            return
        while kept and (len(kept) >= self._maxsize or self._chars + chars > self._max_chars):
            self._chars -= kept.pop(next(iter(kept))).chars
        kept[key] = Kept(tenant, plan, sql, positional, stamp, now + self._window, chars)
        self._chars += chars

    def clear(self) -> None:
        self._kept.clear()
        self._chars = 0

    def get_stats(self) -> dict[str, int]:
        # From a scrape's thread: three reads, each whole under the GIL.
        return {
            "hits": self._hits,
            "misses": self._misses,
            "size": len(self._kept),
            "chars": self._chars,
        }
