"""A connection's statements, sent through libpq's extended protocol on the event loop.

psycopg's ``AsyncCursor.execute`` + ``fetchmany`` cost ~75 µs of client CPU per point
select on the test box; the same round trip driven here through psycopg's own libpq
wrapper (``psycopg.pq``) and its ``Transformer`` costs ~45 µs (``docs/decisions.md``,
"PostgreSQL statements below psycopg's cursor"). What this leaves out is what the driver
never used: server-side cursors, pipelines, COPY, row factories, psycopg's ``%s``
query conversion (the rewriter's ``?`` markers become ``$n`` here, once per text).
Values are still dumped and loaded by psycopg's adapters (``types.ADAPTERS``), and
errors are psycopg's exceptions, made from the server's result.

Waiting: our reader stays registered on the socket between statements, and a wait
starts only after the statement is sent (its answer cannot be there before). psycopg's
own waits (the session's commands) and closing the socket take it off first
(``stop_listening``). Adding and removing it for each wait, as psycopg does, cost 20-30
µs a request at 16 concurrent (``docs/decisions.md``). One catch, met under
``pg_terminate_backend`` in tests/faults: uvloop (libuv) stops watching a socket in
error (a reset after the server closed it) without calling its reader, and a
statement on such a connection would wait for an answer that had come, until its
backstop. So the backstop's timer, which ticks every 50 ms while statements are in
flight, also looks at their sockets (``nudge``): a wait whose socket has something to
read is woken, and its reader added afresh next time.

Labels: while a request is served (``proxy.context``), its statement is sent after
``set_config('application_name', 'tenantgate <request id>', false)`` in one libpq
pipeline, so that ``pg_stat_activity`` shows which request a running statement
belongs to, without a round trip of its own. The label's statement is prepared once
per connection. Cost, point select at concurrency 1 (``benchmarks/in_process.py
--tenant 12 --labels``): about 14 µs of client CPU and 16 µs of latency a request
(``docs/decisions.md``); ``logging.request_id_to_database = false`` turns it off.

Prepared statements are kept here rather than by psycopg, so that a prepared
statement's result columns live with it (``Prepared.columns``): a statement's result
shape cannot change while it stays prepared (the server fails it with 0A000 instead,
see ``session``). The policy starts as psycopg's ``prepare_threshold=1``: a statement
seen once on a connection runs unnamed, in one round trip; the second time it is
prepared; at most ``PREPARED_MAX`` stay prepared per connection, and at most
``PREPARED_CHARS`` of their text. When they are full, a statement takes the place of
the least recently used one only if it was seen more often than that one was used
(TinyLFU's admission; both counts halved every ``AGE_EVERY`` statements, so that a
new working set takes over). Evicting on every second sight, as psycopg does, churns
when a connection's working set is a little larger than the room: ``pgbench -M
simple``'s 200 texts over 100 statements deallocated and prepared one statement every
fourth run, for no more hits (``benchmarks/prepared_admission.py``, uniform and Zipf
workloads: the same or a better hit rate with 3-9x fewer evictions; docs/decisions.md,
"Which statements stay prepared"). ``PreparedSet`` holds the policy, apart from the
I/O. The window of statements seen but not prepared has the same bounds; a text
longer than ``PREPARED_CHARS`` is never kept (it would take the whole budget), and
runs unnamed every time. Measured (the package docstring): the 818-column row costs
7-10 ms unprepared and 0.5-0.7 ms prepared. Not preparing on first sight: with
thousands of tenants each tenant's statement is a different text (its schema or
database is in it), and a connection cycling over them prepared every one and
deallocated the one it evicted, two extra round trips per request: p50 2.9x at 3,000
tenants against 10 (``benchmarks/many_tenants.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.abc import Buffer
from psycopg.adapt import PyFormat, Transformer
from psycopg.errors import error_from_result
from psycopg.pq import ExecStatus, Format
from psycopg.pq.abc import PGconn, PGresult

from proxy.drivers.base import ResultColumn
from proxy.drivers.postgres.placeholders import to_numbered

__all__ = ["AGE_EVERY", "PREPARED_CHARS", "PREPARED_MAX", "Prepared", "PreparedSet", "Statements"]

PREPARED_MAX = 100
"""Statements kept prepared per connection (psycopg's ``prepared_max``), and the size
of the window of statements seen once."""
PREPARED_CHARS = 256 * 1024
"""The text those statements may hold, per connection, for each of the two: by count
alone, 100 statements near ``query.max_sql_chars`` would hold 20 MB a connection. An
818-column statement is about 20 KB."""

AGE_EVERY = 10 * PREPARED_MAX
"""Statements run on a connection between two halvings of its use and sight counts."""

_FATAL = ExecStatus.FATAL_ERROR
_SYNC = ExecStatus.PIPELINE_SYNC
_COMMAND_OK = ExecStatus.COMMAND_OK
_ABORTED = ExecStatus.PIPELINE_ABORTED
_LABEL_SQL = b"SELECT pg_catalog.set_config('application_name', $1, false)"
_LABEL_TYPES = (25,)  # text
_LABEL_NAME = b"tglabel"
_TEXT = Format.TEXT
_AUTO: dict[int, list[PyFormat]] = {}

Key = tuple[str, tuple[int, ...]]


class Prepared:
    """A statement prepared on one connection, and its result columns once known."""

    __slots__ = ("columns", "name", "uses")

    def __init__(self, name: bytes, uses: int) -> None:
        self.name = name
        self.columns: list[ResultColumn] | None = None
        self.uses = uses
        """Runs, sights before it was prepared included (halved every ``AGE_EVERY``)."""


class PreparedSet:
    """Which statements one connection keeps prepared, and which it has seen: the
    module's policy apart from the I/O (``Statements`` asks ``choose`` before it sends
    and tells ``add`` what the server prepared), so that it can be driven and measured
    on its own (``benchmarks/prepared_admission.py``)."""

    __slots__ = (
        "_admission",
        "_age_every",
        "_count",
        "_evictions",
        "_max",
        "_max_chars",
        "_prepared",
        "_prepared_chars",
        "_seen",
        "_seen_chars",
        "_ticks",
    )

    def __init__(
        self,
        *,
        max_statements: int = PREPARED_MAX,
        max_chars: int = PREPARED_CHARS,
        age_every: int = AGE_EVERY,
        admission: bool = True,
    ) -> None:
        """``admission=False``: psycopg's rule, every second sight evicting the least
        recently used statement when the room is full (the comparison the benchmark and
        the tests make)."""
        if max_statements < 1 or max_chars < 1 or age_every < 1:
            raise ValueError("max_statements, max_chars and age_every must be positive")
        self._admission = admission
        self._max = max_statements
        self._max_chars = max_chars
        self._age_every = age_every
        self._prepared: dict[Key, Prepared] = {}
        """The least recently used first."""
        self._prepared_chars = 0
        self._seen: dict[Key, int] = {}
        """Statements seen but not prepared, the least recently seen first: their sights."""
        self._seen_chars = 0
        self._ticks = 0
        self._count = 0
        self._evictions = 0

    def __len__(self) -> int:
        return len(self._prepared)

    def add(self, key: Key, name: bytes, uses: int) -> Prepared:
        """``key``, prepared by the server under ``name`` (``choose`` gave both)."""
        prepared = self._prepared[key] = Prepared(name, uses)
        self._prepared_chars += len(key[0])
        return prepared

    def items(self) -> list[tuple[Key, Prepared]]:
        """The prepared statements, the least recently used first."""
        return list(self._prepared.items())

    def seen(self) -> list[Key]:
        """The statements seen but not prepared, the least recently seen first."""
        return list(self._seen)

    def get_stats(self) -> dict[str, int]:
        return {
            "prepared": len(self._prepared),
            "prepared_chars": self._prepared_chars,
            "seen": len(self._seen),
            "seen_chars": self._seen_chars,
            "prepares": self._count,
            "evictions": self._evictions,
        }

    def forget(self) -> None:
        """Nothing prepared, nothing seen (the server dropped them all)."""
        self._prepared.clear()
        self._seen.clear()
        self._prepared_chars = self._seen_chars = 0

    def choose(self, key: Key) -> tuple[Prepared | None, bytes | None, list[bytes], int]:
        """How ``key`` runs: as its prepared statement; or prepared now under a new
        name (``add`` it once the server has), after dropping what makes room, with its
        sights; or unnamed (neither)."""
        query = key[0]
        prepare_as: bytes | None = None
        drop: list[bytes] = []
        sights = 0
        self._ticks += 1
        if self._ticks >= self._age_every:
            self._age()
        prepared = self._prepared.pop(key, None)
        if prepared is not None:
            prepared.uses += 1
            self._prepared[key] = prepared  # the most recently used, last
        elif key in self._seen:
            sights = self._seen.pop(key) + 1
            size = len(query)
            if self._admits(sights, size):
                self._seen_chars -= size
                while self._prepared and (
                    len(self._prepared) >= self._max
                    or self._prepared_chars + size > self._max_chars
                ):
                    drop.append(self._forget_oldest())
                    self._evictions += 1
                self._count += 1
                prepare_as = b"tg%d" % self._count
            else:
                self._seen[key] = sights  # the most recently seen, last
        else:
            size = len(query)
            if size <= self._max_chars:
                seen = self._seen
                while seen and (
                    len(seen) >= self._max or self._seen_chars + size > self._max_chars
                ):
                    oldest = next(iter(seen))
                    del seen[oldest]
                    self._seen_chars -= len(oldest[0])
                seen[key] = 1
                self._seen_chars += size
        return prepared, prepare_as, drop, sights

    def _admits(self, sights: int, size: int) -> bool:
        """Whether a statement seen ``sights`` times is prepared now: when there is room,
        or when it was seen more often than the least recently used one was used."""
        prepared = self._prepared
        if len(prepared) < self._max and self._prepared_chars + size <= self._max_chars:
            return True
        # Not empty: a seen text fits the budget alone (longer ones are never seen).
        return not self._admission or sights > next(iter(prepared.values())).uses

    def _age(self) -> None:
        """Every count halved: what was used much long ago gives way to what is now."""
        self._ticks = 0
        for each in self._prepared.values():
            each.uses //= 2
        seen = self._seen
        for key, sights in seen.items():
            seen[key] = sights // 2

    def _forget_oldest(self) -> bytes:
        """The least recently used prepared statement, forgotten: its name, to drop."""
        key = next(iter(self._prepared))
        oldest = self._prepared.pop(key)
        self._prepared_chars -= len(key[0])
        return oldest.name


class Statements:
    """The statements of one connection, which one request at a time uses."""

    __slots__ = (
        "_encoding",
        "_fd",
        "_home",
        "_kept",
        "_label_prepared",
        "_listening",
        "_pgconn",
        "_tx",
        "_waiter",
    )

    def __init__(self, raw: AsyncConnection[Any]) -> None:
        self._pgconn: PGconn = raw.pgconn
        self._fd = self._pgconn.socket
        # Made on the loop that will run its statements; asked once, because every
        # ``asyncio.get_running_loop()`` is a ``getpid`` system call.
        self._home = asyncio.get_running_loop()
        self._listening = False
        """Whether our reader is registered on the socket."""
        self._waiter: asyncio.Future[None] | None = None
        self._tx = Transformer(raw)
        self._encoding = raw.info.encoding
        self._kept = PreparedSet()
        self._label_prepared = False

    def __len__(self) -> int:
        """Statements prepared on the connection now."""
        return len(self._kept)

    @property
    def kept(self) -> PreparedSet:
        """Which statements are prepared, and which were seen (the policy's state)."""
        return self._kept

    def stop_listening(self) -> None:
        """Take our reader off the socket: before psycopg waits on it, and before it closes."""
        if self._listening:
            self._listening = False
            with contextlib.suppress(Exception):  # a loop already closed at shutdown
                self._home.remove_reader(self._fd)

    def forget(self) -> None:
        """The server dropped every prepared statement (``DEALLOCATE ALL``)."""
        self._kept.forget()
        self._label_prepared = False

    async def execute(
        self, sql: str, params: Sequence[object], label: bytes | None = None
    ) -> tuple[PGresult, Prepared | None]:
        """Run ``sql`` (``?`` markers); its result, and its prepared statement if any.

        ``label``: the session's ``application_name`` while the statement runs, set in
        the same round trip (see the module).

        Raises psycopg's exceptions: ``psycopg.Error`` for what the server or libpq
        reported, ``TypeError``/``ValueError`` for a value psycopg cannot dump.
        """
        query, markers = to_numbered(sql)
        if len(params) != markers:
            # The server would take it as a protocol violation and end the session.
            raise psycopg.ProgrammingError(
                f"the statement has {markers} markers but {len(params)} parameters were given"
            )
        tx = self._tx
        if params:
            n = len(params)
            formats = _AUTO.get(n)
            if formats is None:
                formats = _AUTO[n] = [PyFormat.AUTO] * n
            values = tx.dump_sequence(params, formats)
            types: tuple[int, ...] = tx.types or ()
            param_formats = tx.formats
        else:
            values, types, param_formats = None, (), None
        key = (query, types)
        pgconn = self._pgconn
        prepared, prepare_as, drop, sights = self._kept.choose(key)
        if label is not None or prepare_as is not None:
            return await self._pipelined(
                label,
                query=query,
                values=values,
                types=types,
                param_formats=param_formats,
                statement=prepared or prepare_as,
                key=key,
                drop=drop,
                uses=sights,
            )
        if prepared is None:
            pgconn.send_query_params(query.encode(), values, types, param_formats, _TEXT)
            return self._check(await self._results()), None
        pgconn.send_query_prepared(prepared.name, values, param_formats, _TEXT)
        return self._check(await self._results()), prepared

    async def unnamed(
        self, sql: str, params: Sequence[object], label: bytes | None = None
    ) -> PGresult:
        """Run ``sql`` (``?`` markers) unnamed, never prepared: a stream's ``DECLARE``
        and ``FETCH`` (``proxy.drivers.postgres.stream``), whose text is the same for
        results of every shape. Raises as ``execute`` does."""
        query, markers = to_numbered(sql)
        if len(params) != markers:
            raise psycopg.ProgrammingError(
                f"the statement has {markers} markers but {len(params)} parameters were given"
            )
        values: Sequence[Buffer | None] | None = None
        types: tuple[int, ...] = ()
        param_formats: Sequence[Format] | None = None
        if params:
            tx = self._tx
            values = tx.dump_sequence(params, [PyFormat.AUTO] * len(params))
            types = tx.types or ()
            param_formats = tx.formats
        if label is not None:
            result, _ = await self._pipelined(
                label, query=query, values=values, types=types, param_formats=param_formats
            )
            return result
        self._pgconn.send_query_params(query.encode(), values, types, param_formats, _TEXT)
        return self._check(await self._results())

    async def _pipelined(
        self,
        label: bytes | None,
        *,
        query: str,
        values: Sequence[Buffer | None] | None,
        types: tuple[int, ...],
        param_formats: Sequence[Format] | None,
        statement: Prepared | bytes | None = None,
        key: Key | None = None,
        drop: Sequence[bytes] = (),
        uses: int = 1,
    ) -> tuple[PGresult, Prepared | None]:
        """``execute``'s sending with what goes before it, in one pipeline and one sync:
        the label (``label``), the prepared statements ``drop`` makes room for, and the
        statement's own Parse when it is prepared now. One round trip where each of
        these took one of its own: under ``pgbench -M simple`` (200 texts over 100
        prepared per connection) a DEALLOCATE came about every other statement.

        One sync, so that the server answers all at once: a sync after the label made
        it flush that answer on its own, and the client woke twice (12 µs more CPU a
        request). All run in one implicit transaction; a failing statement undoes its
        label, which is as harmless as it is rare (prepared statements are not
        transactional: what was dropped or prepared stays so).

        ``statement``: the prepared statement to run, or the name to prepare it under
        (then ``key`` is its key and ``uses`` its sights), or ``None`` to run ``query``
        unnamed.
        """
        pgconn = self._pgconn
        pgconn.enter_pipeline_mode()
        try:
            preparing_label = label is not None and not self._label_prepared
            if preparing_label:
                # Prepared once per connection: the server plans it once, not per request.
                pgconn.send_prepare(_LABEL_NAME, _LABEL_SQL, _LABEL_TYPES)
            if label is not None:
                pgconn.send_query_prepared(_LABEL_NAME, [label], None, _TEXT)
            for name in drop:
                # A name we made (tg<number>): nothing to quote.
                pgconn.send_query_params(b"DEALLOCATE " + name, None)
            prepared = statement if isinstance(statement, Prepared) else None
            if isinstance(statement, bytes):
                pgconn.send_prepare(statement, query.encode(), types)
                pgconn.send_query_prepared(statement, values, param_formats, _TEXT)
            elif prepared is not None:
                pgconn.send_query_prepared(prepared.name, values, param_formats, _TEXT)
            else:
                pgconn.send_query_params(query.encode(), values, types, param_formats, _TEXT)
            pgconn.pipeline_sync()
            results = await self._results(syncs=1)
        finally:
            # Results left unread (a cancellation): the connection is retired anyway.
            with contextlib.suppress(psycopg.Error):
                pgconn.exit_pipeline_mode()
        # What the server prepared stays prepared whatever came after it (a statement
        # failing at execution must not make us prepare a name twice: 42P05).
        step = iter(results)
        if preparing_label and _prepared_ok(next(step, None)):
            self._label_prepared = True
        if label is not None:
            next(step, None)  # the label's own result
        for _ in drop:
            next(step, None)
        if isinstance(statement, bytes) and _prepared_ok(next(step, None)):
            assert key is not None
            prepared = self._kept.add(key, statement, uses)
        return self._check(results), prepared

    def load(self, result: PGresult, count: int) -> list[list[Any]]:
        """The first ``count`` rows of ``result`` as Python values (``psycopg.DataError``
        for a value Python cannot hold)."""
        tx = self._tx
        tx.set_pgresult(result)
        rows: list[list[Any]] = tx.load_rows(0, count, list)
        return rows

    async def _results(self, syncs: int = 0) -> list[PGresult]:
        """Send what libpq holds, then wait for every result of the statement sent.

        ``syncs``: in pipeline mode, the pipeline's syncs; every result up to the last
        one's, the syncs and the ends of each statement's results left out.
        """
        pgconn = self._pgconn
        while pgconn.flush():  # 1: the socket's buffer is full, more to send
            await _writable(self._home, self._fd)
        results: list[PGresult] = []
        while True:
            # Nothing of the answer can be there before the server had the statement:
            # wait first, and save a read that would find nothing.
            await self._readable()
            pgconn.consume_input()
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:
                    if not syncs:
                        return results
                    continue  # the end of one statement's results in a pipeline
                if result.status == _SYNC:
                    syncs -= 1
                    if not syncs:
                        return results
                    continue
                results.append(result)

    async def _readable(self) -> None:
        loop = self._home
        if not self._listening:
            loop.add_reader(self._fd, self._on_readable)
            self._listening = True
        fut = self._waiter = loop.create_future()
        try:
            await fut
        finally:
            self._waiter = None

    def _on_readable(self) -> None:
        fut = self._waiter
        if fut is not None and not fut.done():
            fut.set_result(None)
            return
        # Nobody to wake: the server spoke with nobody waiting (a notice, the end of an
        # idle connection), or again before the woken statement ran. Stop listening, or
        # the loop would call this at every turn; the next wait listens afresh (a call
        # spent here may have been the last uvloop makes for a socket in error). The
        # pool's health check sees what is left on the socket.
        self.stop_listening()

    def nudge(self) -> None:
        """Wake a wait whose socket has something to read though the reader was not
        called (see the module docstring); for the backstop's timer, every 50 ms."""
        fut = self._waiter
        if fut is None or fut.done():
            return
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        if poller.poll(0):
            self.stop_listening()  # the loop may have given up on it: add it afresh
            fut.set_result(None)

    def _check(self, results: list[PGresult]) -> PGresult:
        if not results:  # libpq always gives one; a broken connection might not
            raise psycopg.OperationalError("the server sent no result")
        for each in results:
            if each.status == _FATAL:
                raise error_from_result(each, encoding=self._encoding)
            if each.status == _ABORTED:  # after a failure, which raised above
                raise psycopg.OperationalError("the pipeline was aborted")
        return results[-1]


def _prepared_ok(result: PGresult | None) -> bool:
    return result is not None and result.status == _COMMAND_OK


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    fut: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
