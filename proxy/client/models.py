"""The values the client hands back and takes: results, columns, statements.

Plain frozen dataclasses, so that a ``Result`` compares, prints and pickles like the
data it is. Rows stay lists, as the API sends them: a result of many rows costs no
more than its JSON; ``Result.records()`` builds dicts for who wants them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = ["Column", "Params", "Result", "Statement", "StatementLike"]

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]
"""Values for ``?`` in order, or for ``@name`` by name."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    """The API's stable type name: integer, decimal, number, string, boolean, date,
    datetime, time, binary, uuid or unknown."""


@dataclass(frozen=True, slots=True)
class Result:
    """One statement's answer: the rows of a read, the affected count of a write."""

    columns: list[Column]
    rows: list[list[Any]]
    row_count: int
    """Rows returned by a read; rows affected by a write."""
    truncated: bool = False
    """The read had more rows than ``max_rows``; ``rows`` holds the first ones."""

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts by column name (a later duplicate name wins)."""
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        """The first column of the first row, ``None`` without rows."""
        return self.rows[0][0] if self.rows and self.rows[0] else None

    def __iter__(self) -> Iterator[list[Any]]:
        # No __len__: a write's empty result must not be falsy.
        return iter(self.rows)


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a batch, with its own row cap and options."""

    sql: str
    params: Params = field(default_factory=tuple)
    max_rows: int | None = None
    missing_columns: str | None = None
    allow_unfiltered: bool = False


StatementLike: TypeAlias = Statement | tuple[str, Params] | str
"""What ``batch`` takes per statement: a ``Statement``, ``(sql, params)`` or bare SQL."""
