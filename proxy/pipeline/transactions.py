"""Several statements in one transaction: atomic batches and interactive transactions.

A **batch** (``Transactions.batch``) prepares every statement first, through the same
``Service.prepare`` as ``/v1/query``, so that a refusal (with the statement's
``index``) comes before anything runs; then it runs them in order on one connection in
one transaction, and the first failure rolls all of it back. The batch's deadline
covers every statement: each gets what is left of it. A statement that met stale
metadata (``BackendObjectMissing``) makes the whole batch run once more on fresh
metadata: it was rolled back entirely, so even its writes may be repeated.

An **interactive transaction** pins a connection across requests. Its connection and
transaction are async context managers of the driver, so one task must enter and
leave them: each open transaction has a *holder* task (in ``running``'s task group)
that owns the session and serves the transaction's requests from its inbox, one at a
time. A request hands over its prepared statements and waits for the answer; the
holder's wait for the next request is the idle timeout, and the transaction's age
bounds that wait too (``max_lifetime_ms``). When the database fails a statement the
holder leaves the transaction (the driver rolls it back, the connection goes back to
its pool) before the request gets its error: a failed transaction never holds a
connection. Its id is then kept for ``ended_kept_s`` with the reason, so that later
requests learn what happened (409 ``transaction_aborted``) rather than a bare 404.

Ids are bound to the token that opened them; another token's requests get 404, as if
the id did not exist. Ids start with this process's tag (``tag``), which is how a
worker that receives a request for another worker's transaction knows where to send it
(``proxy.frontends.http.forward``; docs/decisions.md, "Transactions across worker
processes").
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from cachetools import TTLCache

from proxy.drivers.base import ResultSet, Session
from proxy.errors import (
    BackendObjectMissing,
    NotReady,
    StatementTimeout,
    TooManyTransactions,
    TransactionAborted,
    TransactionBusy,
    TransactionNotFound,
)
from proxy.pipeline.request import PREPARATION_SLACK_S, QueryRequest

if TYPE_CHECKING:
    from proxy.auth import Principal
    from proxy.pipeline.service import Prepared, QueryOutcome, Service
    from tenancy.resolver import Tenant

__all__ = ["BatchRequest", "Opened", "Transactions"]

_CONTROL_WAIT_S = 30.0
"""How long a commit or rollback request waits for its holder (the drivers bound
BEGIN, COMMIT and ROLLBACK well within this)."""
_ANSWER_SLACK_S = 2.0
"""How much longer than its deadline a request waits for its statements' answer; the
drivers' own timeouts and backstops normally end the wait first."""
_SHUTDOWN_WAIT_S = 10.0
"""How long a stopping process waits for its holders to roll back."""
_ENDED_KEPT_MAX = 100_000
_NOT_FOUND = "no open transaction has this id for this token"


@dataclass(frozen=True, slots=True)
class BatchRequest:
    tenant: str | int
    statements: tuple[QueryRequest, ...]
    """Each statement with the batch's tenant and dialect; their ``timeout_ms`` is the
    batch's, which bounds them together."""
    isolation: str | None = None
    timeout_ms: int = 5000


@dataclass(frozen=True, slots=True)
class Opened:
    id: str
    tenant: Tenant
    idle_timeout_ms: int
    max_lifetime_ms: int


class _Rollback(Exception):
    """Leave the transaction through the driver's rollback."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Failed(Exception):
    """The database failed a statement: the transaction is rolled back."""


@dataclass(slots=True)
class _Work:
    kind: Literal["run", "commit", "rollback", "abort"]
    prepared: Sequence[Prepared] = ()
    max_rows: Sequence[int] = ()
    deadline: float = 0.0
    timeout_ms: int = 0
    reason: str = ""
    done: anyio.Event = field(default_factory=anyio.Event)
    results: list[ResultSet] = field(default_factory=list)
    error: BaseException | None = None


@dataclass(slots=True)
class _Open:
    id: str
    owner: str
    tenant: Tenant
    ref: str | int
    isolation: str | None
    began: float
    inbox: MemoryObjectSendStream[_Work]
    outbox: MemoryObjectReceiveStream[_Work]
    last: float = 0.0
    busy: bool = False
    ending: _Work | None = None


@dataclass(frozen=True, slots=True)
class _Ended:
    owner: str
    reason: str
    cause: str | None


class Transactions:
    """This process's batches and open interactive transactions (one per ``Service``)."""

    def __init__(self, service: Service) -> None:
        self._service = service
        t = service.settings.transactions
        workers = service.settings.server.workers
        self._settings = t
        # Each worker holds its share, as pools do (``proxy.compose.pool_options``).
        pool = service.settings.pool
        self._max_per_token = max(1, t.max_per_token // workers)
        self._max_per_server = max(1, min(t.max_per_server, pool.max_per_server) // workers)
        # One connection of each database's pool always stays unpinned: a transaction's
        # own statements may need the tenant's catalog read first (on a connection of
        # that pool), and the tenant's other requests must not wait for it to end.
        self._max_per_pool = max(1, pool.max_size // workers - 1)
        self.tag = f"{os.getpid():x}"
        """Starts every id this process gives out: where its transactions live."""
        self._open: dict[str, _Open] = {}
        self._ended: TTLCache[str, _Ended] = TTLCache(_ENDED_KEPT_MAX, t.ended_kept_s)
        self._per_token: Counter[str] = Counter()
        self._per_server: Counter[str] = Counter()
        self._per_pool: Counter[str] = Counter()
        self._tasks: TaskGroup | None = None

    # -- lifetime ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Holders may run inside this; leaving it rolls back whatever is still open."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                yield
            finally:
                self._tasks = None
                with anyio.CancelScope(shield=True), anyio.move_on_after(_SHUTDOWN_WAIT_S):
                    await self._roll_back_all()
                tasks.cancel_scope.cancel()

    async def _roll_back_all(self) -> None:
        pending = list(self._open.values())
        for tx in pending:
            tx.inbox.send_nowait(_Work("abort", reason="shutdown"))
        while self._open:
            await anyio.sleep(0.01)

    def open_count(self) -> int:
        return len(self._open)

    # -- atomic batches ------------------------------------------------------------------

    async def batch(self, principal: Principal, req: BatchRequest) -> list[ResultSet]:
        deadline = time.monotonic() + req.timeout_ms / 1000
        service = self._service
        prepared = await self._prepare_all(principal, req.statements)
        try:
            return await self._run_batch(prepared, req, deadline)
        except BackendObjectMissing as error:
            # Rolled back entirely: the whole batch may run again on fresh metadata.
            stale, stale_error = prepared, error
        service.metadata.refresh(stale[0].tenant.location)
        try:
            prepared = await self._prepare_all(principal, req.statements)
        except Exception:
            service.heal.record("rerun_refused")
            raise
        if [p.sql for p in prepared] == [p.sql for p in stale]:
            service.heal.record("rerun_failed")
            raise stale_error
        try:
            results = await self._run_batch(prepared, req, deadline)
        except BackendObjectMissing:
            service.heal.record("rerun_failed")
            raise
        service.heal.record("rerun_ok")
        return results

    async def _prepare_all(
        self, principal: Principal, statements: Sequence[QueryRequest]
    ) -> list[Prepared]:
        prepared = []
        for index, statement in enumerate(statements):
            try:
                prepared.append(await self._service.prepare(principal, statement))
            except Exception as exc:
                _at(index, exc)
                raise
        return prepared

    async def _run_batch(
        self, prepared: list[Prepared], req: BatchRequest, deadline: float
    ) -> list[ResultSet]:
        service = self._service
        location = prepared[0].tenant.location
        driver = service.drivers.for_location(location)
        max_rows = [s.max_rows for s in req.statements]
        try:
            async with (
                driver.connection(location) as session,
                session.transaction(isolation=req.isolation),
            ):
                results = await self._run(session, prepared, max_rows, deadline, req.timeout_ms)
        except Exception as exc:
            service.observe_server(location, exc)
            service.metrics.record_batch(location.kind, "rolled_back")
            raise
        service.observe_server(location)
        service.metrics.record_batch(location.kind, "committed")
        return results

    async def _run(
        self,
        session: Session,
        prepared: Sequence[Prepared],
        max_rows: Sequence[int],
        deadline: float,
        timeout_ms: int,
    ) -> list[ResultSet]:
        """Each statement in what is left of ``deadline``; an error says which one failed."""
        metrics = self._service.metrics
        whole = timeout_ms / 1000
        results = []
        for index, p in enumerate(prepared):
            left = deadline - time.monotonic()
            if left <= 0:
                raise _at(
                    index,
                    StatementTimeout(
                        f"the timeout of {timeout_ms} ms passed before the statement could run",
                        timeout_ms=timeout_ms,
                    ),
                )
            started = time.perf_counter()
            try:
                result = await session.execute(
                    p.sql,
                    p.params,
                    # As ``Service._run`` does: a timeout that changed with every
                    # statement would cost PostgreSQL a SET LOCAL round trip each.
                    timeout_s=whole if whole - left < PREPARATION_SLACK_S else left,
                    max_rows=max_rows[index],
                    count_all_rows=p.plan.statement_class == "write",
                )
            except Exception as exc:
                _at(index, exc)
                raise
            p.phases["execute"] = time.perf_counter() - started
            kind = p.tenant.location.kind
            metrics.observe_query(
                kind,
                p.plan.statement_class,
                p.phases,
                rows=len(result.rows),
                truncated=result.truncated,
            )
            results.append(result)
        return results

    # -- interactive transactions ----------------------------------------------------------

    async def begin(
        self, principal: Principal, ref: str | int, *, isolation: str | None = None
    ) -> Opened:
        if self._tasks is None:
            raise NotReady("this process is stopping: no transaction can begin")
        service = self._service
        tenant = await service.resolve(principal, ref)
        server = tenant.location.server_key
        if self._per_token[principal.name] >= self._max_per_token:
            raise TooManyTransactions(
                f"token {principal.name!r} has {self._max_per_token} transactions open "
                "already; commit or roll one back",
                retry_after=1.0,
                limit="token",
            )
        if self._per_server[server] >= self._max_per_server:
            raise TooManyTransactions(
                f"the tenant's server has {self._max_per_server} transactions open already",
                retry_after=1.0,
                limit="server",
            )
        pool = tenant.location.pool_key
        if self._per_pool[pool] >= self._max_per_pool:
            raise TooManyTransactions(
                f"the tenant's database has {self._max_per_pool} transactions open already "
                "(one connection of its pool stays free for other requests)",
                retry_after=1.0,
                limit="database",
            )
        inbox, outbox = anyio.create_memory_object_stream[_Work](math.inf)
        now = time.monotonic()
        tx = _Open(
            id=f"{self.tag}.{secrets.token_urlsafe(18)}",
            owner=principal.name,
            tenant=tenant,
            ref=ref,
            isolation=isolation,
            began=now,
            inbox=inbox,
            outbox=outbox,
            last=now,
        )
        # Counted before the connection is asked for: concurrent begins see the cap.
        self._per_token[tx.owner] += 1
        self._per_server[server] += 1
        self._per_pool[pool] += 1
        self._open[tx.id] = tx
        try:
            await self._tasks.start(self._hold, tx)
        except BaseException:
            self._forget(tx)
            raise
        t = self._settings
        return Opened(tx.id, tenant, t.idle_timeout_ms, t.max_lifetime_ms)

    def tenant_of(self, principal: Principal, tx_id: str) -> str | int:
        """The tenant as the caller named it when ``tx_id`` began (its statements'
        ``QueryRequest.tenant``)."""
        return self._find(principal.name, tx_id).ref

    async def query(self, principal: Principal, tx_id: str, req: QueryRequest) -> QueryOutcome:
        from proxy.pipeline.service import QueryOutcome  # noqa: PLC0415 - service imports us

        tx = self._find(principal.name, tx_id)
        deadline = time.monotonic() + req.timeout_ms / 1000
        prepared = await self._prepare_in(principal, tx, [req])
        work = _Work("run", prepared, [req.max_rows], deadline=deadline, timeout_ms=req.timeout_ms)
        await self._ask(tx, work, deadline - time.monotonic() + _ANSWER_SLACK_S)
        p = prepared[0]
        return QueryOutcome(work.results[0], p.tenant.location.kind, p.plan.statement_class, {})

    async def batch_in(
        self, principal: Principal, tx_id: str, statements: Sequence[QueryRequest], timeout_ms: int
    ) -> list[ResultSet]:
        tx = self._find(principal.name, tx_id)
        deadline = time.monotonic() + timeout_ms / 1000
        prepared = await self._prepare_in(principal, tx, statements)
        work = _Work(
            "run",
            prepared,
            [s.max_rows for s in statements],
            deadline=deadline,
            timeout_ms=timeout_ms,
        )
        await self._ask(tx, work, deadline - time.monotonic() + _ANSWER_SLACK_S)
        return work.results

    async def commit(self, principal: Principal, tx_id: str) -> None:
        tx = self._find(principal.name, tx_id)
        await self._ask(tx, _Work("commit"), _CONTROL_WAIT_S)

    async def rollback(self, principal: Principal, tx_id: str) -> None:
        tx = self._open.get(tx_id)
        if tx is None or tx.owner != principal.name:
            ended = self._ended.get(tx_id)
            if ended is not None and ended.owner == principal.name:
                # Rolled back already: what the caller asks for is done.
                del self._ended[tx_id]
                return
            raise TransactionNotFound(_NOT_FOUND)
        await self._ask(tx, _Work("rollback"), _CONTROL_WAIT_S)

    # -- requests and their holder ---------------------------------------------------------

    def _find(self, owner: str, tx_id: str) -> _Open:
        tx = self._open.get(tx_id)
        if tx is not None and tx.owner == owner:
            return tx
        ended = self._ended.get(tx_id)
        if ended is not None and ended.owner == owner:
            raise TransactionAborted(
                f"transaction {tx_id!r} was rolled back ({ended.reason.replace('_', ' ')}); "
                "roll it back to acknowledge, and begin a new one",
                reason=ended.reason,
                cause=ended.cause,
            )
        raise TransactionNotFound(_NOT_FOUND)

    async def _prepare_in(
        self, principal: Principal, tx: _Open, statements: Sequence[QueryRequest]
    ) -> list[Prepared]:
        # Validation refuses before anything reaches the database: the transaction
        # stays as it was.
        prepared = await self._prepare_all(principal, statements)
        if prepared[0].tenant.location != tx.tenant.location:
            # The controller moved the tenant since the transaction began: its
            # statements would now name another database than the pinned connection's.
            await self._ask(tx, _Work("abort", reason="tenant_moved"), _CONTROL_WAIT_S)
        return prepared

    async def _ask(self, tx: _Open, work: _Work, wait_s: float) -> None:
        """Hand ``work`` to ``tx``'s holder and wait for its answer."""
        if tx.busy:
            raise TransactionBusy(f"transaction {tx.id!r} is running another request")
        try:
            tx.inbox.send_nowait(work)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # It ended between the lookup and now (a timeout): say why.
            self._find(tx.owner, tx.id)
            raise
        tx.busy = True
        tx.last = time.monotonic()
        with anyio.move_on_after(wait_s):
            await work.done.wait()
        if not work.done.is_set():
            # The holder is still at it (it stays busy until it answers); the request
            # ends within its deadline regardless.
            raise StatementTimeout(
                f"transaction {tx.id!r} did not answer within {wait_s:.0f} s",
                timeout_ms=round(wait_s * 1000),
            )
        if work.error is not None:
            raise work.error

    async def _hold(self, tx: _Open, *, task_status: TaskStatus[None]) -> None:
        """Own ``tx``'s connection and transaction, and serve its requests until it ends."""
        service = self._service
        location = tx.tenant.location
        driver = service.drivers.for_location(location)
        started = False
        outcome: BaseException | None = None
        try:
            async with (
                driver.connection(location) as session,
                session.transaction(isolation=tx.isolation),
            ):
                started = True
                # Counted here, so that every transaction that ends has begun.
                service.metrics.record_transaction("begun")
                task_status.started()
                await self._serve(tx, session)
        except BaseException as exc:
            if not started:
                raise  # to ``begin``: the connection or BEGIN failed
            outcome = exc
        finally:
            self._forget(tx)
            tx.inbox.close()
        self._finish(tx, outcome)
        if isinstance(outcome, anyio.get_cancelled_exc_class()):
            raise outcome

    async def _serve(self, tx: _Open, session: Session) -> None:
        """Run ``tx``'s requests; return to commit, raise to roll back."""
        t = self._settings
        idle_s, lifetime_s = t.idle_timeout_ms / 1000, t.max_lifetime_ms / 1000
        while True:
            now = time.monotonic()
            expires = min(tx.last + idle_s, tx.began + lifetime_s)
            work = None
            with anyio.move_on_after(expires - now):
                work = await tx.outbox.receive()
            if work is None:
                aged = time.monotonic() >= tx.began + lifetime_s
                raise _Rollback("max_lifetime" if aged else "idle_timeout")
            tx.ending = work
            if work.kind == "commit":
                return
            if work.kind == "rollback":
                raise _Rollback("rolled_back")
            if work.kind == "abort":
                raise _Rollback(work.reason)
            try:
                work.results = await self._run(
                    session, work.prepared, work.max_rows, work.deadline, work.timeout_ms
                )
            except Exception as exc:
                work.error = exc
                if isinstance(exc, BackendObjectMissing):
                    # Stale metadata: the caller's next transaction must not meet it.
                    self._service.metadata.refresh(tx.tenant.location)
                raise _Failed from exc
            tx.ending = None
            tx.last = time.monotonic()
            tx.busy = False
            self._service.observe_server(tx.tenant.location)
            work.done.set()

    def _finish(self, tx: _Open, outcome: BaseException | None) -> None:
        """Answer the request that ended ``tx`` and remember why it ended."""
        service = self._service
        work = tx.ending
        if outcome is None:
            reason = "committed"
        elif isinstance(outcome, _Rollback):
            reason = outcome.reason
        elif isinstance(outcome, _Failed):
            reason = "statement_failed"
        elif isinstance(outcome, Exception):
            # Leaving the transaction failed: a COMMIT the server refused (a
            # serialization failure...), or the connection was lost.
            reason = "commit_failed" if work is not None and work.kind == "commit" else "failed"
            if work is not None:
                work.error = outcome
        else:
            reason = "shutdown"
        if isinstance(outcome, Exception):
            service.observe_server(tx.tenant.location, outcome)
        service.metrics.record_transaction(reason)
        if reason not in ("committed", "rolled_back"):
            cause = getattr(work.error, "code", None) if work is not None else None
            self._ended[tx.id] = _Ended(tx.owner, reason, cause)
        if work is not None:
            if work.error is None and work.kind in ("run", "abort"):
                work.error = TransactionAborted(
                    f"transaction {tx.id!r} was rolled back ({reason.replace('_', ' ')})",
                    reason=reason,
                )
            work.done.set()
        # Whatever else was sent after the end: a request racing the timeout.
        while True:
            try:
                late = tx.outbox.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            late.error = TransactionAborted(
                f"transaction {tx.id!r} was rolled back ({reason.replace('_', ' ')})",
                reason=reason,
            )
            late.done.set()
        tx.busy = False

    def _forget(self, tx: _Open) -> None:
        if self._open.pop(tx.id, None) is None:
            return
        location = tx.tenant.location
        for counts, key in (
            (self._per_token, tx.owner),
            (self._per_server, location.server_key),
            (self._per_pool, location.pool_key),
        ):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]


def _at(index: int, exc: Exception) -> Exception:
    """``exc`` naming the statement of a batch that raised it (``"index"`` in its body)."""
    details = getattr(exc, "details", None)
    if isinstance(details, dict):
        details["index"] = index
    return exc
