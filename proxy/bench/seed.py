"""``tenantgate seed``: build (or resume, or drop) a fleet of tenants for load benchmarks.

The fleet's folder ``DIR`` holds what the bench and the service need (the contract of
``proxy.bench.fleet``): ``fleet.json``, ``tenantgate.toml`` and ``token``, plus the
SQLite controller ``controller.db`` (unless the controller is on the server) and, for
SQLite fleets, the tenants' files in ``tenants/``. The backend side is a *store*
(``proxy.bench.seed_store``); this module decides what to build and keeps the books.

**Ownership.** A fleet has an id (a random uuid, kept in ``fleet.json``). Everything it
creates on a server carries a marker with that id, written last; an object under a
name the fleet wants that does not carry it (made by someone else, or by another
fleet) stops the run before anything is touched (exit 2), unless ``force`` says to
drop and recreate it. ``drop`` removes only what carries the marker.

**Resuming.** Before creating an object the seeder writes its name to
``DIR/.seed-inflight`` and removes it once the object is complete. A re-run with the
same options (``tenants`` may grow) skips marked tenants, drops objects listed as in
flight that never got their marker (the half-made tenant of a killed run) and builds
the rest. Marked tenants are (re-)registered in the controller, then listed in
``fleet.json`` (rewritten at most every two seconds, and at the end), so the bench can
use a partial fleet; a tenant appears there only once it is complete and registered.

**Speed.** Stores load rows in bulk (see each store), and ``jobs`` worker processes
(spawned: no connection is inherited across a fork) build batches of tenants in
parallel; row generation is Python and benefits from more than one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import random
import secrets
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

from proxy.auth import hash_token
from proxy.bench.distribution import CustomColumnDistribution
from proxy.bench.fleet import (
    MANIFEST,
    TOKEN,
    Fleet,
    FleetError,
    FleetTenant,
    load_fleet,
    write_fleet,
    write_private,
)
from proxy.bench.seed_progress import Progress
from proxy.bench.seed_store import (
    Obj,
    Owner,
    Registry,
    SeedFailed,
    Store,
    StoreConfig,
    TenantPlan,
)
from proxy.demo.layout import odbc_sqlite
from proxy.demo.seed import BASE_MODEL, SeedCounts
from tenancy import connstr
from tenancy.errors import InvalidConnectionString

__all__ = [
    "DEFAULT_CUSTOM_COLUMNS",
    "SeedFailed",
    "SeedOptions",
    "SeedReport",
    "drop_fleet",
    "open_store",
    "run_seed",
]

DEFAULT_CUSTOM_COLUMNS = "0-50:90%,51-800:10%"
CONTROLLER = "controller.db"
CONFIG = "tenantgate.toml"
INFLIGHT = ".seed-inflight"
LOCK = ".seed.lock"
LAYOUTS = {"postgresql": ("database", "schema"), "sqlite": ("file",), "sqlserver": ("database",)}
MAX_TENANTS = 99_999  # names carry five digits: t00001
MANIFEST_EVERY_S = 2.0


@dataclass(frozen=True)
class SeedOptions:
    directory: Path
    tenants: int = 100
    backend: str = "postgresql"
    layout: str = ""
    """Empty: the backend's first layout (database; file for SQLite)."""
    server: str = field(default="", repr=False)
    """PostgreSQL: a ``postgresql://`` URL; SQL Server: an ODBC string. May hold a password."""
    password: str | None = field(default=None, repr=False)
    prefix: str = "tgfleet"
    database: str = ""
    controller_on_server: bool = False
    custom_columns: CustomColumnDistribution = field(
        default_factory=lambda: CustomColumnDistribution.parse(DEFAULT_CUSTOM_COLUMNS)
    )
    contacts: int = 1000
    seed: int = 0
    jobs: int = 1
    port: int = 8040
    force: bool = False
    progress: TextIO | None = None
    bar: bool | None = None
    """Progress bar (tqdm) or lines; ``None``: a bar when the progress stream is a terminal."""

    @property
    def resolved_layout(self) -> str:
        return self.layout or LAYOUTS[self.backend][0]

    def validate(self) -> None:
        if self.backend not in LAYOUTS:
            raise SeedFailed(f"unknown backend {self.backend!r}", 2)
        if self.resolved_layout not in LAYOUTS[self.backend]:
            raise SeedFailed(
                f"--layout {self.resolved_layout} does not apply to {self.backend} "
                f"(choose {' or '.join(LAYOUTS[self.backend])})",
                2,
            )
        if not 1 <= self.tenants <= MAX_TENANTS:
            raise SeedFailed(f"--tenants must be 1..{MAX_TENANTS}", 2)
        if self.contacts < 1:
            raise SeedFailed("--contacts must be at least 1", 2)
        if self.jobs < 1:
            raise SeedFailed("--jobs must be at least 1", 2)
        if self.backend != "sqlite" and not self.server:
            raise SeedFailed(
                f"a {self.backend} fleet needs the server's admin connection: "
                "--server or --server-env",
                2,
            )
        if self.backend == "sqlite" and self.controller_on_server:
            raise SeedFailed("--controller-on-server needs a server (not --backend sqlite)", 2)
        if self.database and self.resolved_layout != "schema":
            raise SeedFailed("--database names the schema layout's database only", 2)

    def parameters(self) -> dict[str, Any]:
        """What ``fleet.json`` records (no secrets); a resumed run must match it."""
        return {
            "tenants": self.tenants,
            "backend": self.backend,
            "layout": self.resolved_layout,
            "server": public_server(self.backend, self.server),
            "prefix": self.prefix,
            "database": (self.database or self.prefix) if self.resolved_layout == "schema" else "",
            "controller_on_server": self.controller_on_server,
            "custom_columns": str(self.custom_columns),
            "contacts": self.contacts,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class SeedReport:
    directory: Path
    tenants: int
    built: int
    """Tenants built by this run (the others were complete already)."""
    redone: int
    """Half-made objects of an earlier run dropped and built again."""
    elapsed_s: float
    """Building time (after the checks and the helpers)."""

    @property
    def rate(self) -> float:
        return self.built / self.elapsed_s if self.elapsed_s > 0 else 0.0


def public_server(backend: str, server: str) -> str:
    """The server's address without its password (for ``fleet.json`` and messages)."""
    if not server:
        return ""
    if backend == "postgresql":
        try:
            p = conninfo_to_dict(server)
        except Exception:  # noqa: BLE001 - whatever psycopg raises, the value stays private
            return "postgresql://?"
        user = quote(str(p.get("user", "")))
        host = str(p.get("host", "localhost"))
        tail = f"?sslmode={p['sslmode']}" if p.get("sslmode") else ""
        return f"postgresql://{user}@{host}:{p.get('port', 5432)}/{p.get('dbname', '')}{tail}"
    try:
        return connstr.parse(server).without("PWD", "Password").to_odbc()
    except InvalidConnectionString:
        return "?"


def open_store(config: StoreConfig) -> Store:
    # Imported here: a SQLite fleet needs neither psycopg nor pyodbc to be usable.
    if config.backend == "postgresql":
        from proxy.bench.seed_postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(config)
    if config.backend == "sqlserver":
        from proxy.bench.seed_sqlserver import SqlServerStore  # noqa: PLC0415

        return SqlServerStore(config)
    from proxy.bench.seed_sqlite import SqliteStore  # noqa: PLC0415

    return SqliteStore(config)


def column_seed(seed: int, customer_id: int) -> int:
    """The seed of a tenant's custom-column names: tenants differ in names, not only count."""
    return random.Random(f"tenantgate-seed:{seed}:{customer_id}:columns").randrange(1, 2**31)  # noqa: S311


def plan(options: SeedOptions) -> list[TenantPlan]:
    dist, seed = options.custom_columns, options.seed
    return [
        TenantPlan(cid, dist.count_for(cid, seed=seed), column_seed(seed, cid))
        for cid in range(1, options.tenants + 1)
    ]


# ---------------------------------------------------------------------------- DIR files


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / LOCK, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SeedFailed(f"another tenantgate seed is working on {directory}", 2) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Inflight:
    """``DIR/.seed-inflight``: objects being created, so a re-run knows them as its own."""

    def __init__(self, directory: Path, fleet_id: str) -> None:
        self._path = directory / INFLIGHT
        self._fleet_id = fleet_id
        self.objects: set[Obj] = set()
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            if raw["fleet_id"] == fleet_id:
                self.objects = {Obj(kind, name) for kind, name in raw["objects"]}

    def add(self, objs: Sequence[Obj]) -> None:
        self.objects.update(objs)
        self._write()

    def remove(self, objs: Sequence[Obj]) -> None:
        self.objects.difference_update(objs)
        self._write()

    def _write(self) -> None:
        if not self.objects:
            self._path.unlink(missing_ok=True)
            return
        body = {
            "fleet_id": self._fleet_id,
            "objects": sorted([o.kind, o.name] for o in self.objects),
        }
        write_private(self._path, json.dumps(body))


class _SqliteRegistry:
    """``DIR/controller.db``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn = sqlite3.connect(path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS Customer (customer_id INTEGER PRIMARY KEY, "
            "domainname TEXT NOT NULL UNIQUE, sqlconnectstring TEXT NOT NULL)"
        )
        self._conn.commit()

    @property
    def connection_string(self) -> str:
        return odbc_sqlite(self._path.resolve())

    def register(self, rows: Sequence[tuple[int, str, str]]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO Customer (customer_id, domainname, sqlconnectstring) "
            "VALUES (?, ?, ?)",
            rows,
        )
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


def _config_text(fleet: Fleet, token_sha256: str, port: int) -> str:
    base_model = "\n".join(
        f"{table} = [{', '.join(json.dumps(c) for c in cols)}]"
        for table, cols in BASE_MODEL.items()
    )
    backends = (
        '\n[backends.sqlite]\ntemplate = "Timeout=5000"\n' if fleet.backend == "sqlite" else ""
    )
    return f"""# Written by `tenantgate seed` for fleet {fleet.fleet_id}; rewritten on each run.
# Serve it: tenantgate serve --config {CONFIG}   (the bearer token is in ./{TOKEN})

[server]
port = {port}

[controller]
connection_string = {json.dumps(fleet.controller_connection_string)}
{backends}
[base_model]
{base_model}

[[tokens]]
name = "fleet"
sha256 = "{token_sha256}"
tenants = ["*"]
classes = ["read", "write", "admin"]
"""


def _token(directory: Path, *, fresh: bool) -> str:
    """The fleet's bearer token: kept across runs, new for a new fleet."""
    path = directory / TOKEN
    with contextlib.suppress(OSError):
        token = path.read_text(encoding="utf-8").strip()
        if token and not fresh:
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def _existing_fleet(directory: Path, force: bool) -> Fleet | None:
    if not (directory / MANIFEST).exists():
        ours = (CONTROLLER, CONFIG, TOKEN, "tenants")
        found = [name for name in ours if (directory / name).exists()]
        if found and not force:
            raise SeedFailed(
                f"{directory} holds {', '.join(found)} but no {MANIFEST}: not a fleet "
                "tenantgate seed made; choose another --dir, or --force to overwrite",
                2,
            )
        if found:
            (directory / CONTROLLER).unlink(missing_ok=True)
        return None
    try:
        fleet = load_fleet(directory)
    except FleetError as exc:
        raise SeedFailed(f"{exc}; remove {directory} by hand to start over", 2) from None
    if not fleet.fleet_id or not fleet.parameters:
        raise SeedFailed(f"{directory / MANIFEST} was not written by tenantgate seed", 2)
    return fleet


def _check_same(found: dict[str, Any], wanted: dict[str, Any], directory: Path) -> None:
    diff = [k for k in wanted if k != "tenants" and found.get(k) != wanted[k]]
    if diff:
        was = ", ".join(f"{k}={found.get(k)!r}" for k in diff)
        raise SeedFailed(
            f"{directory} holds a fleet seeded with {was}; re-run with the same options "
            f"to resume it, or drop it first (tenantgate seed --dir {directory} --drop)",
            2,
        )
    if int(found.get("tenants", 0)) > wanted["tenants"]:
        raise SeedFailed(
            f"the fleet in {directory} has {found['tenants']} tenants: --tenants can grow "
            "it, not shrink it (drop it first)",
            2,
        )


# ---------------------------------------------------------------------------- building


_WORKER: Store | None = None


def _worker_init(config: StoreConfig) -> None:
    global _WORKER  # noqa: PLW0603 - one store per worker process
    # Ctrl-C reaches the whole process group: the seeder decides, and lets the batches
    # that are running finish (see _build_all), so an interrupt leaves nothing half-made.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = open_store(config)


def _worker_build(batch: Sequence[TenantPlan]) -> None:
    assert _WORKER is not None
    _build(_WORKER, batch)


def _build(store: Store, batch: Sequence[TenantPlan]) -> None:
    try:
        store.build(batch)
    except SeedFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - a driver's error, told without its traceback
        ids = ", ".join(str(t.customer_id) for t in batch)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise SeedFailed(f"seeding tenant(s) {ids} failed: {type(exc).__name__}: {first}") from None


class _Books:
    """The controller and the manifest, kept in step as batches complete."""

    def __init__(
        self,
        directory: Path,
        fleet: Fleet,
        store: Store,
        registry: Registry,
        options: SeedOptions,
    ) -> None:
        self.directory = directory
        self.fleet = fleet
        self.store = store
        self.registry = registry
        self.tenants: dict[int, FleetTenant] = {t.customer_id: t for t in fleet.tenants}
        self.counts = SeedCounts.for_contacts(options.contacts)
        self._flushed = 0.0

    def record(self, plans: Sequence[TenantPlan]) -> None:
        if not plans:
            return
        entries = [
            FleetTenant(
                customer_id=p.customer_id,
                domain=p.domain,
                connection_string=self.store.connection_string(p),
                custom_columns=p.custom_columns,
                contacts=self.counts.contacts,
                accounts=self.counts.accounts,
                opportunities=self.counts.opportunities,
            )
            for p in plans
        ]
        self.registry.register([(t.customer_id, t.domain, t.connection_string) for t in entries])
        self.tenants.update((t.customer_id, t) for t in entries)
        if time.monotonic() - self._flushed >= MANIFEST_EVERY_S:
            self.flush(complete=False)

    def flush(self, *, complete: bool) -> None:
        self.fleet = Fleet(
            fleet_id=self.fleet.fleet_id,
            backend=self.fleet.backend,
            layout=self.fleet.layout,
            controller_connection_string=self.fleet.controller_connection_string,
            controller_table="Customer",
            tenants=tuple(self.tenants[cid] for cid in sorted(self.tenants)),
            complete=complete,
            parameters=self.fleet.parameters,
        )
        write_fleet(self.directory, self.fleet)
        self._flushed = time.monotonic()


def _batches(todo: Sequence[TenantPlan], size: int) -> Iterator[list[TenantPlan]]:
    for i in range(0, len(todo), size):
        yield list(todo[i : i + size])


def _build_all(
    *,
    store: Store,
    todo: Sequence[TenantPlan],
    jobs: int,
    inflight: _Inflight,
    books: _Books,
    progress: Progress,
) -> None:
    size = store.batch_size()
    jobs = min(jobs, math.ceil(len(todo) / size)) if todo else 1

    def done(batch: Sequence[TenantPlan]) -> None:
        books.record(batch)
        inflight.remove([store.tenant_obj(t) for t in batch])
        progress.update(len(batch))

    if jobs <= 1:
        for batch in _batches(todo, size):
            inflight.add([store.tenant_obj(t) for t in batch])
            _build(store, batch)
            done(batch)
        return
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=get_context("spawn"),
        initializer=_worker_init,
        initargs=(store.config,),
    ) as pool:
        pending: dict[Future[None], list[TenantPlan]] = {}
        batches = _batches(todo, size)
        try:
            while True:
                while len(pending) < 2 * jobs and (batch := next(batches, [])):
                    inflight.add([store.tenant_obj(t) for t in batch])
                    pending[pool.submit(_worker_build, batch)] = batch
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    batch = pending.pop(future)
                    future.result()
                    done(batch)
        except BaseException:
            # Interrupted, or a batch failed: the batches not started are cancelled, the
            # running ones finish (a few tenants each) and are booked before giving up.
            for future in pending:
                future.cancel()
            wait(pending)
            for future, batch in pending.items():
                if not future.cancelled() and future.exception() is None:
                    done(batch)
            raise


def run_seed(options: SeedOptions) -> SeedReport:
    """Create or resume the fleet ``options`` describe; see the module docstring."""
    options.validate()
    directory = options.directory.resolve()
    made_dir = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return _run_locked(options, directory)
    finally:
        if made_dir and not (directory / MANIFEST).exists():  # refused before it began
            (directory / LOCK).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.rmdir()


def _run_locked(options: SeedOptions, directory: Path) -> SeedReport:
    with _locked(directory):
        existing = _existing_fleet(directory, options.force)
        parameters = options.parameters()
        if existing is not None:
            _check_same(dict(existing.parameters), parameters, directory)
        fleet_id = existing.fleet_id if existing else uuid.uuid4().hex
        config = StoreConfig(
            backend=options.backend,
            layout=options.resolved_layout,
            fleet_id=fleet_id,
            directory=str(directory),
            contacts=options.contacts,
            seed=options.seed,
            prefix=options.prefix,
            database=options.database,
            server=options.server,
            password=options.password,
            controller_on_server=options.controller_on_server,
        )
        store = open_store(config)
        try:
            return _seed(options, directory, existing, parameters, store)
        finally:
            store.close()


def _classify(
    found: dict[Obj, Owner], wanted: set[Obj], fleet_id: str, inflight: _Inflight
) -> tuple[list[Obj], list[Obj]]:
    """The existing objects under the fleet's names that are not its complete ones:
    (half-made by an earlier run of this fleet, someone else's)."""
    half_made: list[Obj] = []
    foreign: list[Obj] = []
    for obj, owner in sorted(found.items(), key=lambda item: str(item[0])):
        if obj not in wanted or owner.fleet_id == fleet_id:
            continue
        if owner.fleet_id is None and obj in inflight.objects:
            half_made.append(obj)
        else:
            foreign.append(obj)
    return half_made, foreign


def _seed(
    options: SeedOptions,
    directory: Path,
    existing: Fleet | None,
    parameters: dict[str, Any],
    store: Store,
) -> SeedReport:
    fleet_id = store.config.fleet_id
    plans = plan(options)
    tenant_objs = {store.tenant_obj(p): p for p in plans}
    helpers = store.helpers()
    inflight = _Inflight(directory, fleet_id)
    found = store.inventory([*tenant_objs, *(obj for obj, _ in helpers)])
    wanted = {*tenant_objs, *(obj for obj, _ in helpers)}
    half_made, foreign = _classify(found, wanted, fleet_id, inflight)
    if foreign and not options.force:
        shown = ", ".join(str(o) for o in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise SeedFailed(
            f"refusing to touch {len(foreign)} object(s) this fleet did not create: {shown} "
            f"(on {parameters['server'] or directory}). Choose another --prefix"
            f"{' or --database' if options.resolved_layout == 'schema' else ''}, "
            "or --force to drop and recreate them",
            2,
        )

    fleet = Fleet(
        fleet_id=fleet_id,
        backend=options.backend,
        layout=options.resolved_layout,
        controller_connection_string=existing.controller_connection_string if existing else "",
        controller_table="Customer",
        tenants=(),
        complete=False,
        parameters=parameters,
    )
    if existing is None:
        write_fleet(directory, fleet)  # the fleet id, before anything carries it

    discarded = [*half_made, *foreign]
    inflight.add(discarded)
    for obj in discarded:
        store.discard(obj)
    inflight.add([obj for obj, _ in helpers if obj not in found or obj in discarded])
    store.prepare()
    # Half-made objects are gone now, the rest is either complete or absent: a clean
    # slate (tenants are listed again as their batches start).
    inflight.remove(list(inflight.objects))

    if discarded:  # a dropped fleet database takes its schemas with it
        found = store.inventory(list(tenant_objs))
    complete = [
        tenant_objs[obj]
        for obj, owner in found.items()
        if obj in tenant_objs and owner.fleet_id == fleet_id and obj not in discarded
    ]
    registry: Registry = store.registry() or _SqliteRegistry(directory / CONTROLLER)
    try:
        fleet = dataclasses.replace(fleet, controller_connection_string=registry.connection_string)
        token = _token(directory, fresh=existing is None)
        write_private(directory / CONFIG, _config_text(fleet, hash_token(token), options.port))
        books = _Books(directory, fleet, store, registry, options)
        books.record(sorted(complete, key=lambda p: p.customer_id))
        books.flush(complete=False)

        done_ids = {p.customer_id for p in complete}
        todo = [p for p in plans if p.customer_id not in done_ids]
        progress = Progress(len(plans), len(done_ids), stream=options.progress, bar=options.bar)
        started = time.monotonic()
        try:
            _build_all(
                store=store,
                todo=todo,
                jobs=options.jobs,
                inflight=inflight,
                books=books,
                progress=progress,
            )
        finally:
            progress.close()
            books.flush(complete=len(books.tenants) >= len(plans))
        elapsed = time.monotonic() - started
    finally:
        registry.close()
    return SeedReport(directory, len(plans), len(todo), len(half_made), elapsed)


def drop_fleet(
    directory: Path, *, server: str | None = None, password: str | None = None
) -> list[Obj]:
    """Drop everything the fleet in ``directory`` created (only what carries its
    marker), then its files in ``directory``; what was dropped on the backend.

    ``server`` replaces the address recorded in ``fleet.json`` (which has no password);
    ``password`` completes either.
    """
    directory = directory.resolve()
    if not (directory / MANIFEST).is_file():
        raise SeedFailed(f"no fleet manifest at {directory / MANIFEST}: nothing to drop", 2)
    with _locked(directory):
        try:
            fleet = load_fleet(directory)
        except FleetError as exc:
            raise SeedFailed(str(exc), 2) from None
        p = dict(fleet.parameters)
        if not fleet.fleet_id or not p:
            raise SeedFailed(f"{directory / MANIFEST} was not written by tenantgate seed", 2)
        config = StoreConfig(
            backend=fleet.backend,
            layout=fleet.layout,
            fleet_id=fleet.fleet_id,
            directory=str(directory),
            contacts=int(p.get("contacts", 1)),
            seed=int(p.get("seed", 0)),
            prefix=str(p.get("prefix", "tgfleet")),
            database=str(p.get("database", "")),
            server=server or str(p.get("server", "")),
            password=password,
            controller_on_server=bool(p.get("controller_on_server", False)),
        )
        store = open_store(config)
        try:
            inflight = _Inflight(directory, fleet.fleet_id)
            leftovers = store.inventory(sorted(inflight.objects, key=str))
            dropped = store.drop_fleet()
            for obj, owner in leftovers.items():
                if owner.fleet_id is None and obj not in dropped:
                    store.discard(obj)  # half-made by a killed run: ours, unmarked
                    dropped.append(obj)
        finally:
            store.close()
        for name in (CONTROLLER, CONFIG, TOKEN, INFLIGHT, MANIFEST):
            (directory / name).unlink(missing_ok=True)
    (directory / LOCK).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        os.rmdir(directory)  # only when nothing else is in it
    return dropped
