"""Where a tenant's data lives, and which pool reaches it.

Filled in by ``locate()`` from the controller's connection string merged over the
per-backend template. Every string field but ``connect`` is free of secrets and may
be logged, exported as a metric label or shown by ``explain``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from cachetools import LRUCache

from tenancy.backends import BackendKind, driver_name, is_library, kind_for_driver
from tenancy.connstr import EMPTY, ConnectionString
from tenancy.errors import TenantMisconfigured

__all__ = ["TenantLocation", "locate"]


@dataclass(frozen=True, slots=True)
class TenantLocation:
    kind: BackendKind
    connect: ConnectionString
    """What the pool connects with. For SQL Server without the tenant's database."""
    pool_key: str
    """Stable, secret-free id of the pool: same server and login, same pool."""
    server_key: str
    """Secret-free label of the server, e.g. ``postgresql://db1:5432``."""
    catalog: str | None
    """Database that generated SQL qualifies tables with (SQL Server), else ``None``."""
    schema: str | None
    """Schema that generated SQL qualifies tables with, else ``None`` (SQLite)."""
    database: str | None
    """The tenant's database (or file, for SQLite), for display."""

    key: str = field(init=False, repr=False, compare=False)
    """Secret-free id of the tenant's database or schema: the metadata cache key (made
    once, interned: every request's metadata look-up reads it)."""

    def __post_init__(self) -> None:
        key = f"{self.pool_key}/{self.catalog or ''}/{self.schema or ''}"
        object.__setattr__(self, "key", sys.intern(key))


SCHEMA_KEY = "Schema"
"""tenantgate's own keyword (schema-per-tenant layouts); consumed, never sent to a driver."""

# Keywords that would make the driver manager read or write connection attributes from
# somewhere other than the string we validated: DSN and FileDSN pull them from files
# (and DSN wins over Driver when it comes first), SaveFile writes the string, password
# included, to a file of the tenant string's choosing.
_REFUSED_KEYS = ("DSN", "FileDSN", "SaveFile")

# Keywords a driver treats as one setting. When the tenant sets any spelling, the
# template's spellings of the same setting are dropped so the tenant's value wins.
_ALIASES: dict[BackendKind, tuple[tuple[str, ...], ...]] = {
    BackendKind.SQLITE: (("Database",),),
    BackendKind.POSTGRESQL: (
        ("Server", "Servername"),
        ("Database",),
        ("Port",),
        ("Uid", "Username"),
        ("Pwd", "Password"),
    ),
    BackendKind.SQLSERVER: (
        ("Server", "Address", "Addr"),
        ("Port",),
        ("Database", "Initial Catalog"),
        ("Uid", "User", "User ID"),
        ("Pwd", "Password"),
    ),
}

_POOL_KEY_SECRET = secrets.token_bytes(32)
"""Per process, so pool keys cannot be brute-forced offline into the passwords they cover.
Pool keys are therefore only stable within one process: never persist them."""

_POOL_KEY_HEX_CHARS = 32  # 128 bits: collisions are not a practical concern


def _pool_key(kind: BackendKind, canonical: str) -> str:
    digest = hmac.new(_POOL_KEY_SECRET, canonical.encode("utf-8"), hashlib.sha256)
    return f"{kind.value}:{digest.hexdigest()[:_POOL_KEY_HEX_CHARS]}"


_SHARED: LRUCache[tuple[BackendKind, str], tuple[ConnectionString, str]] = LRUCache(4096)
_SHARED_LOCK = threading.Lock()


def _shared(kind: BackendKind, connect: ConnectionString) -> tuple[ConnectionString, str]:
    """One ``ConnectionString`` and pool key per distinct way of connecting.

    Thousands of tenants in the schemas of one PostgreSQL database, or in the databases
    of one SQL Server, connect the same way: without this each would hold its own copy
    of both (about 1.5 KB a tenant, measured with ``benchmarks/many_tenants.py``). The
    table is bounded; an evicted entry is only made again.
    """
    canonical = connect.canonical()
    key = (kind, canonical)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
    if found is None:
        made = (connect, _pool_key(kind, canonical))
        with _SHARED_LOCK:
            found = _SHARED.setdefault(key, made)
    return found


def _merge(cs: ConnectionString, template: ConnectionString, kind: BackendKind) -> ConnectionString:
    for group in _ALIASES[kind]:
        if any(alias in cs for alias in group):
            template = template.without(*group)
    return cs.merged_over(template)


def _one_of(cs: ConnectionString, aliases: tuple[str, ...], what: str) -> str | None:
    """The value of a setting spelt several ways; conflicting spellings are refused."""
    values = {cs[alias] for alias in aliases if alias in cs}
    if len(values) > 1:
        raise TenantMisconfigured(
            f"connection string sets {what} twice with different values ({', '.join(aliases)})"
        )
    return values.pop() if values else None


def _required(cs: ConnectionString, aliases: tuple[str, ...], what: str) -> str:
    value = _one_of(cs, aliases, what)
    if value is None or not value.strip():
        raise TenantMisconfigured(
            f"connection string has no {what} ({' or '.join(aliases)}): {cs.redacted()}"
        )
    return value.strip()


def _port(text: str | None, default: int, cs: ConnectionString) -> int:
    if text is None:
        return default
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or not 0 < int(stripped) < 65536:
        raise TenantMisconfigured(f"connection string has an invalid port: {cs.redacted()}")
    return int(stripped)


def _host_label(host: str) -> str:
    host = host.casefold()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


_TEMPLATE_ONLY_KEYS = ("ConnSettings", "pqopt")


def _template_libraries(
    templates: Mapping[BackendKind, ConnectionString],
) -> dict[str, BackendKind]:
    """Driver libraries named by path in the templates: the only paths a tenant may use."""
    return {
        driver_name(template["Driver"]): kind
        for kind, template in templates.items()
        if "Driver" in template and is_library(template["Driver"])
    }


def locate(
    cs: ConnectionString, templates: Mapping[BackendKind, ConnectionString]
) -> TenantLocation:
    """Work out where a tenant lives and which pool reaches it.

    The tenant's own string wins over the per-backend template: the template supplies
    deployment-wide defaults (credentials, TLS options), the controller the specifics.
    """
    driver = cs.get("Driver")
    if driver is None:
        if any(key in cs for key in ("DSN", "FileDSN")):
            raise TenantMisconfigured(
                "connection string names a DSN but no Driver; tenantgate needs Driver= "
                f"to know the backend: {cs.redacted()}"
            )
        raise TenantMisconfigured(f"connection string names no Driver: {cs.redacted()}")
    kind = kind_for_driver(driver, _template_libraries(templates))
    for key in _TEMPLATE_ONLY_KEYS:
        if key in cs:
            # These run SQL or pass raw libpq options when a connection opens: only the
            # deployment's template may set them, never a controller record.
            raise TenantMisconfigured(
                f"a tenant's connection string may not set {key}=; put it in the backend template"
            )
    merged = _merge(cs, templates.get(kind, EMPTY), kind)
    for key in _REFUSED_KEYS:
        if key in merged:
            raise TenantMisconfigured(
                f"connection string may not use {key}= (tenantgate connects by Driver "
                f"only): {merged.redacted()}"
            )

    schema = merged.get(SCHEMA_KEY)
    if schema is not None and not schema.strip():
        raise TenantMisconfigured(f"connection string has an empty Schema: {merged.redacted()}")
    merged = merged.without(SCHEMA_KEY)

    if kind is BackendKind.SQLITE:
        return _locate_sqlite(merged, schema)
    if kind is BackendKind.POSTGRESQL:
        return _locate_postgresql(merged, schema)
    return _locate_sqlserver(merged, schema)


def _locate_sqlite(merged: ConnectionString, schema: str | None) -> TenantLocation:
    if schema is not None:
        # Ignoring it would put tenants that expect separate schemas into one file.
        raise TenantMisconfigured("Schema= is not supported for SQLite tenants")
    path = _required(merged, ("Database",), "database file")
    connect, pool_key = _shared(BackendKind.SQLITE, merged)
    return TenantLocation(
        kind=BackendKind.SQLITE,
        connect=connect,
        pool_key=pool_key,
        server_key="sqlite://local",
        catalog=None,
        schema=None,
        database=path,
    )


def _locate_postgresql(merged: ConnectionString, schema: str | None) -> TenantLocation:
    host = _required(merged, ("Server", "Servername"), "server")
    port = _port(_one_of(merged, ("Port",), "port"), 5432, merged)
    database = _required(merged, ("Database",), "database")
    connect, pool_key = _shared(BackendKind.POSTGRESQL, merged)
    return TenantLocation(
        kind=BackendKind.POSTGRESQL,
        connect=connect,
        pool_key=pool_key,
        server_key=sys.intern(f"postgresql://{_host_label(host)}:{port}"),
        catalog=None,
        schema=schema.strip() if schema is not None else "public",
        database=database,
    )


def _locate_sqlserver(merged: ConnectionString, schema: str | None) -> TenantLocation:
    server = _required(merged, ("Server", "Address", "Addr"), "server")
    database = _required(merged, ("Database", "Initial Catalog"), "database")
    # Without the database, every tenant database on one server and login shares a pool;
    # generated SQL names the database explicitly instead.
    connect, pool_key = _shared(
        BackendKind.SQLSERVER, merged.without("Database", "Initial Catalog")
    )
    return TenantLocation(
        kind=BackendKind.SQLSERVER,
        connect=connect,
        pool_key=pool_key,
        server_key=sys.intern(_sqlserver_server_key(server, merged)),
        catalog=database,
        schema=schema.strip() if schema is not None else "dbo",
        database=database,
    )


def _sqlserver_server_key(server: str, merged: ConnectionString) -> str:
    """``sqlserver://host:port`` or ``sqlserver://host/instance`` from a Server value.

    Accepts ``host``, ``host,port``, ``tcp:host,port`` and ``host\\instance``, with the
    port also taken from ``Port=`` (FreeTDS's spelling); other
    protocols (named pipes, shared memory, the admin connection) are refused because a
    proxy reaching tenants over the network has no business using them.
    """
    text = server.strip()
    prefix, colon, rest = text.partition(":")
    if colon and prefix.casefold() in {"tcp", "np", "lpc", "admin"}:
        if prefix.casefold() != "tcp":
            raise TenantMisconfigured(
                f"SQL Server protocol {prefix.casefold()!r} is not supported: {merged.redacted()}"
            )
        text = rest.strip()
    port: int | None = None
    if "," in text:
        text, _, port_text = text.rpartition(",")
        port = _port(port_text, 1433, merged)
    elif "Port" in merged:
        # FreeTDS reads the port from Port= only (its "host,port" form fails to connect).
        port = _port(merged["Port"], 1433, merged)
    host, _, instance = text.partition("\\")
    host, instance = host.strip(), instance.strip()
    if not host:
        raise TenantMisconfigured(f"connection string has an empty server: {merged.redacted()}")
    if port is None and instance:
        return f"sqlserver://{_host_label(host)}/{instance.casefold()}"
    return f"sqlserver://{_host_label(host)}:{port or 1433}"
