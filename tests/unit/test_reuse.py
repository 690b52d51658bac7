"""``tenancy.tlru.CountedTLRUCache``'s change counter and ``proxy.pipeline.reuse.Reuse``."""

from __future__ import annotations

from typing import Any, cast

import pytest

from proxy.pipeline.request import QueryRequest
from proxy.pipeline.reuse import Reuse
from tenancy.tlru import CountedTLRUCache


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _cache(clock: _Clock, maxsize: int = 10) -> CountedTLRUCache[str, int]:
    return CountedTLRUCache(maxsize=maxsize, ttu=lambda _k, _v, now: now + 10, timer=clock)


def test_every_change_counts_and_a_read_does_not() -> None:
    clock = _Clock()
    cache = _cache(clock)
    seen = [cache.generation]
    cache["a"] = 1
    seen.append(cache.generation)
    assert cache["a"] == 1 and cache.get("b") is None and "a" in cache
    assert cache.generation == seen[-1], "reads change nothing"
    cache["a"] = 2
    seen.append(cache.generation)
    del cache["a"]
    seen.append(cache.generation)
    cache["b"] = 3
    cache.clear()
    seen.append(cache.generation)
    assert seen == sorted(set(seen)), seen


def test_expiry_and_eviction_count() -> None:
    clock = _Clock()
    cache = _cache(clock, maxsize=1)
    cache["a"] = 1
    before = cache.generation
    cache["b"] = 2  # evicts a
    assert "a" not in cache and cache.generation > before
    clock.now = 11
    before = cache.generation
    assert cache.expire() and cache.generation > before
    before = cache.generation
    assert cache.expire() == [] and cache.generation == before


def _put(reuse: Reuse, key: Any, stamp: tuple[int, int], now: float) -> None:
    reuse.put(key, tenant=cast(Any, None), plan=cast(Any, None), sql="S", positional=0,
              stamp=stamp, now=now)  # fmt: skip


def test_kept_while_the_stamp_holds_and_the_window_lasts() -> None:
    reuse = Reuse(window_s=1.0)
    key = reuse.key(QueryRequest("t", "SELECT 1"))
    assert reuse.get(key, (1, 1), 0.0) is None
    _put(reuse, key, (1, 1), 0.0)
    assert reuse.get(key, (1, 1), 0.5) is not None
    assert reuse.get(key, (1, 2), 0.5) is None, "a metadata change"
    assert reuse.get(key, (2, 1), 0.5) is None, "a tenant change"
    assert reuse.get(key, (1, 1), 1.0) is None, "past its window"
    assert reuse.get_stats() == {"hits": 1, "misses": 4, "size": 1, "chars": len("SELECT 1S")}


def test_a_key_holds_what_the_preparation_depends_on() -> None:
    key = Reuse.key
    base = QueryRequest("t", "SELECT 1", [1], "postgres", max_rows=10)
    assert key(base) == key(QueryRequest("t", "SELECT 1", [2], "postgres", max_rows=20))
    for other in (
        QueryRequest("u", "SELECT 1", [1], "postgres"),
        QueryRequest("t", "SELECT 2", [1], "postgres"),
        QueryRequest("t", "SELECT 1", [1], "tsql"),
        QueryRequest("t", "SELECT 1", [1], "postgres", missing_columns="null"),
        QueryRequest("t", "SELECT 1", [1], "postgres", allow_unfiltered=True),
    ):
        assert key(other) != key(base), other


def test_the_oldest_made_goes_first() -> None:
    reuse = Reuse(maxsize=2)
    for i in range(3):
        _put(reuse, ("t", str(i), "tsql", "error", False), (0, 0), 0.0)
    assert reuse.get(("t", "0", "tsql", "error", False), (0, 0), 0.0) is None
    assert reuse.get(("t", "2", "tsql", "error", False), (0, 0), 0.0) is not None
    assert reuse.get_stats()["size"] == 2


def test_the_text_held_is_bounded() -> None:
    reuse = Reuse(max_chars=100)
    for i in range(5):
        _put(reuse, ("t", f"{i:030d}", "tsql", "error", False), (0, 0), 0.0)  # 31 chars each
    stats = reuse.get_stats()
    assert stats["size"] == 3 and stats["chars"] == 93
    _put(reuse, ("t", "x" * 100, "tsql", "error", False), (0, 0), 0.0)
    assert reuse.get_stats() == stats, "a text past the bound is not kept, and evicts nothing"


@pytest.mark.parametrize("bad", [{"maxsize": 0}, {"max_chars": 0}, {"window_s": 0.0}])
def test_bad_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Reuse(**bad)
