"""A time-aware LRU cache that counts its changes (``generation``).

The tenant and metadata caches are read on every request. A caller that derived
something from their entries (``proxy.pipeline.reuse``: a statement's preparation)
can tell that none of them changed since by comparing one integer, rather than
looking every entry up again. Any change counts (an entry stored, replaced, deleted,
expired or evicted, or the cache cleared), whichever key it touched: the counter is
coarse, and each check is cheap.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeVar

from cachetools import TLRUCache

__all__ = ["CountedTLRUCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CountedTLRUCache(TLRUCache[K, V]):
    generation: int = 0
    """Bumped by every change (reading an int is whole under the GIL, so a reader needs
    no lock; writers hold their owner's)."""

    def __setitem__(self, key: K, value: V) -> None:
        self.generation += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        self.generation += 1
        super().__delitem__(key)

    def expire(self, time: Any = None) -> list[tuple[K, V]]:
        expired = list(super().expire(time))
        if expired:
            self.generation += 1
        return expired

    def clear(self) -> None:
        self.generation += 1
        super().clear()
