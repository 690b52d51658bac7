"""Custom-field administration: list, add and drop a tenant's custom columns.

Admin class only. The DDL comes from ``tenancy.ddl`` (validated, every identifier
quoted, defaults rebuilt as literals from validated values) and runs on the tenant's
own pool with a statement timeout, like any query. The rewriter is not involved: it
refuses DDL by design, and this module is the one door for it.

Every add or drop first refreshes the table's metadata, so the checks (name collision,
base column, column limit) are made against the catalog as it is, not as it was cached;
and refreshes it again afterwards, whatever happened, so the next request sees the
change at once. The backend still has the last word: two admins adding the same name at
once make one of them fail with the backend's error (a 400 or 409, never a 500).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from proxy.auth import Principal
from proxy.drivers.base import Session
from proxy.drivers.errors import is_broken
from proxy.errors import (
    BaseColumnProtected,
    ColumnExists,
    ColumnLimitReached,
    ConnectionLost,
    CustomFieldNotFound,
    InvalidCustomField,
    ProxyError,
)
from rewriter.errors import UnknownTable
from tenancy import ddl
from tenancy.backends import BackendKind
from tenancy.location import TenantLocation
from tenancy.metadata import TableMetadata
from tenancy.resolver import Tenant

if TYPE_CHECKING:
    from proxy.pipeline.service import Service

log = logging.getLogger("tenantgate.admin")


def describe_column(meta: TableMetadata, name: str, backend: BackendKind) -> dict[str, Any]:
    column = meta.column(name)
    assert column is not None
    return {
        "name": column.name,
        **ddl.field_type(column.type_name, backend).describe(),
        "backend_type": column.type_name,
        "nullable": column.nullable,
    }


class CustomFields:
    def __init__(self, service: Service) -> None:
        self._service = service

    async def _tenant(self, principal: Principal, ref: str | int) -> Tenant:
        principal.check_class("admin")
        return await self._service.resolve(principal, ref)

    async def _table(self, tenant: Tenant, table: str, *, fresh: bool) -> TableMetadata:
        if fresh:
            self._service.metadata.refresh(tenant.location, table)
        meta = await self._service.table(tenant, table)
        if meta is None:
            raise UnknownTable(
                f"table {table!r} does not exist for tenant {tenant.domain!r}", table=table
            )
        return meta

    async def list_fields(self, principal: Principal, ref: str | int, table: str) -> dict[str, Any]:
        tenant = await self._tenant(principal, ref)
        meta = await self._table(tenant, table, fresh=False)
        kind = tenant.location.kind
        return {
            "table": meta.name,
            "custom_fields": [describe_column(meta, c, kind) for c in meta.custom_columns],
            "column_count": len(meta.columns),
            "column_limit": ddl.COLUMN_LIMITS[kind],
        }

    async def add(
        self, principal: Principal, ref: str | int, table: str, body: Any
    ) -> dict[str, Any]:
        tenant = await self._tenant(principal, ref)
        try:
            spec = ddl.field_spec(body)
        except ddl.FieldError as exc:
            raise InvalidCustomField(exc.message, field=exc.field) from None
        location = tenant.location
        kind = location.kind
        meta = await self._table(tenant, table, fresh=True)
        existing = next(
            (c for c in meta.column_names if c.casefold() == spec.name.casefold()), None
        )
        if existing is not None:
            raise ColumnExists(
                f"table {meta.name!r} already has a column {existing!r}", column=existing
            )
        declared = self._service.metadata.base_model.columns_for(meta.name) or ()
        if any(c.casefold() == spec.name.casefold() for c in declared):
            # The tenant lacks this base column, but a custom field of that name would be
            # taken for the base column by every query written against the base model.
            raise ColumnExists(f"{spec.name!r} is a base column of {meta.name!r}", column=spec.name)
        limit = ddl.COLUMN_LIMITS[kind]
        if len(meta.columns) >= limit:
            raise ColumnLimitReached(
                f"table {meta.name!r} has {len(meta.columns)} columns; {kind.value} allows "
                f"{limit} per table",
                limit=limit,
            )
        try:
            sql = ddl.add_column_sql(
                spec, meta.name, kind, catalog=location.catalog, schema=location.schema
            )
        except ddl.FieldError as exc:
            raise InvalidCustomField(exc.message, field=exc.field) from None
        await self._run(tenant, meta.name, [sql])
        log.info("custom field %s added to %s for tenant %s", spec.name, meta.name, tenant.domain)
        after = await self._table(tenant, table, fresh=False)
        physical = after.lookup(spec.name) or spec.name
        if after.column(physical) is None:  # dropped again in between: report what we made
            return {"table": after.name, "name": spec.name, **spec.type.describe()}
        return {"table": after.name, **describe_column(after, physical, kind)}

    async def drop(
        self, principal: Principal, ref: str | int, table: str, name: str
    ) -> dict[str, Any]:
        tenant = await self._tenant(principal, ref)
        location = tenant.location
        meta = await self._table(tenant, table, fresh=True)
        physical = meta.lookup(name)
        if physical is None:
            raise CustomFieldNotFound(
                f"table {meta.name!r} has no column {name!r}", column=name, table=meta.name
            )
        if physical not in meta.custom_columns:
            raise BaseColumnProtected(
                f"{physical!r} is a base column of {meta.name!r}; only custom fields can be "
                "dropped",
                column=physical,
            )
        statements = ddl.drop_column_sql(
            physical, meta.name, location.kind, catalog=location.catalog, schema=location.schema
        )
        await self._run(tenant, meta.name, statements)
        log.info(
            "custom field %s dropped from %s for tenant %s", physical, meta.name, tenant.domain
        )
        return {"table": meta.name, "name": physical, "dropped": True}

    async def _run(self, tenant: Tenant, table: str, statements: list[str]) -> None:
        """Run the DDL on a session of the tenant's pool.

        SQL Server pools are shared by every tenant database of a server and login, which
        statements reach by three-part names. DDL runs from inside the tenant's database
        all the same (``USE [db]`` first): Babelfish refuses a three-part ``ALTER TABLE``
        from another database ("must be owner of table"), and SQL Server accepts both.
        The session is switched back to the database it was in before it goes back to the
        pool; if that fails, it is discarded, so that no later borrower inherits it.
        """
        service = self._service
        location = tenant.location
        timeout_s = service.settings.query.max_timeout_ms / 1000
        driver = service.drivers.for_location(location)
        try:
            async with driver.connection(location) as session:
                await self._run_in(session, location, statements, timeout_s)
        except _Discarded as discarded:
            if isinstance(discarded.__cause__, Exception):
                raise discarded.__cause__ from None
        finally:
            # Even a failed ALTER may have changed something (SQL Server's two steps).
            # Plans need no invalidation: they are keyed by the shape's fingerprint.
            service.metadata.refresh(location, table)
            await service.publish(tenant, table)

    async def _run_in(
        self, session: Session, location: TenantLocation, statements: list[str], timeout_s: float
    ) -> None:
        original: str | None = None
        if location.kind is BackendKind.SQLSERVER and location.catalog:
            original = await self._current_database(session, timeout_s)
            statements = [ddl.use_database_sql(location.catalog), *statements]
        failure: Exception | None = None
        try:
            for sql in statements:
                await session.execute(sql, (), timeout_s=timeout_s, max_rows=0)
        except Exception as exc:  # noqa: BLE001 - switched back whatever went wrong
            failure = exc
        # Also after a failed DDL: the caller gets the DDL's error either way.
        usable = failure is None or not is_broken(failure)
        if (
            original is not None
            and usable
            and not await self._switch_back(session, location, original, timeout_s)
        ):
            # Leaving the block with a connection-lost error makes the driver close the
            # connection; the caller still gets the DDL's outcome.
            raise _Discarded("discarded after DDL") from failure
        if failure is not None:
            raise failure

    async def _current_database(self, session: Session, timeout_s: float) -> str:
        result = await session.execute("SELECT DB_NAME()", (), timeout_s=timeout_s, max_rows=1)
        name = result.rows[0][0] if result.rows else None
        if not isinstance(name, str) or not name:
            raise ConnectionLost("could not tell which database the pooled connection is in")
        return name

    async def _switch_back(
        self, session: Session, location: TenantLocation, original: str, timeout_s: float
    ) -> bool:
        try:
            sql = ddl.use_database_sql(original)
            await session.execute(sql, (), timeout_s=timeout_s, max_rows=0)
        except (ProxyError, ddl.FieldError) as exc:
            log.warning(
                "pooled connection to %s could not switch back to database %r after DDL; "
                "discarding it: %s",
                location.server_key, original, exc,
            )  # fmt: skip
            return False
        return True


class _Discarded(ConnectionLost):
    """Raised inside a session's block so that its driver closes the connection."""
