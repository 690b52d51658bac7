"""The fleet manifest (``fleet.json``) shared by ``tenantgate seed`` and ``tenantgate bench``.

``tenantgate seed --dir DIR`` writes ``DIR/fleet.json`` (mode 0600, it holds connection
strings with passwords), ``DIR/tenantgate.toml`` and ``DIR/token``; ``tenantgate bench
--fleet DIR`` reads them. A tenant is listed only once fully seeded, so a partial fleet
(``complete: false``) is usable.

``write_fleet`` writes the manifest atomically (a temporary file in the same folder,
then a rename), so a reader never sees half a file, and with mode 0600 from the start;
``write_private`` does the same for the token and the configuration. ``parameters``
holds what the fleet was seeded with (no secrets): ``tenantgate seed`` compares it when
it resumes, ``tenantgate bench`` may show it in its report.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST",
    "TOKEN",
    "Fleet",
    "FleetError",
    "FleetTenant",
    "load_fleet",
    "write_fleet",
    "write_private",
]

FORMAT = 1
MANIFEST = "fleet.json"
TOKEN = "token"  # noqa: S105 - the file's name


class FleetError(Exception):
    """The fleet directory or its manifest is missing or unreadable."""


@dataclass(frozen=True, slots=True)
class FleetTenant:
    customer_id: int
    domain: str
    connection_string: str
    """The ODBC string tenantgate uses; holds a password: never print it."""
    custom_columns: int
    contacts: int
    accounts: int
    opportunities: int

    def __repr__(self) -> str:
        return f"FleetTenant({self.customer_id}, {self.domain!r})"

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "domain": self.domain,
            "connection_string": self.connection_string,
            "custom_columns": self.custom_columns,
            "contacts": self.contacts,
            "accounts": self.accounts,
            "opportunities": self.opportunities,
        }


@dataclass(frozen=True, slots=True)
class Fleet:
    fleet_id: str
    backend: str
    layout: str
    controller_connection_string: str
    controller_table: str
    tenants: tuple[FleetTenant, ...]
    complete: bool
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """What ``tenantgate seed`` was run with (no secrets)."""

    def __repr__(self) -> str:
        return f"Fleet({self.fleet_id!r}, {self.backend}, {len(self.tenants)} tenants)"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "fleet_id": self.fleet_id,
            "backend": self.backend,
            "layout": self.layout,
            "controller": {
                "connection_string": self.controller_connection_string,
                "table": self.controller_table,
            },
            "tenants": [t.to_json() for t in self.tenants],
            "complete": self.complete,
            "parameters": dict(self.parameters),
        }


def _tenant(raw: dict[str, Any]) -> FleetTenant:
    return FleetTenant(
        customer_id=int(raw["customer_id"]),
        domain=str(raw["domain"]),
        connection_string=str(raw["connection_string"]),
        custom_columns=int(raw.get("custom_columns", 0)),
        contacts=int(raw.get("contacts", 0)),
        accounts=int(raw.get("accounts", 0)),
        opportunities=int(raw.get("opportunities", 0)),
    )


def load_fleet(path: str | Path) -> Fleet:
    """The fleet in ``path`` (a fleet directory or its ``fleet.json``)."""
    path = Path(path)
    manifest = path / MANIFEST if path.is_dir() else path
    try:
        raw = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetError(f"no fleet manifest at {manifest} (run tenantgate seed)") from None
    except (OSError, ValueError) as exc:
        raise FleetError(f"cannot read {manifest}: {type(exc).__name__}") from None
    try:
        if raw.get("format") != FORMAT:
            raise FleetError(f"{manifest}: unsupported format {raw.get('format')!r}")
        controller = raw.get("controller") or {}
        return Fleet(
            fleet_id=str(raw.get("fleet_id", "")),
            backend=str(raw["backend"]),
            layout=str(raw.get("layout", "")),
            controller_connection_string=str(controller.get("connection_string", "")),
            controller_table=str(controller.get("table", "Customer")),
            tenants=tuple(_tenant(t) for t in raw.get("tenants", ())),
            complete=bool(raw.get("complete", False)),
            parameters=dict(raw.get("parameters") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FleetError(f"{manifest} is not a fleet manifest ({type(exc).__name__})") from None


def write_private(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (mode 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_fleet(directory: str | Path, fleet: Fleet) -> None:
    """``DIR/fleet.json`` for ``fleet``, atomically and with mode 0600."""
    write_private(Path(directory) / MANIFEST, json.dumps(fleet.to_json(), indent=1) + "\n")
