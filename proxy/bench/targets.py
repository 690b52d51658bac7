"""Where the load goes: tenantgate over HTTP, or the tenant databases directly.

Both run a ``workload.Op`` for a tenant behind one method, ``run(op, tenant, stamp)``,
which sets ``stamp.sent`` when the first byte leaves (after a connection was free) and
returns ``None`` or an error code: tenantgate's ``{"error": {"code": ...}}`` over HTTP;
the driver's SQLSTATE (psycopg, pyodbc) or SQLite's error name directly.

**The direct target runs tenantgate's own SQL.** For every (tenant, statement shape)
of the mix, ``Templates.collect`` asks the running tenantgate once, before the run,
``POST /v1/explain`` with sentinel parameters, and finds each sentinel's place among
the returned binds; every other bind (the row cap...) is a constant. A request then
binds its drawn parameters into that backend SQL. Asking the running service (as
``benchmarks/compare.py`` does) rather than building one in process keeps one source
of truth: its configuration, backend templates, dialect and caps, its metadata; and it
keeps the generator's process small (no pools, caches or catalog reads competing for
the 2 cores). The cost is one explain per (tenant, shape) before the run, done
concurrently and outside the measurement.

Direct connections: at most ``connections`` transactions at once, each on a
connection to its tenant's database through the native driver: psycopg 3 for
PostgreSQL (raw ``$n`` binds on libpq's extended protocol, as tenantgate's driver),
stdlib ``sqlite3`` opened the way tenantgate's SQLite driver opens it, pyodbc for SQL
Server; the blocking two in threads. SQLite runs inside the generator's process, so
there the generator's CPU per request includes the database's work. Connections are
shared as tenantgate shares them, by ``TenantLocation.pool_key`` (the tenants of a
schema-per-tenant database share one pool; the generated SQL names the schema); idle
ones are kept, and the least recently used is closed when a pool without one needs a
connection at the cap. Opening a connection is part of that transaction's service
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import orjson
import psycopg
import pyodbc
from psycopg.conninfo import make_conninfo

from proxy.bench.fleet import FleetTenant
from proxy.bench.httpclient import HttpError, Pool, Response, split_base
from proxy.bench.workload import (
    PATCH_READ_SQL,
    PATCH_WRITE_SQL,
    FieldAddDrop,
    Mix,
    Op,
    Patch,
    Query,
)
from proxy.drivers.postgres.conninfo import conn_params
from proxy.drivers.postgres.placeholders import to_numbered
from proxy.drivers.sqlite.options import open_connection, open_spec
from tenancy import connstr, ddl
from tenancy.backends import BackendKind
from tenancy.location import TenantLocation, locate

__all__ = [
    "BenchError",
    "DirectTarget",
    "HttpTarget",
    "Stamp",
    "Target",
    "Template",
    "Templates",
    "error_code",
]

_SENTINEL_INT = 987_654_000


class BenchError(Exception):
    """Something the operator must fix before a run: unreachable target, bad token..."""


class Stamp:
    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = 0.0


class Target(Protocol):
    name: str

    async def run(self, op: Op, tenant: FleetTenant, stamp: Stamp) -> str | None: ...

    async def close(self) -> None: ...


def error_code(status: int, body: bytes) -> str:
    """The ``code`` of tenantgate's JSON error body, else ``http_<status>``."""
    try:
        code = orjson.loads(body)["error"]["code"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"http_{status}"
    return str(code)


# -- tenantgate over HTTP ----------------------------------------------------------------


class HttpTarget:
    name = "http"

    def __init__(
        self, base_url: str, token: str, connections: int, *, proxy_pid: int | None = None
    ) -> None:
        host, port, self._prefix = split_base(base_url)
        self.base_url = base_url
        self.proxy_pid = proxy_pid
        """tenantgate's process, whose CPU the runner charges to this target."""
        self._pool = Pool(host, port, connections)
        auth = f"Authorization: Bearer {token}\r\n".encode("latin-1")
        self._json = auth + b"Content-Type: application/json\r\n"
        self._auth = auth

    async def request(
        self, method: str, path: str, body: Any = None, extra: bytes = b""
    ) -> Response:
        """One request outside a run (probes, explains, metrics)."""
        async with self._pool.connection() as conn:
            return await self._send(conn, method, path, body, extra)

    async def _send(
        self, conn: Any, method: str, path: str, body: Any, extra: bytes = b""
    ) -> Response:
        if body is None:
            return await conn.request(method, self._prefix + path, self._auth + extra)  # type: ignore[no-any-return]
        return await conn.request(  # type: ignore[no-any-return]
            method, self._prefix + path, self._json + extra, orjson.dumps(body)
        )

    async def run(self, op: Op, tenant: FleetTenant, stamp: Stamp) -> str | None:
        async with self._pool.connection() as conn:
            stamp.sent = time.perf_counter()
            if isinstance(op, Query):
                body = {"tenant": tenant.domain, "sql": op.sql, "params": list(op.params)}
                r = await self._send(conn, "POST", "/v1/query", body)
                return None if r.status == 200 else error_code(r.status, r.body)
            table = f"/v1/tenants/{quote(tenant.domain, safe='')}/tables/{op.table}"
            if isinstance(op, Patch):
                path = f"{table}/records/{op.key}"
                r = await self._send(conn, "GET", path, None)
                if r.status != 200:
                    return error_code(r.status, r.body)
                etag = r.headers.get(b"etag", b"")
                r = await self._send(conn, "PATCH", path, op.values, b"If-Match: " + etag + b"\r\n")
                return None if r.status == 200 else error_code(r.status, r.body)
            r = await self._send(
                conn, "POST", f"{table}/custom-fields", {"name": op.name, "type": "integer"}
            )
            if r.status != 201:
                return error_code(r.status, r.body)
            r = await self._send(conn, "DELETE", f"{table}/custom-fields/{op.name}", None)
            return None if r.status == 200 else error_code(r.status, r.body)

    async def probe(self, tenant: FleetTenant) -> None:
        """One request up front: reachable, token accepted, tenant known."""
        try:
            r = await self.request(
                "POST",
                "/v1/explain",
                {"tenant": tenant.domain, "sql": "SELECT ContactID FROM Contacts", "params": []},
            )
        except (HttpError, OSError) as exc:
            raise BenchError(f"cannot reach tenantgate at {self.base_url}: {exc}") from None
        if r.status == 401:
            raise BenchError(
                f"{self.base_url} refused the token (401 unauthorized): check the fleet's "
                "token file or --token-env"
            )
        if r.status != 200:
            raise BenchError(
                f"{self.base_url} answered {r.status} ({error_code(r.status, r.body)}) to a "
                f"test explain for tenant {tenant.domain}"
            )

    async def metrics(self) -> str | None:
        """The Prometheus text of ``/metrics``, or ``None`` when it cannot be read."""
        try:
            r = await self.request("GET", "/metrics")
        except (HttpError, OSError):
            return None
        return r.body.decode("utf-8", "replace") if r.status == 200 else None

    async def close(self) -> None:
        self._pool.close()


# -- the backend SQL of each (tenant, shape), from tenantgate ---------------------------


@dataclass(frozen=True, slots=True)
class Template:
    sql: str
    """The backend SQL (``$n`` markers for PostgreSQL, ``?`` otherwise)."""
    binds: tuple[tuple[int, Any], ...]
    """Per marker: (index into the logical params, -1 for a constant; the constant)."""
    write: bool

    def params(self, logical: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(logical[i] if i >= 0 else value for i, value in self.binds)


def _sentinels(params: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for i, p in enumerate(params):
        if isinstance(p, bool):
            out.append(p)  # True == 1: cannot be told apart; bound as the constant drawn
        elif isinstance(p, int):
            out.append(_SENTINEL_INT + i)
        elif isinstance(p, str):
            out.append(f"tgbench-sentinel-{i}")
        else:
            out.append(p)
    return out


def template_from_explain(plan: Mapping[str, Any], sentinels: Sequence[Any]) -> Template:
    """Map the sentinels onto the binds ``/v1/explain`` returned."""
    binds: list[tuple[int, Any]] = []
    found: set[int] = set()
    for value in plan["params"]:
        slot = -1
        for i, s in enumerate(sentinels):
            if type(value) is type(s) and value == s and not isinstance(s, bool):
                slot = i
                break
        if slot >= 0:
            found.add(slot)
        binds.append((slot, None if slot >= 0 else value))
    wanted = {
        i for i, s in enumerate(sentinels) if isinstance(s, int | str) and not isinstance(s, bool)
    }
    if not wanted <= found:
        raise BenchError("tenantgate's plan does not bind every parameter: cannot run it directly")
    sql = plan["sql"]
    if plan["backend"] == BackendKind.POSTGRESQL:
        sql = to_numbered(sql)[0]
    return Template(sql, tuple(binds), plan["statement_class"] != "read")


def shapes(mix: Mix, tenant: FleetTenant) -> dict[str, tuple[Any, ...]]:
    """The statements the mix runs, each with example params (their types matter)."""
    out: dict[str, tuple[Any, ...]] = {}
    rng = random.Random(0)  # noqa: S311 - example values, not secrets
    for script in mix.scripts:
        op = script.draw(rng, tenant, "x")
        if isinstance(op, Query):
            out[op.sql] = op.params
        elif isinstance(op, Patch):
            out[PATCH_READ_SQL] = (1,)
            out[PATCH_WRITE_SQL] = ("a@b.example", 1, 1)
    return out


class Templates:
    def __init__(self) -> None:
        self.by_tenant: dict[int, dict[str, Template]] = {}

    @classmethod
    async def collect(
        cls, http: HttpTarget, tenants: Sequence[FleetTenant], mix: Mix, *, parallel: int = 8,
        progress: Callable[[int], None] | None = None,
    ) -> Templates:  # fmt: skip
        found = cls()
        todo = [(i, t, sql, p) for i, t in enumerate(tenants) for sql, p in shapes(mix, t).items()]
        queue = iter(todo)
        done = 0

        async def worker() -> None:
            nonlocal done
            for index, tenant, sql, params in queue:
                sentinels = _sentinels(params)
                body = {"tenant": tenant.domain, "sql": sql, "params": sentinels}
                r = await http.request("POST", "/v1/explain", body)
                if r.status != 200:
                    raise BenchError(
                        f"explain failed for tenant {tenant.domain}: {error_code(r.status, r.body)}"
                    )
                plan = orjson.loads(r.body)
                found.by_tenant.setdefault(index, {})[sql] = template_from_explain(plan, sentinels)
                done += 1
                if progress is not None and done % 5000 == 0:
                    progress(done)

        await asyncio.gather(*(worker() for _ in range(parallel)))
        return found


# -- the tenant databases, directly -------------------------------------------------------


def _driver_error(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None)  # psycopg
    if sqlstate:
        return f"{sqlstate} {type(exc).__name__}"
    name = getattr(exc, "sqlite_errorname", None)  # sqlite3
    if name:
        return str(name)
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], str) and len(args[0]) == 5 and args[0].isalnum():
        return f"{args[0]} {type(exc).__name__}"  # pyodbc: (SQLSTATE, message)
    return type(exc).__name__


class _Backend(Protocol):
    async def open(self, location: TenantLocation) -> Any: ...

    async def execute(self, conn: Any, sql: str, params: Sequence[Any], write: bool) -> None: ...

    async def close(self, conn: Any) -> None: ...

    def healthy(self, conn: Any) -> bool: ...


class _Postgres:
    async def open(self, location: TenantLocation) -> Any:
        kwargs = dict(conn_params(location.connect, login_timeout=5).kwargs)
        kwargs["application_name"] = "tenantgate-bench"
        return await psycopg.AsyncConnection.connect(
            make_conninfo("", **kwargs), autocommit=True, cursor_factory=psycopg.AsyncRawCursor
        )

    async def execute(self, conn: Any, sql: str, params: Sequence[Any], write: bool) -> None:
        cur = await conn.execute(sql, params)
        if cur.description is not None:
            await cur.fetchall()

    async def close(self, conn: Any) -> None:
        await conn.close()

    def healthy(self, conn: Any) -> bool:
        return not (conn.closed or conn.broken)


class _Sqlite:
    def __init__(self, threads: ThreadPoolExecutor) -> None:
        self._threads = threads

    async def open(self, location: TenantLocation) -> Any:
        spec = open_spec(location.connect)
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, open_connection, spec
        )

    @staticmethod
    def _run(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> None:
        conn.execute(sql, params).fetchall()

    async def execute(self, conn: Any, sql: str, params: Sequence[Any], write: bool) -> None:
        # In a thread even for reads: a read waiting on a writer's lock (busy timeout)
        # inline would stall the generator's schedule for every other request.
        await asyncio.get_running_loop().run_in_executor(
            self._threads, self._run, conn, sql, params
        )

    async def close(self, conn: Any) -> None:
        conn.close()

    def healthy(self, conn: Any) -> bool:
        return True


class _Odbc:
    def __init__(self, threads: ThreadPoolExecutor) -> None:
        self._threads = threads

    async def open(self, location: TenantLocation) -> Any:
        odbc = location.connect.to_odbc()
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, lambda: pyodbc.connect(odbc, autocommit=True, timeout=5)
        )

    async def current_database(self, conn: Any) -> str:
        def read() -> str:
            return str(conn.execute("SELECT DB_NAME()").fetchone()[0])

        return await asyncio.get_running_loop().run_in_executor(self._threads, read)

    @staticmethod
    def _run(conn: Any, sql: str, params: Sequence[Any]) -> None:
        cur = conn.cursor()
        try:
            cur.execute(sql, *params)
            while True:
                if cur.description is not None:
                    cur.fetchall()
                if not cur.nextset():
                    break
        finally:
            cur.close()

    async def execute(self, conn: Any, sql: str, params: Sequence[Any], write: bool) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._threads, self._run, conn, sql, params
        )

    async def close(self, conn: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._threads, conn.close)

    def healthy(self, conn: Any) -> bool:
        return not conn.closed


_BACKENDS: dict[BackendKind, Callable[[ThreadPoolExecutor], _Backend]] = {
    BackendKind.POSTGRESQL: lambda _: _Postgres(),
    BackendKind.SQLITE: _Sqlite,
    BackendKind.SQLSERVER: _Odbc,
}


class DirectTarget:
    name = "direct"

    def __init__(
        self, tenants: Sequence[FleetTenant], templates: Templates, connections: int,
        backend_templates: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        parsed = {BackendKind(k): connstr.parse(v) for k, v in (backend_templates or {}).items()}
        self._tenants = tenants
        self._index = {t.customer_id: i for i, t in enumerate(tenants)}
        self._locations: dict[int, TenantLocation] = {}
        self._parsed_templates = parsed
        self._templates = templates
        self._cap = connections
        self._slots = asyncio.Semaphore(connections)
        self._idle: OrderedDict[str, list[tuple[_Backend, Any]]] = OrderedDict()
        """Idle connections by ``TenantLocation.pool_key``, least recently used first."""
        self._open = 0
        self._backends: dict[BackendKind, _Backend] = {}
        # One thread per connection: blocking drivers never queue behind each other.
        self._threads = ThreadPoolExecutor(connections, thread_name_prefix="bench-direct")

    def _location(self, index: int) -> TenantLocation:
        loc = self._locations.get(index)
        if loc is None:
            cs = connstr.parse(self._tenants[index].connection_string)
            loc = self._locations[index] = locate(cs, self._parsed_templates)
        return loc

    def _backend(self, kind: BackendKind) -> _Backend:
        found = self._backends.get(kind)
        if found is None:
            found = self._backends[kind] = _BACKENDS[kind](self._threads)
        return found

    async def _evict_one(self) -> None:
        for key, conns in self._idle.items():  # least recently used first
            if conns:
                backend, conn = conns.pop()
                if not conns:
                    del self._idle[key]
                self._open -= 1
                with contextlib.suppress(Exception):
                    await backend.close(conn)
                return

    @contextlib.asynccontextmanager
    async def _connection(self, index: int) -> AsyncIterator[tuple[_Backend, Any]]:
        location = self._location(index)
        key = location.pool_key
        idle = self._idle.get(key)
        if idle:
            pair = idle.pop()
        else:
            if self._open >= self._cap:
                await self._evict_one()
            self._open += 1
            backend = self._backend(location.kind)
            try:
                pair = (backend, await backend.open(location))
            except BaseException:
                self._open -= 1
                raise
        keep = False
        try:
            yield pair
            keep = True
        except Exception:
            # A statement's error leaves the connection usable; a lost one does not.
            keep = pair[0].healthy(pair[1])
            raise
        finally:
            # Cancelled (a timeout) mid-statement: the session's state is unknown.
            if keep:
                self._idle.setdefault(key, []).append(pair)
                self._idle.move_to_end(key)
            else:
                self._open -= 1
                with contextlib.suppress(Exception):
                    await pair[0].close(pair[1])

    async def run(self, op: Op, tenant: FleetTenant, stamp: Stamp) -> str | None:
        index = self._index[tenant.customer_id]
        async with self._slots:
            stamp.sent = time.perf_counter()
            try:
                async with self._connection(index) as (backend, conn):
                    await self._op(backend, conn, index, op)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every driver error is a result
                return _driver_error(exc)
        return None

    async def _op(self, backend: _Backend, conn: Any, index: int, op: Op) -> None:
        plans = self._templates.by_tenant[index]
        if isinstance(op, Query):
            t = plans[op.sql]
            await backend.execute(conn, t.sql, t.params(op.params), t.write)
        elif isinstance(op, Patch):
            read, write = plans[PATCH_READ_SQL], plans[PATCH_WRITE_SQL]
            await backend.execute(conn, read.sql, read.params((op.key,)), False)
            values = (op.values["Email"], op.values["LeadScore"], op.key)
            await backend.execute(conn, write.sql, write.params(values), True)
        else:
            await self._ddl(backend, conn, index, op)

    async def _ddl(self, backend: _Backend, conn: Any, index: int, op: FieldAddDrop) -> None:
        loc = self._location(index)
        spec = ddl.field_spec({"name": op.name, "type": "integer"})
        where = {"catalog": loc.catalog, "schema": loc.schema}
        statements = [
            ddl.add_column_sql(spec, op.table, loc.kind, **where),
            *ddl.drop_column_sql(op.name, op.table, loc.kind, **where),
        ]
        if isinstance(backend, _Odbc) and loc.catalog:
            # As tenantgate does (proxy/tables/custom_fields.py): T-SQL engines refuse
            # some DDL across databases (Babelfish: ALTER TABLE db.dbo.t from master),
            # so into the tenant's database and back to the connection's own.
            original = await backend.current_database(conn)
            statements = [
                ddl.use_database_sql(loc.catalog),
                *statements,
                ddl.use_database_sql(original),
            ]
        for sql in statements:
            await backend.execute(conn, sql, (), True)

    async def probe(self) -> None:
        """Open (and keep) one connection to the first tenant: reachable, logins work."""
        try:
            async with self._connection(0) as (backend, conn):
                await backend.execute(conn, "SELECT 1", (), False)
        except Exception as exc:  # noqa: BLE001 - reported whatever the driver
            raise BenchError(
                f"cannot reach tenant {self._tenants[0].domain} directly: {_driver_error(exc)}"
            ) from None

    async def close(self) -> None:
        for conns in self._idle.values():
            for backend, conn in conns:
                with contextlib.suppress(Exception):
                    await backend.close(conn)
        self._idle.clear()
        self._open = 0
        self._threads.shutdown(wait=False)
