"""BoundedCalls on real threads; a stuck call is one that waits for an event by construction."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tenancy.deadline import BoundedCalls, CallTimedOut, NoCapacity


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of each test, so that no stuck call outlives it."""
    event = threading.Event()
    yield event
    event.set()


def stuck(release: threading.Event) -> Callable[[], str]:
    def call() -> str:
        release.wait(30)
        return "late"

    return call


def test_returns_the_value_and_raises_the_error() -> None:
    calls = BoundedCalls(max_threads=1, name="test")
    assert calls.call(lambda: 42, 5.0) == 42

    def fail() -> None:
        raise LookupError("nope")

    with pytest.raises(LookupError, match="nope"):
        calls.call(fail, 5.0)
    stats = calls.get_stats()
    assert (stats["calls"], stats["timeouts"], stats["running"]) == (2, 0, 0)


def test_a_stuck_call_times_out_and_ends_later(release: threading.Event) -> None:
    calls = BoundedCalls(max_threads=2, name="test")
    started = time.monotonic()
    with pytest.raises(CallTimedOut):
        calls.call(stuck(release), 0.2)
    assert time.monotonic() - started >= 0.2
    assert calls.get_stats()["running"] == 1
    assert calls.overdue() == 1
    release.set()
    deadline = time.monotonic() + 10
    while calls.get_stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls.get_stats()["running"] == 0
    assert calls.call(lambda: "fresh", 5.0) == "fresh"


def test_every_slot_overdue_refuses_at_once(release: threading.Event) -> None:
    calls = BoundedCalls(max_threads=2, name="test")
    for _ in range(2):
        with pytest.raises(CallTimedOut):
            calls.call(stuck(release), 0.1)
    assert calls.overdue() == 2
    started = time.monotonic()
    with pytest.raises(NoCapacity, match="2 test calls"):
        calls.call(lambda: "never runs", 30.0)
    # Refused without waiting for the 30 s it was allowed.
    assert time.monotonic() - started < 5.0
    assert calls.get_stats()["refused"] == 1


def test_a_full_gate_is_waited_for_within_the_deadline(release: threading.Event) -> None:
    calls = BoundedCalls(max_threads=1, name="test")
    holder = threading.Thread(target=lambda: calls.call(stuck(release), 30.0))
    holder.start()
    try:
        deadline = time.monotonic() + 10
        while not calls.get_stats()["running"] and time.monotonic() < deadline:
            time.sleep(0.01)
        # The only slot is busy but not overdue: wait for it, until our own deadline.
        started = time.monotonic()
        with pytest.raises(CallTimedOut, match="no test thread became free"):
            calls.call(lambda: "never runs", 0.2)
        assert time.monotonic() - started >= 0.2
        # Freed while we wait: the call runs.
        threading.Timer(0.1, release.set).start()
        assert calls.call(lambda: "ran", 10.0) == "ran"
    finally:
        release.set()
        holder.join(10)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        BoundedCalls(max_threads=0, name="test")
    with pytest.raises(ValueError, match="timeout"):
        BoundedCalls(max_threads=1, name="test").call(lambda: 1, 0)
