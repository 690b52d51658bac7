"""The records API: one row of a tenant's table by primary key, read, patched, inserted.

This is the original system's model layer done safely. Every statement is *logical*
T-SQL built here from names the tenant's metadata vouches for (bracket-quoted, ``]``
doubled) with every value a ``?`` bind, and then goes through the same pipeline as
``/v1/query`` (``Service.prepare``: parse, allow-list, column checks, qualification
with the tenant's database, plan cache). So a record statement is validated and
qualified like any other, and shares cached plans across tenants of one shape.

* ``GET``: ``SELECT * [, CUSTOM_FIELDS()] FROM [T] WHERE [pk] = ?``. Custom columns are
  read only when asked for.
* ``ETag``: ``"<scope><sha256>"`` over the canonical JSON (sorted keys, the values as
  the API returns them) of exactly the columns returned; scope ``b`` is base columns,
  ``c`` base and custom. ``If-Match`` names the scope, so a PATCH compares the same
  set of columns the client saw.
* ``PATCH``: only the fields sent, each validated against its column's type, written
  with ``UPDATE [T] SET [a] = ?, ... WHERE [pk] = ?``. With ``If-Match``, the check is a
  compare-and-set inside one transaction on one connection:

      UPDATE [T] SET [a] = [a] WHERE [pk] = ?      -- takes the row's write lock
      SELECT ... WHERE [pk] = ?                     -- re-read; hash; compare with If-Match
      UPDATE [T] SET [a] = ?, ... WHERE [pk] = ?    -- only if equal, else ROLLBACK → 412
      SELECT ... WHERE [pk] = ?                     -- the new ETag
      COMMIT

  The lock comes first so that no other writer can change the row between the
  comparison and the write (PostgreSQL's READ COMMITTED would otherwise allow a lost
  update; SQLite takes its database write lock; SQL Server an exclusive row lock).
  Comparing hashes in Python rather than ``WHERE col = ?`` for every column avoids
  SQL equality's traps: NULLs, floats and decimals rebound through a driver, trailing
  spaces, and SQL Server's case-insensitive collations (``'a' = 'A'`` would pass a
  stale ETag).
* ``POST``: ``INSERT INTO [T] ([a], ...) OUTPUT INSERTED.[pk] VALUES (?, ...)``; the
  rewriter turns OUTPUT into RETURNING where the backend needs it.

Dates, date-times and decimals are bound as canonical strings; on PostgreSQL they are
wrapped in ``CAST(? AS ...)`` because psqlODBC types a string bind as ``varchar``,
which PostgreSQL does not assign to a ``date`` or ``timestamp`` column.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from proxy.auth import Principal
from proxy.drivers.base import ResultSet, Session
from proxy.errors import (
    InvalidFieldValue,
    InvalidRequest,
    PreconditionFailed,
    RecordNotFound,
    UnsupportedPrimaryKey,
)
from proxy.jsonenc import dumps
from proxy.pipeline.request import QueryRequest
from rewriter.errors import UnknownColumn, UnknownTable
from tenancy import catalog, ddl
from tenancy.backends import BackendKind, quote_identifier
from tenancy.errors import MetadataUnavailable
from tenancy.location import TenantLocation
from tenancy.metadata import TableMetadata
from tenancy.resolver import Tenant
from tenancy.sources import sqlstate_of

if TYPE_CHECKING:
    from proxy.pipeline.service import Prepared, Service

BASE, ALL = "b", "c"
_ETAG = re.compile(r'"([bc])([0-9a-f]{64})"')
_INTEGER_KEY = re.compile(r"-?[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class Record:
    table: str
    key: Any
    values: dict[str, Any]
    etag: str


@dataclass(frozen=True, slots=True)
class _Target:
    tenant: Tenant
    meta: TableMetadata
    pk: str
    key: Any


def etag_for(scope: str, values: Mapping[str, Any]) -> str:
    canonical = dumps(dict(values), sort_keys=True)
    return f'"{scope}{hashlib.sha256(canonical).hexdigest()}"'


def _q(name: str) -> str:
    # Record statements are logical T-SQL, whatever the tenant's backend.
    return quote_identifier(name, BackendKind.SQLSERVER)


class Records:
    def __init__(self, service: Service) -> None:
        self._service = service
        self._keys: TTLCache[tuple[str, str, str], tuple[str, ...]] = TTLCache(
            maxsize=100_000, ttl=service.settings.metadata.ttl_s
        )

    # -- public ------------------------------------------------------------------

    async def get(
        self, principal: Principal, ref: str | int, table: str, key: str, *, custom: bool = False
    ) -> Record:
        target = await self._target(principal, ref, table, key, "read")
        scope = ALL if custom else BASE
        outcome = await self._service.query(principal, self._select(ref, target, scope))
        values = self._one(outcome.result, target)
        return Record(target.meta.name, target.key, values, etag_for(scope, values))

    async def patch(
        self,
        principal: Principal,
        ref: str | int,
        table: str,
        key: str,
        body: Any,
        *,
        if_match: str | None = None,
        custom: bool = False,
    ) -> Record:
        target = await self._target(principal, ref, table, key, "write")
        if not isinstance(body, dict) or not body:
            raise InvalidRequest("the body must be a JSON object with at least one field")
        fields = self._fields(target, body, allow_key=False)
        expected = _parse_if_match(if_match)
        if expected is not None and expected != "*":
            scope = expected[1]
        else:
            touches_custom = any(name in target.meta.custom_columns for name, _ in fields)
            scope = ALL if custom or touches_custom else BASE
        kind = target.tenant.location.kind
        first = _q(fields[0][0])
        where = f" WHERE {_q(target.pk)} = ?"
        sets = ", ".join(f"{_q(name)} = {_bind(kind, ftype)}" for name, (_, ftype) in fields)
        service = self._service
        lock = await service.prepare(
            principal,
            self._request(ref, f"UPDATE {_q(target.meta.name)} SET {first} = {first}{where}",
                          [target.key]),
        )  # fmt: skip
        update = await service.prepare(
            principal,
            self._request(
                ref,
                f"UPDATE {_q(target.meta.name)} SET {sets}{where}",
                [value for _, (value, _) in fields] + [target.key],
            ),
        )
        read = await service.prepare(principal, self._select(ref, target, scope))
        location = target.tenant.location
        timeout_s = service.settings.query.default_timeout_ms / 1000
        run = functools.partial(_run, timeout_s=timeout_s)
        driver = service.drivers.for_location(location)
        async with driver.connection(location) as session, session.transaction():
            if (await run(session, lock)).row_count == 0:
                raise RecordNotFound(f"no {target.meta.name} record with key {key!r}", key=key)
            if expected is not None and expected != "*":
                before = self._one(await run(session, read), target)
                if etag_for(scope, before) != expected[0]:
                    raise PreconditionFailed(
                        "the record changed since it was read (If-Match does not match)",
                        key=key,
                    )
            await run(session, update)
            after = self._one(await run(session, read), target)
        return Record(target.meta.name, target.key, after, etag_for(scope, after))

    async def insert(
        self, principal: Principal, ref: str | int, table: str, body: Any
    ) -> dict[str, Any]:
        principal.check_class("write")
        tenant = await self._service.resolve(principal, ref)
        meta = await self._meta(tenant, table)
        pk = await self._primary_key(tenant.location, meta)
        if not isinstance(body, dict) or not body:
            raise InvalidRequest("the body must be a JSON object with at least one field")
        target = _Target(tenant, meta, pk, None)
        fields = self._fields(target, body, allow_key=True)
        kind = tenant.location.kind
        names = ", ".join(_q(name) for name, _ in fields)
        marks = ", ".join(_bind(kind, ftype) for _, (_, ftype) in fields)
        sql = f"INSERT INTO {_q(meta.name)} ({names}) OUTPUT INSERTED.{_q(pk)} VALUES ({marks})"
        outcome = await self._service.query(
            principal, self._request(ref, sql, [value for _, (value, _) in fields])
        )
        rows = outcome.result.rows
        key = rows[0][0] if rows else None
        return {"table": meta.name, "key": key, "primary_key": pk}

    # -- helpers -----------------------------------------------------------------

    def _request(self, ref: str | int, sql: str, params: list[Any]) -> QueryRequest:
        q = self._service.settings.query
        return QueryRequest(
            tenant=ref, sql=sql, params=params, dialect="tsql", max_rows=2,
            timeout_ms=q.default_timeout_ms,
        )  # fmt: skip

    def _select(self, ref: str | int, target: _Target, scope: str) -> QueryRequest:
        columns = "*, CUSTOM_FIELDS()" if scope == ALL else "*"
        sql = f"SELECT {columns} FROM {_q(target.meta.name)} WHERE {_q(target.pk)} = ?"
        return self._request(ref, sql, [target.key])

    def _one(self, result: ResultSet, target: _Target) -> dict[str, Any]:
        if not result.rows:
            raise RecordNotFound(
                f"no {target.meta.name} record with key {target.key!r}", key=str(target.key)
            )
        if len(result.rows) > 1:  # a key that is not unique after all (a view, say)
            raise UnsupportedPrimaryKey(f"the key of {target.meta.name!r} is not unique")
        return dict(zip((c.name for c in result.columns), result.rows[0], strict=True))

    async def _meta(self, tenant: Tenant, table: str) -> TableMetadata:
        meta = await self._service.table(tenant, table)
        if meta is None:
            raise UnknownTable(
                f"table {table!r} does not exist for tenant {tenant.domain!r}", table=table
            )
        return meta

    async def _target(
        self, principal: Principal, ref: str | int, table: str, key: str, statement_class: str
    ) -> _Target:
        principal.check_class(statement_class)
        tenant = await self._service.resolve(principal, ref)
        meta = await self._meta(tenant, table)
        pk = await self._primary_key(tenant.location, meta)
        column = meta.column(pk)
        ftype = ddl.field_type(column.type_name if column else "", tenant.location.kind)
        if ftype.kind == "integer":
            if not _INTEGER_KEY.fullmatch(key):
                raise InvalidRequest(f"the key of {meta.name!r} is an integer", key=key)
            value: Any = int(key)
        else:
            value = key
        return _Target(tenant, meta, pk, value)

    async def _primary_key(self, location: TenantLocation, meta: TableMetadata) -> str:
        cache_key = (location.key, meta.name, meta.fingerprint)
        found = self._keys.get(cache_key)
        if found is None:
            found = await self._service.offload(self._read_primary_key, location, meta.name)
            self._keys[cache_key] = found
        physical = [meta.lookup(name) for name in found]
        if len(physical) != 1 or physical[0] is None:
            raise UnsupportedPrimaryKey(
                f"the records API needs a single-column primary key; {meta.name!r} has "
                f"{len(found) or 'no'} key column{'s' if len(found) != 1 else ''}",
                table=meta.name,
            )
        return physical[0]

    def _read_primary_key(self, location: TenantLocation, table: str) -> tuple[str, ...]:
        service = self._service
        source = service.drivers.for_location(location).blocking_source(
            location, timeout_s=service.settings.metadata.timeout_ms / 1000
        )
        try:
            with source() as conn:
                return catalog.read_primary_key(conn, location, table)
        except service.drivers.db_errors as error:
            state = sqlstate_of(error)
            raise MetadataUnavailable(
                f"the primary key of {table!r} could not be read on {location.server_key} "
                f"(SQLSTATE {state or 'unknown'})",
                sqlstate=state,
                server=location.server_key,
            ) from None

    def _fields(
        self, target: _Target, body: Mapping[str, Any], *, allow_key: bool
    ) -> list[tuple[str, tuple[Any, ddl.FieldType]]]:
        """``[(physical name, (bind value, type))]``, validated against the metadata."""
        meta = target.meta
        kind = target.tenant.location.kind
        fields: dict[str, tuple[Any, ddl.FieldType]] = {}
        for name, value in body.items():
            physical = meta.lookup(name)
            if physical is None:
                raise UnknownColumn(
                    f"column {name!r} does not exist in {meta.name} for tenant "
                    f"{target.tenant.domain!r}",
                    column=name,
                    table=meta.name,
                )
            if physical in fields:
                raise InvalidRequest(f"column {physical!r} is given twice", column=physical)
            if physical == target.pk and not allow_key:
                raise InvalidRequest("the primary key of a record cannot be changed", column=name)
            column = meta.column(physical)
            assert column is not None
            ftype = ddl.field_type(column.type_name, kind)
            if value is None and not column.nullable:
                raise InvalidFieldValue(f"{physical}: the column is NOT NULL", column=physical)
            try:
                fields[physical] = (ddl.coerce_value(value, ftype, physical), ftype)
            except ddl.FieldError as exc:
                raise InvalidFieldValue(exc.message, column=physical) from None
        return list(fields.items())


async def _run(session: Session, prepared: Prepared, *, timeout_s: float) -> ResultSet:
    return await session.execute(prepared.sql, prepared.params, timeout_s=timeout_s, max_rows=2)


def _bind(kind: BackendKind, ftype: ddl.FieldType) -> str:
    if kind is not BackendKind.POSTGRESQL:
        return "?"
    if ftype.kind == "date":
        return "CAST(? AS DATE)"
    if ftype.kind == "datetime":
        return "CAST(? AS DATETIME2)"
    if ftype.kind == "decimal":
        if ftype.precision is not None:
            return f"CAST(? AS DECIMAL({ftype.precision}, {ftype.scale or 0}))"
        return "CAST(? AS DECIMAL)"
    return "?"


def _parse_if_match(header: str | None) -> tuple[str, str] | str | None:
    """``None`` (no header), ``"*"``, or ``(etag, scope)``; anything else can never match."""
    if header is None:
        return None
    value = header.strip()
    if value == "*":
        return "*"
    # One strong tag; a list or a weak tag (W/"...") never matches a strong comparison.
    match = _ETAG.fullmatch(value)
    if match is None:
        raise PreconditionFailed("If-Match does not name a current version of this record")
    return value, match.group(1)
