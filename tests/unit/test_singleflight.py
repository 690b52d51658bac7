"""SingleFlight with real threads: one load per key, shared outcomes, invalidation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from tenancy.errors import MetadataUnavailable
from tenancy.singleflight import SingleFlight

N = 12
WAIT = 10.0


class Joined:
    """A ``cached`` callback that always misses and tells when ``n`` callers have joined.

    ``cached`` runs under the flight lock in the same step as joining a flight, so once
    it has been called ``n`` times and the leader has the lock again, all ``n`` have
    joined.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0
        self.all = threading.Event()

    def __call__(self) -> Any:
        self.calls += 1
        if self.calls == self.n:
            self.all.set()
        return None


def run_threads(n: int, target: Callable[[], Any]) -> tuple[list[Any], list[BaseException]]:
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(target())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    return results, errors


def test_one_load_for_concurrent_callers() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    joined = Joined(N)
    loads: list[object] = []
    stored: list[object] = []

    def load() -> object:
        assert joined.all.wait(WAIT)
        loads.append(value := object())
        return value

    results, errors = run_threads(
        N, lambda: flights.run("k", load, cached=joined, store=stored.append)
    )
    assert not errors
    assert len(loads) == 1
    assert len(results) == N
    assert all(result is loads[0] for result in results)
    assert stored == loads


def test_cached_values_skip_the_load() -> None:
    flights: SingleFlight[str, str] = SingleFlight()

    def load() -> str:
        raise AssertionError("must not load")

    assert flights.run("k", load, cached=lambda: "hit") == "hit"


def test_different_keys_load_separately() -> None:
    flights: SingleFlight[int, int] = SingleFlight()
    loaded: list[int] = []

    def load_for(key: int) -> Callable[[], int]:
        def load() -> int:
            loaded.append(key)
            return key * 10

        return load

    assert [flights.run(k, load_for(k)) for k in (1, 2, 1)] == [10, 20, 10]
    assert loaded == [1, 2, 1]  # nothing is cached without ``cached``/``store``


def test_tenancy_errors_reach_every_waiter_as_fresh_copies() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    joined = Joined(N)
    loads = 0
    stored: list[object] = []

    def load() -> object:
        nonlocal loads
        loads += 1
        assert joined.all.wait(WAIT)
        raise MetadataUnavailable("catalog unreadable", sqlstate="08001", server="db1")

    results, errors = run_threads(
        N, lambda: flights.run("k", load, cached=joined, store=stored.append)
    )
    assert not results
    assert loads == 1
    assert len(errors) == N
    assert len({id(error) for error in errors}) == N  # one instance per caller
    for error in errors:
        assert type(error) is MetadataUnavailable
        assert error.message == "catalog unreadable"
        assert error.details == {"sqlstate": "08001", "server": "db1"}
    assert stored == []  # errors are not stored
    assert flights.run("k", lambda: "again") == "again"  # nor remembered


def test_other_errors_reach_every_waiter() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    joined = Joined(N)
    boom = RuntimeError("boom")

    def load() -> object:
        assert joined.all.wait(WAIT)
        raise boom

    results, errors = run_threads(N, lambda: flights.run("k", load, cached=joined))
    assert not results
    assert len(errors) == N
    assert all(error is boom for error in errors)


def test_invalidation_during_a_load_drops_its_store_but_not_its_callers() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    started = threading.Event()
    release = threading.Event()
    stored: list[str] = []
    first: list[str] = []

    def stale_load() -> str:
        started.set()
        assert release.wait(WAIT)
        return "stale"

    leader = threading.Thread(
        target=lambda: first.append(flights.run("k", stale_load, store=stored.append))
    )
    leader.start()
    assert started.wait(WAIT)
    with flights.lock:  # re-entrant: owners invalidate inside their own critical section
        flights.invalidate("k")
    # The stale flight is forgotten: the next caller leads a new load instead of waiting.
    assert flights.run("k", lambda: "fresh", store=stored.append) == "fresh"
    release.set()
    leader.join(WAIT)
    assert first == ["stale"]
    assert stored == ["fresh"]


@pytest.mark.parametrize(
    ("invalidate", "survivors"),
    [
        (lambda flights: flights.invalidate_where(lambda key: key[0] == "a"), [("b", "y")]),
        (lambda flights: flights.clear(), []),
    ],
    ids=["invalidate_where", "clear"],
)
def test_bulk_invalidation(
    invalidate: Callable[[SingleFlight[Any, str]], None], survivors: list[tuple[str, str]]
) -> None:
    flights: SingleFlight[tuple[str, str], str] = SingleFlight()
    started = threading.Barrier(3)
    release = threading.Event()
    stored: list[tuple[str, str]] = []

    def load() -> str:
        started.wait(WAIT)
        assert release.wait(WAIT)
        return "v"

    def leader(key: tuple[str, str]) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: flights.run(key, load, store=lambda _value: stored.append(key))
        )
        thread.start()
        return thread

    threads = [leader(("a", "x")), leader(("b", "y"))]
    started.wait(WAIT)
    invalidate(flights)
    release.set()
    for thread in threads:
        thread.join(WAIT)
    assert stored == survivors


def test_waiters_are_released_when_store_fails() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    joined = Joined(3)

    def load() -> str:
        assert joined.all.wait(WAIT)
        return "v"

    def store(_value: str) -> None:
        raise OSError("cache broke")

    results, errors = run_threads(3, lambda: flights.run("k", load, cached=joined, store=store))
    assert results == ["v", "v"]
    assert [type(error) for error in errors] == [OSError]
