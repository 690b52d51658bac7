"""Fault injection for the fault suite (tests/faults) and its longer run (benchmarks/faults.py).

* ``Firewall`` cuts a TCP port off on loopback with iptables ``DROP`` rules in the
  ``INPUT`` chain, both directions: packets leave and are never answered, as in a
  network partition (rules in ``OUTPUT`` would not do: the sender would get ``EPERM``
  at once, which no partition does). Needs root and iptables; ``firewall_missing()``
  says why not.
* ``Load`` sends requests to a running tenantgate from an event loop in a thread of
  its own, so that a test can start a load, inject a fault, and read what every
  request got: ``Outcome`` per request, with its start and end on the test's clock.
* ``table`` turns outcomes into the per-fault report the issue asks for.

Nothing here mocks a database: the servers are real, the faults are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from proxy.auth import hash_token
from proxy.demo.layout import create_demo
from proxy.demo.seed import custom_columns, seed_tenant
from tests.support.pg import Cluster, managed_cluster
from tests.support.slow import SLOW_SQL, create_slow_view
from tests.support.stack import serve
from tests.support.tenants import base_model_toml, suite_drivers, write_controller

_TAG = "tenantgate-faults"

SCALE = float(os.environ.get("TENANTGATE_FAULT_SCALE", "1"))
"""How much longer each fault and load period lasts (benchmarks/faults.py sets it)."""


def seconds(value: float) -> float:
    """``value`` seconds of a fault or a load period, scaled by ``SCALE``."""
    return value * SCALE


def firewall_missing() -> str | None:
    """Why ``Firewall`` cannot work here, or None when it can."""
    if os.geteuid() != 0:
        return "the fault suite needs root (iptables, pg_ctl as the server user)"
    if shutil.which("iptables") is None:
        return "iptables is not installed (scripts/system-deps.sh --with-server installs it)"
    probe = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"iptables does not work here: {probe.stderr.strip()}"
    return None


class Firewall:
    """Partitions of loopback ports; every rule is removed on ``heal_all`` / exit."""

    def __init__(self) -> None:
        self._cut: set[int] = set()
        self._remove_leftovers()

    def __enter__(self) -> Firewall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.heal_all()

    @staticmethod
    def _rules(port: int) -> list[list[str]]:
        return [
            ["INPUT", "-i", "lo", "-p", "tcp", direction, str(port),
             "-m", "comment", "--comment", _TAG, "-j", "DROP"]
            for direction in ("--dport", "--sport")
        ]  # fmt: skip

    def cut(self, port: int) -> None:
        """Drop every packet to and from ``port`` (existing connections included)."""
        for rule in self._rules(port):
            subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
        self._cut.add(port)

    def heal(self, port: int) -> None:
        for rule in self._rules(port):
            subprocess.run(["iptables", "-D", *rule], check=False, capture_output=True)
        self._cut.discard(port)

    def heal_all(self) -> None:
        for port in list(self._cut):
            self.heal(port)
        self._remove_leftovers()

    @staticmethod
    def _remove_leftovers() -> None:
        """Rules an earlier run left behind (killed before it could heal)."""
        listing = subprocess.run(
            ["iptables", "-S", "INPUT"], capture_output=True, text=True, check=False
        )
        for line in listing.stdout.splitlines():
            if _TAG in line and line.startswith("-A "):
                spec = line[3:].split()
                subprocess.run(["iptables", "-D", *spec], check=False, capture_output=True)

    @contextlib.contextmanager
    def partition(self, port: int) -> Iterator[None]:
        self.cut(port)
        try:
            yield
        finally:
            self.heal(port)


@dataclass(frozen=True)
class Outcome:
    name: str
    """The kind of request (the ``Job`` that sent it)."""
    start: float
    end: float
    status: int
    """The HTTP status, or 0 when no answer came (connection error, client timeout)."""
    code: str
    """The error code of a non-2xx answer ("" for a 2xx, the exception's name for 0)."""
    deadline_s: float
    """The request's own deadline (its ``timeout_ms``)."""
    retry_after: str | None = None
    marker: str | None = None
    """A write's marker, when it carried one."""

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Job:
    """Requests of one kind, sent back to back by ``workers`` concurrent senders."""

    name: str
    body: Callable[[str], dict[str, Any]]
    """The JSON of one request, given a fresh marker."""
    workers: int = 1
    pause_s: float = 0.0
    path: str = "/v1/query"
    method: str = "POST"

    @property
    def deadline_s(self) -> float:
        return float(self.body("x").get("timeout_ms", 5000)) / 1000


@dataclass
class Load:
    """Jobs sent to ``url`` from an event loop in a thread of its own."""

    url: str
    token: str
    jobs: list[Job]
    client_timeout_s: float = 60.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _clock: Callable[[], float] = time.monotonic

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.client_timeout_s + 10)
            self._thread = None
        return self.outcomes

    async def _main(self) -> None:
        workers = sum(job.workers for job in self.jobs)
        limits = httpx.Limits(max_connections=workers + 4, max_keepalive_connections=workers + 4)
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(
            base_url=self.url, headers=headers, limits=limits, timeout=self.client_timeout_s
        ) as client:
            tasks = [
                asyncio.create_task(self._worker(client, job))
                for job in self.jobs
                for _ in range(job.workers)
            ]
            await asyncio.gather(*tasks)

    async def _worker(self, client: httpx.AsyncClient, job: Job) -> None:
        while not self._stop.is_set():
            self.outcomes.append(await send(client, job, self._clock))
            if job.pause_s:
                await asyncio.sleep(job.pause_s)


async def send(
    client: httpx.AsyncClient, job: Job, clock: Callable[[], float] = time.monotonic
) -> Outcome:
    """One request of ``job``, and what it got."""
    marker = f"f{uuid.uuid4().hex[:16]}"
    body = job.body(marker)
    deadline_s = float(body.get("timeout_ms", 5000)) / 1000
    start = clock()
    try:
        if job.method == "GET":
            response = await client.get(job.path)
        else:
            response = await client.post(job.path, json=body)
    except httpx.HTTPError as exc:
        return Outcome(job.name, start, clock(), 0, type(exc).__name__, deadline_s)
    end = clock()
    code = ""
    if response.status_code >= 300:
        try:
            code = str(response.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            code = "unparsable"
    return Outcome(
        job.name,
        start,
        end,
        response.status_code,
        code,
        deadline_s,
        response.headers.get("retry-after"),
        marker if marker in repr(body) else None,
    )


def burst(
    url: str, token: str, job: Job, count: int, *, refused: threading.Event | None = None
) -> list[Outcome]:
    """``count`` requests of ``job`` at once, each on a connection of its own, and what
    each got. ``refused`` is set at the first 503: from then on the service is known to
    be refusing (a wait on it holds on a machine of any speed, where a sleep would not).

    Plain HTTP/1.1 over asyncio streams rather than httpx: httpx's connection pool
    costs grow with the square of its connections, and with hundreds at once the
    client's own queueing, not the server, would decide the latencies measured.
    """
    host, _, port = url.removeprefix("http://").partition(":")

    async def one(payload: bytes) -> Outcome:
        start = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(payload)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            writer.close()
        except (OSError, asyncio.IncompleteReadError) as exc:
            return Outcome(job.name, start, time.monotonic(), 0, type(exc).__name__, deadline_s)
        end = time.monotonic()
        status = int(lines[0].split()[1])
        if status == 503 and refused is not None:
            refused.set()
        code = str(json.loads(body)["error"]["code"]) if status >= 300 else ""
        return Outcome(job.name, start, end, status, code, deadline_s, headers.get("retry-after"))

    request = job.body("x")
    deadline_s = float(request.get("timeout_ms", 5000)) / 1000
    data = json.dumps(request).encode()
    payload = (
        f"{job.method} {job.path} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data

    async def main() -> list[Outcome]:
        return list(await asyncio.gather(*(one(payload) for _ in range(count))))

    return asyncio.run(main())


# -- reports ----------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def by_status(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(f"{o.status} {o.code}".strip() for o in outcomes)


def worst_overrun(outcomes: list[Outcome]) -> float:
    """The largest (latency - deadline) in seconds; negative when all ended early."""
    return max((o.seconds - o.deadline_s for o in outcomes), default=float("-inf"))


def table(title: str, outcomes: list[Outcome], **extra: object) -> str:
    """One fault's report: requests, answers by status and code, worst latency."""
    lines = [f"== {title}"]
    for name, group in itertools.groupby(
        sorted(outcomes, key=lambda o: o.name), key=lambda o: o.name
    ):
        items = list(group)
        seconds = [o.seconds for o in items]
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(by_status(items).items()))
        lines.append(
            f"  {name:<14} requests {len(items):>5}  p50 {pct(seconds, 0.5) * 1000:7.1f} ms"
            f"  p99 {pct(seconds, 0.99) * 1000:7.1f} ms  worst {max(seconds) * 1000:7.1f} ms"
            f" (deadline {items[0].deadline_s * 1000:.0f} ms)  [{statuses}]"
        )
    for key, value in extra.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


# -- the stack under test -----------------------------------------------------------

FAULT_TOKEN = "faults-token-7c1e"
PG_PASSWORD = "Faults-Pg-Secret-0042"
POINT_READ = "SELECT ContactID, FirstName FROM Contacts WHERE ContactID = ?"
INSERT = (
    "INSERT INTO Contacts (FirstName, LastName, IsActive, CreatedAt)"
    " VALUES (?, 'Fault', ?, CAST('2024-05-01' AS DATETIME))"
)


@dataclass
class FaultStack:
    """tenantgate over two PostgreSQL servers it does not own and a SQLite tenant.

    Server ``a`` (the one faults happen to) holds tenants 31 and 32, server ``b``
    tenant 41; tenant 1 is the demo's first SQLite file.
    """

    url: str
    pid: int
    clusters: dict[str, Cluster]
    databases: dict[int, tuple[str, str]]
    """Customer id → (server name, database name)."""
    config: Path
    log_path: Path
    root: Path

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {FAULT_TOKEN}"}, timeout=timeout
        )

    def connect(self, customer_id: int) -> Any:
        server, database = self.databases[customer_id]
        return self.clusters[server].server.connect(database)

    def found_markers(self, customer_id: int, markers: list[str]) -> set[str]:
        """Which of ``markers`` are in the tenant's ``Contacts``, read directly."""
        found: set[str] = set()
        with contextlib.closing(self.connect(customer_id)) as conn:
            for start in range(0, len(markers), 500):
                chunk = markers[start : start + 500]
                holders = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f'SELECT "FirstName" FROM "Contacts" WHERE "FirstName" IN ({holders})', chunk
                ).fetchall()
                found.update(row[0] for row in rows)
        return found

    def duplicated_markers(self, customer_id: int) -> int:
        """Markers written more than once: a write retried behind the caller's back."""
        with contextlib.closing(self.connect(customer_id)) as conn:
            row = conn.execute(
                'SELECT count(*) FROM (SELECT "FirstName" FROM "Contacts" WHERE "LastName" ='
                " 'Fault' GROUP BY \"FirstName\" HAVING count(*) > 1) AS d"
            ).fetchone()
        return int(row[0])

    def terminate_backends(self, customer_id: int) -> int:
        """``pg_terminate_backend`` for every session on the tenant's database."""
        server, database = self.databases[customer_id]
        with contextlib.closing(self.clusters[server].server.connect()) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = ? AND pid <> pg_backend_pid()",
                database,
            ).fetchall()
        return len(rows)

    def backend_connections(self, server: str) -> int:
        """Client connections the server holds right now (tenantgate's and ours)."""
        with contextlib.closing(self.clusters[server].server.connect()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).fetchone()
        return int(row[0]) - 1  # not this one


def read_job(tenant: int, *, timeout_ms: int = 2000, workers: int = 1, pause_s: float = 0.0,
             name: str | None = None) -> Job:  # fmt: skip
    return Job(
        name or f"read {tenant}",
        lambda _m: {"tenant": tenant, "sql": POINT_READ, "params": [7], "timeout_ms": timeout_ms},
        workers=workers,
        pause_s=pause_s,
    )


def write_job(
    tenant: int, *, timeout_ms: int = 2000, workers: int = 1, pause_s: float = 0.0
) -> Job:
    return Job(
        f"write {tenant}",
        lambda m: {"tenant": tenant, "sql": INSERT, "params": [m, True], "timeout_ms": timeout_ms},
        workers=workers,
        pause_s=pause_s,
    )


def slow_job(tenant: int, *, timeout_ms: int, workers: int = 1, name: str | None = None) -> Job:
    return Job(
        name or f"slow {tenant}",
        lambda _m: {"tenant": tenant, "sql": SLOW_SQL, "timeout_ms": timeout_ms},
        workers=workers,
    )


def acked_writes(outcomes: list[Outcome]) -> list[str]:
    return [o.marker for o in outcomes if o.status == 200 and o.marker is not None]


def _config(controller: Path, pool: dict[str, Any]) -> str:
    base_model = base_model_toml()
    pool_lines = "\n".join(f"{key} = {value!r}" for key, value in pool.items())
    return f"""
[server]
max_body_bytes = 65536

[controller]
connection_string = "Driver=SQLite3;Database={controller}"
cache_ttl_s = 300

[backends.sqlite]
template = "Timeout=5000"

[backends.postgresql]
template = "BoolsAsChar=0"
driver = "{suite_drivers()["postgresql"]}"

[pool]
{pool_lines}

[query]
max_timeout_ms = 30000

[base_model]
{base_model}

[[tokens]]
name = "faults"
sha256 = "{hash_token(FAULT_TOKEN)}"
tenants = ["*"]
classes = ["read", "write", "admin"]
"""


POOL = {"max_size": 10, "max_per_server": 30, "acquire_timeout_ms": 2000, "login_timeout_s": 2}


@contextlib.contextmanager
def fault_stack(root: Path, *, pool: dict[str, Any] | None = None) -> Iterator[FaultStack]:
    """Two private PostgreSQL clusters, a SQLite tenant, and tenantgate over them."""
    root.mkdir(parents=True, exist_ok=True)
    with managed_cluster(durable=True) as a, managed_cluster(durable=True) as b:
        clusters = {"a": a, "b": b}
        databases: dict[int, tuple[str, str]] = {}
        for customer_id, server in ((31, "a"), (32, "a"), (41, "b")):
            pg = clusters[server].server
            name = pg.create_database(f"tg_faults_{customer_id}")
            with contextlib.closing(pg.connect(name)) as conn:
                seed_tenant(conn, "postgresql", contacts=50, custom_columns=custom_columns(3),
                            seed=customer_id)  # fmt: skip
                create_slow_view(conn, "postgresql")
            databases[customer_id] = (server, name)
        demo = create_demo(root / "demo", contacts=50)
        sqlite_path = demo.tenant(1).path
        # A reused demo has the view already.
        with (
            contextlib.closing(sqlite3.connect(sqlite_path)) as conn,
            contextlib.suppress(sqlite3.OperationalError),
        ):
            create_slow_view(conn, "sqlite")
        rows = [(1, "lite.example", f"Driver=SQLite3;Database={sqlite_path}")]
        for customer_id, (server, name) in databases.items():
            pg = clusters[server].server
            rows.append((customer_id, f"pg{customer_id}.example",
                         f"Driver={{PostgreSQL Unicode}};Server={pg.host};Port={pg.port};"
                         f"Database={name};Uid={pg.user};Pwd={{{PG_PASSWORD}}}"))  # fmt: skip
        controller = root / "controller.db"
        controller.unlink(missing_ok=True)
        write_controller(controller, rows)
        config = root / "tenantgate.toml"
        config.write_text(_config(controller, {**POOL, **(pool or {})}), encoding="utf-8")
        log_path = root / "service.log"
        with serve(config, log_path) as (url, pid):
            yield FaultStack(url, pid, clusters, databases, config, log_path, root)
