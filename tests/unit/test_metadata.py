"""TableMetadata and MetadataCache over real SQLite tenant files, reached through ODBC."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rewriter.shapes import TableShape
from tenancy.backends import BackendKind
from tenancy.connstr import parse
from tenancy.errors import MetadataUnavailable
from tenancy.location import TenantLocation
from tenancy.metadata import BaseModel, Column, MetadataCache, TableMetadata, interned_count
from tenancy.sources import ConnectionSource, odbc_source

BASE = BaseModel(
    {"Contacts": ["ContactID", "AccountID", "FirstName", "LastName", "Email"], "Notes": ["NoteID"]}
)
CONTACTS_DDL = (
    'CREATE TABLE "Contacts" ("ContactID" INTEGER PRIMARY KEY, "FirstName" TEXT, '
    '"LastName" TEXT, "AccountID" INTEGER NOT NULL, "Email" VARCHAR(200))'
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def location_for(path: Path) -> TenantLocation:
    cs = parse(f"Driver=SQLite3;Database={path};Pwd=hunter2")
    return TenantLocation(
        kind=BackendKind.SQLITE,
        connect=cs,
        pool_key=f"sqlite:{path}",
        server_key="sqlite",
        catalog=None,
        schema=None,
        database=str(path),
    )


def make_tenant(path: Path, *statements: str) -> TenantLocation:
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in statements:
            db.execute(statement)
        db.commit()
    return location_for(path)


class Sources:
    """Opens real ODBC connections and counts them; optionally slow, to force overlap."""

    def __init__(self, delay: float = 0.0) -> None:
        self.opens = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, location: TenantLocation) -> ConnectionSource:
        inner = odbc_source(location.connect.to_odbc())

        @contextlib.contextmanager
        def connection() -> Iterator[Any]:
            with self._lock:
                self.opens += 1
            time.sleep(self.delay)
            with inner() as conn:
                yield conn

        return connection


def make_cache(
    sources: Sources | None = None, *, clock: Callable[[], float] | None = None, **kw: Any
) -> tuple[MetadataCache, Sources]:
    sources = sources or Sources()
    cache = MetadataCache(
        source_for=sources,
        base_model=BASE,
        ttl=kw.pop("ttl", 300),
        negative_ttl=kw.pop("negative_ttl", 10),
        clock=clock or time.monotonic,
        **kw,
    )
    return cache, sources


# -- TableMetadata ------------------------------------------------------------------

COLS = [
    Column("ContactID", "INTEGER", False),
    Column("Custom_B", "TEXT", True),
    Column("Email", "TEXT", True),
    Column("FirstName", "TEXT", True),
    Column("Custom_A", "TEXT", True),
]


def test_base_and_custom_split_and_order() -> None:
    meta = TableMetadata.build("Contacts", COLS, BASE.columns_for("contacts"))
    assert meta.name == "Contacts"
    assert meta.column_names == ("ContactID", "Custom_B", "Email", "FirstName", "Custom_A")
    assert meta.base_columns == ("ContactID", "FirstName", "Email")  # base-model order
    assert meta.custom_columns == ("Custom_B", "Custom_A")  # ordinal order
    assert meta.columns[1] == Column("Custom_B", "TEXT", True)
    shape: TableShape = meta  # structural: checked by mypy
    assert shape.lookup("email") == "Email"


def test_base_model_matches_case_insensitively() -> None:
    cols = [Column("contactid", "INTEGER", False), Column("EMAIL", "TEXT", True)]
    meta = TableMetadata.build("contacts", cols, BASE.columns_for("CONTACTS"))
    assert meta.base_columns == ("contactid", "EMAIL")
    assert meta.custom_columns == ()


def test_table_without_base_model_is_all_base() -> None:
    meta = TableMetadata.build("Audit", COLS, BASE.columns_for("Audit"))
    assert BASE.columns_for("Audit") is None
    assert meta.base_columns == meta.column_names
    assert meta.custom_columns == ()


def test_lookup_rules() -> None:
    cols = [Column("Name", "TEXT", True), Column("NAME", "TEXT", True), Column("Email", "T", True)]
    meta = TableMetadata.build("T", cols)
    assert meta.lookup("Name") == "Name"  # exact wins
    assert meta.lookup("NAME") == "NAME"
    assert meta.lookup("name") is None  # ambiguous by case
    assert meta.lookup("email") == "Email"  # unique case-insensitive
    assert meta.lookup("EMAIL") == "Email"
    assert meta.lookup("Phone") is None
    assert meta.column("email") == Column("Email", "T", True)
    assert meta.column("name") is None


def test_interning_and_fingerprints() -> None:
    a = TableMetadata.build("Contacts", COLS, BASE.columns_for("Contacts"))
    b = TableMetadata.build("Contacts", list(COLS), list(BASE.columns_for("Contacts") or ()))
    assert a is b
    assert len(a.fingerprint) == 64
    int(a.fingerprint, 16)
    variants = [
        TableMetadata.build("contacts", COLS, BASE.columns_for("Contacts")),  # name spelling
        TableMetadata.build("Contacts", COLS[:-1], BASE.columns_for("Contacts")),  # fewer
        TableMetadata.build("Contacts", [*COLS[:-1], Column("Custom_A", "INT", True)], None),
        TableMetadata.build(
            "Contacts", [*COLS[:-1], Column("Custom_A", "TEXT", False)], BASE.columns_for("x")
        ),
        TableMetadata.build("Contacts", list(reversed(COLS)), BASE.columns_for("Contacts")),
        TableMetadata.build("Contacts", COLS, None),  # no base model declared
        TableMetadata.build("Contacts", COLS, ["ContactID"]),  # another base model
    ]
    prints = {a.fingerprint, *(v.fingerprint for v in variants)}
    assert len(prints) == 1 + len(variants)
    assert all(v is not a and v != a for v in variants)


def test_ten_thousand_tenants_hold_one_object() -> None:
    tenants = [
        TableMetadata.build("Contacts", [Column(c.name, c.type_name, c.nullable) for c in COLS])
        for _ in range(10_000)
    ]
    assert len({id(meta) for meta in tenants}) == 1


def test_interned_shapes_are_released() -> None:
    gc.collect()
    before = interned_count()
    meta = TableMetadata.build("Ephemeral", [Column("x", "INT", True)])
    assert interned_count() == before + 1
    del meta
    gc.collect()
    assert interned_count() == before


def test_metadata_is_immutable() -> None:
    meta = TableMetadata.build("Contacts", COLS)
    with pytest.raises(AttributeError):
        meta.name = "Other"  # type: ignore[misc]
    assert "Custom_A" not in repr(meta)  # short repr even for 800 columns


def test_base_model_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="twice"):
        BaseModel({"Contacts": ["Email", "EMAIL"]})
    with pytest.raises(ValueError, match="twice"):
        BaseModel({"Contacts": ["A"], "CONTACTS": ["B"]})
    with pytest.raises(TypeError):
        BaseModel({"Contacts": "Email"})


# -- MetadataCache over SQLite files ------------------------------------------------


def test_load_from_sqlite(tmp_path: Path) -> None:
    location = make_tenant(
        tmp_path / "t1.db", CONTACTS_DDL, 'ALTER TABLE "Contacts" ADD "Shoe Size" INTEGER'
    )
    cache, _ = make_cache()
    meta = cache.get(location, "contacts")
    assert meta is not None
    assert meta.name == "Contacts"
    assert meta.base_columns == ("ContactID", "AccountID", "FirstName", "LastName", "Email")
    assert meta.custom_columns == ("Shoe Size",)
    assert meta.columns[3] == Column("AccountID", "INTEGER", False)
    assert meta.columns[4] == Column("Email", "VARCHAR(200)", True)
    assert cache.list_tables(location) == ["Contacts"]


def test_identical_tenants_share_one_object(tmp_path: Path) -> None:
    cache, _ = make_cache()
    locations = [make_tenant(tmp_path / f"t{i}.db", CONTACTS_DDL) for i in range(12)]
    odd = make_tenant(
        tmp_path / "odd.db", CONTACTS_DDL, 'ALTER TABLE "Contacts" ADD "Custom1" TEXT'
    )
    metas = [cache.get(location, "Contacts") for location in locations]
    assert all(meta is metas[0] for meta in metas)
    other = cache.get(odd, "Contacts")
    assert other is not None and metas[0] is not None
    assert other.fingerprint != metas[0].fingerprint
    assert other.custom_columns == ("Custom1",)


def test_cache_hits_and_ttl(tmp_path: Path) -> None:
    location = make_tenant(tmp_path / "t.db", CONTACTS_DDL)
    clock = FakeClock()
    cache, sources = make_cache(clock=clock, ttl=300)
    first = cache.get(location, "Contacts")
    assert cache.get(location, "CONTACTS") is first
    assert sources.opens == 1
    clock.now += 299
    cache.get(location, "contacts")
    assert sources.opens == 1
    clock.now += 2
    assert cache.get(location, "contacts") is first  # reloaded, same interned shape
    assert sources.opens == 2
    stats = cache.get_stats()
    assert (stats["hits"], stats["misses"], stats["loads"]) == (2, 2, 2)


def test_absent_table_is_cached_negatively(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    location = make_tenant(path, CONTACTS_DDL)
    clock = FakeClock()
    cache, sources = make_cache(clock=clock, negative_ttl=10)
    assert cache.get(location, "Orders") is None
    assert cache.get(location, "orders") is None
    assert sources.opens == 1
    assert cache.get_stats()["negative_hits"] == 1
    make_tenant(path, 'CREATE TABLE "Orders" ("OrderID" INTEGER)')
    assert cache.get(location, "Orders") is None  # still negatively cached
    clock.now += 11
    found = cache.get(location, "Orders")
    assert found is not None and found.column_names == ("OrderID",)
    assert sources.opens == 2


def test_system_tables_are_not_tenant_tables(tmp_path: Path) -> None:
    location = make_tenant(
        tmp_path / "t.db", 'CREATE TABLE "Seq" ("id" INTEGER PRIMARY KEY AUTOINCREMENT)'
    )
    cache, _ = make_cache()
    assert cache.get(location, "sqlite_master") is None
    assert cache.get(location, "sqlite_sequence") is None
    assert cache.list_tables(location) == ["Seq"]


def test_refresh_one_table_and_a_whole_tenant(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    location = make_tenant(path, CONTACTS_DDL, 'CREATE TABLE "Notes" ("NoteID" INTEGER)')
    other = make_tenant(tmp_path / "u.db", CONTACTS_DDL)
    cache, sources = make_cache()
    before = cache.get(location, "Contacts")
    cache.get(location, "Notes")
    cache.get(other, "Contacts")
    assert sources.opens == 3
    make_tenant(
        path, 'ALTER TABLE "Contacts" ADD "Custom1" TEXT', 'ALTER TABLE "Notes" ADD "X" INT'
    )
    assert cache.get(location, "Contacts") is before  # cached: the change is not seen yet
    cache.refresh(location, "CONTACTS")
    after = cache.get(location, "Contacts")
    assert after is not None and after is not before
    assert after.custom_columns == ("Custom1",)
    assert sources.opens == 4
    notes = cache.get(location, "Notes")
    assert notes is not None and notes.custom_columns == ()
    cache.refresh(location)  # every table of this tenant, not the other tenant's
    notes = cache.get(location, "Notes")
    assert notes is not None and notes.custom_columns == ("X",)
    cache.get(location, "Contacts")
    cache.get(other, "Contacts")
    assert sources.opens == 6


def test_single_flight_under_threads(tmp_path: Path) -> None:
    location = make_tenant(tmp_path / "t.db", CONTACTS_DDL)
    cache, sources = make_cache(Sources(delay=0.3))
    barrier = threading.Barrier(16)
    results: list[TableMetadata | None] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get(location, "contacts"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 16
    assert results[0] is not None and all(r is results[0] for r in results)
    assert sources.opens == 1


def test_single_flight_shares_the_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-database.db"
    bogus.write_bytes(b"this is not an sqlite file" * 100)
    location = location_for(bogus)
    # Errors are not cached: a thread that came after the failed open would open again.
    # 2 s for the six threads to reach the flight after the barrier, on a busy machine.
    cache, sources = make_cache(Sources(delay=2.0))
    barrier = threading.Barrier(6)
    errors: list[MetadataUnavailable] = []

    def worker() -> None:
        barrier.wait()
        try:
            cache.get(location, "Contacts")
        except MetadataUnavailable as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 6
    assert sources.opens == 1
    for error in errors:
        assert "hunter2" not in str(error)
        assert error.code == "backend_unavailable"
    with pytest.raises(MetadataUnavailable):  # errors are not cached
        cache.get(location, "Contacts")
    assert sources.opens == 2


class PoolSaturated(Exception):
    """Stands for the proxy's own pool error: not a database error."""


def test_foreign_errors_propagate_unchanged(tmp_path: Path) -> None:
    location = make_tenant(tmp_path / "t.db", CONTACTS_DDL)

    def saturated(_location: TenantLocation) -> ConnectionSource:
        @contextlib.contextmanager
        def connection() -> Iterator[Any]:
            raise PoolSaturated("pool is full")
            yield

        return connection

    cache = MetadataCache(source_for=saturated, base_model=BASE, ttl=60, negative_ttl=5)
    with pytest.raises(PoolSaturated):
        cache.get(location, "Contacts")
    with pytest.raises(PoolSaturated):
        cache.list_tables(location)
    assert cache.get_stats()["errors"] == 1


def test_maxsize_evicts_and_keeps_the_index_in_step(tmp_path: Path) -> None:
    statements = [f'CREATE TABLE "T{i}" ("id" INTEGER)' for i in range(6)]
    location = make_tenant(tmp_path / "t.db", *statements)
    cache, sources = make_cache(maxsize=3)
    for i in range(6):
        assert cache.get(location, f"T{i}") is not None
    assert cache.get_stats()["size"] == 3
    cache.refresh(location)
    assert cache.get_stats()["size"] == 0
    assert sources.opens == 6


# -- staleness: forced refreshes, bounded ----------------------------------------------


def test_refresh_if_quiet_reads_each_table_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    location = make_tenant(path, CONTACTS_DDL, 'CREATE TABLE "Notes" ("NoteID" INTEGER)')
    clock = FakeClock()
    cache, sources = make_cache(clock=clock, quiet=1.0)
    before = cache.get(location, "Contacts")
    cache.get(location, "Notes")
    make_tenant(path, 'ALTER TABLE "Contacts" ADD "Custom1" TEXT')

    assert cache.refresh_if_quiet(location, ["Contacts"]) is True
    after = cache.get(location, "contacts")
    assert after is not None and after is not before and after.custom_columns == ("Custom1",)
    assert sources.opens == 3
    # A flood within the interval reads nothing more; "Notes" was not refreshed yet.
    for _ in range(50):
        assert cache.refresh_if_quiet(location, ["CONTACTS"]) is False
        cache.get(location, "Contacts")
    assert sources.opens == 3
    assert cache.refresh_if_quiet(location, ["Contacts", "Notes"]) is True
    cache.get(location, "Notes")
    assert sources.opens == 4
    clock.now += 1.0
    assert cache.refresh_if_quiet(location, ["Contacts"]) is True
    assert cache.get_stats()["forced"] == 3


def test_any_refresh_counts_for_the_quiet_interval(tmp_path: Path) -> None:
    location = make_tenant(tmp_path / "t.db", CONTACTS_DDL)
    clock = FakeClock()
    cache, _ = make_cache(clock=clock)
    cache.get(location, "Contacts")
    cache.refresh(location)  # e.g. after the backend reported a missing column
    assert cache.refresh_if_quiet(location, ["Contacts"]) is False
    clock.now += 1.5
    assert cache.refresh_if_quiet(location, ["Contacts"]) is True


def test_refresh_times_are_pruned(tmp_path: Path) -> None:
    location = make_tenant(tmp_path / "t.db", CONTACTS_DDL)
    clock = FakeClock()
    cache, _ = make_cache(clock=clock)
    for i in range(2000):
        cache.refresh(location, f"T{i}")
    clock.now += 2
    cache.refresh(location, "Contacts")
    assert len(cache._refreshed_at) == 1


# -- memory: what an entry holds ------------------------------------------------------


def test_entries_share_key_strings_and_the_index_is_a_tuple(tmp_path: Path) -> None:
    statements = [f'CREATE TABLE "T{i}" ("id" INTEGER)' for i in range(3)]
    location = make_tenant(tmp_path / "t.db", *statements)
    other = location_for(tmp_path / "t.db")  # an equal location, built separately
    cache, _ = make_cache()
    for i in range(3):
        assert cache.get(location if i % 2 else other, f"T{i}") is not None
    keys = list(cache._cache.keys())
    assert len({id(k[0]) for k in keys}) == 1
    assert cache._cache.by_location == {location.key: ("t0", "t1", "t2")}
    cache.refresh(location, "t1")
    assert cache._cache.by_location == {location.key: ("t0", "t2")}


def test_interning_does_not_keep_the_canonical_text(tmp_path: Path) -> None:
    wide = [Column(f"cf_{i:04d}_some_long_custom_field_name", "TEXT", True) for i in range(800)]
    meta = TableMetadata.build("Contacts", wide)
    again = TableMetadata.build("Contacts", list(wide))
    assert again is meta
    # Lower-case names are their own fold: one string, not two equal ones.
    assert all(meta._folded[name] is name for name in meta.column_names)
    assert meta.lookup("CF_0001_SOME_LONG_CUSTOM_FIELD_NAME") == wide[1].name


def test_lookup_of_names_equal_but_for_case_and_of_non_idempotent_folds() -> None:
    cols = [Column("abc", "T", True), Column("ABC", "T", True), Column("Straße", "T", True)]
    meta = TableMetadata.build("T", cols)
    assert meta.lookup("abc") == "abc"
    assert meta.lookup("ABC") == "ABC"
    assert meta.lookup("Abc") is None
    assert meta.lookup("STRASSE") == "Straße"
    assert meta.lookup("strasse") == "Straße"
    assert meta.lookup("Straße") == "Straße"
