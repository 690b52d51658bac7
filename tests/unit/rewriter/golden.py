"""Loading and running the table-driven golden cases in tests/fixtures/rewriter/*.toml.

A case is ``{name, sql, [dialect], [missing_columns], [tenant]}`` plus either
``expect = {sqlite, postgresql, sqlserver, columns, params}`` (each key optional;
``params`` is a list, or a table keyed by backend when the backends differ) or
``error = "<code>"`` (with an optional ``message`` substring).
``row_cap = true`` rewrites with the row cap; a ``RowCap`` in ``params`` is written
``{ row_cap = {} }``, ``{ row_cap = { count = 5 } }`` or ``{ row_cap = { param = 0 } }``.
SQL is compared after ``bind`` with the location below.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewriter import RowCap

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rewriter"
BACKENDS = ("sqlserver", "postgresql", "sqlite")
# Where the golden SQL pretends the tenant lives.
LOCATIONS: dict[str, tuple[str | None, str | None]] = {
    "sqlserver": ("T2", "dbo"),
    "postgresql": (None, "t2"),
    "sqlite": (None, None),
}


@dataclass(frozen=True)
class Case:
    file: str
    name: str
    sql: str
    dialect: str
    missing_columns: str
    tenant: str
    expect: dict[str, Any] | None
    error: str | None
    message: str | None
    row_cap: bool = False

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(FIXTURES.glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        for raw in data.get("case", []):
            cases.append(
                Case(
                    file=path.stem,
                    name=raw["name"],
                    sql=raw["sql"],
                    dialect=raw.get("dialect", "tsql"),
                    missing_columns=raw.get("missing_columns", "error"),
                    tenant=raw.get("tenant", "beta.example"),
                    expect=raw.get("expect"),
                    error=raw.get("error"),
                    message=raw.get("message"),
                    row_cap=raw.get("row_cap", False),
                )
            )
    return cases


def param_entry(entry: int | str | RowCap) -> object:
    """A ``Plan.param_order`` entry as the fixtures write it."""
    if isinstance(entry, RowCap):
        fields = {"count": entry.count, "param": entry.param}
        return {"row_cap": {k: v for k, v in fields.items() if v is not None}}
    return entry
