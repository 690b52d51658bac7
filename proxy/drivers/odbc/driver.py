"""The ODBC driver: pyodbc in worker threads, behind the seam of ``proxy.drivers.base``.

pyodbc blocks its thread for the whole of a call, so every call runs in a worker
thread bounded by a capacity limiter (``threads``). A one-statement request
(``run``) takes the connection, executes and gives it back in one hop; a session
(``connection``) hops per statement. The pools, the timeout machinery (server-side
timeout, watchdog cancel, SQL Server's guarded KILL) and the error table live in the
sibling modules: ``pools``/``pool``, ``execute``, ``sqlstate``, ``watchdog``.

SQL Server and any other ODBC driver always come here; PostgreSQL and SQLite do when
their backend's configuration says ``driver = "odbc"``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import pyodbc

from proxy.drivers.base import ResultSet
from proxy.drivers.odbc.execute import apply_timeout, execute, forget_session_settings
from proxy.drivers.odbc.pool import ConnectionPool, PooledConnection
from proxy.drivers.odbc.pools import PoolManager
from proxy.drivers.odbc.sqlstate import is_broken, translate
from proxy.drivers.odbc.watchdog import Watchdog
from proxy.drivers.sizing import PoolOptions, check_count
from proxy.errors import ConnectionLost

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

__all__ = ["OdbcDriver", "OdbcSession"]

T = TypeVar("T")


class OdbcSession:
    """A pooled pyodbc connection on loan, driven from the event loop."""

    __slots__ = ("_backend", "_conn", "_driver")

    def __init__(self, driver: OdbcDriver, conn: PooledConnection, backend: str) -> None:
        self._driver = driver
        self._conn = conn
        self._backend = backend

    async def execute(
        self,
        sql: str,
        params: Sequence[object] = (),
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool = False,
    ) -> ResultSet:
        return await self._driver.hop(
            functools.partial(
                execute,
                self._conn,
                backend=self._backend,
                sql=sql,
                params=params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                watchdog=self._driver.watchdog,
                count_all_rows=count_all_rows,
            )
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self._driver.hop(self._begin)
        try:
            yield
        except BaseException:
            await self._driver.hop(self._end, False)
            raise
        await self._driver.hop(self._end, True)

    def _begin(self) -> None:
        try:
            self._conn.raw.autocommit = False
        except pyodbc.Error as exc:
            raise translate(exc) from exc

    def _end(self, commit: bool) -> None:
        raw = self._conn.raw
        # A timeout set inside the transaction is undone by a rollback: set it afresh.
        forget_session_settings(self._conn)
        try:
            if commit:
                try:
                    raw.commit()
                except pyodbc.Error as exc:
                    with contextlib.suppress(pyodbc.Error):
                        raw.rollback()
                    raise translate(exc) from exc
            else:
                with contextlib.suppress(pyodbc.Error):
                    raw.rollback()
        finally:
            try:
                raw.autocommit = True
            except pyodbc.Error as exc:
                # A pooled connection left in manual-commit mode would silently never
                # commit the next borrower's writes: make the pool discard it.
                raise ConnectionLost("could not restore autocommit") from exc


class OdbcDriver:
    name = "odbc"
    db_errors: tuple[type[BaseException], ...] = (pyodbc.Error,)

    def __init__(
        self,
        options: PoolOptions,
        *,
        threads: int = 32,
        maintenance_interval: float | None = 10.0,
    ) -> None:
        check_count("threads", threads, 1)
        self.options = options
        self.pools = PoolManager(options, maintenance_interval=maintenance_interval)
        self.watchdog = Watchdog()
        self._threads = threads
        self._limiter: anyio.CapacityLimiter | None = None

    async def hop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` in a worker thread (at most ``threads`` at once)."""
        if self._limiter is None:
            # Created on the loop: anyio binds a limiter to the running backend.
            self._limiter = anyio.CapacityLimiter(self._threads)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def run(
        self,
        location: TenantLocation,
        sql: str,
        params: Sequence[object],
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool = False,
    ) -> ResultSet:
        return await self.hop(
            functools.partial(
                self._run,
                location,
                sql,
                params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                count_all_rows=count_all_rows,
            )
        )

    def _run(
        self,
        location: TenantLocation,
        sql: str,
        params: Sequence[object],
        *,
        timeout_s: float,
        max_rows: int,
        count_all_rows: bool,
    ) -> ResultSet:
        with self.pools.pool_for(location).connection() as conn:
            return execute(
                conn,
                backend=location.kind.value,
                sql=sql,
                params=params,
                timeout_s=timeout_s,
                max_rows=max_rows,
                watchdog=self.watchdog,
                count_all_rows=count_all_rows,
            )

    @contextlib.asynccontextmanager
    async def connection(self, location: TenantLocation) -> AsyncIterator[OdbcSession]:
        pool = self.pools.pool_for(location)
        conn = await self.hop(pool.getconn)
        broken = True
        try:
            yield OdbcSession(self, conn, location.kind.value)
            broken = False
        except Exception as exc:
            broken = is_broken(exc)
            raise
        finally:
            # Closing a connection talks to the server: not on the loop. Shielded: a
            # cancelled request must still give its connection back.
            with anyio.CancelScope(shield=True):
                await self.hop(functools.partial(pool.putconn, conn, broken=broken))

    def blocking_source(
        self, location: TenantLocation, *, timeout_s: float
    ) -> Callable[[], AbstractContextManager[Any]]:
        pool = self.pools.pool_for(location)
        return functools.partial(_with_timeout, pool, location.kind.value, timeout_s)

    def controller_source(
        self, connection_string: str, *, name: str = "controller"
    ) -> Callable[[], AbstractContextManager[Any]]:
        """A pooled source for a plain ODBC string (the controller), for worker threads."""
        return self.pools.pool_for_dsn(name, connection_string, server_key=name).connection

    def get_stats(self) -> dict[str, dict[str, int]]:
        return self.pools.get_stats()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        self.pools.close()
        self.watchdog.close()


@contextlib.contextmanager
def _with_timeout(pool: ConnectionPool, backend: str, timeout_s: float) -> Iterator[Any]:
    with pool.connection() as conn:
        # Not the timeout the previous borrower left on this session.
        apply_timeout(conn, backend, timeout_s)
        yield conn
