"""A self-contained demo deployment on SQLite files.

``create_demo(directory)`` writes:

* ``controller.db``: table ``Customer(customer_id, domainname, sqlconnectstring)``
  with customers 1 ``alpha.example``, 2 ``beta.example`` and 3 ``gamma.example``,
  each pointing at its file with ``Driver=SQLite3;Database=<absolute path>``;
* ``tenant_1.db`` .. ``tenant_3.db``: the default schema of ``proxy.demo.seed``
  with 1,000 contacts each (by default), 200 accounts and 500 opportunities; tenant
  1 has no custom columns, tenant 2 has 20 on ``Contacts`` and tenant 3 has 800;
* ``demo.json``: the manifest, written last. A folder whose manifest matches the
  request (same format, contact count and folder) is a complete demo and is reused.

The files are built in a private staging folder inside ``directory`` and renamed into
place; the old manifest is removed first and the new one written last, so an
interrupted run never leaves something that looks complete. A lock file serialises
concurrent calls. The files are written with the stdlib ``sqlite3`` module (fast);
the service reads them through the SQLite ODBC driver.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from proxy.demo.seed import Column, custom_columns, seed_tenant

__all__ = ["DEMO_TENANTS", "DemoLayout", "DemoTenant", "create_demo", "odbc_sqlite"]

FORMAT = 1
MANIFEST = "demo.json"
CONTROLLER = "controller.db"

DEMO_TENANTS: tuple[tuple[int, str, int], ...] = (
    (1, "alpha.example", 0),
    (2, "beta.example", 20),
    (3, "gamma.example", 800),
)
"""(customer id, domain name, custom columns on ``Contacts``) of the demo customers."""


@dataclass(frozen=True, slots=True)
class DemoTenant:
    customer_id: int
    domain: str
    path: Path
    connection_string: str
    custom_columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class DemoLayout:
    directory: Path
    controller_path: Path
    controller_connection_string: str
    """``Driver=SQLite3;Database=<absolute path of controller.db>``."""
    tenants: tuple[DemoTenant, ...]
    contacts: int
    """Contacts per tenant."""
    reused: bool
    """True when an existing complete demo was found and nothing was written."""

    def tenant(self, key: int | str) -> DemoTenant:
        """A tenant by customer id or domain name."""
        for t in self.tenants:
            if key in (t.customer_id, t.domain):
                return t
        raise KeyError(key)


def odbc_sqlite(path: Path) -> str:
    """``Driver=SQLite3;Database=<path>``, brace-quoting the path only when ODBC needs it."""
    value = str(path)
    if any(ch in value for ch in ";{}") or value != value.strip():
        value = "{" + value.replace("}", "}}") + "}"
    return f"Driver=SQLite3;Database={value}"


def _seed_for(customer_id: int) -> int:
    """The row-data seed of a demo tenant (its custom columns all use seed 0, so tenant
    2's 20 fields are also the first 20 of tenant 3's 800: ``Custom_Region`` exists in
    both, which lets one query run across tenants)."""
    return customer_id


def _layout(directory: Path, contacts: int, *, reused: bool) -> DemoLayout:
    tenants = tuple(
        DemoTenant(
            customer_id=cid,
            domain=domain,
            path=directory / f"tenant_{cid}.db",
            connection_string=odbc_sqlite(directory / f"tenant_{cid}.db"),
            custom_columns=tuple(custom_columns(n)),
        )
        for cid, domain, n in DEMO_TENANTS
    )
    controller = directory / CONTROLLER
    return DemoLayout(
        directory=directory,
        controller_path=controller,
        controller_connection_string=odbc_sqlite(controller),
        tenants=tenants,
        contacts=contacts,
        reused=reused,
    )


def _manifest(layout: DemoLayout) -> dict[str, object]:
    return {
        "format": FORMAT,
        "directory": str(layout.directory),
        "contacts": layout.contacts,
        "tenants": [
            {"customer_id": t.customer_id, "domain": t.domain, "file": t.path.name,
             "custom_columns": len(t.custom_columns)}
            for t in layout.tenants
        ],
    }  # fmt: skip


def _is_complete(layout: DemoLayout) -> bool:
    try:
        found = json.loads((layout.directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    files = [layout.controller_path, *(t.path for t in layout.tenants)]
    return found == _manifest(layout) and all(f.is_file() for f in files)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / ".demo.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _sqlite_file(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path)
    try:
        # Built in a staging folder and published by rename: no journal needed.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        yield conn
        conn.commit()
    finally:
        conn.close()


def _write_controller(path: Path, layout: DemoLayout) -> None:
    with _sqlite_file(path) as conn:
        conn.execute(
            "CREATE TABLE Customer (customer_id INTEGER PRIMARY KEY, "
            "domainname TEXT UNIQUE, sqlconnectstring TEXT)"
        )
        conn.executemany(
            "INSERT INTO Customer (customer_id, domainname, sqlconnectstring) VALUES (?, ?, ?)",
            [(t.customer_id, t.domain, t.connection_string) for t in layout.tenants],
        )


def _build(layout: DemoLayout) -> None:
    directory = layout.directory
    (directory / MANIFEST).unlink(missing_ok=True)
    for stale in directory.glob(".demo-build-*"):  # left by a killed run (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-build-", dir=directory))
    try:
        for t in layout.tenants:
            with _sqlite_file(staging / t.path.name) as conn:
                seed_tenant(
                    conn,
                    "sqlite",
                    contacts=layout.contacts,
                    custom_columns=t.custom_columns,
                    seed=_seed_for(t.customer_id),
                )
        _write_controller(staging / CONTROLLER, layout)
        for t in layout.tenants:
            os.replace(staging / t.path.name, t.path)
        os.replace(staging / CONTROLLER, layout.controller_path)
        manifest = staging / MANIFEST
        manifest.write_text(json.dumps(_manifest(layout), indent=2) + "\n", encoding="utf-8")
        os.replace(manifest, directory / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def create_demo(directory: Path, *, contacts: int = 1000) -> DemoLayout:
    """Create (or reuse) the demo in ``directory``; see the module docstring."""
    if contacts < 1:
        raise ValueError("contacts must be >= 1")
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        layout = _layout(directory, contacts, reused=True)
        if _is_complete(layout):
            return layout
        layout = _layout(directory, contacts, reused=False)
        _build(layout)
        return layout


def main(argv: list[str] | None = None) -> int:
    """``python -m proxy.demo DIR [CONTACTS]``: create the demo and print its layout."""
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        print("usage: python -m proxy.demo DIRECTORY [CONTACTS]", file=sys.stderr)
        return 2
    started = time.perf_counter()
    layout = create_demo(Path(args[0]), contacts=int(args[1]) if len(args) == 2 else 1000)
    elapsed = time.perf_counter() - started
    state = "reused" if layout.reused else f"created in {elapsed:.2f} s"
    print(f"demo {state}: {layout.directory}")
    print(f"controller: {layout.controller_connection_string}")
    for t in layout.tenants:
        print(f"  {t.customer_id} {t.domain}: {len(t.custom_columns)} custom columns, {t.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
