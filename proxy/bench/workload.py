"""The workload: named scripts with weights, each drawing one transaction's parameters.

A script is what pgbench calls a builtin (``-b name@weight``): ``--script
point_read@60 --script join@20``. Each request picks a script by weight and draws its
parameters afresh from a seeded ``random.Random``: keys are uniform over the tenant's
seeded contacts (``contacts`` in ``fleet.json``), so the same seed sends the same
requests to every target.

A draw is an ``Op``, independent of the target that runs it:

* ``Query``: one logical statement (T-SQL dialect, logical tables) and its params. Over
  HTTP it is ``POST /v1/query``; directly, the backend SQL tenantgate generates for it
  (``targets.Templates``).
* ``Patch``: the records API's optimistic update: ``GET`` the record for its ``ETag``,
  then ``PATCH`` it with ``If-Match``. Directly: the same row read then updated by key.
* ``FieldAddDrop``: the admin API adds a custom field to ``Contacts`` and drops it again
  (two requests); directly, the DDL tenantgate would run (``tenancy.ddl``).

Nothing here does I/O.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.bench.fleet import FleetTenant

__all__ = [
    "DEFAULT_MIX",
    "PATCH_READ_SQL",
    "PATCH_WRITE_SQL",
    "SCRIPTS",
    "FieldAddDrop",
    "Mix",
    "Op",
    "Patch",
    "Query",
    "Script",
    "WorkloadError",
    "parse_mix",
]


class WorkloadError(ValueError):
    """A ``--script`` the generator cannot use."""


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    """The statement's shape: the same text for every draw (the direct target's key)."""
    params: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Patch:
    table: str
    key: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldAddDrop:
    table: str
    name: str


Op = Query | Patch | FieldAddDrop

POINT_READ_SQL = "SELECT ContactID, FirstName, LastName, Email FROM Contacts WHERE ContactID = ?"
CUSTOM_FIELDS_SQL = "SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID = ?"
JOIN_SQL = (
    "SELECT TOP 20 c.ContactID, c.FirstName, c.LastName, a.Name AS Account, "
    "o.Name AS Opportunity, o.Stage, o.Amount FROM Contacts c "
    "JOIN Accounts a ON a.AccountID = c.AccountID "
    "JOIN Opportunities o ON o.AccountID = a.AccountID "
    "WHERE c.ContactID = ? ORDER BY o.Amount DESC"
)
INSERT_SQL = (
    "INSERT INTO Contacts (AccountID, FirstName, LastName, Email, LeadScore, IsActive, "
    "CreatedAt) VALUES (?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP)"
)
PATCH_READ_SQL = "SELECT * FROM Contacts WHERE ContactID = ?"
"""What the direct target runs for a ``Patch``: the row read by key..."""
PATCH_WRITE_SQL = "UPDATE Contacts SET Email = ?, LeadScore = ? WHERE ContactID = ?"
"""...then updated by key (the records API compares the ETag in Python, not in SQL)."""

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")

Draw = Callable[[random.Random, FleetTenant, str], Op]
"""(rng, tenant, unique tag of this request) -> the op."""


def _key(rng: random.Random, tenant: FleetTenant) -> int:
    return rng.randint(1, max(1, tenant.contacts))


def _point_read(rng: random.Random, tenant: FleetTenant, tag: str) -> Op:
    return Query(POINT_READ_SQL, (_key(rng, tenant),))


def _custom_fields(rng: random.Random, tenant: FleetTenant, tag: str) -> Op:
    return Query(CUSTOM_FIELDS_SQL, (_key(rng, tenant),))


def _join(rng: random.Random, tenant: FleetTenant, tag: str) -> Op:
    return Query(JOIN_SQL, (_key(rng, tenant),))


def _insert(rng: random.Random, tenant: FleetTenant, tag: str) -> Op:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return Query(
        INSERT_SQL,
        (
            rng.randint(1, max(1, tenant.accounts)),
            first,
            last,
            f"{first}.{last}.{tag}@bench.example".lower(),
            rng.randint(0, 100),
            True,
        ),
    )


def _patch(rng: random.Random, tenant: FleetTenant, tag: str) -> Op:
    return Patch(
        "Contacts",
        _key(rng, tenant),
        {"Email": f"patched.{tag}@bench.example", "LeadScore": rng.randint(0, 100)},
    )


def _field_ddl(rng: random.Random, tenant: FleetTenant, tag: str) -> Op:
    return FieldAddDrop("Contacts", f"bench_{tag}")


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    description: str
    draw: Draw


SCRIPTS: dict[str, Script] = {
    s.name: s
    for s in (
        Script("point_read", "SELECT 4 columns of one contact by key", _point_read),
        Script("custom_fields", "SELECT *, CUSTOM_FIELDS() of one contact by key", _custom_fields),
        Script("join", "Contacts JOIN Accounts JOIN Opportunities, TOP 20, by contact", _join),
        Script("insert", "INSERT one contact", _insert),
        Script("patch", "records API: GET a contact for its ETag, PATCH with If-Match", _patch),
        Script("field_ddl", "admin API: add a custom field to Contacts, drop it", _field_ddl),
    )
}

DEFAULT_MIX = ("point_read@60", "custom_fields@15", "join@15", "insert@5", "patch@5")
"""No DDL unless asked: it changes every tenant's schema under the other scripts."""


@dataclass(frozen=True, slots=True)
class Mix:
    scripts: tuple[Script, ...]
    weights: tuple[float, ...]
    cum: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cum", tuple(itertools.accumulate(self.weights)))

    def pick(self, rng: random.Random) -> Script:
        if len(self.scripts) == 1:
            return self.scripts[0]
        return rng.choices(self.scripts, cum_weights=self.cum)[0]

    def shares(self) -> dict[str, float]:
        total = sum(self.weights)
        return {s.name: w / total for s, w in zip(self.scripts, self.weights, strict=True)}


def parse_mix(specs: Sequence[str]) -> Mix:
    """``name@weight`` specs (weight 1 when omitted) as a ``Mix``; a name given twice
    adds its weights."""
    weights: dict[str, float] = {}
    for spec in specs:
        name, at, raw = spec.strip().partition("@")
        if name not in SCRIPTS:
            known = ", ".join(SCRIPTS)
            raise WorkloadError(f"unknown script {name!r} (known: {known})")
        try:
            weight = float(raw) if at else 1.0
        except ValueError:
            raise WorkloadError(f"--script {spec!r}: the weight must be a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise WorkloadError(f"--script {spec!r}: the weight must be >= 0")
        weights[name] = weights.get(name, 0.0) + weight
    chosen = [(SCRIPTS[n], w) for n, w in weights.items() if w > 0]
    if not chosen:
        raise WorkloadError("no script has a weight above 0")
    return Mix(tuple(s for s, _ in chosen), tuple(w for _, w in chosen))
