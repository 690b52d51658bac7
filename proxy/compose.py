"""The composition root: the only place that builds tenantgate's parts and wires them.

Front ends (HTTP today) and tools take a ``Service`` from ``build`` and nothing else;
tests build theirs the same way, with a registry of their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector

from proxy.auth import Authenticator
from proxy.config import ControllerSettings, Settings
from proxy.drivers.manager import Drivers
from proxy.drivers.sizing import PoolOptions
from proxy.errors import ProxyError
from proxy.metrics import Metrics
from proxy.pipeline.activity import TenantActivity
from proxy.pipeline.heal import Heal
from proxy.pipeline.invalidation import Bell, Invalidation
from proxy.pipeline.reuse import Reuse
from proxy.pipeline.servers import ServerHealth
from proxy.pipeline.service import Service
from rewriter.limits import Limits
from rewriter.plan_cache import PlanCache
from tenancy import connstr
from tenancy.backends import BackendKind, kind_for_driver
from tenancy.changes import ChangeLog
from tenancy.controller import ControllerDirectory
from tenancy.errors import TenancyError
from tenancy.location import TenantLocation, locate
from tenancy.metadata import BaseModel, MetadataCache
from tenancy.resolver import TenantResolver

__all__ = ["build", "pool_options"]


def pool_options(settings: Settings) -> PoolOptions:
    """This process's share of the pool settings: each cap divided among the workers,
    so that together they hold it."""
    p = settings.pool
    workers = settings.server.workers
    return PoolOptions(
        max_size=p.max_size // workers,
        min_size=min(p.min_size, p.max_size // workers),
        acquire_timeout=p.acquire_timeout_ms / 1000,
        login_timeout=p.login_timeout_s,
        max_idle=p.max_idle_s,
        max_lifetime=p.max_lifetime_s,
        max_per_server=p.max_per_server // workers,
        max_waiting=p.max_waiting,
        validate_idle=p.validate_idle_ms / 1000,
        label_requests=settings.logging.request_id_to_database,
    )


def build(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    run_dir: str | None = None,
) -> Service:
    """Everything a process serves with. ``run_dir`` is the folder the workers of one
    host share (multi-process metrics, the change bell); ``None`` for one process."""
    if registry is None:
        registry = CollectorRegistry()
        # CPU, memory and file descriptors of this process (with several workers, of
        # the worker that answers the scrape): the dashboard's "Process" row.
        ProcessCollector(registry=registry)
    metrics = Metrics(registry, multiprocess_dir=run_dir)
    drivers = Drivers(
        pool_options(settings),
        choices={BackendKind(k): v for k, v in settings.backend_drivers.items()},
        threads=settings.server.worker_threads,
    )
    templates = {
        BackendKind(kind): connstr.parse(text) for kind, text in settings.backend_templates.items()
    }

    def where(connection_string: str) -> TenantLocation:
        return locate(connstr.parse(connection_string), templates)

    c = settings.controller
    controller_cs = connstr.parse(c.connection_string)
    controller_kind = _controller_kind(controller_cs)
    controller_source = _controller_source(drivers, controller_cs, controller_kind, c)
    controller = ControllerDirectory(
        controller_source,
        table=c.table,
        id_column=c.id_column,
        domain_column=c.domain_column,
        connection_column=c.connection_column,
        # The controller's pool speaks in proxy errors (a failed connect, a saturated
        # pool): to tenancy they all mean the controller could not be asked.
        db_errors=(*drivers.odbc.db_errors, ProxyError),
        timeout=c.timeout_ms / 1000,
        max_threads=c.max_threads,
    )
    resolver = TenantResolver(
        controller,
        locate=where,
        ttl=c.cache_ttl_s,
        negative_ttl=c.negative_ttl_s,
        stale_grace=c.stale_grace_s,
    )
    catalog_timeout_s = settings.metadata.timeout_ms / 1000

    def catalog_source(location: TenantLocation) -> Callable[[], AbstractContextManager[Any]]:
        return drivers.for_location(location).blocking_source(location, timeout_s=catalog_timeout_s)

    metadata = MetadataCache(
        source_for=catalog_source,
        base_model=BaseModel(settings.base_model),
        ttl=settings.metadata.ttl_s,
        negative_ttl=settings.metadata.negative_ttl_s,
        db_errors=drivers.db_errors,
    )
    q = settings.query
    plans = PlanCache(
        max_bytes=q.plan_cache_bytes,
        parse_max_bytes=q.parse_cache_bytes,
        max_entry_bytes=q.cache_max_entry_bytes,
        limits=Limits(
            max_sql_chars=q.max_sql_chars,
            max_params=q.max_params,
            max_depth=q.max_depth,
            max_in_list=q.max_in_list,
        ),
    )
    servers = ServerHealth()
    reuse = Reuse()
    activity = TenantActivity(
        capacity=settings.stats.tenants_tracked, window_s=settings.stats.tenants_window_s
    )
    metrics.watch(
        caches={
            "tenant": resolver.get_stats,
            "metadata": metadata.get_stats,
            "plan": plans.get_stats,
            "prepared": reuse.get_stats,
        },
        pools=lambda: servers.with_pool_stats(drivers.get_stats()),
        activity=activity.export,
        top_tenants=settings.stats.top_tenants,
    )
    service = Service(
        settings=settings,
        metrics=metrics,
        auth=Authenticator(settings.tokens),
        drivers=drivers,
        controller=controller,
        resolver=resolver,
        metadata=metadata,
        plans=plans,
        heal=Heal(metadata, metrics),
        servers=servers,
        activity=activity,
        reuse=reuse,
    )
    if c.changes_table:
        controller_kind = kind_for_driver(controller_cs.get("Driver") or "")
        service.invalidation = Invalidation(
            ChangeLog(
                controller_source,
                backend=controller_kind,
                table=c.changes_table,
            ),
            resolver=resolver,
            metadata=metadata,
            # The controller's own threads, within controller.timeout_ms: a stalled
            # controller must hold up neither the log nor the threads catalogs use.
            on_controller=service.on_controller,
            poll_interval=c.poll_interval_s,
            bell=Bell(os.path.join(run_dir, "changes.bell")) if run_dir is not None else None,
        )
    return service


def _controller_kind(cs: connstr.ConnectionString) -> BackendKind | None:
    """The controller's backend, when its driver is one tenantgate knows."""
    try:
        return kind_for_driver(cs.get("Driver") or "")
    except TenancyError:
        return None  # any ODBC database may be the controller


def _controller_source(
    drivers: Drivers,
    cs: connstr.ConnectionString,
    kind: BackendKind | None,
    c: ControllerSettings,
) -> Callable[[], AbstractContextManager[Any]]:
    """The controller's pooled source, its statements bounded by ``controller.timeout_ms``.

    The request path stops waiting at that deadline anyway (``ControllerDirectory``);
    bounding the statement as well frees the thread and the connection soon after.
    A SQLite controller locked by another process keeps the SQLite ODBC driver waiting
    for its ``Timeout=`` (100 s unless set; each of connect and prepare waits that
    long): unless the connection string sets one, it is the controller's deadline.
    """
    timeout_s = c.timeout_ms / 1000
    database_file = None
    if kind is BackendKind.SQLITE:
        if "Timeout" not in cs:
            cs = cs.replace("Timeout", str(c.timeout_ms))
        database_file = cs.get("Database") or None
    return drivers.odbc.controller_source(
        cs.to_odbc(),
        backend=kind.value if kind is not None else None,
        timeout_s=timeout_s,
        database_file=database_file,
    )
