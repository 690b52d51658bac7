"""Thread-safe caches in front of ``parse_statement`` and ``rewrite``, bounded in bytes.

A plan depends on the statement text, the dialects, the options and the shapes of
the tables involved, never on which tenant asked: the key holds each table's
fingerprint, not the tenant, so tenants whose tables have identical shapes share
plans, and ``Plan.bind`` adds the tenant's location afterwards.

Parse refusals are cached too (they depend on the text and the limits alone), so a
caller that repeats a refused statement costs a dictionary lookup; what is kept is
the refusal's class, message and details, never the exception, whose traceback would
hold the parse's frames (its tokens and tree) alive. Rewrite failures are not cached:
their messages name the tenant.

Both caches are bounded by an estimate of the bytes their entries hold, not by a
count: statements differ in size by four orders of magnitude (a point select's tree
is ~10 KB, a 2,000-item IN list's ~0.8 MB), so a count bound is either tiny for
ordinary statements or unbounded in bytes for large ones. An entry estimated above
``max_entry_bytes`` is not cached at all: one huge statement would otherwise evict
hundreds of ordinary ones, for a text that is seldom sent twice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from cachetools import LRUCache

from rewriter.errors import RewriteError
from rewriter.lift import Lifted
from rewriter.limits import DEFAULT_LIMITS, Limits
from rewriter.parse import ParsedStatement, parse_statement, too_deep
from rewriter.plan import Plan, rewrite
from rewriter.shapes import TableShape
from rewriter.writes import require_filter

__all__ = [
    "MAX_ENTRY_BYTES",
    "PARSE_CACHE_BYTES",
    "PLAN_CACHE_BYTES",
    "PlanCache",
    "parsed_bytes",
    "plan_bytes",
]

# (statement text, input dialect, backend, missing-columns policy, row cap or not,
# literals lifted or not, then one fingerprint per table of the statement in sorted name order).
PlanKey = tuple[str, ...]

PARSE_CACHE_BYTES = 16 << 20
PLAN_CACHE_BYTES = 16 << 20
MAX_ENTRY_BYTES = 2 << 20

NODE_BYTES = 500
"""Bytes a parsed tree holds per node. Measured with tracemalloc on sqlglot 30.30, with
and without sqlglotc (``benchmarks/memory.py`` prints it): 310-450 (select lists,
AND/OR chains, IN lists) and up to 510 (small statements); the upper end, so that the
estimate errs on the large side."""
ENTRY_BYTES = 2_000
"""An entry's own objects: its key tuple, the dataclass, the cache's bookkeeping, and
what every tree or plan holds whatever its size."""
COLUMN_BYTES = 16
"""A plan's output column besides its name: its slot in the tuple. (The name is often
the table shape's own string; counting it anyway errs on the large side.)"""


def text_bytes(text: str) -> int:
    """What ``text`` holds at most: CPython stores 1, 2 or 4 bytes a character."""
    return len(text) if text.isascii() else 4 * len(text)


def parsed_bytes(parsed: ParsedStatement) -> int:
    """The estimated bytes of a parse-cache entry (its text is also its key)."""
    return ENTRY_BYTES + text_bytes(parsed.sql) + NODE_BYTES * parsed.node_count


def plan_bytes(key: PlanKey, plan: Plan) -> int:
    """The estimated bytes of a plan-cache entry: the key's statement text and
    fingerprints, the plan's SQL twice (``bind`` keeps it split in pieces), its
    column names and bindings (a lifted literal's text too)."""
    return (
        ENTRY_BYTES
        + sum(text_bytes(part) for part in key)
        + 2 * text_bytes(plan.sql)
        + sum(COLUMN_BYTES + text_bytes(name) for name in plan.columns)
        + sum(16 + (text_bytes(e.text) if type(e) is Lifted else 0) for e in plan.param_order)
    )


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A cached parse refusal: enough to raise it afresh."""

    kind: type[RewriteError]
    message: str
    details: dict[str, str | int]

    @classmethod
    def of(cls, error: RewriteError) -> _Refusal:
        return cls(type(error), error.message, dict(error.details))

    def fresh(self) -> RewriteError:
        # A new instance each time: raising a cached one would chain tracebacks across
        # requests.
        return self.kind(self.message, **self.details)


def _refusal_bytes(sql: str, refusal: _Refusal) -> int:
    return ENTRY_BYTES + text_bytes(sql) + text_bytes(refusal.message)


class PlanCache:
    def __init__(
        self,
        *,
        max_bytes: int = PLAN_CACHE_BYTES,
        parse_max_bytes: int = PARSE_CACHE_BYTES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if max_bytes < 1 or parse_max_bytes < 1 or max_entry_bytes < 1:
            raise ValueError("cache sizes must be >= 1")
        # The weight is computed once, at insertion, and kept beside the value.
        self._plans: LRUCache[PlanKey, tuple[Plan, int]] = LRUCache(
            maxsize=max_bytes, getsizeof=_weight
        )
        self._parsed: LRUCache[tuple[str, str], tuple[ParsedStatement | _Refusal, int]] = LRUCache(
            maxsize=parse_max_bytes, getsizeof=_weight
        )
        self._max_plan = min(max_entry_bytes, max_bytes)
        self._max_parsed = min(max_entry_bytes, parse_max_bytes)
        self.limits = limits
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._uncached = 0

    def parse(self, sql: str, *, dialect: str) -> ParsedStatement:
        limits = self.limits
        if len(sql) > limits.max_sql_chars:
            # Refused (parse_statement raises at once) before the text is hashed for a
            # lookup, and never cached.
            return parse_statement(sql, dialect=dialect, limits=limits)
        key = (sql, dialect)
        with self._lock:
            entry = self._parsed.get(key)
        if entry is not None:
            found = entry[0]
            if isinstance(found, _Refusal):
                raise found.fresh()
            return found
        try:
            parsed = parse_statement(sql, dialect=dialect, limits=limits)
        except RecursionError:
            # The parse guards its own recursion; this is the backstop for the passes
            # after it, should a tree within ``max_depth`` still exhaust the stack.
            refused: RewriteError = too_deep(limits.max_depth)
        except RewriteError as exc:
            refused = exc
        else:
            self._remember(key, parsed, parsed_bytes(parsed))
            return parsed
        refusal = _Refusal.of(refused)
        self._remember(key, refusal, _refusal_bytes(sql, refusal))
        raise refusal.fresh()

    def _remember(
        self, key: tuple[str, str], value: ParsedStatement | _Refusal, weight: int
    ) -> None:
        with self._lock:
            if weight <= self._max_parsed:
                self._parsed[key] = (value, weight)
            else:
                self._uncached += 1

    def plan(
        self,
        parsed: ParsedStatement,
        *,
        tables: Mapping[str, TableShape | None],
        backend: str,
        missing_columns: str = "error",
        tenant_label: str = "",
        allow_unfiltered: bool = False,
        row_cap: bool = False,
        lift_literals: bool = False,
    ) -> tuple[Plan, bool]:
        """The plan for ``parsed`` on tables of these shapes, and whether it was cached."""
        # A gate, not part of the plan: checked before the lookup, kept out of the key.
        require_filter(parsed.unfiltered, allow_unfiltered=allow_unfiltered)
        key = _plan_key(
            parsed,
            tables,
            backend,
            missing_columns,
            row_cap=row_cap,
            lift_literals=lift_literals,
        )
        if key is not None:
            with self._lock:
                entry = self._plans.get(key)
                if entry is not None:
                    self._hits += 1
                    return entry[0], True
                self._misses += 1
        # key None: a table the tenant lacks, and rewrite raises unknown_table.
        plan = rewrite(
            parsed,
            tables=tables,
            backend=backend,
            missing_columns=missing_columns,
            tenant_label=tenant_label,
            allow_unfiltered=allow_unfiltered,
            row_cap=row_cap,
            lift_literals=lift_literals,
        )
        if key is not None:
            weight = plan_bytes(key, plan)
            with self._lock:
                if weight <= self._max_plan:
                    self._plans[key] = (plan, weight)
                else:
                    self._uncached += 1
        return plan, False

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._parsed.clear()

    def get_stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self._hits,
                "misses": self._misses,
                "size": len(self._plans),
                "parsed_size": len(self._parsed),
                "bytes": int(self._plans.currsize),
                "parsed_bytes": int(self._parsed.currsize),
                "uncached": self._uncached,
            }


def _weight(entry: tuple[object, int]) -> int:
    return entry[1]


def _plan_key(
    parsed: ParsedStatement,
    tables: Mapping[str, TableShape | None],
    backend: str,
    missing_columns: str,
    *,
    row_cap: bool = False,
    lift_literals: bool = False,
) -> PlanKey | None:
    """The key of the plan, or None when a table of the statement has no shape.

    Only the statement's own tables count (``tables`` may hold more), looked up as
    ``rewrite`` does: by casefolded name, which ``parsed.tables`` already are.
    """
    # The cap is a bind parameter, so capped plans do not depend on max_rows.
    key = [
        parsed.sql,
        parsed.dialect,
        backend,
        missing_columns,
        "row_cap" if row_cap else "",
        "lift" if lift_literals else "",
    ]
    for name in sorted(parsed.tables):
        shape = tables.get(name)
        if shape is None:
            shape = _folded_get(tables, name)
            if shape is None:
                return None
        key.append(shape.fingerprint)
    return tuple(key)


def _folded_get(tables: Mapping[str, TableShape | None], name: str) -> TableShape | None:
    found = None
    for written, shape in tables.items():  # the last spelling wins, as in ``rewrite``
        if written.casefold() == name:
            found = shape
    return found
