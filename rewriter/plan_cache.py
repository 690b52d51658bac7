"""Bounded, thread-safe caches in front of ``parse_statement`` and ``rewrite``.

A plan depends on the statement text, the dialects, the options and the shapes of
the tables involved, never on which tenant asked: the key holds each table's
fingerprint, not the tenant, so tenants whose tables have identical shapes share
plans, and ``Plan.bind`` adds the tenant's location afterwards.

Parse failures are cached too (they depend on the text alone), so a caller that
repeats a refused statement costs a dictionary lookup. Rewrite failures are not:
their messages name the tenant.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from cachetools import LRUCache

from rewriter.errors import RewriteError
from rewriter.parse import ParsedStatement, parse_statement
from rewriter.plan import Plan, rewrite
from rewriter.shapes import TableShape
from rewriter.writes import require_filter

# (statement text, input dialect, backend, missing-columns policy, row cap or not,
# then one fingerprint per table of the statement in sorted name order).
PlanKey = tuple[str, ...]


class PlanCache:
    def __init__(self, *, maxsize: int = 10_000, parse_maxsize: int = 10_000) -> None:
        if maxsize < 1 or parse_maxsize < 1:
            raise ValueError("cache sizes must be >= 1")
        self._plans: LRUCache[PlanKey, Plan] = LRUCache(maxsize=maxsize)
        self._parsed: LRUCache[tuple[str, str], ParsedStatement | RewriteError] = LRUCache(
            maxsize=parse_maxsize
        )
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def parse(self, sql: str, *, dialect: str) -> ParsedStatement:
        key = (sql, dialect)
        with self._lock:
            found = self._parsed.get(key)
        if found is None:
            try:
                found = parse_statement(sql, dialect=dialect)
            except RewriteError as exc:
                found = exc
            with self._lock:
                self._parsed[key] = found
        if isinstance(found, RewriteError):
            # A fresh instance: raising the cached one would chain tracebacks across requests.
            raise type(found)(found.message, **found.details)
        return found

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
    ) -> tuple[Plan, bool]:
        """The plan for ``parsed`` on tables of these shapes, and whether it was cached."""
        # A gate, not part of the plan: checked before the lookup, kept out of the key.
        require_filter(parsed.unfiltered, allow_unfiltered=allow_unfiltered)
        key = _plan_key(parsed, tables, backend, missing_columns, row_cap)
        if key is not None:
            with self._lock:
                plan = self._plans.get(key)
                if plan is not None:
                    self._hits += 1
                    return plan, True
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
        )
        if key is not None:
            with self._lock:
                self._plans[key] = plan
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
            }


def _plan_key(
    parsed: ParsedStatement,
    tables: Mapping[str, TableShape | None],
    backend: str,
    missing_columns: str,
    row_cap: bool = False,
) -> PlanKey | None:
    """The key of the plan, or None when a table of the statement has no shape.

    Only the statement's own tables count (``tables`` may hold more), looked up as
    ``rewrite`` does: by casefolded name, which ``parsed.tables`` already are.
    """
    # The cap is a bind parameter, so capped plans do not depend on max_rows.
    key = [parsed.sql, parsed.dialect, backend, missing_columns, "row_cap" if row_cap else ""]
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
