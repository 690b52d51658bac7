"""Column metadata of tenants' tables: loaded from the catalog, cached, interned.

``TableMetadata`` satisfies ``rewriter.shapes.TableShape`` structurally. Identical
shapes (same physical table name, same columns with the same types and nullability
in the same order, same base-model declaration) are *interned*: they are one object,
found through a weak-value dictionary keyed by the fingerprint (SHA-256 of the
canonical form), so 10,000 tenants
with the default schema hold one ``TableMetadata`` and one fingerprint, and the
rewriter's plans keyed by fingerprint are shared between them.

``MetadataCache`` keys entries by ``(location.key, table.casefold())``. A miss loads
the table through the tenant's ``ConnectionSource``; concurrent misses for one key
wait for the same load and get its result or its error. Found tables live for ``ttl``
seconds, absent ones (``None``) for ``negative_ttl``. ``refresh`` drops one entry, or
all of a tenant's through a per-location index; ``refresh_if_quiet`` does so only for
tables not refreshed in the last ``quiet`` seconds (a caller that suspects staleness
cannot cause a storm of catalog reads). Key strings are interned so that entries
share them (``benchmarks/metadata_memory.py`` measures what an entry costs).
Database errors become ``MetadataUnavailable`` in one place (``_translate_errors``);
other exceptions (a saturated pool, say) propagate unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tenancy import catalog
from tenancy.catalog import Column
from tenancy.errors import MetadataUnavailable
from tenancy.singleflight import SingleFlight
from tenancy.sources import DB_ERRORS, ConnectionSource, sqlstate_of
from tenancy.tlru import CountedTLRUCache

if TYPE_CHECKING:
    from tenancy.location import TenantLocation

__all__ = ["BaseModel", "Column", "MetadataCache", "TableMetadata"]


class BaseModel:
    """The default schema every tenant shares: per table, its columns in order.

    Table and column names are case-insensitive.
    """

    __slots__ = ("_tables",)

    def __init__(self, tables: Mapping[str, Sequence[str]]) -> None:
        folded: dict[str, tuple[str, ...]] = {}
        for table, columns in tables.items():
            if isinstance(columns, str):
                raise TypeError(f"base model of {table!r}: a list of column names is expected")
            key = table.casefold()
            if key in folded:
                raise ValueError(f"base model names table {table!r} twice (ignoring case)")
            names = tuple(columns)
            if len({name.casefold() for name in names}) != len(names):
                raise ValueError(f"base model of {table!r} names a column twice (ignoring case)")
            folded[key] = names
        self._tables = folded

    def columns_for(self, table: str) -> tuple[str, ...] | None:
        """The declared base columns of ``table``, or ``None`` if it has no base model."""
        return self._tables.get(table.casefold())

    def tables(self) -> list[str]:
        return list(self._tables)


@dataclass(frozen=True, slots=True, eq=False, repr=False, weakref_slot=True)
class TableMetadata:
    """One table's shape. Immutable and interned: build it with ``TableMetadata.build``."""

    name: str
    columns: tuple[Column, ...]
    column_names: tuple[str, ...]
    base_columns: tuple[str, ...]
    custom_columns: tuple[str, ...]
    fingerprint: str
    declared_base: tuple[str, ...] | None = field(repr=False)
    _folded: Mapping[str, str | None] = field(repr=False)
    """Case-folded name → the one column with that fold, or ``None`` if several."""
    _ambiguous: frozenset[str] = field(repr=False)
    """The columns whose fold is shared: only they need an exact-name check."""

    @classmethod
    def build(
        cls, name: str, columns: Iterable[Column], base: Sequence[str] | None = None
    ) -> TableMetadata:
        """The interned metadata of a table; ``base`` is its declared base model, if any."""
        cols = tuple(columns)
        declared = None if base is None else tuple(base)
        canonical = json.dumps(
            [
                name,
                [[c.name, c.type_name, c.nullable] for c in cols],
                None if declared is None else list(declared),
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        # Keyed by the digest, not the canonical text: on an 800-column table the text
        # is about 40 KB that every distinct shape would otherwise keep alive.
        fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
        with _INTERN_LOCK:
            found = _INTERNED.get(fingerprint)
            if found is not None:
                return found
        made = cls._make(name, cols, declared, fingerprint)
        with _INTERN_LOCK:
            return _INTERNED.setdefault(fingerprint, made)

    @classmethod
    def _make(
        cls,
        name: str,
        cols: tuple[Column, ...],
        declared: tuple[str, ...] | None,
        fingerprint: str,
    ) -> TableMetadata:
        names = tuple(c.name for c in cols)
        if len(set(names)) != len(names):
            raise ValueError(f"table {name!r} lists a column twice")
        folded: dict[str, str | None] = {}
        shared: set[str] = set()
        for column in names:
            key = column.casefold()
            if key == column:
                key = column  # one string, not two equal ones (most custom names are lower case)
            if key in folded:
                shared.add(key)
                folded[key] = None
            else:
                folded[key] = column
        ambiguous = frozenset(c for c in names if c.casefold() in shared)

        def lookup(wanted: str) -> str | None:
            # A physical name's fold maps to itself, or to None when shared.
            found = folded.get(wanted.casefold())
            return wanted if found is None and wanted in ambiguous else found

        if declared is None:
            base = names
        else:
            present = (lookup(column) for column in declared)
            base = tuple(dict.fromkeys(c for c in present if c is not None))
        in_base = frozenset(base)
        custom = tuple(c for c in names if c not in in_base)
        return cls(name, cols, names, base, custom, fingerprint, declared, folded, ambiguous)

    def lookup(self, name: str) -> str | None:
        """The physical spelling of ``name``: exact match, else unique case-insensitive."""
        folded = self._folded
        found = folded.get(name)
        if found is not None and found == name:
            return found  # exact, and already in folded form: no casefold() needed
        found = folded.get(name.casefold())
        if found is None and name in self._ambiguous:
            return name
        return found

    def column(self, name: str) -> Column | None:
        """The ``Column`` that ``lookup(name)`` finds."""
        physical = self.lookup(name)
        if physical is None:
            return None
        return self.columns[self.column_names.index(physical)]

    def type_of(self, name: str) -> str | None:
        """The declared type of column ``name`` (``rewriter.shapes.TypedShape``)."""
        column = self.column(name)
        return None if column is None else column.type_name

    def __repr__(self) -> str:
        return (
            f"TableMetadata({self.name!r}, {len(self.base_columns)} base + "
            f"{len(self.custom_columns)} custom columns, {self.fingerprint[:12]})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TableMetadata):
            return NotImplemented
        return self is other or self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)


_INTERNED: weakref.WeakValueDictionary[str, TableMetadata] = weakref.WeakValueDictionary()
"""Fingerprint → the live ``TableMetadata`` with that shape."""
_INTERN_LOCK = threading.Lock()


def interned_count() -> int:
    """How many distinct table shapes are alive."""
    with _INTERN_LOCK:
        return len(_INTERNED)


# -- the cache ----------------------------------------------------------------------

_Key = tuple[str, str]
T = TypeVar("T")

_CONNECTION_LOST = ("08", "57P01", "57P02")
"""SQLSTATEs of a connection the server closed: connection exceptions (``08xxx``,
ODBC's ``08S01``), PostgreSQL's administrator and crash shutdowns."""
"""``(location.key, table.casefold())``."""


def _key(location: TenantLocation, table: str) -> _Key:
    # Interned: ``casefold()`` returns a new string, so without this every entry would
    # hold its own copy (``location.key`` is interned already).
    return location.key, sys.intern(table.casefold())


@dataclass(frozen=True, slots=True)
class _Absent:
    """A cached "no such table"."""


_ABSENT = _Absent()


class _IndexedCache(CountedTLRUCache[_Key, "TableMetadata | _Absent"]):
    """A TLRU cache that keeps ``location.key → {table keys}`` in step with its content."""

    def __init__(
        self, maxsize: int, ttu: Callable[[_Key, Any, float], float], timer: Callable[[], float]
    ) -> None:
        super().__init__(maxsize=maxsize, ttu=ttu, timer=timer)
        # A tuple, not a set: a tenant has a handful of tables, and a 3-element set
        # costs about 150 bytes more per tenant than a 3-element tuple.
        self.by_location: dict[str, tuple[str, ...]] = {}

    def __setitem__(self, key: _Key, value: TableMetadata | _Absent) -> None:
        super().__setitem__(key, value)
        if key in self:
            tables = self.by_location.get(key[0], ())
            if key[1] not in tables:
                self.by_location[key[0]] = (*tables, key[1])

    def __delitem__(self, key: _Key) -> None:
        try:
            super().__delitem__(key)
        finally:
            self._forget(key)

    def expire(self, time: float | None = None) -> list[tuple[_Key, TableMetadata | _Absent]]:
        expired = list(super().expire(time))
        for key, _ in expired:
            self._forget(key)
        return expired

    def clear(self) -> None:
        super().clear()
        self.by_location.clear()

    def _forget(self, key: _Key) -> None:
        tables = self.by_location.get(key[0])
        if tables is not None and key[1] in tables:
            rest = tuple(t for t in tables if t != key[1])
            if rest:
                self.by_location[key[0]] = rest
            else:
                del self.by_location[key[0]]


class MetadataCache:
    def __init__(
        self,
        *,
        source_for: Callable[[TenantLocation], ConnectionSource],
        base_model: BaseModel,
        ttl: float,
        negative_ttl: float,
        maxsize: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
        quiet: float = 1.0,
        db_errors: tuple[type[BaseException], ...] = DB_ERRORS,
    ) -> None:
        if ttl <= 0 or negative_ttl < 0 or maxsize <= 0:
            raise ValueError("ttl and maxsize must be positive, negative_ttl non-negative")
        self._source_for = source_for
        self._base_model = base_model
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._db_errors = db_errors
        self._clock = clock
        self._cache = _IndexedCache(maxsize, self._time_to_use, clock)
        self._quiet = quiet
        # When each entry was last refreshed, kept for ``quiet`` seconds (pruned in
        # bulk once large): the guard of ``refresh_if_quiet``.
        self._refreshed_at: dict[_Key, float] = {}
        self._flights: SingleFlight[_Key, TableMetadata | _Absent] = SingleFlight()
        self._lock = self._flights.lock
        self._stats = dict.fromkeys(
            ("hits", "misses", "negative_hits", "loads", "errors", "refreshes", "forced"), 0
        )

    @property
    def base_model(self) -> BaseModel:
        return self._base_model

    @property
    def generation(self) -> int:
        """Changes to the cache so far (``tenancy.tlru``)."""
        return self._cache.generation

    def _time_to_use(self, _key: _Key, value: object, now: float) -> float:
        return now + (self._negative_ttl if value is _ABSENT else self._ttl)

    def get(self, location: TenantLocation, table: str) -> TableMetadata | None:
        """The tenant's table, or ``None`` when it has no such table."""
        key = _key(location, table)
        found = self._flights.run(
            key,
            lambda: self._load(location, table),
            cached=lambda: self._cached(key),
            store=lambda value: self._store(key, value),
        )
        return found if isinstance(found, TableMetadata) else None

    def peek(self, location: TenantLocation, table: str) -> tuple[bool, TableMetadata | None]:
        """``get`` from the cache alone: ``(False, None)`` when answering needs the catalog.

        For callers that must not block (an event loop); ``(True, None)`` is a cached
        "no such table".
        """
        key = _key(location, table)
        with self._lock:
            # A subscript, not ``get``: TLRUCache.get looks the key up twice (every
            # request peeks; 0.42 against 1.29 µs on the test box).
            try:
                cached = self._cache[key]
            except KeyError:
                return False, None
            self._stats["hits" if isinstance(cached, TableMetadata) else "negative_hits"] += 1
        return True, cached if isinstance(cached, TableMetadata) else None

    def refresh(self, location: TenantLocation, table: str | None = None) -> None:
        """Forget one table of a tenant, or all of them; the next ``get`` reloads."""
        now = self._clock()
        with self._lock:
            self._stats["refreshes"] += 1
            if table is not None:
                keys = [_key(location, table)]
            else:
                where = location.key
                keys = [(where, t) for t in self._cache.by_location.get(where, ())]
                self._flights.invalidate_where(lambda k: k[0] == where)
            self._prune_refreshed(now)
            for key in keys:
                self._refreshed_at[key] = now
                self._flights.invalidate(key)
                with contextlib.suppress(KeyError):
                    del self._cache[key]

    def clear(self) -> None:
        """Forget every table of every tenant."""
        with self._lock:
            self._stats["refreshes"] += 1
            self._flights.clear()
            self._cache.clear()

    def refresh_if_quiet(self, location: TenantLocation, tables: Iterable[str]) -> bool:
        """``refresh`` those of ``tables`` not refreshed in the last ``quiet`` seconds.

        For a caller that suspects the cache is behind the catalog (a query names a
        column the cached table lacks): true if at least one table was refreshed, so
        that validating again may change the answer. The quiet interval bounds the
        catalog reads that a flood of requests naming a column that really is absent
        can cause: one per table per interval.
        """
        now = self._clock()
        refreshed = False
        with self._lock:
            for table in tables:
                last = self._refreshed_at.get(_key(location, table))
                if last is None or now - last >= self._quiet:
                    self._stats["forced"] += 1
                    self.refresh(location, table)
                    refreshed = True
        return refreshed

    def _prune_refreshed(self, now: float) -> None:
        """Drop refresh times older than the quiet interval (with the lock held)."""
        stamps = self._refreshed_at
        if len(stamps) > 1024:
            for key in [k for k, at in stamps.items() if now - at >= self._quiet]:
                del stamps[key]

    def list_tables(self, location: TenantLocation) -> list[str]:
        """The tenant's tables and views, read from its catalog now (not cached)."""
        with self._translate_errors(location):
            return self._read(location, catalog.list_tables)

    def get_stats(self) -> dict[str, int]:
        with self._lock:
            return {**self._stats, "size": len(self._cache), "shapes": interned_count()}

    def _cached(self, key: _Key) -> TableMetadata | _Absent | None:
        """The cache's answer for ``key``, counted (called with the lock held)."""
        cached = self._cache.get(key)
        if isinstance(cached, TableMetadata):
            self._stats["hits"] += 1
        elif cached is not None:
            self._stats["negative_hits"] += 1
        else:
            self._stats["misses"] += 1
        return cached

    def _store(self, key: _Key, value: TableMetadata | _Absent) -> None:
        """Caches a load's outcome (with the lock held; only if not refreshed meanwhile)."""
        if value is not _ABSENT or self._negative_ttl > 0:
            self._cache[key] = value

    def _load(self, location: TenantLocation, table: str) -> TableMetadata | _Absent:
        with self._lock:
            self._stats["loads"] += 1
        try:
            with self._translate_errors(location):
                found = self._read(location, catalog.read_table, table)
            if found is None:
                return _ABSENT
            name, columns = found
            return TableMetadata.build(name, columns, self._base_model.columns_for(name))
        except BaseException:
            with self._lock:
                self._stats["errors"] += 1
            raise

    def _read(self, location: TenantLocation, read: Callable[..., T], *args: Any) -> T:
        """``read(conn, location, *args)`` on a connection of the tenant's; once more on
        a fresh one when the server closed the first under it (a restart, a terminated
        backend: the pool had not seen it yet). A catalog read changes nothing."""
        try:
            with self._source_for(location)() as conn:
                return read(conn, location, *args)
        except self._db_errors as error:
            state = sqlstate_of(error) or ""
            if not state.startswith(_CONNECTION_LOST):
                raise
        with self._source_for(location)() as conn:
            return read(conn, location, *args)

    @contextlib.contextmanager
    def _translate_errors(self, location: TenantLocation) -> Iterator[None]:
        """The one place where database errors become ``MetadataUnavailable``."""
        try:
            yield
        except self._db_errors as error:
            state = sqlstate_of(error)
            raise MetadataUnavailable(
                f"the catalog of the tenant's database on {location.server_key} could not be "
                f"read (SQLSTATE {state or 'unknown'})",
                sqlstate=state,
                server=location.server_key,
            ) from None
