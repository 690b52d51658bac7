"""What the rewriter needs to know about a tenant's table.

The rewriter never loads metadata itself: the caller hands it one ``TableShape``
per table the statement names. ``tenancy.metadata.TableMetadata`` satisfies this
protocol structurally, so neither package imports the other.

A shape may also have ``type_of(name) -> str | None``: the declared type of a
physical column (``'nvarchar(50)'``, ``'integer'``), or ``None`` when unknown. It is
optional (``column_type`` asks for it); without it, transpilation that depends on
operand types (string ``+``, integer ``AVG``) treats columns as of unknown type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


class TableShape(Protocol):
    @property
    def name(self) -> str:
        """The table's physical name, as the backend spells it."""

    @property
    def column_names(self) -> Sequence[str]:
        """Every physical column, in the backend's ordinal order."""

    @property
    def base_columns(self) -> Sequence[str]:
        """Physical names of the base-model columns present, in the base model's order.

        For a table with no declared base model this is every column.
        """

    @property
    def custom_columns(self) -> Sequence[str]:
        """Physical names of the columns outside the base model, in ordinal order."""

    @property
    def fingerprint(self) -> str:
        """Identifies the shape: equal fingerprints mean interchangeable shapes."""

    def lookup(self, name: str) -> str | None:
        """The physical spelling of column ``name``, or ``None`` when absent.

        An exact match wins; otherwise the match ignores case, and a name that
        matches several columns only by case is absent.
        """


@runtime_checkable
class TypedShape(Protocol):
    def type_of(self, name: str) -> str | None:
        """The declared type of physical column ``name``, or ``None`` when unknown."""


def column_type(shape: TableShape, name: str) -> str | None:
    """The declared type of ``shape``'s physical column ``name``, if the shape knows it."""
    # Not ``isinstance(shape, TypedShape)``: a runtime protocol check costs ~25 us.
    type_of = getattr(shape, "type_of", None)
    if type_of is None:
        return None
    type_name: str | None = type_of(name)
    return type_name
