"""Schema churn under load: a benchmark workload, and the checks that judge its answers.

Run by ``tests/integration/test_churn.py`` and ``benchmarks/churn.py`` (whose harness in
``tests/support/churn.py`` starts the servers, seeds the tenants with ``seed_tenant`` and
builds a ``ChurnTarget``), and by anything else that can name a running tenantgate and
open direct connections to its tenants' databases.

Concurrent readers and writers go to tenantgate over HTTP while, on every tenant, a
custom column of ``Contacts`` is added or dropped every second: half of the time behind
tenantgate's back (DDL on a direct connection to the tenant database; on SQL Server one
whose database is the tenant's, as the engine refuses a three-part ``ALTER TABLE`` from
elsewhere), half through the custom-field API. Every DDL is stamped (monotonic clock,
one process) with when it started and when it finished, so a response can be judged
against the schema as it was during the request:

* no 500, and every other non-2xx carries a code from ``ACCEPTED`` for its endpoint;
* every column a ``SELECT *, CUSTOM_FIELDS()`` (or a record ``GET ?custom=true``)
  returns existed at some instant between the request's start and end, the base
  columns come first in base-model order, and every row is as wide as the column list;
* every acknowledged write is in the database afterwards, read directly: inserted
  marker rows exist, and each updated row holds its last acknowledged ``LeadScore``
  (or the value of a later attempt whose outcome the client could not know).

Threads are few and bounded in time.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from proxy.demo.seed import BASE_MODEL, custom_columns

POSTGRESQL = "postgresql"
SQLSERVER = "sqlserver"

BASE = tuple(BASE_MODEL["Contacts"])
SEEDED_CUSTOM_COLUMNS = 3
"""Custom columns each tenant's ``Contacts`` is seeded with (``custom_columns(3)``)."""
SEEDED = tuple(c.name for c in custom_columns(SEEDED_CUSTOM_COLUMNS))
CONTACTS = 120
# Rows 1..OWNED are updated by the writers (each writer thread owns a disjoint share).
OWNED = 60
STAR = "SELECT *, CUSTOM_FIELDS() FROM Contacts WHERE ContactID BETWEEN ? AND ? ORDER BY ContactID"
# What the writers put into churn columns: found anywhere else, a value is misplaced.
_CHURN_VALUES = ("w", "u")

# The stable codes a caller may meet under churn, per kind of request, and why:
#   unknown_column          a request names a churn column that has been dropped (or a
#                           write validated after it went): the documented answer.
#   backend_object_missing  a write prepared against metadata that went stale before it
#                           ran (never re-run blindly), or a read whose one re-run met
#                           a second DDL on the same table.
#   statement_timeout       a statement queued behind an ALTER TABLE's exclusive lock.
#   pool_saturated          a burst of requests queued behind that same lock.
#   metadata_unavailable    a catalog read queued behind the lock past its timeout.
_TRANSIENT = {"statement_timeout", "pool_saturated", "metadata_unavailable"}
_STALE = {"unknown_column", "backend_object_missing"}
# With names reused under another type, a writer's string may meet an integer column:
#   invalid_field_value     the records API checks it against the column's type;
#   backend_rejected        the backend refuses it (/v1/query binds it as given).
_REUSE_WRITES = {"invalid_field_value", "backend_rejected"}
_WRITES = {"query_insert", "query_update", "record_insert", "record_patch"}
ACCEPTED: dict[str, set[str]] = {
    "query_star": _TRANSIENT | {"backend_object_missing"},
    "query_named": _TRANSIENT | _STALE,
    "query_insert": _TRANSIENT | _STALE,
    "query_update": _TRANSIENT | _STALE,
    "record_get": _TRANSIENT | {"backend_object_missing"},
    "record_insert": _TRANSIENT | _STALE,
    "record_patch": _TRANSIENT | _STALE,
    "field_add": _TRANSIENT,
    "field_drop": _TRANSIENT,
}


# -- the target -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChurnTenant:
    customer_id: int
    backend: str  # POSTGRESQL or SQLSERVER
    database: str
    driver: str = ""  # SQL Server: the label of the ODBC driver its connection string names

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.driver}" if self.driver else self.backend


class DirectCursor(Protocol):
    def fetchall(self) -> list[Any]: ...


class DirectConnection(Protocol):
    """A DB-API connection in autocommit with ``?`` markers and ``execute`` on the
    connection itself (pyodbc's), whose current database is the tenant's."""

    def execute(self, sql: str, *params: Any) -> DirectCursor: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ChurnTarget:
    """A running tenantgate, a token for it, and direct access to its tenants' databases."""

    url: str
    token: str
    """Needs the read, write and admin classes on every tenant of ``tenants``."""
    tenants: dict[int, ChurnTenant]
    connect: Callable[[ChurnTenant], DirectConnection]
    db_error: type[Exception]
    """What ``connect``'s connections raise for a statement the database refused."""

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def connect_to(self, customer_id: int) -> DirectConnection:
        return self.connect(self.tenants[customer_id])

    def backends(self) -> dict[str, list[int]]:
        """Customer ids by backend label (``postgresql``, ``sqlserver/freetds``...)."""
        out: dict[str, list[int]] = defaultdict(list)
        for tenant in self.tenants.values():
            out[tenant.label].append(tenant.customer_id)
        return dict(out)


# -- the DDL timeline -------------------------------------------------------------------


@dataclass
class Life:
    """One churn column of one tenant: when it came and went (monotonic seconds)."""

    added_start: float
    added_via: str
    added_end: float | None = None  # None while the ADD is running or if it failed
    dropped_start: float | None = None
    dropped_end: float | None = None
    dropped_via: str = ""
    first_seen: float | None = None  # start of the first response that showed it


class Timeline:
    """Every life of every churn column (a name may be dropped and added again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lives: dict[tuple[int, str], list[Life]] = defaultdict(list)

    def _last(self, tenant: int, name: str) -> Life:
        return self._lives[(tenant, name)][-1]

    def adding(self, tenant: int, name: str, via: str) -> None:
        with self._lock:
            self._lives[(tenant, name)].append(Life(time.monotonic(), via))

    def added(self, tenant: int, name: str) -> None:
        with self._lock:
            self._last(tenant, name).added_end = time.monotonic()

    def dropping(self, tenant: int, name: str, via: str) -> None:
        with self._lock:
            life = self._last(tenant, name)
            life.dropped_start, life.dropped_via = time.monotonic(), via

    def dropped(self, tenant: int, name: str) -> None:
        with self._lock:
            self._last(tenant, name).dropped_end = time.monotonic()

    def drop_failed(self, tenant: int, name: str) -> None:
        with self._lock:
            self._last(tenant, name).dropped_start = None

    def _during(self, tenant: int, name: str, t0: float, t1: float) -> list[Life]:
        return [
            life
            for life in self._lives.get((tenant, name), ())
            if life.added_start <= t1 and (life.dropped_end is None or life.dropped_end >= t0)
        ]

    def could_exist(self, tenant: int, name: str, t0: float, t1: float) -> bool:
        """Did ``name`` exist at some instant of ``[t0, t1]``, as far as the DDL says?"""
        with self._lock:
            return bool(self._during(tenant, name, t0, t1))

    def seen(self, tenant: int, names: set[str], t0: float, t1: float) -> None:
        with self._lock:
            for name in names:
                for life in self._during(tenant, name, t0, t1)[-1:]:
                    if life.first_seen is None or t0 < life.first_seen:
                        life.first_seen = t0

    def recent(self, tenant: int, within: float = 5.0) -> list[str]:
        """Churn columns of ``tenant`` that exist or existed in the last ``within`` s."""
        now = time.monotonic()
        with self._lock:
            return [
                name
                for (t, name), lives in self._lives.items()
                if t == tenant
                and (lives[-1].dropped_end is None or now - lives[-1].dropped_end < within)
            ]

    def lives(self) -> list[tuple[int, str, Life]]:
        with self._lock:
            return [(t, n, life) for (t, n), lives in self._lives.items() for life in lives]

    def lives_of(self, tenant: int, name: str) -> list[Life]:
        with self._lock:
            return list(self._lives.get((tenant, name), ()))


# -- the report -------------------------------------------------------------------------


@dataclass
class Report:
    seconds: float = 0.0
    tenants: int = 0
    requests: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    violations: list[str] = field(default_factory=list)
    ddl: Counter[str] = field(default_factory=Counter)
    heals: dict[str, float] = field(default_factory=dict)
    writes_acknowledged: int = 0
    writes_found: int = 0
    add_lag: list[float] = field(default_factory=list)  # per outside add: staleness seen
    never_seen: int = 0
    returned_after_drop: int = 0
    star_checked: int = 0
    # Per tenant, so that each backend can be held to the invariants on its own:
    # (tenant, kind) of 2xx answers, (tenant, DDL outcome), (tenant, "acknowledged"/"found").
    ok_by_tenant: Counter[tuple[int, str]] = field(default_factory=Counter)
    ddl_by_tenant: Counter[tuple[int, str]] = field(default_factory=Counter)
    writes_by_tenant: Counter[tuple[int, str]] = field(default_factory=Counter)
    backends: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, kind: str, tenant: int, status: int, code: str, seconds: float) -> None:
        with self.lock:
            self.requests[(kind, status, code)] += 1
            self.latencies[kind].append(seconds)
            if 200 <= status < 300:
                self.ok_by_tenant[(tenant, kind)] += 1

    def ddl_done(self, tenant: int, what: str) -> None:
        with self.lock:
            self.ddl[what] += 1
            self.ddl_by_tenant[(tenant, what)] += 1

    def of_backend(self, label: str) -> dict[str, int]:
        """Totals over the tenants of one backend label: 2xx per kind, DDL, writes."""
        ids = set(self.backends.get(label, ()))
        out: Counter[str] = Counter()
        for counter in (self.ok_by_tenant, self.ddl_by_tenant, self.writes_by_tenant):
            for (tenant, what), n in counter.items():
                if tenant in ids:
                    out[what] += n
        return dict(out)

    def violation(self, text: str) -> None:
        with self.lock:
            if len(self.violations) < 200:
                self.violations.append(text)

    def summary(self) -> str:
        total = sum(self.requests.values())
        shown = ", ".join(f"{label} {ids}" for label, ids in sorted(self.backends.items()))
        lines = [
            f"churn: {self.tenants} tenants ({shown}), {self.seconds:.0f} s, {total} requests",
            "requests by kind, status and code:",
        ]
        for (kind, status, code), n in sorted(self.requests.items()):
            lines.append(f"  {kind:<13} {status} {code or '-':<24} {n:>7}")
        errors: Counter[str] = Counter()
        for (_, status, code), n in self.requests.items():
            if status >= 300:
                errors[code] += n
        lines.append(
            "errors by code: " + (", ".join(f"{c} {n}" for c, n in errors.most_common()) or "none")
        )
        lines.append("latency (ms)       p50      p99      max        n")
        for kind, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            lines.append(
                f"  {kind:<13} {_pct(ordered, 0.5) * 1e3:8.1f} {_pct(ordered, 0.99) * 1e3:8.1f}"
                f" {ordered[-1] * 1e3:8.1f} {len(ordered):8}"
            )
        lines.append("DDL: " + ", ".join(f"{k} {n}" for k, n in sorted(self.ddl.items())))
        lines.append(
            "heals: " + (", ".join(f"{k} {v:.0f}" for k, v in sorted(self.heals.items())) or "none")
        )
        lines.append(f"writes: {self.writes_acknowledged} acknowledged, {self.writes_found} found")
        for label in sorted(self.backends):
            totals = self.of_backend(label)
            ok = sum(n for k, n in totals.items() if k in ACCEPTED)
            ddl = ", ".join(
                f"{k} {n}" for k, n in sorted(totals.items()) if k.startswith(("add_", "drop_"))
            )
            lines.append(
                f"  {label}: {ok} answered 2xx, star {totals.get('query_star', 0)}; DDL {ddl}; "
                f"writes {totals.get('acknowledged', 0)} acknowledged, "
                f"{totals.get('found', 0)} found"
            )
        if self.add_lag:
            lag = sorted(self.add_lag)
            lines.append(
                f"staleness, added outside -> in CUSTOM_FIELDS(): p50 {_pct(lag, 0.5):.2f} s, "
                f"p99 {_pct(lag, 0.99):.2f} s, max {lag[-1]:.2f} s over {len(lag)} columns "
                f"({self.never_seen} dropped before a response could show them)"
            )
        lines.append(
            f"staleness, dropped -> no longer returned: {self.returned_after_drop} responses "
            f"begun after a drop completed still returned the column "
            f"({self.star_checked} expansions checked)"
        )
        lines.append(f"violations: {len(self.violations)}")
        lines.extend(f"  {v}" for v in self.violations[:20])
        return "\n".join(lines)


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# -- the workload -----------------------------------------------------------------------


class Churn:
    def __init__(
        self,
        target: ChurnTarget,
        *,
        seconds: float,
        readers: int = 6,
        writers: int = 3,
        ddl_interval: float = 1.0,
        reuse: int = 0,
        seed: int = 4,
    ) -> None:
        self.target = target
        self.seconds = seconds
        self.readers = readers
        self.writers = writers
        self.ddl_interval = ddl_interval
        # With ``reuse`` > 0, names come from a pool of that many per tenant and come
        # back with another type (text, then integer...), as an application re-adding
        # "its" field would; otherwise every added column has a new name.
        self.reuse = reuse
        self.accepted = {
            kind: codes | (_REUSE_WRITES if reuse and kind in _WRITES else set())
            for kind, codes in ACCEPTED.items()
        }
        self.seed = seed
        self.tenants = sorted(target.tenants)
        self.timeline = Timeline()
        self.report = Report(seconds=seconds, tenants=len(self.tenants), backends=target.backends())
        self.deadline = 0.0
        # (tenant, marker) of inserts: acknowledged, and attempted with an unknown outcome.
        self.inserted: list[tuple[int, str]] = []
        # (tenant, ContactID) → [(LeadScore, acknowledged)] in the order they were sent.
        self.updates: dict[tuple[int, int], list[tuple[int, bool]]] = defaultdict(list)
        # Every checked expansion: (tenant, start, end, the churn columns it returned).
        self._responses: list[tuple[int, float, float, frozenset[str]]] = []
        self._lock = threading.Lock()

    # -- running ------------------------------------------------------------------------

    def run(self) -> Report:
        self.deadline = time.monotonic() + self.seconds
        threads = [
            threading.Thread(target=self._guard(self._ddl_loop), args=(t,), name=f"ddl-{t}")
            for t in self.tenants
        ]
        threads += [
            threading.Thread(target=self._guard(self._reader), args=(i,), name=f"reader-{i}")
            for i in range(self.readers)
        ]
        threads += [
            threading.Thread(target=self._guard(self._writer), args=(i,), name=f"writer-{i}")
            for i in range(self.writers)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=self.seconds + 120)
            if th.is_alive():
                self.report.violation(f"thread {th.name} did not finish")
        self._verify_writes()
        self._staleness()
        self.report.heals = self._heals()
        return self.report

    def _guard(self, fn: Callable[[int], None]) -> Callable[[int], None]:
        def run(arg: int) -> None:
            try:
                fn(arg)
            except Exception as exc:  # noqa: BLE001 - a crashed worker is a finding, not a hang
                self.report.violation(f"{threading.current_thread().name} crashed: {exc!r}")

        return run

    def _call(
        self, client: httpx.Client, kind: str, tenant: int, method: str, url: str, **kw: Any
    ) -> tuple[httpx.Response | None, float, float]:
        t0 = time.monotonic()
        try:
            r = client.request(method, url, **kw)
        except httpx.TransportError as exc:
            t1 = time.monotonic()
            self.report.record(kind, tenant, 0, "transport_error", t1 - t0)
            self.report.violation(f"{kind}: transport error {exc!r}")
            return None, t0, t1
        t1 = time.monotonic()
        code = ""
        if r.status_code >= 300:
            try:
                code = r.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "unparsable"
            if r.status_code >= 500 and code not in self.accepted[kind]:
                self.report.violation(f"{kind}: {r.status_code} {r.text[:300]}")
            elif code not in self.accepted[kind]:
                self.report.violation(f"{kind}: unexpected {r.status_code} {r.text[:300]}")
        self.report.record(kind, tenant, r.status_code, code, t1 - t0)
        return r, t0, t1

    # -- DDL ----------------------------------------------------------------------------

    def _ddl_loop(self, tenant: int) -> None:
        rng = random.Random(self.seed * 1000 + tenant)  # noqa: S311  a reproducible mix, not secrets
        live: list[str] = []
        n = 0
        # Adds and drops each alternate between outside and the API (from a random
        # phase), so that every tenant sees both ways of both even in a short run;
        # which column a drop picks stays random, so all four pairings occur.
        turns = {"add": rng.randrange(2), "drop": rng.randrange(2)}
        sqlserver = self.target.tenants[tenant].backend == SQLSERVER
        with contextlib.closing(self.target.connect_to(tenant)) as conn, \
                self.target.client() as client:  # fmt: skip
            conn.execute("SET LOCK_TIMEOUT 5000" if sqlserver else "SET lock_timeout = '5s'")
            next_tick = time.monotonic()
            while time.monotonic() < self.deadline:
                limit = min(5, self.reuse) if self.reuse else 5
                add = len(live) < min(2, limit) or (len(live) < limit and rng.random() < 0.5)
                op = "add" if add else "drop"
                turns[op] += 1
                outside = turns[op] % 2 == 0
                if add:
                    n += 1
                    if self.reuse:
                        free = [i for i in range(self.reuse) if f"churn_{tenant}_{i}" not in live]
                        name = f"churn_{tenant}_{rng.choice(free)}"
                    else:
                        name = f"churn_{tenant}_{n}"
                    if self._add(tenant, name, outside, conn, client, integer=n % 2 == 0):
                        live.append(name)
                else:
                    name = live.pop(rng.randrange(len(live)))
                    if not self._drop(tenant, name, outside, conn, client):
                        live.append(name)
                next_tick += self.ddl_interval
                time.sleep(max(0.0, next_tick - time.monotonic()))

    def _outside_ddl(self, tenant: int, op: str, name: str, *, integer: bool = False) -> str:
        """The ALTER TABLE run behind tenantgate's back, on a connection whose current
        database is the tenant's (so no qualification: see the module docstring)."""
        if self.target.tenants[tenant].backend == SQLSERVER:
            if op == "add":
                return f"ALTER TABLE [Contacts] ADD [{name}] {'INT' if integer else 'NVARCHAR(40)'}"
            return f"ALTER TABLE [Contacts] DROP COLUMN [{name}]"
        if op == "add":
            kind = "INTEGER" if integer else "VARCHAR(40)"
            return f'ALTER TABLE "Contacts" ADD COLUMN "{name}" {kind}'
        return f'ALTER TABLE "Contacts" DROP COLUMN "{name}"'

    def _add(
        self,
        tenant: int,
        name: str,
        outside: bool,
        conn: DirectConnection,
        client: httpx.Client,
        *,
        integer: bool,
    ) -> bool:
        integer = integer and self.reuse > 0
        via = "outside" if outside else "api"
        self.timeline.adding(tenant, name, via)
        if outside:
            try:
                conn.execute(self._outside_ddl(tenant, "add", name, integer=integer))
            except self.target.db_error as exc:
                self.report.ddl_done(tenant, f"add_{via}_failed")
                self.report.violation(f"add outside {tenant}/{name} failed: {exc}")
                return False
        else:
            r, _, _ = self._call(
                client, "field_add", tenant, "POST",
                f"/v1/tenants/{tenant}/tables/Contacts/custom-fields",
                json={"name": name, "type": "integer"}
                if integer
                else {"name": name, "type": "text", "length": 40},
            )  # fmt: skip
            if r is None or r.status_code != 201:
                self.report.ddl_done(tenant, f"add_{via}_failed")
                return False  # stays "added" from its start on: it may exist (timeline widens)
        self.timeline.added(tenant, name)
        self.report.ddl_done(tenant, f"add_{via}")
        return True

    def _drop(
        self, tenant: int, name: str, outside: bool, conn: DirectConnection, client: httpx.Client
    ) -> bool:
        via = "outside" if outside else "api"
        self.timeline.dropping(tenant, name, via)
        if outside:
            try:
                conn.execute(self._outside_ddl(tenant, "drop", name))
            except self.target.db_error as exc:
                self.report.ddl_done(tenant, f"drop_{via}_failed")
                self.report.violation(f"drop outside {tenant}/{name} failed: {exc}")
                self.timeline.drop_failed(tenant, name)
                return False
        else:
            r, _, _ = self._call(
                client, "field_drop", tenant, "DELETE",
                f"/v1/tenants/{tenant}/tables/Contacts/custom-fields/{name}",
            )  # fmt: skip
            if r is None or r.status_code != 200:
                self.report.ddl_done(tenant, f"drop_{via}_failed")
                self.timeline.drop_failed(tenant, name)
                return False
        self.timeline.dropped(tenant, name)
        self.report.ddl_done(tenant, f"drop_{via}")
        return True

    # -- readers ------------------------------------------------------------------------

    def _reader(self, index: int) -> None:
        rng = random.Random(self.seed * 7919 + index)  # noqa: S311  a reproducible mix, not secrets
        with self.target.client() as client:
            while time.monotonic() < self.deadline:
                tenant = rng.choice(self.tenants)
                roll = rng.random()
                if roll < 0.5:
                    self._star(client, tenant, rng)
                elif roll < 0.75:
                    self._named(client, tenant, rng)
                else:
                    self._record_get(client, tenant, rng)

    def _star(self, client: httpx.Client, tenant: int, rng: random.Random) -> None:
        low = rng.randint(1, CONTACTS - 5)
        r, t0, t1 = self._call(client, "query_star", tenant, "POST", "/v1/query", json={
            "tenant": tenant, "sql": STAR, "params": [low, low + 4]})  # fmt: skip
        if r is None or r.status_code != 200:
            return
        body = r.json()
        names = [c["name"] for c in body["columns"]]
        self._check_columns("query_star", tenant, names, t0, t1)
        for row in body["rows"]:
            if len(row) != len(names):
                self.report.violation(
                    f"query_star tenant {tenant}: a row of {len(row)} values for "
                    f"{len(names)} columns"
                )
                continue
            self._check_values("query_star", tenant, dict(zip(names, row, strict=True)))
            if not low <= row[0] <= low + 4:
                self.report.violation(f"query_star tenant {tenant}: ContactID {row[0]}")

    def _record_get(self, client: httpx.Client, tenant: int, rng: random.Random) -> None:
        key = rng.randint(1, CONTACTS)
        r, t0, t1 = self._call(
            client, "record_get", tenant, "GET",
            f"/v1/tenants/{tenant}/tables/Contacts/records/{key}", params={"custom": "true"},
        )  # fmt: skip
        if r is None or r.status_code != 200:
            return
        record = r.json()
        self._check_columns("record_get", tenant, list(record), t0, t1, ordered=False)
        self._check_values("record_get", tenant, record)
        if record.get("ContactID") != key:
            self.report.violation(
                f"record_get tenant {tenant}: ContactID {record.get('ContactID')}"
            )

    def _check_values(self, kind: str, tenant: int, row: dict[str, Any]) -> None:
        """Values under the right names: churn columns hold only what the writers put
        there (or NULL), and no base or seeded column holds a writer's value."""
        for name, value in row.items():
            churn = name.startswith("churn_")
            if (churn and value is not None and value not in _CHURN_VALUES) or (
                not churn and value in _CHURN_VALUES
            ):
                self.report.violation(f"{kind} tenant {tenant}: {name} = {value!r}")

    def _check_columns(
        self,
        kind: str,
        tenant: int,
        names: list[str],
        t0: float,
        t1: float,
        *,
        ordered: bool = True,
    ) -> None:
        with self.report.lock:
            self.report.star_checked += 1
        if len(set(names)) != len(names):
            self.report.violation(f"{kind} tenant {tenant}: duplicate columns {names}")
        base = [n for n in names if n in BASE]
        if (names[: len(BASE)] if ordered else sorted(base)) != (
            list(BASE) if ordered else sorted(BASE)
        ):
            self.report.violation(f"{kind} tenant {tenant}: base columns {names[: len(BASE)]}")
        extra = [n for n in names if n not in BASE]
        churn = set()
        for name in extra:
            if name in SEEDED:
                continue
            if not self.timeline.could_exist(tenant, name, t0, t1):
                lives = self.timeline.lives_of(tenant, name)
                self.report.violation(
                    f"{kind} tenant {tenant}: column {name!r} did not exist during "
                    f"[{t0:.3f}, {t1:.3f}] ({lives})"
                )
                if any(life.dropped_end is not None and t0 > life.dropped_end for life in lives):
                    with self.report.lock:
                        self.report.returned_after_drop += 1
            churn.add(name)
        self.timeline.seen(tenant, churn, t0, t1)
        with self._lock:
            self._responses.append((tenant, t0, t1, frozenset(churn)))

    def _named(self, client: httpx.Client, tenant: int, rng: random.Random) -> None:
        candidates = self.timeline.recent(tenant)
        if not candidates:
            return
        name = rng.choice(candidates)
        policy = rng.choice(("error", "null"))
        r, t0, t1 = self._call(client, "query_named", tenant, "POST", "/v1/query", json={
            "tenant": tenant, "sql": f"SELECT ContactID, {name} FROM Contacts WHERE ContactID = ?",
            "params": [rng.randint(1, CONTACTS)], "missing_columns": policy})  # fmt: skip
        if r is not None and r.status_code == 200:
            body = r.json()
            absent = not self.timeline.could_exist(tenant, name, t0, t1)
            if absent and any(row[1] is not None for row in body["rows"]):
                self.report.violation(f"query_named: a value for absent {name}: {body['rows']}")
            if [c["name"].casefold() for c in body["columns"]] != ["contactid", name]:
                self.report.violation(f"query_named: columns {body['columns']} for {name}")
            if any(len(row) != 2 for row in body["rows"]):
                self.report.violation(f"query_named: row width for {name}: {body['rows']}")

    # -- writers ------------------------------------------------------------------------

    def _writer(self, index: int) -> None:
        rng = random.Random(self.seed * 104729 + index)  # noqa: S311  a reproducible mix, not secrets
        owned = [i for i in range(1, OWNED + 1) if i % self.writers == index]
        score = index * 10_000_000
        with self.target.client() as client:
            while time.monotonic() < self.deadline:
                tenant = rng.choice(self.tenants)
                roll = rng.random()
                if roll < 0.4:
                    self._insert(client, tenant, rng)
                else:
                    score += 1
                    self._update(client, tenant, rng.choice(owned), score, rng)

    def _churn_column(self, tenant: int, rng: random.Random) -> str | None:
        candidates = self.timeline.recent(tenant, within=2.0)
        return rng.choice(candidates) if candidates and rng.random() < 0.5 else None

    def _insert(self, client: httpx.Client, tenant: int, rng: random.Random) -> None:
        marker = f"churn-{uuid.uuid4().hex[:12]}"
        extra = self._churn_column(tenant, rng)
        if rng.random() < 0.5:
            values: dict[str, Any] = {
                "FirstName": marker, "LastName": "Churn", "IsActive": True,
                "CreatedAt": "2024-05-01 10:00:00",
            }  # fmt: skip
            if extra:
                values[extra] = "w"
            r, _, _ = self._call(
                client, "record_insert", tenant, "POST",
                f"/v1/tenants/{tenant}/tables/Contacts/records",
                json=values,
            )  # fmt: skip
            ok = r is not None and r.status_code == 201
        else:
            columns = "FirstName, LastName, IsActive, CreatedAt" + (f", {extra}" if extra else "")
            holders = "?, 'Churn', ?, CAST(? AS DATETIME)" + (", 'w'" if extra else "")
            r, _, _ = self._call(client, "query_insert", tenant, "POST", "/v1/query", json={
                "tenant": tenant, "params": [marker, True, "2024-05-01"],
                "sql": f"INSERT INTO Contacts ({columns}) VALUES ({holders})"})  # fmt: skip
            ok = r is not None and r.status_code == 200
            if ok and r is not None and r.json()["row_count"] != 1:
                self.report.violation(f"query_insert: row_count {r.json()['row_count']}")
        if ok:
            with self._lock:
                self.inserted.append((tenant, marker))

    def _update(
        self, client: httpx.Client, tenant: int, key: int, score: int, rng: random.Random
    ) -> None:
        extra = self._churn_column(tenant, rng)
        if rng.random() < 0.5:
            values: dict[str, Any] = {"LeadScore": score}
            if extra:
                values[extra] = "u"
            r, _, _ = self._call(
                client, "record_patch", tenant, "PATCH",
                f"/v1/tenants/{tenant}/tables/Contacts/records/{key}", json=values,
            )  # fmt: skip
            ok = r is not None and r.status_code == 200
        else:
            sets = "LeadScore = ?" + (f", {extra} = 'u'" if extra else "")
            r, _, _ = self._call(client, "query_update", tenant, "POST", "/v1/query", json={
                "tenant": tenant, "params": [score, key],
                "sql": f"UPDATE Contacts SET {sets} WHERE ContactID = ?"})  # fmt: skip
            ok = r is not None and r.status_code == 200
            if ok and r is not None and r.json()["row_count"] != 1:
                self.report.violation(f"query_update: row_count {r.json()['row_count']}")
        # A definite refusal (4xx) wrote nothing; a 5xx or a lost answer might have.
        definite_no = r is not None and 400 <= r.status_code < 500
        if not definite_no:
            with self._lock:
                self.updates[(tenant, key)].append((score, ok))

    # -- afterwards ---------------------------------------------------------------------

    def _verify_writes(self) -> None:
        report = self.report
        report.writes_acknowledged = len(self.inserted) + sum(
            ok for history in self.updates.values() for _, ok in history
        )
        found = 0
        by_tenant: dict[int, list[str]] = defaultdict(list)
        for tenant, marker in self.inserted:
            by_tenant[tenant].append(marker)
            report.writes_by_tenant[(tenant, "acknowledged")] += 1
        for (tenant, _), history in self.updates.items():
            report.writes_by_tenant[(tenant, "acknowledged")] += sum(ok for _, ok in history)
        for tenant in self.tenants:
            found_before = found
            with contextlib.closing(self.target.connect_to(tenant)) as conn:
                present = {
                    r[0]
                    for r in conn.execute(
                        'SELECT "FirstName" FROM "Contacts" WHERE "FirstName" LIKE \'churn-%\''
                    ).fetchall()
                }
                for marker in by_tenant[tenant]:
                    if marker in present:
                        found += 1
                    else:
                        report.violation(f"acknowledged insert {marker} missing on tenant {tenant}")
                scores = dict(
                    conn.execute(
                        'SELECT "ContactID", "LeadScore" FROM "Contacts" WHERE "ContactID" <= ?',
                        OWNED,
                    ).fetchall()
                )
            for (t, key), history in self.updates.items():
                if t != tenant:
                    continue
                acked = [i for i, (_, ok) in enumerate(history) if ok]
                if not acked:
                    continue
                last = acked[-1]
                allowed = {score for score, _ in history[last:]}
                found += len(acked) if scores.get(key) in allowed else 0
                if scores.get(key) not in allowed:
                    report.violation(
                        f"tenant {tenant} row {key}: LeadScore {scores.get(key)}, "
                        f"last acknowledged {history[last][0]}"
                    )
            report.writes_by_tenant[(tenant, "found")] += found - found_before
        report.writes_found = found

    def _staleness(self) -> None:
        """How long after an outside add responses still lacked the column."""
        lives = self.timeline.lives()
        by_tenant: dict[int, list[tuple[float, float, frozenset[str]]]] = defaultdict(list)
        for tenant, t0, t1, names in self._responses:
            by_tenant[tenant].append((t0, t1, names))
        for tenant, name, life in lives:
            if life.added_via != "outside" or life.added_end is None:
                continue
            until = life.dropped_start if life.dropped_start is not None else float("inf")
            # Responses wholly inside the column's life that did not show it.
            missing = [
                t0 - life.added_end
                for t0, t1, names in by_tenant[tenant]
                if t0 >= life.added_end and t1 <= until and name not in names
            ]
            if life.first_seen is None:
                self.report.never_seen += 1
                if missing:
                    self.report.add_lag.append(max(missing))
                continue
            self.report.add_lag.append(max(missing, default=0.0))

    def _heals(self) -> dict[str, float]:
        with self.target.client() as client:
            text = client.get("/metrics").text
        heals: dict[str, float] = {}
        for m in re.finditer(
            r'^tenantgate_metadata_heals_total\{outcome="([^"]+)"\} (\S+)$', text, re.M
        ):
            heals[m.group(1)] = float(m.group(2))
        return heals


def run_churn(target: ChurnTarget, *, seconds: float, **kw: Any) -> Report:
    return Churn(target, seconds=seconds, **kw).run()
