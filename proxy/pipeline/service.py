"""The request pipeline, independent of any front end.

    resolve tenant → check scope → parse (cached) → load metadata (cached)
      → plan (cached, tenant-free) → bind location → run on the tenant's driver

It runs on the event loop. When every cache answers (the steady state), nothing
blocks: the tenant, the table shapes and the plan come from memory, and the statement
goes to the driver, which for PostgreSQL and SQLite runs it on the loop too. A cache
miss needs the controller or a catalog, which are read through blocking DB-API
sources: then the whole preparation runs once more in a worker thread, where it may
block (``_prepare(..., blocking=True)``), and the request comes back to the loop to
run. So a request hops to a thread only when it has to wait for I/O the loop cannot
drive, and at most once. A tenant that is not cached is looked up first, on threads of
the controller's own and within its deadline (``on_controller``), so that a stalled
controller holds up neither the threads that catalogs use nor ``/readyz``.

Staleness (a table changed behind tenantgate's back) is healed by
``proxy.pipeline.heal``, one policy for both ways it shows.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, TypeVar

import anyio

import rewriter
from proxy import context
from proxy.auth import Authenticator, Principal
from proxy.config import Settings
from proxy.drivers.base import ResultSet
from proxy.drivers.manager import Drivers
from proxy.errors import (
    BackendObjectMissing,
    BackendRejected,
    BackendUnavailable,
    ConnectionLost,
    PoolSaturated,
    StatementTimeout,
    chained,
)
from proxy.metrics import Metrics
from proxy.pipeline.activity import TenantActivity
from proxy.pipeline.heal import Heal
from proxy.pipeline.invalidation import Invalidation
from proxy.pipeline.request import PREPARATION_SLACK_S, QueryRequest, bind_params
from proxy.pipeline.reuse import Kept, Reuse
from proxy.pipeline.servers import ServerHealth
from proxy.pipeline.transactions import Transactions
from rewriter.errors import UnknownColumn
from rewriter.plan_cache import PlanCache
from tenancy.backends import BackendKind
from tenancy.controller import ControllerDirectory
from tenancy.errors import ControllerTimeout, TenancyError, UnknownTenant
from tenancy.location import TenantLocation
from tenancy.metadata import MetadataCache, TableMetadata
from tenancy.resolver import Tenant, TenantResolver

__all__ = ["Prepared", "QueryOutcome", "Service"]

log = logging.getLogger("tenantgate")
sql_log = logging.getLogger("tenantgate.sql")
"""Each statement's backend SQL, with ``server.log_sql`` only."""

T = TypeVar("T")


class _CacheMiss(Exception):
    """Preparing from the caches alone was not possible: do it again where I/O may block."""


_CONTROLLER_HOPS_PER_THREAD = 4
"""Threads that may wait on the controller per controller query thread
(``controller.max_threads``): the waiters of one lookup share its query."""
_CONTROLLER_SLACK_S = 0.25
"""How much longer than ``controller.timeout_ms`` a request waits for its controller
hop; the query's own deadline normally ends the wait first."""


def _name_request(tenant: Tenant) -> None:
    """Write the resolved tenant into the request's context (logs, ``activity``)."""
    ctx = context.current()
    if ctx is not None:
        ctx.tenant = tenant.domain


def _log_sql(tenant: Tenant, cached: bool, sql: str) -> None:
    # repr: the caller's text escaped, whatever formatter the handler has.
    sql_log.info(
        "tenant %s backend %s plan_cached %s sql %r",
        tenant.domain, tenant.location.kind.value, cached, sql,
    )  # fmt: skip


def _shown_database(location: TenantLocation) -> str | None:
    """The database as explain shows it: a SQLite tenant's file by its name alone, since
    the server's folders are not the caller's business."""
    if location.kind is BackendKind.SQLITE and location.database is not None:
        return PurePath(location.database).name
    return location.database


# The two classes made per statement have their __init__ written out, to be compiled
# (mypyc leaves a dataclass's generated one interpreted).
@dataclass(init=False, slots=True)
class Prepared:
    """A statement made ready for one tenant, not yet run."""

    tenant: Tenant
    plan: rewriter.Plan
    sql: str
    params: list[Any]
    cached: bool
    phases: dict[str, float]
    positional: int
    """The ``?`` values the statement takes."""

    def __init__(
        self,
        tenant: Tenant,
        plan: rewriter.Plan,
        sql: str,
        params: list[Any],
        *,
        cached: bool,
        phases: dict[str, float],
        positional: int,
    ) -> None:
        self.tenant = tenant
        self.plan = plan
        self.sql = sql
        self.params = params
        self.cached = cached
        self.phases = phases
        self.positional = positional


@dataclass(init=False, slots=True)
class QueryOutcome:
    result: ResultSet
    backend: str
    statement_class: str
    phases: dict[str, float]

    def __init__(
        self, result: ResultSet, backend: str, statement_class: str, phases: dict[str, float]
    ) -> None:
        self.result = result
        self.backend = backend
        self.statement_class = statement_class
        self.phases = phases


@dataclass(slots=True)
class Service:
    """Everything a request needs, wired by ``proxy.compose``."""

    settings: Settings
    metrics: Metrics
    auth: Authenticator
    drivers: Drivers
    controller: ControllerDirectory
    resolver: TenantResolver
    metadata: MetadataCache
    plans: PlanCache
    heal: Heal
    invalidation: Invalidation | None = None
    """Cross-process cache invalidation (``controller.changes_table``), if configured."""
    servers: ServerHealth = field(default_factory=ServerHealth)
    """What requests have lately seen of each backend server (``/readyz``)."""
    activity: TenantActivity = field(default_factory=TenantActivity)
    """The busiest tenants (``/v1/stats/tenants``, ``tenantgate_top_tenant_*``)."""
    reuse: Reuse = field(default_factory=Reuse)
    """Preparations kept for statements sent again unchanged (``proxy.pipeline.reuse``)."""
    controller_limiter: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)
    """The controller's own worker threads (see ``on_controller``), made on the loop."""
    transactions: Transactions = field(init=False, repr=False)
    """Batches and this process's open interactive transactions."""

    def __post_init__(self) -> None:
        self.transactions = Transactions(self)

    # -- blocking work ------------------------------------------------------------

    async def offload(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` (which reads the controller or a catalog) in a worker thread."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    # -- the pipeline -------------------------------------------------------------

    async def on_controller(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` (which may query the controller) in a thread of the controller's own.

        Not one of the threads that catalogs and queries share, so that readiness and
        tenant lookups never queue behind them (nor they behind a stalled controller),
        and not for longer than ``controller.timeout_ms``: then ``ControllerTimeout``,
        and the thread ends on its own (the directory bounds its queries too).
        """
        c = self.settings.controller
        if self.controller_limiter is None:
            # Made on the loop: anyio binds a limiter to the running backend.
            self.controller_limiter = anyio.CapacityLimiter(
                c.max_threads * _CONTROLLER_HOPS_PER_THREAD
            )
        call = functools.partial(fn, *args, **kwargs)
        with anyio.move_on_after(c.timeout_ms / 1000 + _CONTROLLER_SLACK_S):
            return await anyio.to_thread.run_sync(
                call, limiter=self.controller_limiter, abandon_on_cancel=True
            )
        raise ControllerTimeout(f"the controller did not answer within {c.timeout_ms} ms")

    async def resolve(self, principal: Principal, ref: str | int) -> Tenant:
        try:
            return self._tenant(principal, ref, blocking=False)
        except _CacheMiss:
            pass
        try:
            return await self.on_controller(self._tenant, principal, ref, blocking=True)
        except ControllerTimeout:
            # Gave up before the resolver could fall back on a stale entry itself.
            tenant = self.resolver.stale(ref)
            if tenant is None:
                raise
            principal.check_tenant(tenant.customer_id, tenant.domain, ref)
            _name_request(tenant)
            return tenant

    async def table(self, tenant: Tenant, name: str) -> TableMetadata | None:
        """The tenant's table ``name`` (``None``: no such table)."""
        found, meta = self.metadata.peek(tenant.location, name)
        if found:
            return meta
        return await self.offload(self.metadata.get, tenant.location, name)

    async def prepare(self, principal: Principal, req: QueryRequest) -> Prepared:
        if self.invalidation is not None and self.invalidation.rang():
            await self._catch_up()
        started = time.perf_counter()
        key = self.reuse.key(req)
        stamp = (self.resolver.generation, self.metadata.generation)
        kept = self.reuse.get(key, stamp, started)
        if kept is not None:
            return self._reused(principal, req, kept, started)
        try:
            prepared = self._prepare(principal, req, blocking=False)
        except _CacheMiss:
            # The tenant first, on the controller's threads and deadline (a no-op when
            # it is cached); then the catalogs, where blocking work goes.
            resolving = time.perf_counter()
            await self.resolve(principal, req.tenant)
            waited = time.perf_counter() - resolving
            prepared = await self.offload(self._prepare, principal, req, blocking=True)
            prepared.phases["resolve"] += waited
            return prepared
        # Stamped before the caches were read: a change meanwhile makes it stale at once.
        self.reuse.put(
            key,
            tenant=prepared.tenant,
            plan=prepared.plan,
            sql=prepared.sql,
            positional=prepared.positional,
            stamp=stamp,
            now=started,
        )
        return prepared

    def _reused(
        self, principal: Principal, req: QueryRequest, kept: Kept, started: float
    ) -> Prepared:
        """A kept preparation, for this caller and these values."""
        tenant = kept.tenant
        plan = kept.plan
        principal.check_tenant(tenant.customer_id, tenant.domain, req.tenant)
        principal.check_class(plan.statement_class)
        _name_request(tenant)
        params = bind_params(plan.param_order, req.params, kept.positional, max_rows=req.max_rows)
        if self.settings.server.log_sql:
            _log_sql(tenant, True, kept.sql)
        # Only the phase it took: nothing was resolved or looked up.
        phases = {"rewrite": time.perf_counter() - started}
        return Prepared(
            tenant, plan, kept.sql, params, cached=True, phases=phases, positional=kept.positional
        )

    def _tenant(self, principal: Principal, ref: str | int, *, blocking: bool) -> Tenant:
        try:
            tenant = self.resolver.resolve(ref) if blocking else self.resolver.peek(ref)
        except UnknownTenant:
            if not principal.all_tenants:
                # A token limited to some tenants learns nothing about which others exist.
                principal.check_tenant(ref)
            raise
        if tenant is None:
            raise _CacheMiss
        principal.check_tenant(tenant.customer_id, tenant.domain, ref)
        _name_request(tenant)
        return tenant

    def _shape(self, tenant: Tenant, name: str, *, blocking: bool) -> TableMetadata | None:
        if blocking:
            return self.metadata.get(tenant.location, name)
        found, meta = self.metadata.peek(tenant.location, name)
        if not found:
            raise _CacheMiss
        return meta

    def _prepare(self, principal: Principal, req: QueryRequest, *, blocking: bool) -> Prepared:
        phases: dict[str, float] = {}
        t0 = time.perf_counter()
        tenant = self._tenant(principal, req.tenant, blocking=blocking)
        t1 = time.perf_counter()
        phases["resolve"] = t1 - t0

        # The statement's limits ([query]) are the plan cache's: refused before caching.
        parsed = self.plans.parse(req.sql, dialect=req.dialect)
        principal.check_class(parsed.statement_class)
        location = tenant.location
        shapes: dict[str, TableMetadata | None] = {
            name: self._shape(tenant, name, blocking=blocking) for name in sorted(parsed.tables)
        }
        t2 = time.perf_counter()
        phases["metadata"] = t2 - t1

        try:
            plan, cached = self._plan(parsed, shapes, tenant, req)
        except UnknownColumn:
            if not blocking:
                raise chained(_CacheMiss(), None)  # healing reads the catalog
            fresh = self.heal.revalidate(location, shapes)
            if fresh is None:
                raise
            plan, cached = self._plan(parsed, fresh, tenant, req)
        sql = plan.bind(catalog=location.catalog, schema=location.schema)
        params = bind_params(
            plan.param_order, req.params, parsed.positional_params, max_rows=req.max_rows
        )
        phases["rewrite"] = time.perf_counter() - t2
        if self.settings.server.log_sql:
            _log_sql(tenant, cached, sql)
        return Prepared(
            tenant,
            plan,
            sql,
            params,
            cached=cached,
            phases=phases,
            positional=parsed.positional_params,
        )

    def _plan(
        self,
        parsed: rewriter.ParsedStatement,
        shapes: dict[str, TableMetadata | None],
        tenant: Tenant,
        req: QueryRequest,
    ) -> tuple[rewriter.Plan, bool]:
        return self.plans.plan(
            parsed,
            tables=shapes,
            backend=tenant.location.kind,  # a StrEnum: the str itself, without .value's cost
            missing_columns=req.missing_columns,
            tenant_label=tenant.domain,
            allow_unfiltered=req.allow_unfiltered,
            # Bound a read's result in the SQL: some drivers buffer it all at execute.
            row_cap=True,
            lift_literals=self.settings.query.lift_literals,
        )

    async def query(self, principal: Principal, req: QueryRequest) -> QueryOutcome:
        deadline = time.monotonic() + req.timeout_ms / 1000
        prepared = await self.prepare(principal, req)
        try:
            return await self._execute(prepared, req, deadline)
        except BackendObjectMissing as error:
            if not self.heal.after_missing(prepared.tenant.location, prepared.plan):
                raise
            stale_error = error
        return await self._rerun(principal, req, prepared, stale_error, deadline)

    async def _rerun(
        self,
        principal: Principal,
        req: QueryRequest,
        stale: Prepared,
        error: BackendObjectMissing,
        deadline: float,
    ) -> QueryOutcome:
        """A read that failed on stale metadata, prepared and run once more."""
        try:
            prepared = await self.prepare(principal, req)
        except Exception:
            # Fresh metadata refuses it (a dropped column is now ``unknown_column``).
            self.heal.record("rerun_refused")
            raise
        if prepared.sql == stale.sql:
            # Same shapes, same SQL: running it again would fail the same way.
            self.heal.record("rerun_failed")
            raise error
        try:
            outcome = await self._execute(prepared, req, deadline)
        except BackendObjectMissing:
            self.metadata.refresh(prepared.tenant.location)
            self.heal.record("rerun_failed")
            raise
        self.heal.record("rerun_ok")
        return outcome

    async def _execute(
        self, prepared: Prepared, req: QueryRequest, deadline: float
    ) -> QueryOutcome:
        """Run ``prepared`` in what is left of the request's timeout (``deadline``)."""
        location = prepared.tenant.location
        if deadline <= time.monotonic():
            raise StatementTimeout(
                f"the timeout of {req.timeout_ms} ms passed before the statement could run",
                timeout_ms=req.timeout_ms,
            )
        t0 = time.perf_counter()
        try:
            result = await self._run(prepared, req, deadline)
        except PoolSaturated:
            raise  # our own queue, not the server's doing
        except (BackendUnavailable, BackendRejected) as error:
            self.observe_server(location, error)
            raise
        self.servers.answered(location.kind, location.server_key)
        prepared.phases["execute"] = time.perf_counter() - t0
        return QueryOutcome(result, location.kind, prepared.plan.statement_class, prepared.phases)

    def observe_server(self, location: TenantLocation, error: BaseException | None = None) -> None:
        """What a statement's outcome tells of its server's health (``servers``)."""
        if error is None or isinstance(error, BackendRejected):
            self.servers.answered(location.kind, location.server_key)
        elif isinstance(error, BackendUnavailable) and not isinstance(error, PoolSaturated):
            # A saturated pool is our own queue, not the server's doing.
            self.servers.unavailable(location.kind, location.server_key, error)

    async def _run(self, prepared: Prepared, req: QueryRequest, deadline: float) -> ResultSet:
        """The statement on its driver; a read whose connection was lost, once more."""
        location = prepared.tenant.location
        driver = self.drivers.for_location(location)
        whole = req.timeout_ms / 1000
        left = deadline - time.monotonic()
        try:
            return await driver.run(
                location,
                prepared.sql,
                prepared.params,
                # A preparation from the caches leaves the statement its whole timeout:
                # one that changed with every request would cost a PostgreSQL tenant a
                # SET statement_timeout round trip each time.
                timeout_s=whole if whole - left < PREPARATION_SLACK_S else left,
                max_rows=req.max_rows,
                # A write's OUTPUT/RETURNING rows are its affected rows: count them all.
                count_all_rows=prepared.plan.statement_class == "write",
            )
        except ConnectionLost:
            # The server closed the connection under the statement (a restart, a
            # terminated backend). A read changed nothing: it runs once more, on a fresh
            # connection (the pool closed its idle ones with the lost one). A write never
            # does: whether it happened is unknown, and the caller must decide.
            left = deadline - time.monotonic()
            if prepared.plan.statement_class != "read" or left <= PREPARATION_SLACK_S:
                raise
            try:
                result = await driver.run(
                    location, prepared.sql, prepared.params,
                    timeout_s=left, max_rows=req.max_rows,
                )  # fmt: skip
            except Exception:
                self.metrics.record_retry(location.kind, "failed")
                raise
            self.metrics.record_retry(location.kind, "ok")
            return result

    async def explain(self, principal: Principal, req: QueryRequest) -> dict[str, Any]:
        prepared = await self.prepare(principal, req)
        location = prepared.tenant.location
        return {
            "tenant": {"id": prepared.tenant.customer_id, "domain": prepared.tenant.domain},
            "backend": location.kind.value,
            "driver": self.drivers.for_location(location).name,
            "server": location.server_key,
            "database": _shown_database(location),
            "sql": prepared.sql,
            "params": prepared.params,
            "columns": list(prepared.plan.columns),
            "statement_class": prepared.plan.statement_class,
            "plan_cached": prepared.cached,
        }

    async def schema(self, principal: Principal, ref: str | int) -> dict[str, Any]:
        tenant = await self.resolve(principal, ref)
        return await self.offload(self._schema, tenant)

    def _schema(self, tenant: Tenant) -> dict[str, Any]:
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

    async def refresh(self, principal: Principal, ref: str | int) -> dict[str, Any]:
        principal.check_class("admin")
        tenant = await self.resolve(principal, ref)
        self.resolver.invalidate(ref)
        self.metadata.refresh(tenant.location)
        await self.publish(tenant, None, kind="tenant")
        return {"tenant": {"id": tenant.customer_id, "domain": tenant.domain}, "refreshed": True}

    async def publish(self, tenant: Tenant, table: str | None, *, kind: str = "schema") -> None:
        """Tell the other processes that ``tenant`` changed (this one already knows)."""
        if self.invalidation is None:
            return
        try:
            await self.invalidation.publish(tenant.customer_id, table, kind)
        except TenancyError as exc:
            # The change itself is made; the other processes see it when their cache
            # entries expire, and staleness healing covers the meantime.
            log.warning("could not announce a change of tenant %s: %s", tenant.domain, exc.message)

    async def _catch_up(self) -> None:
        assert self.invalidation is not None
        try:
            await self.invalidation.catch_up()
        except TenancyError as exc:
            # Staleness healing still guards correctness; the request goes on.
            log.warning("could not read the change log: %s", exc.message)

    async def background(self) -> None:
        """What a serving process runs beside its requests, until cancelled."""
        async with anyio.create_task_group() as tasks:
            if self.invalidation is not None:
                tasks.start_soon(self.invalidation.run)
            if self.metrics.multiprocess_dir is not None:
                tasks.start_soon(self._write_snapshots)

    async def _write_snapshots(self) -> None:
        while True:
            await self.offload(self.metrics.write_snapshot)
            await anyio.sleep(1.0)

    async def ready(self) -> dict[str, dict[str, Any]]:
        """Each readiness check by name: ``{"ok": bool, "ms": float}``, plus ``code`` and
        ``message`` when it fails. ``controller``: a query of the customer table on the
        controller's own threads (``on_controller``), never queued behind requests, and
        failing within ``controller.timeout_ms``, or at once while an earlier controller
        query is still unanswered past its deadline."""
        started = time.perf_counter()
        check: dict[str, Any] = {"ok": True}
        try:
            stuck = self.controller.overdue()
            if stuck:
                # Evidently stalled: no need to spend another deadline finding out.
                raise ControllerTimeout(
                    f"{stuck} controller queries are still unanswered past their deadline"
                )
            await self.on_controller(self.controller.ping)
        except TenancyError as exc:
            check = {"ok": False, "code": exc.code, "message": exc.message}
        check["ms"] = round((time.perf_counter() - started) * 1000, 1)
        return {"controller": check}

    async def aclose(self) -> None:
        if self.metrics.multiprocess_dir is not None:
            # The last figures, for the scrapes of the workers that outlive this one.
            try:
                await self.offload(self.metrics.write_snapshot)
            except OSError as exc:
                log.warning("could not write the last metrics snapshot: %s", exc)
        await self.drivers.aclose()
