"""One wire client, from its startup packet to its Terminate (protocol 3.0).

    startup ─► [SSLRequest ─► TLS or 'N'] ─► StartupMessage ─► authentication
            ─► tenant resolved ─► ParameterStatus…, BackendKeyData, ReadyForQuery
    loop:   Query                       a session command, or a logical statement
            Parse/Bind/Describe/Execute the same, with ``$n`` parameters; Sync ends a run
            Terminate (or EOF)          whatever transaction is open is rolled back

Statements go through the same pipeline as HTTP (``Service.query``), and ``BEGIN``
… ``COMMIT`` through the same interactive transactions (``Transactions``), with their
caps and timeouts; the ReadyForQuery status byte follows them (I, T, E). Like
PostgreSQL, any error inside a transaction block leaves it failed: the transaction is
rolled back at once (its connection goes back to its pool) and every statement is
refused with 25P02 until ``ROLLBACK`` (or ``COMMIT``, which answers ROLLBACK).

The extended protocol runs a portal when it is first described or executed, whichever
comes first: drivers describe a portal before executing it (psycopg, pgbench, JDBC),
and its row description can only come from a result. Until the first Sync after an
error, messages are skipped, as the protocol says. The statements up to a Sync are
one implicit transaction, all or nothing, as in PostgreSQL: one is begun before the
first that writes when the messages already read show more than one statement
(``_begin_implicit``), committed at the Sync, rolled back by any error before it.

A read with more rows than ``query.max_rows_cap``, outside a transaction, is run
again as a stream and its rows sent as they are fetched (``_stream``).

Every error leaves as an ErrorResponse with the SQLSTATE of its code
(``proxy.frontends.pgwire.sqlstates``); a malformed message, or one out of order,
ends the connection with a FATAL one. Nothing of a caller's statement is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from proxy.auth import Principal
from proxy.drivers.base import ResultColumn, ResultSet, RowStream
from proxy.errors import (
    ProxyError,
    StatementTimeout,
    TransactionAborted,
    TransactionNotFound,
    chained,
)
from proxy.frontends.pgwire import catalog
from proxy.frontends.pgwire import protocol as pq
from proxy.frontends.pgwire import session as cmd
from proxy.frontends.pgwire.auth import AuthFailed, ScramExchange, verifier_of
from proxy.frontends.pgwire.sqlstates import sqlstate_for
from proxy.frontends.pgwire.types import OIDS, ParamError, decode_param, row_encoder, type_size
from proxy.pipeline.describe import describe
from proxy.pipeline.request import QueryRequest
from proxy.pipeline.service import Service
from proxy.pipeline.stream import open_stream
from tenancy.catalog import read_primary_key
from tenancy.errors import MetadataUnavailable
from tenancy.location import TenantLocation
from tenancy.metadata import TableMetadata

if TYPE_CHECKING:
    from proxy.frontends.pgwire.server import WireServer

__all__ = ["Connection"]

log = logging.getLogger("tenantgate.pgwire")

_FLUSH_AT = 64 * 1024
"""Buffered output beyond this is written (and drained) before more is produced."""
_TEXT = OIDS["string"]
_MAX_STATEMENTS = 10_000
"""Named prepared statements a session may keep (each holds its text)."""
_ENDPOINT = "pgwire_statement"
"""The ``endpoint`` label of a wire statement in ``tenantgate_requests_total``."""


class _Fatal(Exception):
    """End the connection after a FATAL ErrorResponse."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


class _Failed(Exception):
    """A statement's ErrorResponse was sent: skip to Sync (extended) or go on."""


class _ClientStalled(Exception):
    """The client took no bytes of a streamed result for ``stream_write_timeout_ms``:
    the session ends, as for a client that went away. (Not a ``ConnectionError``
    subclass: mypyc cannot compile one.)"""


@dataclass(frozen=True, slots=True)
class _Shape:
    description: bytes
    """The RowDescription message."""
    encode: Callable[[Sequence[object]], list[bytes | None]]


_MAX_SHAPES = 256
"""Result shapes a session keeps encoders for."""


# The per-statement classes' __init__ is written out to be compiled (mypyc leaves a
# dataclass's generated one interpreted; proxy/frontends/pgwire/protocol.py's messages).
@dataclass(init=False, slots=True)
class _Outcome:
    columns: list[ResultColumn] | None
    rows: list[list[object]]
    tag: str
    more: QueryRequest | None
    """A read larger than ``query.max_rows_cap``, outside a transaction: its rows are
    not here, and are sent as this request streams them (``Connection._stream``)."""

    def __init__(
        self,
        columns: list[ResultColumn] | None,
        rows: list[list[object]],
        tag: str,
        more: QueryRequest | None = None,
    ) -> None:
        self.columns = columns
        self.rows = rows
        self.tag = tag
        self.more = more


@dataclass(init=False, slots=True)
class _Statement:
    sql: str
    """As the pipeline takes it (``?`` markers)."""
    text: str
    """As the client sent it (``$n`` markers): what a catalog query is answered from."""
    order: tuple[int, ...]
    """For each ``?``, the index of the Bind value it takes."""
    param_oids: tuple[int, ...]
    command: cmd.Command | None
    columns: tuple[ResultColumn, ...] | None
    """As Describe announced them: what its results are sent as."""

    def __init__(
        self,
        sql: str,
        text: str,
        order: tuple[int, ...],
        param_oids: tuple[int, ...],
        command: cmd.Command | None,
    ) -> None:
        self.sql = sql
        self.text = text
        self.order = order
        self.param_oids = param_oids
        self.command = command
        self.columns = None


@dataclass(init=False, slots=True)
class _Portal:
    name: str
    statement: _Statement
    params: list[object]
    result_formats: tuple[int, ...]
    outcome: _Outcome | None
    sent: int
    described: bool
    shape: _Shape | None
    """Its result's, once looked up (Describe, then Execute, want it)."""

    def __init__(
        self,
        name: str,
        statement: _Statement,
        params: list[object],
        result_formats: tuple[int, ...],
    ) -> None:
        self.name = name
        self.statement = statement
        self.params = params
        self.result_formats = result_formats
        self.outcome = None
        self.sent = 0
        self.described = False
        self.shape = None


@dataclass(slots=True)
class _State:
    principal: Principal | None = None
    tenant: str = ""
    """As the startup packet names it (the statements' ``QueryRequest.tenant``)."""
    domain: str = ""
    """The tenant's domain, as metrics and the busiest tenants name it."""
    dialect: str = "postgres"
    parameters: dict[str, str] = field(default_factory=dict)
    tx: str | None = None
    implicit: bool = False
    """``tx`` is the extended protocol's implicit transaction, which ends at Sync."""
    failed: bool = False
    statements: dict[str, _Statement] = field(default_factory=dict)
    portals: dict[str, _Portal] = field(default_factory=dict)


class Connection:
    """Serves one client on ``reader``/``writer`` (``run``)."""

    def __init__(
        self, server: WireServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._server = server
        self._service: Service = server.service
        self._reader = reader
        self._writer = writer
        self._out = bytearray()
        self._state = _State()
        self.key = server.new_key()
        """(process id, secret) as BackendKeyData gives them: a CancelRequest's key."""
        self._running: asyncio.Task[Any] | None = None
        """The task running a statement, which a CancelRequest cancels (cheaper than a
        cancel scope per statement: 9-14 µs of a 130 µs transaction, measured)."""
        self._cancelled = False
        self._shapes: dict[tuple[tuple[ResultColumn, ...], tuple[int, ...]], _Shape] = {}
        self._messages = pq.Messages(
            reader, max_bytes=self._service.settings.pgwire.max_message_bytes
        )
        """Read from once the startup packet is (TLS, if any, is on by then)."""
        self._task: asyncio.Task[Any] | None = None

    # -- the connection's life ---------------------------------------------------------------

    async def run(self) -> None:
        """The session, start to end: its task's top coroutine (``WireServer.handle``)."""
        self._task = task = asyncio.current_task()
        if task is not None:
            self._server.opened(task)
        try:
            await self._session()
        except Exception:  # a bug of ours: logged, and only this client is lost
            log.exception("a wire session failed")
        finally:
            if task is not None:
                self._server.closed(task)

    async def _session(self) -> None:
        try:
            if await self._startup():
                self._server.register(self)
                await self._serve()
        except _Fatal as exc:
            await self._fatal(exc.sqlstate, exc.message)
        except pq.ProtocolViolation as violation:  # a name of its own: see _catalog
            await self._fatal(violation.sqlstate, violation.message)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, _ClientStalled):
            pass  # the client went away, or stopped reading
        finally:
            self._server.unregister(self)
            await self._end_transaction()
            self._writer.close()

    def cancel(self) -> None:
        """A CancelRequest for this connection: stop the statement running, if any."""
        if self._running is not None and not self._cancelled:
            self._cancelled = True
            self._running.cancel()

    async def _fatal(self, sqlstate: str, message: str) -> None:
        self._out += pq.error_response(sqlstate, message, severity="FATAL")
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self._flush()

    async def _flush(self) -> None:
        writer = self._writer
        if self._out:
            writer.write(bytes(self._out))
            self._out.clear()
        # Waited for only when the socket took less than all of it (or is closing): a
        # ``drain`` that has nothing to wait for is two coroutines per transaction.
        if writer.transport.get_write_buffer_size() or writer.transport.is_closing():
            await writer.drain()

    # -- startup ----------------------------------------------------------------------------

    async def _startup(self) -> bool:
        """Authenticated and ready; ``False`` for a cancel request (nothing to serve)."""
        settings = self._service.settings.pgwire
        tls = self._server.tls
        while True:
            message = await pq.read_startup(self._reader)
            if isinstance(message, pq.SSLRequest):
                if tls is None or self._writer.get_extra_info("sslcontext") is not None:
                    self._writer.write(b"N")
                    continue
                self._writer.write(b"S")
                await self._writer.drain()
                await self._writer.start_tls(tls)
                continue
            if isinstance(message, pq.GSSENCRequest):
                self._writer.write(b"N")
                continue
            if isinstance(message, pq.CancelRequest):
                await self._server.cancel(message.pid, message.secret)
                return False
            break
        if message.version != pq.PROTOCOL_3:
            raise _Fatal(
                "0A000",
                f"unsupported frontend protocol {message.version >> 16}.{message.version & 0xFFFF}",
            )
        params = message.params
        if not params.get("user"):
            raise _Fatal("28000", "no user name in the startup packet")
        principal, dialect = await self._authenticate(params, settings.cleartext_tokens)
        tenant = cmd.tenant_from(params)
        if tenant is None:
            raise _Fatal(
                "3D000",
                "no tenant: name it with options=-c tenantgate.tenant=…, the database, "
                "or a user.tenant suffix",
            )
        try:
            resolved = await self._service.resolve(principal, tenant)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes its SQLSTATE
            sqlstate, _ = sqlstate_for(exc)
            raise chained(_Fatal(sqlstate, getattr(exc, "message", str(exc))), None)
        state = self._state
        state.principal = principal
        state.tenant = tenant
        state.domain = resolved.domain
        state.dialect = dialect
        state.parameters = _start_parameters(params, resolved.domain)
        out = self._out
        out += pq.authentication_ok()
        for name in _REPORTED:
            out += pq.parameter_status(name, state.parameters[name])
        out += pq.backend_key_data(*self.key)
        out += pq.ready_for_query(b"I")
        await self._flush()
        return True

    async def _authenticate(self, params: dict[str, str], cleartext: bool) -> tuple[Principal, str]:
        """SCRAM for configured users; a token as cleartext password over TLS."""
        name = cmd.user_name(params)
        users = {u.name.casefold(): u for u in self._service.settings.pgwire.users}
        user = users.get(name.casefold())
        auth = self._service.auth
        over_tls = self._writer.get_extra_info("sslcontext") is not None
        try:
            if user is None and cleartext and over_tls:
                self._out += pq.authentication_cleartext()
                await self._flush()
                password = pq.parse_password(await self._password_message())
                try:
                    principal = auth.authenticate(f"Bearer {password}")
                except ProxyError:
                    raise chained(AuthFailed("invalid token"), None)
                return principal, "postgres"
            exchange = ScramExchange(verifier_of(user))
            self._out += pq.authentication_sasl(["SCRAM-SHA-256"])
            await self._flush()
            mechanism, first = pq.parse_sasl_initial(await self._password_message())
            if mechanism != "SCRAM-SHA-256":
                raise _Fatal("28000", f"unsupported SASL mechanism {mechanism[:40]!r}")
            self._out += pq.authentication_sasl_continue(exchange.first(first))
            await self._flush()
            final = exchange.final(pq.parse_sasl_response(await self._password_message()))
        except AuthFailed:
            # Slow, and the same for a wrong secret as for an unknown user.
            await asyncio.sleep(self._service.settings.pgwire.auth_failure_delay_ms / 1000)
            raise chained(
                _Fatal("28P01", f"password authentication failed for user {name[:63]!r}"), None
            )
        # A user that is not configured has a random verifier: its exchange failed above.
        assert user is not None
        self._out += pq.authentication_sasl_final(final)
        return auth.principal(user.token), user.dialect

    async def _password_message(self) -> bytes:
        kind, payload = await self._messages.next()
        if kind != b"p":
            raise pq.ProtocolViolation(f"expected a password message, got {kind!r}")
        return payload

    # -- the message loop -------------------------------------------------------------------

    async def _serve(self) -> None:
        skipping = False
        messages = self._messages
        while True:
            kind, payload = messages.buffered() or await messages.next()
            message = pq.parse_frontend(kind, payload)
            # By type byte, the extended protocol's messages first: the hot path.
            if kind == b"S":
                skipping = False
                await self._sync()
                continue
            if kind == b"Q":
                assert isinstance(message, pq.Query)
                if self._state.implicit:  # a Query ends what came before it, as Sync does
                    await self._commit_implicit()
                await self._simple(message.sql)
                self._out += pq.ready_for_query(self._status())
                await self._flush()
                continue
            if kind == b"H":
                await self._flush()
                continue
            if kind == b"X":
                return
            if skipping:
                continue
            try:
                if kind == b"B":
                    assert isinstance(message, pq.Bind)
                    self._guard(self._bind, message)
                    self._out += pq.bind_complete()
                elif kind == b"E":
                    assert isinstance(message, pq.Execute)
                    await self._execute(message)
                elif kind == b"D":
                    assert isinstance(message, pq.Describe)
                    await self._describe_message(message)
                elif kind == b"P":
                    assert isinstance(message, pq.Parse)
                    self._guard(self._parse, message)
                    self._out += pq.parse_complete()
                else:
                    assert isinstance(message, pq.Close)
                    state = self._state
                    (state.statements if message.kind == "S" else state.portals).pop(
                        message.name, None
                    )
                    self._out += pq.close_complete()
            except _Failed:
                skipping = True
                await self._statement_failed()  # any error, as in PostgreSQL
            if len(self._out) > _FLUSH_AT:
                await self._flush()

    async def _sync(self) -> None:
        state = self._state
        if state.implicit:
            await self._commit_implicit()
        if state.tx is None:
            # The implicit transaction ends here, and its portals with it (their results
            # too: a portal holds its rows until it is done).
            state.portals.clear()
        self._out += pq.ready_for_query(self._status())
        await self._flush()

    def _status(self) -> bytes:
        state = self._state
        if state.failed:
            return b"E"
        return b"T" if state.tx is not None else b"I"

    # -- simple query -------------------------------------------------------------------------

    async def _simple(self, sql: str) -> None:
        if not sql.strip() or sql.strip() == ";":
            self._out += pq.empty_query_response()
            return
        statement = _Statement(sql, sql, (), (), cmd.command(sql))
        try:
            outcome = await self._run(statement, [])
            if outcome.columns is not None:
                shape = self._shape(outcome.columns, ())
                self._out += shape.description
                if outcome.more is not None:
                    outcome.tag = await self._stream(outcome, shape)
                else:
                    self._write_rows(outcome, (), 0)
        except _Failed:
            await self._statement_failed()
            return
        self._out += pq.command_complete(outcome.tag)

    # -- extended query -----------------------------------------------------------------------

    async def _describe_message(self, message: pq.Describe) -> None:
        state = self._state
        if message.kind == "S":
            statement = state.statements.get(message.name)
            if statement is None:
                self._error("26000", "no such prepared statement")
            await self._describe(statement)
            self._out += pq.parameter_description(list(statement.param_oids))
            if statement.columns is None:
                self._out += pq.no_data()
            else:
                self._out += _row_description(statement.columns, ())
            return
        portal = self._portal(message.name)
        outcome = await self._outcome(portal)
        portal.described = True
        if outcome.columns is None:
            self._out += pq.no_data()
        else:
            self._out += self._portal_shape(portal, outcome.columns).description

    async def _execute(self, message: pq.Execute) -> None:
        portal = self._portal(message.portal)
        outcome = await self._outcome(portal)
        if outcome.more is not None and outcome.columns is not None:
            if message.max_rows > 0:
                # Pages of a stream would hold it open between messages: refused.
                q = self._service.settings.query
                self._too_large(time.perf_counter(), q.max_rows_cap, "query.max_rows_cap")
            shape = self._portal_shape(portal, outcome.columns)
            outcome.tag = await self._stream(outcome, shape)
            outcome.more = None  # the portal is done: executed again, it has no rows
            self._out += pq.command_complete(outcome.tag)
            return
        if self._write_rows(outcome, portal.result_formats, message.max_rows, portal):
            self._out += pq.command_complete(outcome.tag)
        else:
            self._out += pq.portal_suspended()

    def _guard(self, step: Callable[[Any], None], message: Any) -> None:
        try:
            step(message)
        except ParamError as exc:
            self._error(exc.sqlstate, exc.message)

    def _parse(self, message: pq.Parse) -> None:
        state = self._state
        if message.name and message.name in state.statements:
            self._error("42P05", f"prepared statement {message.name[:63]!r} already exists")
        if len(state.statements) >= _MAX_STATEMENTS and message.name not in state.statements:
            self._error("53400", f"a session may keep {_MAX_STATEMENTS} prepared statements")
        sql, order = cmd.numbered_to_positional(message.sql)
        state.statements[message.name] = _Statement(
            sql, message.sql, order, message.param_oids, cmd.command(message.sql)
        )

    def _bind(self, message: pq.Bind) -> None:
        state = self._state
        statement = state.statements.get(message.statement)
        if statement is None:
            self._error("26000", "no such prepared statement")
        if message.portal and message.portal in state.portals:
            self._error("42P03", f"portal {message.portal[:63]!r} already exists")
        formats = message.param_formats
        values = []
        for i, raw in enumerate(message.params):
            oid = statement.param_oids[i] if i < len(statement.param_oids) else 0
            fmt = formats[0] if len(formats) == 1 else (formats[i] if formats else 0)
            values.append(decode_param(raw, oid, fmt))
        state.portals[message.portal] = _Portal(
            message.portal, statement, values, message.result_formats
        )

    async def _describe(self, statement: _Statement) -> None:
        """Parameter and result types before anything runs (asyncpg, JDBC)."""
        state = self._state
        assert state.principal is not None
        command = statement.command
        if command is None and await self._is_catalog(statement.text):
            found = catalog.describe(statement.text)
            if found is None:  # refused when it runs
                statement.param_oids = tuple(_param_oids(statement, ()))
                return
            # Per ``?`` in order, as the pipeline's inference gives them.
            inferred = [found.params[n] if n < len(found.params) else "unknown"
                        for n in statement.order]  # fmt: skip
            statement.param_oids = tuple(_param_oids(statement, inferred))
            statement.columns = tuple(
                ResultColumn(n, t) for n, t in zip(found.columns, found.types, strict=True)
            )
            return
        if command is not None:
            statement.param_oids = tuple(_param_oids(statement, ()))
            if isinstance(command, cmd.Show):
                statement.columns = (ResultColumn(command.name, "string"),)
            elif isinstance(command, cmd.Version | cmd.Fixed):
                statement.columns = (ResultColumn(command.column, "string"),)
            elif isinstance(command, cmd.Set) and command.echo:
                statement.columns = (ResultColumn("set_config", "string"),)
            return
        req = QueryRequest(state.tenant, statement.sql, (), state.dialect)
        try:
            described = await describe(self._service, state.principal, req)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes its SQLSTATE
            sqlstate, _ = sqlstate_for(exc)
            self._error(sqlstate, getattr(exc, "message", str(exc)))
        statement.param_oids = tuple(_param_oids(statement, described.params))
        statement.columns = described.columns

    def _portal(self, name: str) -> _Portal:
        portal = self._state.portals.get(name)
        if portal is None:
            self._error("34000", "no such portal")
        return portal

    async def _outcome(self, portal: _Portal) -> _Outcome:
        if portal.outcome is None:
            statement = portal.statement
            try:
                params = [portal.params[i] for i in statement.order]
            except IndexError:
                self._error("08P01", "a parameter the statement uses was not bound")
            if not statement.order:
                params = []
            if (
                self._state.tx is None
                and statement.command is None
                and self._messages.another_statement_ahead(portal.name)
            ):
                await self._begin_implicit(statement)
            outcome = await self._run(statement, params, portal.params)
            if statement.columns is not None and outcome.columns is not None:
                if len(outcome.columns) != len(statement.columns):
                    self._error("0A000", "cached plan must not change result type")
                outcome.columns = list(statement.columns)
            portal.outcome = outcome
        return portal.outcome

    # -- running a statement ------------------------------------------------------------------

    def _error(self, sqlstate: str, message: str) -> NoReturn:
        """Send an ErrorResponse and abandon the current message (``_Failed``)."""
        self._out += pq.error_response(sqlstate, message)
        raise _Failed

    async def _run(
        self, statement: _Statement, params: list[object], bound: Sequence[object] = ()
    ) -> _Outcome:
        """``statement`` with ``params`` in ``?`` order (``bound``: in ``$n`` order)."""
        state = self._state
        command = statement.command
        if command is not None:
            return await self._command(command)
        if state.failed:
            self._error(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            )
        assert state.principal is not None
        if catalog.mentions_catalog(statement.text) and await self._is_catalog(statement.text):
            return await self._catalog(statement.text, bound)
        q = self._service.settings.query
        req = QueryRequest(
            state.tenant,
            statement.sql,
            params,
            state.dialect,
            max_rows=q.max_rows_cap,
            timeout_ms=self._timeout_ms(),
        )
        result: ResultSet | None = None
        started = time.perf_counter()
        task = self._task
        self._running, self._cancelled = task, False
        try:
            self._service.auth.admit(state.principal)
            if state.tx is None:
                outcome = await self._service.query(state.principal, req)
            else:
                outcome = await self._service.transactions.query(state.principal, state.tx, req)
            result = outcome.result
        except asyncio.CancelledError:
            # Ours (a CancelRequest) ends the statement; any other cancellation (the
            # server stopping) goes on up.
            if not self._cancelled or task is None or task.uncancel() > 0:
                raise
        except Exception as exc:  # noqa: BLE001 - every error becomes an ErrorResponse
            await self._statement_failed()
            self._failed_with(exc, started)
        finally:
            self._running = None
        if result is None:  # a CancelRequest stopped it
            self._account("statement_cancelled", started)
            await self._statement_failed()
            self._error("57014", "canceling statement due to user request")
        if result.truncated:
            if state.tx is None and outcome.statement_class == "read":
                # More rows than a result is held with: run again as a stream, whose
                # rows go out as they are fetched (``_stream``). The rows read here are
                # dropped; only the stream's reach the client.
                return _Outcome(result.columns, [], "", more=req)
            self._too_large(started, q.max_rows_cap, "query.max_rows_cap")
        seconds = time.perf_counter() - started
        self._service.metrics.observe_query(
            outcome.backend,
            outcome.statement_class,
            outcome.phases,
            rows=len(result.rows),
            truncated=False,
            request=(_ENDPOINT, seconds),
        )
        self._service.activity.record(self._state.domain, seconds, error=False)
        return _Outcome(
            result.columns if outcome.statement_class == "read" or result.columns else None,
            result.rows,
            _tag(statement.sql, outcome.statement_class, result),
        )

    async def _is_catalog(self, text: str) -> bool:
        """Whether ``text`` is a catalog query; worked out in a worker thread, since the
        first time a text is seen it is parsed, typed and transpiled (up to about 100
        ms for SQLAlchemy's reflection: not on the loop every session shares)."""
        if not catalog.mentions_catalog(text):  # most statements: no thread hop
            return False
        return await self._service.offload(catalog.is_catalog_query, text)

    async def _catalog(self, text: str, bound: Sequence[object]) -> _Outcome:
        """A catalog query answered from the tenant's metadata (never its server's)."""
        state = self._state
        assert state.principal is not None
        service = self._service
        try:
            tenant = await service.resolve(state.principal, state.tenant)
            tables, keys = await service.offload(_catalog_source, service, tenant.location)
            found = await service.offload(catalog.answer, text, tables, bound, primary_keys=keys)
        except catalog.CatalogQueryUnsupported as unsupported:
            # Not ``exc`` as below: compiled (``proxy.compiled``), one name caught twice
            # keeps the first clause's type, and the second assignment fails.
            self._error("0A000", f"tenantgate does not answer this catalog query: {unsupported}")
        except Exception as exc:  # noqa: BLE001 - every error becomes an ErrorResponse
            sqlstate, _ = sqlstate_for(exc)
            self._error(sqlstate, getattr(exc, "message", str(exc)))
        if found is None:  # pragma: no cover - is_catalog_query said it was one
            self._error("XX000", "a catalog query was not answered")
        columns = [ResultColumn(n, t) for n, t in zip(found.columns, found.types, strict=True)]
        return _Outcome(columns, [list(r) for r in found.rows], f"SELECT {len(found.rows)}")

    def _failed_with(self, exc: Exception, started: float) -> NoReturn:
        """A statement's error, counted, and sent as the ErrorResponse of its SQLSTATE
        (called in its ``except`` clause: a bug of ours is logged with its traceback)."""
        sqlstate, code = sqlstate_for(exc)
        self._account(code, started)
        if sqlstate == "XX000":
            log.exception("unhandled error on the wire front end")
        self._error(sqlstate, getattr(exc, "message", str(exc)))

    def _too_large(self, started: float, cap: int, setting: str) -> NoReturn:
        self._account("result_too_large", started)
        self._error(
            "54000",
            f"the result has more than {cap} rows ({setting}); "
            "narrow the statement or page it with LIMIT/OFFSET",
        )

    async def _stream(self, outcome: _Outcome, shape: _Shape) -> str:
        """The rows of a read too large to hold (``_Outcome.more``), run again as a
        stream and sent batch by batch as they are fetched; its command tag.

        As an HTTP stream (docs/transactions.md, "Streaming results"): up to
        ``query.stream_max_rows`` rows (more are a 54000 after them), each round trip
        bounded by the statement timeout, the whole by ``query.stream_max_ms``. A client
        that takes no bytes for ``query.stream_write_timeout_ms`` is cut off: the
        statement stops and the connection is closed. An error after some rows is an
        ErrorResponse after them, as PostgreSQL sends one.
        """
        req = outcome.more
        state = self._state
        assert req is not None and state.principal is not None
        q = self._service.settings.query
        req.max_rows = q.stream_max_rows
        write_timeout_s = q.stream_write_timeout_ms / 1000
        started = time.perf_counter()
        ends = time.monotonic() + q.stream_max_ms / 1000
        sent = 0
        truncated = False
        task = self._task
        self._running, self._cancelled = task, False
        try:
            async with open_stream(self._service, state.principal, req) as stream:
                sent = await self._send_batches(stream.rows, shape, ends, write_timeout_s)
                truncated = stream.rows.truncated
                backend = stream.backend
                phases = stream.phases
        except asyncio.CancelledError:
            if not self._cancelled or task is None or task.uncancel() > 0:
                raise
            self._account("statement_cancelled", started)
            self._error("57014", "canceling statement due to user request")
        except _ClientStalled:
            self._account("client_disconnected", started)  # as HTTP counts a stalled stream
            raise
        except (TypeError, ValueError) as unsendable:
            self._account("invalid_request", started)
            self._error("22P03", f"a value cannot be sent in the format asked for: {unsendable}")
        except Exception as exc:  # noqa: BLE001 - every error becomes an ErrorResponse
            self._failed_with(exc, started)
        finally:
            self._running = None
        if truncated:
            self._too_large(started, q.stream_max_rows, "query.stream_max_rows")
        seconds = time.perf_counter() - started
        self._service.metrics.observe_query(
            backend, "read", phases, rows=sent, truncated=False, request=(_ENDPOINT, seconds)
        )
        self._service.activity.record(state.domain, seconds, error=False)
        return f"SELECT {sent}"

    async def _send_batches(
        self, rows: RowStream, shape: _Shape, ends: float, write_timeout_s: float
    ) -> int:
        """``rows`` sent as DataRows, flushed as they pile up; how many. Past ``ends``
        (``time.monotonic``), ``StatementTimeout``."""
        q = self._service.settings.query
        sent = 0
        async for batch in rows:
            self._out += pq.data_rows([shape.encode(row) for row in batch])
            sent += len(batch)
            if len(self._out) > _FLUSH_AT:
                await self._flush_within(write_timeout_s)
            if time.monotonic() > ends:
                max_ms = q.stream_max_ms
                message = f"the stream ran past query.stream_max_ms ({max_ms} ms)"
                raise StatementTimeout(message, timeout_ms=max_ms)
        return sent

    async def _flush_within(self, seconds: float) -> None:
        """``_flush``, for a client given ``seconds`` to take the bytes."""
        try:
            async with asyncio.timeout(seconds):
                await self._flush()
        except TimeoutError as stalled:
            raise chained(_ClientStalled("the client stopped reading"), stalled)

    def _account(self, code: str | None, started: float) -> None:
        """A statement in the request metrics and the busiest tenants, as HTTP counts one."""
        seconds = time.perf_counter() - started
        self._service.metrics.observe_request(_ENDPOINT, code, seconds)
        self._service.activity.record(self._state.domain, seconds, error=code is not None)

    def _timeout_ms(self) -> int:
        q = self._service.settings.query
        raw = self._state.parameters.get("statement_timeout", "0")
        try:
            asked = int(raw)
        except ValueError:
            asked = 0
        return min(asked, q.max_timeout_ms) if asked > 0 else q.default_timeout_ms

    async def _statement_failed(self) -> None:
        """Inside a transaction block: the block is failed, its transaction rolled back.
        Inside an implicit one: rolled back, and the session is idle again at Sync."""
        state = self._state
        if state.tx is None:
            return
        state.failed = not state.implicit
        await self._end_transaction()

    async def _begin_implicit(self, statement: _Statement) -> None:
        """The extended protocol's implicit transaction, begun before the first statement
        that writes in a run of several up to a Sync: PostgreSQL runs such a run as one
        transaction (a JDBC batch, a psycopg pipeline), all or nothing. A run of one
        statement, the usual case, needs none: it is its own transaction."""
        state = self._state
        assert state.principal is not None
        try:
            parsed = self._service.plans.parse(statement.sql, dialect=state.dialect)
        except Exception:  # noqa: BLE001 - running it reports what is wrong
            return
        if parsed.statement_class == "read":
            return  # a read changes nothing to undo; a write after it begins one
        try:
            opened = await self._service.transactions.begin(state.principal, state.tenant)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes its SQLSTATE
            sqlstate, _ = sqlstate_for(exc)
            self._error(sqlstate, getattr(exc, "message", str(exc)))
        state.tx, state.implicit = opened.id, True

    async def _commit_implicit(self) -> None:
        """At Sync: the implicit transaction commits (an error is reported before
        ReadyForQuery, which is 'I' either way)."""
        state = self._state
        tx, state.tx, state.implicit = state.tx, None, False
        assert tx is not None and state.principal is not None
        try:
            await self._service.transactions.commit(state.principal, tx)
        except Exception as exc:  # noqa: BLE001 - every error becomes an ErrorResponse
            sqlstate, _ = sqlstate_for(exc)
            self._out += pq.error_response(sqlstate, getattr(exc, "message", str(exc)))

    async def _end_transaction(self) -> None:
        state = self._state
        state.implicit = False
        tx, state.tx = state.tx, None
        if tx is None or state.principal is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                await self._service.transactions.rollback(state.principal, tx)
        except ProxyError:
            pass  # ended already (a timeout, a failed statement): nothing left to undo

    async def _command(self, command: cmd.Command) -> _Outcome:
        state = self._state
        assert state.principal is not None
        if isinstance(command, cmd.Refused):
            self._error(command.sqlstate, command.message)
        if isinstance(command, cmd.Begin):
            if state.implicit:
                # As PostgreSQL does: the run's implicit transaction becomes a block.
                if command.isolation is not None:
                    self._error(
                        "25001", "BEGIN ISOLATION LEVEL must come before the block's statements"
                    )
                state.implicit = False
                return _Outcome(None, [], "BEGIN")
            if state.tx is not None or state.failed:
                self._out += pq.notice_response(
                    "25001", "there is already a transaction in progress", severity="WARNING"
                )
                return _Outcome(None, [], "BEGIN")
            try:
                opened = await self._service.transactions.begin(
                    state.principal, state.tenant, isolation=command.isolation
                )
            except Exception as exc:  # noqa: BLE001 - every refusal becomes its SQLSTATE
                sqlstate, _ = sqlstate_for(exc)
                self._error(sqlstate, getattr(exc, "message", str(exc)))
            state.tx = opened.id
            return _Outcome(None, [], "BEGIN")
        if isinstance(command, cmd.End):
            return await self._end(command)
        if isinstance(command, cmd.Set):
            return self._set(command)
        if isinstance(command, cmd.Savepoint):
            if (state.tx is None or state.implicit) and not state.failed:
                self._error("25P01", "SAVEPOINT can only be used in transaction blocks")
            return _Outcome(None, [], "RELEASE" if command.release else "SAVEPOINT")
        if isinstance(command, cmd.Fixed):
            return _Outcome([ResultColumn(command.column, "string")], [[command.value]], "SELECT 1")
        if isinstance(command, cmd.Show):
            value = _shown(state.parameters, command.name)
            if value is None:
                self._error("42704", f"unrecognized configuration parameter {command.name[:63]!r}")
            return _Outcome([ResultColumn(command.name, "string")], [[value]], "SHOW")
        assert isinstance(command, cmd.Version)
        return _Outcome([ResultColumn(command.column, "string")], [[_VERSION_TEXT]], "SELECT 1")

    async def _end(self, command: cmd.End) -> _Outcome:
        state = self._state
        assert state.principal is not None
        if state.failed:
            state.failed = False
            await self._end_transaction()
            return _Outcome(None, [], "ROLLBACK")
        if state.tx is None:
            self._out += pq.notice_response(
                "25P01", "there is no transaction in progress", severity="WARNING"
            )
            return _Outcome(None, [], command.tag)
        if not command.commit:
            await self._end_transaction()
            return _Outcome(None, [], "ROLLBACK")
        tx, state.tx, state.implicit = state.tx, None, False
        try:
            await self._service.transactions.commit(state.principal, tx)
        except (TransactionAborted, TransactionNotFound) as ended:  # see _catalog
            sqlstate, _ = sqlstate_for(ended)
            self._error(sqlstate, ended.message)
        except Exception as exc:  # noqa: BLE001 - every error becomes an ErrorResponse
            sqlstate, _ = sqlstate_for(exc)
            self._error(sqlstate, getattr(exc, "message", str(exc)))
        return _Outcome(None, [], "COMMIT")

    def _set(self, command: cmd.Set) -> _Outcome:
        parameters = self._state.parameters
        if command.name == "all":
            parameters.update(self._state_reset())
            return _Outcome(None, [], "RESET" if command.value is None else "DISCARD ALL")
        name = _ALIASES.get(command.name, command.name)
        check = _SETTABLE.get(name)
        if check is None:
            self._error("0A000", f"tenantgate does not let a session set {command.name[:63]!r}")
        value = self._state_reset().get(name, "") if command.value is None else command.value
        refusal = check(value)
        if refusal is not None:
            self._error("22023", refusal)
        parameters[name] = value
        if name in _REPORTED:
            self._out += pq.parameter_status(name, value)
        if command.echo:
            return _Outcome([ResultColumn("set_config", "string")], [[value]], "SELECT 1")
        return _Outcome(None, [], "SET" if command.value is not None else "RESET")

    def _state_reset(self) -> dict[str, str]:
        start = _start_parameters({}, self._state.parameters.get("session_authorization", ""))
        start["application_name"] = ""
        return start

    # -- writing results --------------------------------------------------------------------

    def _shape(self, columns: Sequence[ResultColumn], formats: Sequence[int]) -> _Shape:
        """The RowDescription and row encoder of a result shape, made once per shape."""
        key = (tuple(columns), tuple(formats))
        shape = self._shapes.get(key)
        if shape is None:
            try:
                encode = row_encoder([OIDS.get(c.type, _TEXT) for c in columns], formats)
            except ValueError:
                self._error("08P01", "the result formats do not match the result's columns")
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            shape = self._shapes[key] = _Shape(_row_description(columns, formats), encode)
        return shape

    def _portal_shape(self, portal: _Portal, columns: Sequence[ResultColumn]) -> _Shape:
        shape = portal.shape
        if shape is None:
            shape = portal.shape = self._shape(columns, portal.result_formats)
        return shape

    def _write_rows(
        self,
        outcome: _Outcome,
        formats: Sequence[int],
        max_rows: int,
        portal: _Portal | None = None,
    ) -> bool:
        """Rows of ``outcome`` (from where ``portal`` left off); True when all were sent."""
        if outcome.columns is None:
            return True
        start = portal.sent if portal is not None else 0
        end = len(outcome.rows) if max_rows <= 0 else min(len(outcome.rows), start + max_rows)
        if portal is not None:
            encode = self._portal_shape(portal, outcome.columns).encode
        else:
            encode = self._shape(outcome.columns, formats).encode
        try:
            self._out += pq.data_rows([encode(row) for row in outcome.rows[start:end]])
        except (TypeError, ValueError) as exc:
            self._error("22P03", f"a value cannot be sent in the format asked for: {exc}")
        if portal is not None:
            portal.sent = end
        return end >= len(outcome.rows)


def _catalog_source(
    service: Service, location: TenantLocation
) -> tuple[dict[str, TableMetadata], dict[str, tuple[str, ...]]]:
    """The tenant's tables and their primary keys (blocking: in a worker thread)."""
    tables = {}
    for name in service.metadata.list_tables(location):
        meta = service.metadata.get(location, name)
        if meta is not None:
            tables[meta.name] = meta
    source = service.drivers.for_location(location).blocking_source(
        location, timeout_s=service.settings.metadata.timeout_ms / 1000
    )
    try:
        with source() as conn:
            keys = {name: read_primary_key(conn, location, name) for name in tables}
    except service.drivers.db_errors:
        raise chained(
            MetadataUnavailable(
                f"the tenant's primary keys could not be read on {location.server_key}",
                server=location.server_key,
            ),
            None,
        )
    return tables, keys


def _row_description(columns: Sequence[ResultColumn], formats: Sequence[int]) -> bytes:
    fields = []
    for i, column in enumerate(columns):
        oid = OIDS.get(column.type, _TEXT)
        fmt = formats[0] if len(formats) == 1 else (formats[i] if i < len(formats) else 0)
        fields.append(pq.Field(column.name, oid, type_size(oid), format=fmt))
    return pq.row_description(fields)


def _param_oids(statement: _Statement, inferred: Sequence[str]) -> list[int]:
    """Per ``$n``: the type the client gave, else the first inferred one, else text."""
    count = max(statement.order, default=-1) + 1
    given = statement.param_oids
    oids = [given[i] if i < len(given) and given[i] else 0 for i in range(count)]
    for position, n in enumerate(statement.order):
        if not oids[n] and position < len(inferred) and inferred[position] != "unknown":
            oids[n] = OIDS[inferred[position]]
    return [oid or _TEXT for oid in oids]


def _tag(sql: str, statement_class: str, result: ResultSet) -> str:
    if statement_class == "read":
        return f"SELECT {result.row_count}"
    verb = _verb(sql)
    count = max(result.row_count, 0)
    return f"INSERT 0 {count}" if verb == "INSERT" else f"{verb} {count}"


def _verb(sql: str) -> str:
    words = sql.lstrip().split(None, 1)
    first = words[0].upper() if words else ""
    if first == "WITH":
        upper = sql.upper()
        found = [(upper.rfind(v), v) for v in ("INSERT", "UPDATE", "DELETE")]
        return max(found)[1] if max(found)[0] >= 0 else "SELECT"
    return first if first in ("INSERT", "UPDATE", "DELETE", "MERGE") else "UPDATE"


# -- session parameters -----------------------------------------------------------------------

_VERSION_TEXT = f"PostgreSQL {cmd.SERVER_VERSION} (tenantgate)"
_REPORTED = (
    "server_version", "server_encoding", "client_encoding", "application_name",
    "DateStyle", "IntervalStyle", "TimeZone", "integer_datetimes",
    "standard_conforming_strings", "is_superuser", "session_authorization",
)  # fmt: skip
_ALIASES = {"datestyle": "DateStyle", "intervalstyle": "IntervalStyle", "timezone": "TimeZone"}


def _start_parameters(params: dict[str, str], user: str) -> dict[str, str]:
    return {
        "server_version": cmd.SERVER_VERSION,
        "server_encoding": "UTF8",
        "client_encoding": "UTF8",
        "application_name": params.get("application_name", ""),
        "DateStyle": "ISO, MDY",
        "IntervalStyle": "postgres",
        "TimeZone": "UTC",
        "integer_datetimes": "on",
        "standard_conforming_strings": "on",
        "is_superuser": "off",
        "session_authorization": user,
        "statement_timeout": "0",
        "extra_float_digits": "1",
        "search_path": '"$user", public',
        "client_min_messages": "notice",
        "default_transaction_isolation": "read committed",
        "transaction_isolation": "read committed",
        "max_identifier_length": "63",
        "lc_messages": "C",
    }


def _one_of(*allowed: str) -> Callable[[str], str | None]:
    normal = {a.replace(" ", "").lower() for a in allowed}

    def check(value: str) -> str | None:
        if value.replace(" ", "").replace("-", "").lower() in normal:
            return None
        return f"only {', '.join(allowed)} is supported"

    return check


def _anything(value: str) -> str | None:
    return None


def _milliseconds(value: str) -> str | None:
    return None if value.isdigit() else "statement_timeout takes a number of milliseconds"


_SETTABLE: dict[str, Callable[[str], str | None]] = {
    "application_name": _anything,
    "client_encoding": _one_of("UTF8", "UTF-8", "UNICODE"),
    "DateStyle": _one_of("ISO", "ISO, MDY", "ISO, DMY", "ISO, YMD"),
    "IntervalStyle": _one_of("postgres"),
    # Any zone: tenantgate announces and sends timestamps without a time zone, which
    # the session's zone does not change (Django sets its TIME_ZONE on connect).
    "TimeZone": _anything,
    "standard_conforming_strings": _one_of("on"),
    "extra_float_digits": _anything,
    "statement_timeout": _milliseconds,
    "search_path": _anything,
    "client_min_messages": _anything,
    "default_transaction_isolation": _one_of("read committed"),
    "lc_messages": _anything,
}
"""What a session may SET: what drivers send on connect, and only values that change
nothing tenantgate depends on (UTF-8 text, ISO dates)."""


def _shown(parameters: dict[str, str], name: str) -> str | None:
    if name in parameters:
        return parameters[name]
    alias = _ALIASES.get(name)
    if alias is not None:
        return parameters[alias]
    for key, value in parameters.items():
        if key.lower() == name:
            return value
    return None
