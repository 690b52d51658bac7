"""The request pipeline, independent of HTTP.

    resolve tenant → check scope → parse (cached) → load metadata (cached)
      → plan (cached, tenant-free) → bind location → acquire → execute

Everything here is blocking and runs in a worker thread: the HTTP layer hands a
whole request over in one hop (a hop costs about 130 µs here, so one per request,
not one per database call). Each phase's duration is recorded for the metrics.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

import rewriter
from proxy.auth import Authenticator, Principal
from proxy.config import Settings
from proxy.drivers.base import ResultSet
from proxy.drivers.odbc.execute import apply_timeout, execute
from proxy.drivers.odbc.pool import PooledConnection
from proxy.drivers.odbc.pools import PoolManager
from proxy.drivers.odbc.watchdog import Watchdog
from proxy.errors import BackendObjectMissing, InvalidRequest
from proxy.metrics import Metrics
from rewriter.errors import InvalidParameters, UnknownColumn
from rewriter.plan_cache import PlanCache
from rewriter.row_cap import RowCap
from tenancy import connstr
from tenancy.backends import BackendKind
from tenancy.controller import ControllerDirectory
from tenancy.errors import UnknownTenant
from tenancy.location import TenantLocation, locate
from tenancy.metadata import BaseModel, MetadataCache, TableMetadata
from tenancy.resolver import Tenant, TenantResolver

log = logging.getLogger("tenantgate")

# Values JSON can carry that every driver binds as the same SQL type.
_BINDABLE = (str, int, float, bool, type(None))
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class QueryRequest:
    tenant: str | int
    sql: str
    params: Sequence[Any] | Mapping[str, Any] = ()
    dialect: str = "tsql"
    max_rows: int = 1000
    timeout_ms: int = 5000
    missing_columns: str = "error"
    allow_unfiltered: bool = False  # an UPDATE/DELETE without WHERE may run


@dataclass(slots=True)
class Prepared:
    """A statement made ready for one tenant, not yet run."""

    tenant: Tenant
    plan: rewriter.Plan
    sql: str
    params: list[Any]
    cached: bool
    phases: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class QueryOutcome:
    result: ResultSet
    backend: str
    statement_class: str
    phases: dict[str, float]


class Service:
    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics(registry if registry is not None else CollectorRegistry())
        self.auth = Authenticator(settings.tokens)
        self.watchdog = Watchdog()
        p = settings.pool
        self.pools = PoolManager(
            max_size=p.max_size,
            min_size=p.min_size,
            acquire_timeout=p.acquire_timeout_ms / 1000,
            login_timeout=p.login_timeout_s,
            max_idle=p.max_idle_s,
            max_lifetime=p.max_lifetime_s,
            max_per_server=p.max_per_server,
        )
        self._templates = {
            BackendKind(kind): connstr.parse(text)
            for kind, text in settings.backend_templates.items()
        }
        c = settings.controller
        controller_cs = connstr.parse(c.connection_string)
        controller_pool = self.pools.pool_for_dsn(
            "controller", controller_cs.to_odbc(), server_key="controller"
        )
        self.controller = ControllerDirectory(
            controller_pool.connection,
            table=c.table,
            id_column=c.id_column,
            domain_column=c.domain_column,
            connection_column=c.connection_column,
        )
        self.resolver = TenantResolver(
            self.controller,
            locate=self._locate,
            ttl=c.cache_ttl_s,
            negative_ttl=c.negative_ttl_s,
        )
        self.metadata = MetadataCache(
            source_for=lambda location: functools.partial(self.catalog_connection, location),
            base_model=BaseModel(settings.base_model),
            ttl=settings.metadata.ttl_s,
            negative_ttl=settings.metadata.negative_ttl_s,
        )
        self.plans = PlanCache()
        self.metrics.watch(
            caches={
                "tenant": self.resolver.get_stats,
                "metadata": self.metadata.get_stats,
                "plan": self.plans.get_stats,
            },
            pools=self.pools.get_stats,
        )

    @contextlib.contextmanager
    def catalog_connection(self, location: TenantLocation) -> Iterator[PooledConnection]:
        with self.pools.pool_for(location).connection() as conn:
            # Not the timeout the previous request left on this session.
            apply_timeout(conn, location.kind.value, self.settings.metadata.timeout_ms / 1000)
            yield conn

    def _locate(self, connection_string: str) -> TenantLocation:
        return locate(connstr.parse(connection_string), self._templates)

    # -- the pipeline -------------------------------------------------------------

    def resolve(self, principal: Principal, ref: str | int) -> Tenant:
        try:
            tenant = self.resolver.resolve(ref)
        except UnknownTenant:
            if not principal.all_tenants:
                # A token limited to some tenants learns nothing about which others exist.
                principal.check_tenant(ref)
            raise
        principal.check_tenant(tenant.customer_id, tenant.domain, ref)
        return tenant

    def prepare(self, principal: Principal, req: QueryRequest) -> Prepared:
        phases: dict[str, float] = {}
        t0 = time.perf_counter()
        tenant = self.resolve(principal, req.tenant)
        t1 = time.perf_counter()
        phases["resolve"] = t1 - t0

        parsed = self.plans.parse(req.sql, dialect=req.dialect)
        principal.check_class(parsed.statement_class)
        location = tenant.location
        shapes: dict[str, TableMetadata | None] = {
            name: self.metadata.get(location, name) for name in sorted(parsed.tables)
        }
        t2 = time.perf_counter()
        phases["metadata"] = t2 - t1

        plan_for = functools.partial(
            self.plans.plan,
            parsed,
            backend=location.kind.value,
            missing_columns=req.missing_columns,
            tenant_label=tenant.domain,
            allow_unfiltered=req.allow_unfiltered,
            # The drivers buffer a whole result at execute time: bound it in the SQL.
            row_cap=True,
        )
        try:
            plan, cached = plan_for(tables=shapes)
        except UnknownColumn:
            # Staleness: the column may have been added outside tenantgate since the
            # table was cached. Read the catalog again and validate once more.
            fresh = self._revalidate(location, shapes)
            if fresh is None:
                raise
            plan, cached = plan_for(tables=fresh)
        sql = plan.bind(catalog=location.catalog, schema=location.schema)
        params = bind_params(
            plan.param_order, req.params, parsed.positional_params, max_rows=req.max_rows
        )
        phases["rewrite"] = time.perf_counter() - t2
        return Prepared(tenant, plan, sql, params, cached, phases)

    def _revalidate(
        self, location: TenantLocation, shapes: Mapping[str, TableMetadata | None]
    ) -> dict[str, TableMetadata | None] | None:
        """The statement's tables read afresh, or ``None`` if none was due for it.

        A table refreshed within the last second is not read again: a flood of
        requests naming a column that really is absent costs at most one catalog
        read per table per second.
        """
        present = [name for name, shape in shapes.items() if shape is not None]
        if not self.metadata.refresh_if_quiet(location, present):
            return None
        fresh = {name: self.metadata.get(location, name) for name in shapes}
        outcome = "still_unknown" if fresh == shapes else "revalidated"
        self.metrics.heals.labels(outcome).inc()
        return fresh

    def query(self, principal: Principal, req: QueryRequest) -> QueryOutcome:
        prepared = self.prepare(principal, req)
        try:
            return self._execute(prepared, req)
        except BackendObjectMissing as error:
            # The table changed outside tenantgate: forget what we knew, so that this
            # request (if a read) and the next ones validate against the catalog as
            # it is now. A write is not run again: it may have had effects before
            # failing (a trigger, an earlier statement of a batch), and its caller
            # decides. A read is re-prepared and run once more.
            self.metadata.refresh(prepared.tenant.location)
            if prepared.plan.statement_class != "read":
                self.metrics.heals.labels("write_not_rerun").inc()
                raise
            stale_error = error
        return self._rerun(principal, req, prepared, stale_error)

    def _rerun(
        self,
        principal: Principal,
        req: QueryRequest,
        stale: Prepared,
        error: BackendObjectMissing,
    ) -> QueryOutcome:
        """A read that failed on stale metadata, prepared and run once more."""
        try:
            prepared = self.prepare(principal, req)
        except Exception:
            # Fresh metadata refuses it (a dropped column is now ``unknown_column``).
            self.metrics.heals.labels("rerun_refused").inc()
            raise
        if prepared.sql == stale.sql:
            # Same shapes, same SQL: running it again would fail the same way.
            self.metrics.heals.labels("rerun_failed").inc()
            raise error
        try:
            outcome = self._execute(prepared, req)
        except BackendObjectMissing:
            self.metadata.refresh(prepared.tenant.location)
            self.metrics.heals.labels("rerun_failed").inc()
            raise
        self.metrics.heals.labels("rerun_ok").inc()
        return outcome

    def _execute(self, prepared: Prepared, req: QueryRequest) -> QueryOutcome:
        phases = prepared.phases
        location = prepared.tenant.location
        pool = self.pools.pool_for(location)
        t0 = time.perf_counter()
        with pool.connection() as conn:
            t1 = time.perf_counter()
            phases["pool_wait"] = t1 - t0
            result = execute(
                conn,
                backend=location.kind.value,
                sql=prepared.sql,
                params=prepared.params,
                timeout_s=req.timeout_ms / 1000,
                max_rows=req.max_rows,
                watchdog=self.watchdog,
                # A write's OUTPUT/RETURNING rows are its affected rows: count them all.
                count_all_rows=prepared.plan.statement_class == "write",
            )
        phases["execute"] = time.perf_counter() - t1
        return QueryOutcome(result, location.kind.value, prepared.plan.statement_class, phases)

    def explain(self, principal: Principal, req: QueryRequest) -> dict[str, Any]:
        prepared = self.prepare(principal, req)
        location = prepared.tenant.location
        return {
            "tenant": {"id": prepared.tenant.customer_id, "domain": prepared.tenant.domain},
            "backend": location.kind.value,
            "server": location.server_key,
            "database": location.database,
            "sql": prepared.sql,
            "params": prepared.params,
            "columns": list(prepared.plan.columns),
            "statement_class": prepared.plan.statement_class,
            "plan_cached": prepared.cached,
        }

    def schema(self, principal: Principal, ref: str | int) -> dict[str, Any]:
        tenant = self.resolve(principal, ref)
        location = tenant.location
        tables = []
        for name in self.metadata.list_tables(location):
            meta = self.metadata.get(location, name)
            if meta is None:  # dropped between the listing and the read
                continue
            custom = set(meta.custom_columns)
            tables.append(
                {
                    "name": meta.name,
                    "columns": [
                        {
                            "name": col.name,
                            "type": col.type_name,
                            "nullable": col.nullable,
                            "custom": col.name in custom,
                        }
                        for col in meta.columns
                    ],
                    "base_columns": list(meta.base_columns),
                    "custom_columns": list(meta.custom_columns),
                    "fingerprint": meta.fingerprint,
                }
            )
        return {
            "tenant": {"id": tenant.customer_id, "domain": tenant.domain},
            "backend": location.kind.value,
            "tables": tables,
        }

    def refresh(self, principal: Principal, ref: str | int) -> dict[str, Any]:
        principal.check_class("admin")
        tenant = self.resolve(principal, ref)
        self.resolver.invalidate(ref)
        self.metadata.refresh(tenant.location)
        return {"tenant": {"id": tenant.customer_id, "domain": tenant.domain}, "refreshed": True}

    def ready(self) -> None:
        self.controller.ping()

    def close(self) -> None:
        self.pools.close()
        self.watchdog.close()


def bind_params(
    order: Sequence[int | str | RowCap],
    given: Sequence[Any] | Mapping[str, Any],
    positional_expected: int,
    *,
    max_rows: int | None = None,
) -> list[Any]:
    """The driver's bind values, in the order the generated SQL wants them.

    A ``RowCap`` entry binds ``max_rows + 1`` (one more row than returned, so the
    executor can tell ``truncated``), or the statement's own row count if smaller.
    """
    refs = [_reference(n) for n in order]
    if isinstance(given, Mapping):
        by_name = {str(k).lstrip("@").casefold(): v for k, v in given.items()}
        needed = {n.casefold() for n in refs if isinstance(n, str)}
        missing = sorted(needed - by_name.keys())
        if missing:
            raise InvalidParameters(
                f"missing values for parameters: {', '.join('@' + m for m in missing)}"
            )
        if positional_expected:
            raise InvalidParameters("the statement uses '?' parameters: send params as a list")
        values = [None if n is None else by_name[str(n).casefold()] for n in refs]
    else:
        if len(given) != positional_expected:
            raise InvalidParameters(
                f"the statement has {positional_expected} '?' parameters "
                f"but {len(given)} values were sent"
            )
        if any(isinstance(n, str) for n in refs):
            raise InvalidParameters("the statement uses @name parameters: send params as an object")
        values = [None if n is None else given[n] for n in refs if not isinstance(n, str)]
    for i, entry in enumerate(order):
        if isinstance(entry, RowCap):
            values[i] = _row_cap(entry, values[i], max_rows)
    for v in values:
        if not isinstance(v, _BINDABLE):
            raise InvalidParameters("parameter values must be strings, numbers, booleans or null")
        if isinstance(v, int) and not isinstance(v, bool) and not -_INT64 <= v < _INT64:
            raise InvalidParameters("integer parameters must fit in 64 bits")
    return values


def _reference(entry: int | str | RowCap) -> int | str | None:
    """The request parameter an entry of ``param_order`` reads, if any."""
    return entry.param if isinstance(entry, RowCap) else entry


def _row_cap(cap: RowCap, given: Any, max_rows: int | None) -> int:
    if max_rows is None:
        raise ValueError("a plan with a row cap needs max_rows")
    own = given if cap.param is not None else cap.count
    if own is None and cap.param is None:
        return max_rows + 1
    if isinstance(own, bool) or not isinstance(own, int) or own < 0:
        raise InvalidParameters("a row count (TOP, FETCH, LIMIT) must be a non-negative integer")
    return min(own, max_rows + 1)


def validate_request(body: Any, settings: Settings) -> QueryRequest:
    """Turn a decoded JSON body into a ``QueryRequest``, or say exactly what is wrong."""
    q = settings.query
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    allowed = {
        "tenant", "sql", "params", "dialect", "max_rows", "timeout_ms", "missing_columns",
        "allow_unfiltered",
    }  # fmt: skip
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)}")
    tenant = body.get("tenant")
    if isinstance(tenant, bool) or not isinstance(tenant, str | int) or tenant == "":
        raise InvalidRequest("'tenant' must be a customer id or a domain name")
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidRequest("'sql' must be a non-empty string")
    params = body.get("params", [])
    if not isinstance(params, list | dict):
        raise InvalidRequest("'params' must be a list (for ?) or an object (for @name)")
    dialect = body.get("dialect", q.default_dialect)
    if dialect not in ("tsql", "postgres", "sqlite"):
        raise InvalidRequest("'dialect' must be one of tsql, postgres, sqlite")
    max_rows = _bounded_int(body, "max_rows", q.default_max_rows, q.max_rows_cap)
    timeout_ms = _bounded_int(body, "timeout_ms", q.default_timeout_ms, q.max_timeout_ms)
    missing = body.get("missing_columns", "error")
    if missing not in ("error", "null"):
        raise InvalidRequest("'missing_columns' must be 'error' or 'null'")
    allow_unfiltered = body.get("allow_unfiltered", False)
    if not isinstance(allow_unfiltered, bool):
        raise InvalidRequest("'allow_unfiltered' must be true or false")
    return QueryRequest(
        tenant, sql, params, dialect, max_rows, timeout_ms, missing, allow_unfiltered
    )


def _bounded_int(body: Mapping[str, Any], key: str, default: int, cap: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"'{key}' must be a positive integer")
    return min(value, cap)
