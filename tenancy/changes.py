"""Changes that every tenantgate process must hear of, logged in the controller database.

A process that changes a tenant's schema (a custom field added or dropped) or is asked
to refresh a tenant writes one row here; every process (the other workers of its host,
and every other host behind the load balancer) reads the rows after the last one it
saw, about once a second, and forgets what it cached for those tenants. The controller
is the one database every process already reaches, so the mechanism needs nothing
else and works the same across processes and across hosts.

    TenantgateChanges(seq, customer_id, table_name, kind)

``seq`` grows (an identity column); ``kind`` is ``schema`` (one table, or all of the
tenant's when ``table_name`` is NULL) or ``tenant`` (the controller's record too).
Rows are keyed by customer id, not by anything process-local: each process finds the
tenant's location itself. Old rows are pruned by whoever writes: the log keeps the
last ``keep`` changes, far more than a second's worth.

Errors: database errors become ``ControllerUnavailable``, in one place.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from tenancy.backends import BackendKind
from tenancy.errors import ControllerUnavailable
from tenancy.sources import DB_ERRORS, ConnectionSource, fetch, sqlstate_of

__all__ = ["Change", "ChangeLog"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
KINDS = ("schema", "tenant")


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    customer_id: int
    table: str | None
    kind: str


class ChangeLog:
    def __init__(
        self,
        source: ConnectionSource,
        *,
        backend: BackendKind,
        table: str = "TenantgateChanges",
        keep: int = 10_000,
        db_errors: tuple[type[BaseException], ...] = DB_ERRORS,
    ) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"the change log's table is not a plain identifier: {table!r}")
        self._source = source
        self._db_errors = db_errors
        self._keep = keep
        t = f'"{table}"'
        columns = '"customer_id" BIGINT NOT NULL, "table_name" VARCHAR(256), "kind" VARCHAR(16)'
        if backend is BackendKind.SQLITE:
            self._create = (
                f'CREATE TABLE IF NOT EXISTS {t} ("seq" INTEGER PRIMARY KEY AUTOINCREMENT, '
                f"{columns})"
            )
        elif backend is BackendKind.POSTGRESQL:
            self._create = (
                f'CREATE TABLE IF NOT EXISTS {t} ("seq" BIGINT GENERATED ALWAYS AS IDENTITY '
                f"PRIMARY KEY, {columns})"
            )
        else:
            self._create = (
                f"IF OBJECT_ID(N'{table}', N'U') IS NULL CREATE TABLE {t} "
                f'("seq" BIGINT IDENTITY(1,1) PRIMARY KEY, {columns})'
            )
        self._insert = f'INSERT INTO {t} ("customer_id", "table_name", "kind") VALUES (?, ?, ?)'
        self._since = (
            f'SELECT "seq", "customer_id", "table_name", "kind" FROM {t} '
            f'WHERE "seq" > ? ORDER BY "seq"'
        )
        self._latest = f'SELECT MAX("seq") FROM {t}'
        self._prune = f'DELETE FROM {t} WHERE "seq" <= ?'

    def ensure(self) -> None:
        """Create the table if it is missing."""
        with self._translate_errors(), self._source() as conn:
            _run(conn, self._create)

    def record(self, customer_id: int, table: str | None = None, kind: str = "schema") -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        with self._translate_errors(), self._source() as conn:
            _run(conn, self._insert, (customer_id, table, kind))
            latest = fetch(conn, self._latest)[0][0]
            if latest is not None and int(latest) % 1000 == 0:
                _run(conn, self._prune, (int(latest) - self._keep,))

    def ensure_latest(self) -> int:
        """``ensure``, then ``latest``: what a process does before its first read."""
        self.ensure()
        return self.latest()

    def latest(self) -> int:
        """The newest change's number (0: none yet): where a new process starts reading."""
        with self._translate_errors(), self._source() as conn:
            value = fetch(conn, self._latest)[0][0]
        return 0 if value is None else int(value)

    def since(self, seq: int, *, limit: int = 10_000) -> list[Change]:
        """The changes after ``seq``, oldest first (at most ``limit``)."""
        with self._translate_errors(), self._source() as conn:
            rows = fetch(conn, self._since, (seq,), limit=limit)
        return [
            Change(int(s), int(c), None if t is None else str(t), str(k)) for s, c, t, k in rows
        ]

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except self._db_errors as error:
            state = sqlstate_of(error)
            raise ControllerUnavailable(
                f"the controller's change log could not be used (SQLSTATE {state or 'unknown'})",
                sqlstate=state,
            ) from None


def _run(conn: object, sql: str, params: tuple[object, ...] = ()) -> None:
    cursor = conn.cursor()  # type: ignore[attr-defined]
    try:
        if params:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql)
    finally:
        cursor.close()
