"""``proxy.pipeline.activity``: the space-saving summary keeps its guarantees, and the
window forgets what is older than it."""

from __future__ import annotations

import collections

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.pipeline.activity import SpaceSaving, TenantActivity, merge_exports, top

streams = st.lists(st.integers(min_value=0, max_value=60), max_size=600)


@settings(max_examples=200, deadline=None)
@given(streams, st.integers(min_value=1, max_value=8))
def test_counts_bound_the_truth_and_heavy_keys_are_never_lost(
    stream: list[int], capacity: int
) -> None:
    summary = SpaceSaving(capacity)
    for key in stream:
        summary.add(str(key))
    truth = collections.Counter(str(k) for k in stream)
    monitored = {key: (count, over) for key, count, over in summary.items()}
    assert len(monitored) <= 2 * capacity
    for key, (count, over) in monitored.items():
        # An upper bound, over by at most what it inherited when it came in.
        assert count - over <= truth[key] <= count
    for key, n in truth.items():
        if n > summary.floor:
            assert key in monitored, (key, n, summary.floor)


def test_weights_are_added() -> None:
    summary = SpaceSaving(2)
    for key, weight in [("a", 0.5), ("b", 2.0), ("a", 0.25)]:
        summary.add(key, weight)
    assert sorted(summary.items()) == [("a", 0.75, 0.0), ("b", 2.0, 0.0)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides_and_an_idle_window_is_empty() -> None:
    clock = Clock()
    activity = TenantActivity(capacity=4, window_s=60, clock=clock)
    for _ in range(30):
        activity.record("a", 0.01, error=False)
    activity.record("b", 0.5, error=True)
    now = activity.export()
    assert now["requests"] == {"a": 30, "b": 1}
    assert now["errors"] == {"b": 1}
    assert now["total"] == {"requests": 31} and now["active"] == {"tenants": 2}

    clock.now += 90  # the first epoch is now the previous one, half inside the window
    activity.record("c", 0.1, error=False)
    half = activity.export()
    assert half["requests"] == {"a": 15, "b": 0.5, "c": 1}
    assert half["total"] == {"requests": 16.5} and half["active"] == {"tenants": 3}

    clock.now += 200  # idle for more than a window: nothing is left
    empty = activity.export()
    assert empty["requests"] == {} and empty["total"] == {"requests": 0}


def test_top_ranks_by_the_measure_asked_and_merges_processes() -> None:
    one = {"requests": {"a": 5.0, "b": 9.0}, "errors": {"a": 2.0}, "seconds": {"b": 1.0}}
    two = {"requests": {"a": 6.0}, "errors": {}, "seconds": {"a": 0.5}}
    merged = merge_exports([one, two])
    assert [f.tenant for f in top(merged, 2, "requests")] == ["a", "b"]  # 11 against 9
    assert [f.tenant for f in top(merged, 5, "errors")] == ["a"]
    first = top(merged, 1, "seconds")[0]
    assert (first.tenant, first.requests, first.errors, first.seconds) == ("b", 9.0, 0.0, 1.0)
