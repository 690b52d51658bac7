"""A tiny ``TableShape`` and the shared test schema (data, not a database mock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    name: str
    column_names: Sequence[str]
    base_columns: Sequence[str]

    @property
    def custom_columns(self) -> Sequence[str]:
        base = set(self.base_columns)
        return [c for c in self.column_names if c not in base]

    @property
    def fingerprint(self) -> str:
        return repr((self.name, tuple(self.column_names), tuple(self.base_columns)))

    def lookup(self, name: str) -> str | None:
        if name in self.column_names:
            return name
        matches = [c for c in self.column_names if c.casefold() == name.casefold()]
        return matches[0] if len(matches) == 1 else None


CONTACTS = Shape(
    name="Contacts",
    column_names=(
        "ContactID",
        "AccountID",
        "FirstName",
        "LastName",
        "Email",
        "Custom_Region",
        "Shoe Size",
    ),
    base_columns=("ContactID", "AccountID", "FirstName", "LastName", "Email"),
)
ACCOUNTS = Shape(
    name="Accounts",
    column_names=("AccountID", "Name", "Industry", "Custom_Tier"),
    base_columns=("AccountID", "Name", "Industry"),
)
OPPORTUNITIES = Shape(
    name="Opportunities",
    column_names=("OpportunityID", "AccountID", "ContactID", "Amount", "Stage"),
    base_columns=("OpportunityID", "AccountID", "ContactID", "Amount", "Stage"),
)

SCHEMA: dict[str, Shape | None] = {
    "contacts": CONTACTS,
    "accounts": ACCOUNTS,
    "opportunities": OPPORTUNITIES,
    "archived": None,  # a table this tenant does not have
}
