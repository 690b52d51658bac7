from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from proxy.drivers.odbc.watchdog import Watchdog


@pytest.fixture
def watchdog() -> Iterator[Watchdog]:
    dog = Watchdog(name="test-watchdog")
    try:
        yield dog
    finally:
        dog.close()


def test_fires_after_timeout(watchdog: Watchdog) -> None:
    fired = threading.Event()
    start = time.monotonic()
    handle = watchdog.watch(0.05, fired.set)
    assert fired.wait(2)
    assert time.monotonic() - start >= 0.05
    handle.done()
    assert handle.fired


def test_done_disarms(watchdog: Watchdog) -> None:
    calls: list[int] = []
    handle = watchdog.watch(0.05, lambda: calls.append(1))
    handle.done()
    handle.done()  # idempotent
    time.sleep(0.15)
    assert calls == []
    assert not handle.fired
    assert watchdog.pending == 0


def test_context_manager_disarms(watchdog: Watchdog) -> None:
    calls: list[int] = []
    with watchdog.watch(0.05, lambda: calls.append(1)) as handle:
        pass
    time.sleep(0.1)
    assert calls == [] and not handle.fired


def test_earlier_deadline_added_later_fires_first(watchdog: Watchdog) -> None:
    order: list[str] = []
    done = threading.Event()

    def late() -> None:
        order.append("late")
        done.set()

    watchdog.watch(3.0, late)
    time.sleep(0.02)  # the thread now sleeps until the late deadline
    start = time.monotonic()
    early = threading.Event()

    def early_action() -> None:
        order.append("early")
        early.set()

    watchdog.watch(0.02, early_action)
    assert early.wait(10)
    assert time.monotonic() - start < 1.5  # woken for the new deadline, not at 3 s
    assert done.wait(10)
    assert order == ["early", "late"]


def test_one_timer_thread_for_many_deadlines(watchdog: Watchdog) -> None:
    before = threading.active_count()
    count = 200
    fired = threading.Semaphore(0)
    handles = [watchdog.watch(0.01 + i * 0.0005, fired.release) for i in range(count)]
    for _ in range(count):
        assert fired.acquire(timeout=5)
    # One timer thread plus a fixed number of action workers, whatever the load.
    assert threading.active_count() - before <= 1 + 4
    assert all(h.fired for h in handles)


def test_done_waits_for_running_action(watchdog: Watchdog) -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def slow() -> None:
        started.set()
        release.wait(2)
        finished.append(True)

    handle = watchdog.watch(0, slow)
    assert started.wait(2)
    assert handle.fired
    threading.Timer(0.1, release.set).start()
    handle.done()  # must block until slow() returned
    assert finished == [True]


def test_slow_action_does_not_delay_other_deadlines(watchdog: Watchdog) -> None:
    # A psqlODBC cancel during a network partition blocks in connect(): the other
    # deadlines of the process must still fire on time.
    release = threading.Event()

    def stuck() -> None:
        release.wait(5)

    watchdog.watch(0, stuck)
    fired = threading.Event()
    start = time.monotonic()
    watchdog.watch(0.05, fired.set)
    assert fired.wait(2)
    assert time.monotonic() - start < 0.5
    release.set()


def test_failing_action_does_not_kill_the_thread(watchdog: Watchdog) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    watchdog.watch(0, boom)
    fired = threading.Event()
    watchdog.watch(0.02, fired.set)
    assert fired.wait(2)


def test_many_disarmed_entries_are_compacted(watchdog: Watchdog) -> None:
    for _ in range(2000):
        watchdog.watch(60, lambda: None).done()
    assert watchdog.pending == 0
    assert len(watchdog._heap) < 600  # not 2000 entries waiting for their deadline


def test_rejects_bad_timeouts(watchdog: Watchdog) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        watchdog.watch(-1, lambda: None)
    with pytest.raises(ValueError, match="timeout_s"):
        watchdog.watch(float("nan"), lambda: None)


def test_close_drops_pending_and_refuses_new() -> None:
    dog = Watchdog()
    calls: list[int] = []
    handle = dog.watch(0.05, lambda: calls.append(1))
    dog.close()
    time.sleep(0.1)
    assert calls == [] and not handle.fired
    handle.done()
    with pytest.raises(RuntimeError):
        dog.watch(1, lambda: None)
