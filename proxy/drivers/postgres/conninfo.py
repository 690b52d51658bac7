"""A tenant's ODBC-style connection string as libpq connection parameters.

Tenants and the ``[backends.postgresql]`` template speak psqlODBC's keywords
(``tenancy.location`` has already merged them); libpq gets these:

=====================  ==========================  ========================================
ODBC keyword           libpq parameter             note
=====================  ==========================  ========================================
Server, Servername     host
Port                   port
Database               dbname
Uid, Username          user
Pwd, Password          password                    never shown (``ConnParams`` redacts it)
SSLmode                sslmode                     libpq's names, or psqlODBC's short forms
                                                   (``r``, ``vf``...) read as psqlODBC does
KeepaliveTime          keepalives_idle             seconds
KeepaliveInterval      keepalives_interval         seconds
ReadOnly               options=-c                  psqlODBC refuses non-SELECT statements
                       default_transaction_        itself; here the server does
                       read_only=on
pqopt                  its own libpq parameters    template only (``locate`` refuses it in
                                                   a tenant's string); cannot set host,
                                                   hostaddr, port, dbname, user,
                                                   password or service
ConnSettings           SQL run once per new        template only, as psqlODBC does
                       connection
anything else          ignored                     psqlODBC's own switches (BoolsAsChar,
                                                   UseDeclareFetch, Protocol...) and Driver
=====================  ==========================  ========================================

Added to every connection: ``application_name=tenantgate``, ``client_encoding=UTF8``,
``connect_timeout`` (the login timeout rounded up, at least 2: libpq reads 1 as 2),
and, unless the driver was built with ``keepalives=False``, TCP keepalives (30 s idle,
then every 10 s, dead after 3 misses) and ``tcp_user_timeout=30000`` ms, so that a
partitioned server is noticed by the kernel instead of hanging a request. ``pqopt``
overrides these defaults.

Other libpq parameters (``sslrootcert``, ``target_session_attrs``...) are not read
from the ODBC keywords of the same name: they name local files or change which
server is reached, which a controller record (hostile input, see
``tenancy.connstr``) must not do. The deployment's template can set them in
``pqopt``, exactly as with psqlODBC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tenancy.connstr import ConnectionString
from tenancy.errors import TenantMisconfigured

__all__ = ["ConnParams", "conn_params", "login_timeout_s"]

APPLICATION_NAME = "tenantgate"
KEEPALIVES: dict[str, str] = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}

_DIRECT: dict[str, str] = {
    "server": "host",
    "servername": "host",
    "port": "port",
    "database": "dbname",
    "uid": "user",
    "username": "user",
    "pwd": "password",
    "password": "password",
}
_SECONDS: dict[str, str] = {
    "keepalivetime": "keepalives_idle",
    "keepaliveinterval": "keepalives_interval",
}
_IDENTITY = frozenset({"host", "hostaddr", "port", "dbname", "user", "password", "service"})
"""What pqopt may not set: the location's server_key and pool key were derived from
the connection string, and must describe where the connection really goes (``hostaddr``
and ``service`` would redirect it)."""

_SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
_SSL_SHORT: dict[str, str] = {"a": "allow", "p": "prefer", "r": "require", "d": "disable"}
_TRUE = frozenset({"1", "yes", "true", "on", "y"})
_FALSE = frozenset({"0", "no", "false", "off", "n", ""})


@dataclass(frozen=True, slots=True, repr=False)
class ConnParams:
    """Everything needed to open one connection: libpq parameters and setup SQL.

    Holds the password: its ``repr`` masks it, and it is never part of a message.
    """

    kwargs: Mapping[str, str]
    connsettings: str | None = None

    @property
    def password(self) -> str | None:
        return self.kwargs.get("password")

    def __repr__(self) -> str:
        shown = {
            k: ("***" if k in ("password", "sslpassword") else v) for k, v in self.kwargs.items()
        }
        return f"ConnParams({shown!r}, connsettings={'***' if self.connsettings else None})"


def login_timeout_s(login_timeout: float) -> int:
    """libpq's ``connect_timeout``: whole seconds, and 1 means 2 anyway."""
    return max(2, math.ceil(login_timeout))


def conn_params(
    connect: ConnectionString, *, login_timeout: float, keepalives: bool = True
) -> ConnParams:
    """The libpq parameters for ``connect`` (see the module's table)."""
    kwargs: dict[str, str] = {
        "application_name": APPLICATION_NAME,
        "client_encoding": "UTF8",
        "connect_timeout": str(login_timeout_s(login_timeout)),
    }
    if keepalives:
        kwargs.update(KEEPALIVES)
    explicit: dict[str, str] = {}
    options: list[str] = []
    connsettings: str | None = None
    pqopt: str | None = None
    for key, value in connect.items():
        folded = key.casefold()
        if folded in _DIRECT:
            target = _DIRECT[folded]
            # A password is taken byte for byte; the rest as tenancy.location reads it.
            explicit[target] = value if target == "password" else value.strip()
        elif folded == "sslmode":
            explicit["sslmode"] = _sslmode(value)
        elif folded in _SECONDS:
            explicit[_SECONDS[folded]] = _whole_seconds(key, value)
        elif folded == "readonly" and _flag(key, value):
            options.append("-c default_transaction_read_only=on")
        elif folded == "connsettings":
            connsettings = value if value.strip() else None
        elif folded == "pqopt":
            pqopt = value
    if pqopt is not None and pqopt.strip():
        extra = _parse_pqopt(pqopt)
        if "options" in extra:
            options.insert(0, extra.pop("options"))
        for key, value in extra.items():
            if key in _IDENTITY:
                raise TenantMisconfigured(
                    f"the PostgreSQL template's pqopt may not set {key} (it comes from the "
                    "connection string)"
                )
            kwargs[key] = value
    kwargs.update(explicit)
    if options:
        kwargs["options"] = " ".join(options)
    return ConnParams(kwargs, connsettings)


def _sslmode(value: str) -> str:
    text = value.strip().casefold()
    if text in _SSLMODES:
        return text
    # psqlODBC reads only the first letter (and the second of verify-*).
    if text[:1] in _SSL_SHORT:
        return _SSL_SHORT[text[:1]]
    if text[:1] == "v" and text[1:2] in ("f", "c"):
        return "verify-full" if text[1] == "f" else "verify-ca"
    raise TenantMisconfigured(f"connection string has an invalid SSLmode: {value.strip()!r}")


def _whole_seconds(key: str, value: str) -> str:
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise TenantMisconfigured(f"connection string has an invalid {key}: {text!r}")
    return str(int(text))


def _flag(key: str, value: str) -> bool:
    text = value.strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TenantMisconfigured(f"connection string has an invalid {key}: {value.strip()!r}")


def _parse_pqopt(pqopt: str) -> dict[str, str]:
    try:
        parsed = conninfo_to_dict(pqopt)
    except psycopg.Error:
        # libpq's message quotes the text it choked on, which may hold a secret.
        raise TenantMisconfigured(
            "the PostgreSQL template's pqopt is not a valid libpq connection string"
        ) from None
    return {key: str(value) for key, value in parsed.items() if value is not None}
