"""How large a statement the rewriter takes: its text, parameters, depth and IN lists.

Each limit bounds the work and memory of one statement before most of it is spent;
past one, ``parse_statement`` raises ``StatementTooLarge`` naming it (``limit`` and
``limit_name`` in its details). The service takes the values from ``[query]``
(``docs/config.md`` gives the reasons for the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_sql_chars: int = 100_000
    """Characters of statement text, checked before anything else."""
    max_params: int = 2_100
    """``?`` or distinct ``@name`` parameters: SQL Server's own limit, for every backend."""
    max_depth: int = 150
    """Levels of the parsed tree. sqlglot's parser and generator and some of the
    rewriter's passes recurse per level, two or three Python frames each, under
    Python's limit of 1,000 frames shared with whatever runs the request."""
    max_in_list: int = 2_100
    """Items of one ``IN (...)`` list: the same list written with parameters stops at
    ``max_params``; each item costs about 0.4 KB of parsed tree."""
    max_name_chars: int = 128
    """Characters of one name (a table, column or alias): SQL Server's own limit
    (``sysname``), where PostgreSQL cuts names at 63 bytes. A table's name keys the
    metadata cache, negative entries included: without it, distinct unknown names of
    90,000 characters would each hold that much there for ``metadata.negative_ttl_s``."""

    def __post_init__(self) -> None:
        for name in ("max_sql_chars", "max_params", "max_depth", "max_in_list", "max_name_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


DEFAULT_LIMITS = Limits()
