"""One ``ConnectionPool`` per pool key, created on first use.

How tenants map to pools is decided by ``tenancy.locate`` (``location.pool_key``):
SQL Server shares a pool per server and login, PostgreSQL has a pool per database
(a connection is bound to one), SQLite a pool per file. For PostgreSQL the pools of
one server share a ``ServerLimiter`` of ``max_per_server`` connections, so that a
thousand tenant databases cannot open a thousand times ``max_size`` sessions.

Statistics are summed per ``server_key``, never per tenant: metric labels must have a
bounded number of values, and a tenant's name or pool key is neither bounded nor (for
some deployments) public.

A janitor thread calls every pool's ``maintain()`` now and then, so that idle
connections of quiet pools are closed on time even when nobody asks those pools for
a connection, and ``min_size`` is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyodbc

from proxy.drivers.janitor import Janitor
from proxy.drivers.odbc.execute import prepare_connection
from proxy.drivers.odbc.pool import ConnectionPool, ServerLimiter
from proxy.drivers.sizing import PoolOptions
from tenancy.backends import BackendKind

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

__all__ = ["PoolManager"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    pool: ConnectionPool
    server_key: str
    odbc: str
    """The connection string in use; compared to notice a changed password."""
    source: object
    """The ``ConnectionString`` object last seen for this pool (identity fast path)."""


class PoolManager:
    """The process's pools, keyed by ``TenantLocation.pool_key``."""

    def __init__(self, options: PoolOptions, *, maintenance_interval: float | None = 10.0) -> None:
        self.max_size = options.max_size
        self.min_size = options.min_size
        self.acquire_timeout = float(options.acquire_timeout)
        # ODBC's login timeout (SQL_ATTR_LOGIN_TIMEOUT) is whole seconds; 0 would
        # mean "wait forever", so round up and never below one. psqlODBC hands it to
        # libpq's connect_timeout, which treats 1 as 2 (measured: 1 s → 2.0 s).
        self.login_timeout = max(1, int(-(-options.login_timeout // 1)))
        self.max_idle = float(options.max_idle)
        self.max_lifetime = float(options.max_lifetime)
        self.max_per_server = options.max_per_server
        self.validate_idle = options.validate_idle
        self.max_waiting = options.max_waiting
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._limiters: dict[str, ServerLimiter] = {}
        self._closed = False
        self._janitor: Janitor | None = None
        if maintenance_interval is not None:
            self._janitor = Janitor(
                self.maintain, interval=maintenance_interval, name="tenantgate-pool-janitor"
            )

    def pool_for(self, location: TenantLocation) -> ConnectionPool:
        """The pool that reaches ``location``, created on first use."""
        entry = self._entries.get(location.pool_key)  # a dict read is atomic: no lock
        if entry is not None and entry.source is location.connect:
            return entry.pool
        connect = location.connect
        if location.kind == BackendKind.POSTGRESQL and connect.get("KeepaliveTime") is None:
            # TCP keepalives, as the native driver has them (conninfo): without them a
            # connection to a partitioned server is given up only by the kernel's
            # retransmission timeout, many minutes later. tcp_user_timeout needs pqopt,
            # which is the template's (docs/config.md).
            connect = connect.with_(KeepaliveTime="30", KeepaliveInterval="10")
        odbc = connect.to_odbc()
        if entry is not None and entry.odbc == odbc:
            entry.source = location.connect
            return entry.pool
        limited = location.kind == BackendKind.POSTGRESQL
        return self._get_or_create(
            location.pool_key,
            odbc,
            location.server_key,
            limited,
            location.connect,
            kind=location.kind,
        )

    def pool_for_dsn(
        self, name: str, odbc_string: str, server_key: str, *, per_server_limit: bool = False
    ) -> ConnectionPool:
        """A pool for a plain ODBC string (the controller), keyed by ``name``.

        ``name`` and ``server_key`` must be free of secrets: they appear in errors
        and metrics. ``odbc_string`` never leaves the pool's connect function.
        """
        entry = self._entries.get(name)
        if entry is not None and entry.odbc == odbc_string:
            return entry.pool
        return self._get_or_create(name, odbc_string, server_key, per_server_limit, None)

    def get_stats(self) -> dict[str, dict[str, int]]:
        """Pool statistics summed per ``server_key``, plus ``server_max`` (0: no cap)."""
        with self._lock:
            entries = list(self._entries.values())
            limiters = dict(self._limiters)
        totals: dict[str, dict[str, int]] = {}
        for entry in entries:
            stats = entry.pool.get_stats()
            total = totals.setdefault(entry.server_key, {})
            for key, value in stats.items():
                total[key] = total.get(key, 0) + value
        for server_key, total in totals.items():
            limiter = limiters.get(server_key)
            total["server_max"] = limiter.max_size if limiter is not None else 0
        return totals

    def maintain(self) -> None:
        """Run every pool's ``maintain()`` once (the janitor does this periodically)."""
        with self._lock:
            pools = [entry.pool for entry in self._entries.values()]
        for pool in pools:
            try:
                pool.maintain()
            except Exception:
                log.exception("pool %s: maintenance failed", pool.name)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.pool.close()
        if self._janitor is not None:
            self._janitor.stop()

    # -- internals -----------------------------------------------------------------

    def _get_or_create(
        self,
        key: str,
        odbc: str,
        server_key: str,
        limited: bool,
        source: object,
        *,
        kind: BackendKind | None = None,
    ) -> ConnectionPool:
        with self._lock:
            if self._closed:
                raise RuntimeError("pool manager is closed")
            entry = self._entries.get(key)
            if entry is not None:
                if entry.odbc != odbc:
                    # Same pool key, new connection string: the pool key is secret-free
                    # by design, so a rotated password lands here. New connections use
                    # the new string; loaned and idle ones age out normally.
                    entry.pool.set_connect(self._connector(odbc, kind))
                    entry.odbc = odbc
                entry.source = source
                return entry.pool
            limiter = None
            if limited:
                limiter = self._limiters.get(server_key)
                if limiter is None:
                    limiter = ServerLimiter(self.max_per_server, name=server_key)
                    self._limiters[server_key] = limiter
            pool = ConnectionPool(
                self._connector(odbc, kind),
                name=key,
                max_size=self.max_size,
                min_size=self.min_size,
                acquire_timeout=self.acquire_timeout,
                max_idle=self.max_idle,
                max_lifetime=self.max_lifetime,
                limiter=limiter,
                validate_idle=self.validate_idle,
                max_waiting=self.max_waiting,
            )
            self._entries[key] = _Entry(pool, server_key, odbc, source)
            return pool

    def _connector(self, odbc: str, kind: BackendKind | None) -> Callable[[], pyodbc.Connection]:
        timeout = self.login_timeout

        def connect() -> pyodbc.Connection:
            # autocommit: every request is one statement; an implicit transaction
            # would hold locks and snapshots until the connection is reused.
            raw = pyodbc.connect(odbc, autocommit=True, timeout=timeout)
            if kind is not None:
                prepare_connection(raw, kind.value)
            return raw

        return connect
