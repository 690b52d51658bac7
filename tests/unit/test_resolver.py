"""TenantResolver over a real controller table in a SQLite file, reached through ODBC."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tenancy.backends import BackendKind
from tenancy.connstr import parse
from tenancy.controller import ControllerDirectory, CustomerRecord
from tenancy.errors import (
    ControllerUnavailable,
    InvalidConnectionString,
    InvalidTenantReference,
    TenantMisconfigured,
    UnknownTenant,
)
from tenancy.location import TenantLocation, locate
from tenancy.resolver import Tenant, TenantResolver, parse_reference
from tenancy.sources import odbc_source

SECRET = "s3cr3t-pa55"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sqlite_locate(text: str) -> TenantLocation:
    """A small stand-in for ``tenancy.location.locate``: SQLite strings only."""
    cs = parse(text)
    if "database" not in cs or "driver" not in cs:
        raise InvalidConnectionString("invalid connection string: no Driver or Database")
    path = cs["database"]
    return TenantLocation(
        kind=BackendKind.SQLITE,
        connect=cs,
        pool_key=f"sqlite:{path}",
        server_key="sqlite",
        catalog=None,
        schema=None,
        database=path,
    )


@pytest.fixture
def controller(tmp_path: Path) -> Path:
    path = tmp_path / "controller.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE Customer (customer_id INTEGER PRIMARY KEY, domainname TEXT, "
            "sqlconnectstring TEXT)"
        )
        db.executemany(
            "INSERT INTO Customer VALUES (?, ?, ?)",
            [
                (1, "alpha.example", f"Driver=SQLite3;Database={tmp_path}/t1.db"),
                (2, "Beta.Example", f"Driver=SQLite3;Database={tmp_path}/t2.db;Pwd={SECRET}"),
                (3, "broken.example", f"Driver=SQLite3;Pwd={SECRET};Oops"),
                (4, "nodb.example", f"Driver=SQLite3;Pwd={SECRET}"),
            ],
        )
    db.close()
    return path


class CountingDirectory:
    """The real directory, with a call counter and an optional delay (to force overlap)."""

    def __init__(self, inner: ControllerDirectory, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)

    def by_id(self, customer_id: int) -> CustomerRecord | None:
        self._count()
        return self.inner.by_id(customer_id)

    def by_domain(self, domain: str) -> CustomerRecord | None:
        self._count()
        return self.inner.by_domain(domain)


Factory = Callable[..., tuple[TenantResolver, CountingDirectory, FakeClock]]


@pytest.fixture
def make(controller: Path) -> Factory:
    def factory(
        *, ttl: float = 60, negative_ttl: float = 5, delay: float = 0.0, path: Path = controller
    ) -> tuple[TenantResolver, CountingDirectory, FakeClock]:
        directory = CountingDirectory(
            ControllerDirectory(odbc_source(f"Driver=SQLite3;Database={path}")), delay
        )
        clock = FakeClock()
        resolver = TenantResolver(
            directory, locate=sqlite_locate, ttl=ttl, negative_ttl=negative_ttl, clock=clock
        )
        return resolver, directory, clock

    return factory


def test_id_and_domain_share_one_entry(make: Factory) -> None:
    resolver, directory, _ = make()
    tenant = resolver.resolve(2)
    assert isinstance(tenant, Tenant)
    assert (tenant.customer_id, tenant.domain) == (2, "Beta.Example")
    assert tenant.location.kind is BackendKind.SQLITE
    assert resolver.resolve("2") is tenant
    assert resolver.resolve("beta.example") is tenant
    assert resolver.resolve("BETA.EXAMPLE") is tenant
    assert directory.calls == 1
    stats = resolver.get_stats()
    assert stats["lookups"] == 1
    assert stats["misses"] == 1
    assert stats["hits"] == 3


def test_domain_first_then_id(make: Factory) -> None:
    resolver, directory, _ = make()
    tenant = resolver.resolve("alpha.example")
    assert resolver.resolve(1) is tenant
    assert resolver.resolve("0001") is tenant
    assert directory.calls == 1


def test_ttl_expiry_with_injected_clock(make: Factory) -> None:
    resolver, directory, clock = make(ttl=60)
    first = resolver.resolve(1)
    clock.advance(59.9)
    assert resolver.resolve("alpha.example") is first
    assert directory.calls == 1
    clock.advance(0.2)
    second = resolver.resolve(1)
    assert directory.calls == 2
    assert second == first
    assert second is not first


def test_unknown_tenant_is_cached_negatively(make: Factory) -> None:
    resolver, directory, clock = make(negative_ttl=5)
    for _ in range(100):
        with pytest.raises(UnknownTenant) as info:
            resolver.resolve("nobody.example")
        assert info.value.code == "unknown_tenant"
    assert directory.calls == 1
    with pytest.raises(UnknownTenant):
        resolver.resolve(999)
    assert directory.calls == 2
    stats = resolver.get_stats()
    assert stats["negative_hits"] == 99
    clock.advance(5.1)
    with pytest.raises(UnknownTenant):
        resolver.resolve("nobody.example")
    assert directory.calls == 3


def test_flood_of_bogus_names_costs_one_lookup_each(make: Factory) -> None:
    resolver, directory, _ = make()
    names = [f"bogus{i}.example" for i in range(50)]
    for _ in range(3):
        for name in names:
            with pytest.raises(UnknownTenant):
                resolver.resolve(name)
    assert directory.calls == 50


def test_misconfigured_record_is_cached_briefly_and_keeps_secrets(make: Factory) -> None:
    resolver, directory, clock = make(negative_ttl=5)
    for ref in ("broken.example", 4):
        with pytest.raises(TenantMisconfigured) as info:
            resolver.resolve(ref)
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value.details)
        assert info.value.code == "tenant_misconfigured"
    calls = directory.calls
    with pytest.raises(TenantMisconfigured):
        resolver.resolve("broken.example")
    assert directory.calls == calls
    clock.advance(6)
    with pytest.raises(TenantMisconfigured):
        resolver.resolve("broken.example")
    assert directory.calls == calls + 1


@pytest.mark.parametrize(
    "ref",
    [
        "",
        " 1",
        "1 ",
        "-1",
        -1,
        2**63,
        str(2**63),
        "1" * 20,
        "\u0661\u0662",  # Arabic-Indic digits: not an id
        "a b.example",
        "bad_domain.example",
        "-lead.example",
        "trail-.example",
        "a..b",
        ".example",
        "example.",
        "x" * 64 + ".example",
        ".".join(["abcdefghi"] * 26),  # 259 characters
        "beta.example'; DROP TABLE Customer; --",
        "b\u00e9ta.example",
        True,
        1.5,
        None,
        b"1",
    ],
)
def test_invalid_references_never_reach_the_controller(make: Factory, ref: object) -> None:
    resolver, directory, _ = make()
    with pytest.raises(InvalidTenantReference) as info:
        resolver.resolve(ref)  # type: ignore[arg-type]
    assert info.value.code == "invalid_tenant"
    assert directory.calls == 0


def test_reference_forms() -> None:
    assert parse_reference(7) == ("id", 7)
    assert parse_reference("007") == ("id", 7)
    assert parse_reference(2**63 - 1) == ("id", 2**63 - 1)
    assert parse_reference("Beta.EXAMPLE") == ("domain", "beta.example")
    assert parse_reference("localhost") == ("domain", "localhost")
    assert parse_reference("xn--bta-bma.example") == ("domain", "xn--bta-bma.example")
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert parse_reference(longest)[0] == "domain"
    with pytest.raises(InvalidTenantReference):
        parse_reference(longest + "b")


def test_single_flight_under_threads(make: Factory) -> None:
    resolver, directory, _ = make(delay=0.3)
    barrier = threading.Barrier(16)
    results: list[Tenant] = []
    errors: list[BaseException] = []

    def worker(ref: str | int) -> None:
        barrier.wait()
        try:
            results.append(resolver.resolve(ref))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=("2",)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert len(results) == 16
    assert all(tenant is results[0] for tenant in results)
    assert directory.calls == 1


def test_single_flight_shares_negative_outcome(make: Factory) -> None:
    resolver, directory, _ = make(delay=0.3)
    barrier = threading.Barrier(8)
    outcomes: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            resolver.resolve("ghost.example")
        except UnknownTenant as error:
            outcomes.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(outcomes) == 8
    assert len({id(error) for error in outcomes}) == 8  # a fresh exception per caller
    assert directory.calls == 1


def test_controller_errors_are_not_cached(make: Factory, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a database without the Customer table
    resolver, directory, _ = make(path=empty)
    for _ in range(2):
        with pytest.raises(ControllerUnavailable) as info:
            resolver.resolve(1)
        assert str(empty) not in str(info.value)
    assert directory.calls == 2
    assert resolver.get_stats()["errors"] == 2


def test_invalidate_forgets_both_keys(make: Factory) -> None:
    resolver, directory, _ = make()
    tenant = resolver.resolve("beta.example")
    resolver.invalidate(2)
    again = resolver.resolve("beta.example")
    assert directory.calls == 2
    assert again is not tenant
    assert resolver.resolve(2) is again
    resolver.invalidate("nobody.example")  # absent: no error
    with pytest.raises(UnknownTenant):
        resolver.resolve("nobody.example")
    resolver.invalidate("nobody.example")
    with pytest.raises(UnknownTenant):
        resolver.resolve("nobody.example")
    assert directory.calls == 4


def test_maxsize_bounds_the_cache(controller: Path) -> None:
    directory = ControllerDirectory(odbc_source(f"Driver=SQLite3;Database={controller}"))
    resolver = TenantResolver(directory, locate=sqlite_locate, ttl=60, negative_ttl=60, maxsize=3)
    for i in range(10):
        with pytest.raises(UnknownTenant):
            resolver.resolve(f"n{i}.example")
    assert resolver.get_stats()["size"] <= 3


def test_tenant_repr_has_no_secret(make: Factory) -> None:
    resolver, _, _ = make()
    tenant = resolver.resolve(2)
    assert SECRET not in repr(tenant)
    assert SECRET not in str(tenant)


def test_with_the_real_locate(controller: Path) -> None:
    directory = ControllerDirectory(odbc_source(f"Driver=SQLite3;Database={controller}"))
    resolver = TenantResolver(
        directory, locate=lambda text: locate(parse(text), {}), ttl=60, negative_ttl=5
    )
    tenant = resolver.resolve("beta.example")
    assert tenant.location.kind is BackendKind.SQLITE
    assert tenant.location.database == str(controller.parent / "t2.db")
    assert resolver.resolve(2) is tenant
    for ref in ("broken.example", "nodb.example"):
        with pytest.raises(TenantMisconfigured) as info:
            resolver.resolve(ref)
        assert SECRET not in str(info.value)


# -- controller trouble: stale entries within the grace period -------------------------


class FlakyDirectory:
    """The real directory, or (while ``broken``) one over a database without the
    customer table, whose every query fails with ``ControllerUnavailable``."""

    def __init__(self, controller: Path, empty: Path) -> None:
        self.good = ControllerDirectory(odbc_source(f"Driver=SQLite3;Database={controller}"))
        self.bad = ControllerDirectory(odbc_source(f"Driver=SQLite3;Database={empty}"))
        self.broken = False
        self.calls = 0
        self._lock = threading.Lock()

    def _current(self) -> ControllerDirectory:
        with self._lock:
            self.calls += 1
        return self.bad if self.broken else self.good

    def by_id(self, customer_id: int) -> CustomerRecord | None:
        return self._current().by_id(customer_id)

    def by_domain(self, domain: str) -> CustomerRecord | None:
        return self._current().by_domain(domain)

    def wait_for_calls(self, count: int) -> None:
        """Until ``count`` lookups were made (background ones included), or 10 s."""
        deadline = time.monotonic() + 10
        while self.calls < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.calls >= count


@pytest.fixture
def flaky(controller: Path, tmp_path: Path) -> FlakyDirectory:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    return FlakyDirectory(controller, empty)


def graceful(
    directory: FlakyDirectory, *, grace: float = 100.0
) -> tuple[TenantResolver, FakeClock]:
    clock = FakeClock()
    resolver = TenantResolver(
        directory,
        locate=sqlite_locate,
        ttl=60,
        negative_ttl=5,
        clock=clock,
        stale_grace=grace,
        stale_retry=1.0,
    )
    return resolver, clock


def test_a_stale_entry_is_served_within_the_grace_period(flaky: FlakyDirectory) -> None:
    resolver, clock = graceful(flaky)
    tenant = resolver.resolve("beta.example")
    flaky.broken = True
    clock.advance(61)  # expired: the controller is asked, fails, the stale entry answers
    assert resolver.resolve(2) is tenant
    assert flaky.calls == 2
    stats = resolver.get_stats()
    assert (stats["stale_hits"], stats["errors"]) == (1, 1)

    # Failing now: both keys answer at once for stale_retry, without asking again...
    assert resolver.resolve(2) is tenant
    assert resolver.peek(2) is tenant
    clock.advance(1.1)
    # ...and then one lookup goes on in the background while the stale entry answers.
    assert resolver.peek("beta.example") is tenant
    flaky.wait_for_calls(3)
    assert resolver.get_stats()["stale_hits"] == 4

    clock.advance(100)  # past the grace period: the error reaches the caller
    with pytest.raises(ControllerUnavailable):
        resolver.resolve(2)
    with pytest.raises(ControllerUnavailable):
        resolver.resolve("beta.example")

    flaky.broken = False
    fresh = resolver.resolve(2)
    assert fresh == tenant
    assert fresh is not tenant
    assert resolver.resolve("beta.example") is fresh


def test_the_controller_answer_ends_a_stale_entry(flaky: FlakyDirectory, controller: Path) -> None:
    resolver, clock = graceful(flaky)
    tenant = resolver.resolve(2)
    flaky.broken = True
    clock.advance(61)
    assert resolver.resolve(2) is tenant
    # Back, and the customer is gone: the background lookup learns it.
    with sqlite3.connect(controller) as db:
        db.execute("DELETE FROM Customer WHERE customer_id = 2")
    db.close()
    flaky.broken = False
    clock.advance(1.1)
    calls = flaky.calls
    assert resolver.resolve(2) is tenant  # answered at once; asked in the background
    flaky.wait_for_calls(calls + 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            resolver.resolve(2)
        except UnknownTenant:
            break
        time.sleep(0.01)
    with pytest.raises(UnknownTenant):
        resolver.resolve(2)
    with pytest.raises(UnknownTenant):
        resolver.resolve("beta.example")


def test_invalidate_forgets_the_stale_entry(flaky: FlakyDirectory) -> None:
    resolver, clock = graceful(flaky)
    resolver.resolve(2)
    flaky.broken = True
    clock.advance(61)
    resolver.invalidate("beta.example")
    with pytest.raises(ControllerUnavailable):
        resolver.resolve(2)


def test_no_grace_period_means_no_stale_entries(flaky: FlakyDirectory) -> None:
    resolver, clock = graceful(flaky, grace=0)
    resolver.resolve(2)
    flaky.broken = True
    clock.advance(61)
    with pytest.raises(ControllerUnavailable):
        resolver.resolve(2)
    assert resolver.get_stats()["stale_hits"] == 0
