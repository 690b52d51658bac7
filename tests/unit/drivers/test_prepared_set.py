"""The PostgreSQL driver's choice of which statements stay prepared (``PreparedSet``),
driven without a server: what ``Statements`` asks before each statement it sends."""

from __future__ import annotations

import random

import pytest

from proxy.drivers.postgres.statements import PreparedSet

Key = tuple[str, tuple[int, ...]]


def key(n: int) -> Key:
    return (f"SELECT {n}", ())


def run(kept: PreparedSet, k: Key) -> bool:
    """One statement, as ``Statements.execute`` runs it (the server always prepares
    what it is asked to): whether it ran prepared."""
    prepared, name, _, sights = kept.choose(k)
    if name is not None:
        kept.add(k, name, sights)
    return prepared is not None


def test_a_statement_is_prepared_at_its_second_sight_and_reused() -> None:
    kept = PreparedSet(max_statements=4)
    assert kept.choose(key(1)) == (None, None, [], 0)  # unnamed
    prepared, name, drop, sights = kept.choose(key(1))
    assert (prepared, name, drop, sights) == (None, b"tg1", [], 2)
    kept.add(key(1), b"tg1", sights)
    again, name, _, _ = kept.choose(key(1))
    assert again is not None and again.name == b"tg1" and name is None
    assert kept.get_stats() == {
        "prepared": 1, "prepared_chars": 8, "seen": 0, "seen_chars": 0,
        "prepares": 1, "evictions": 0,
    }  # fmt: skip


def test_a_full_room_admits_only_what_was_seen_more_than_the_oldest_was_used() -> None:
    kept = PreparedSet(max_statements=2)
    for k in (key(1), key(1), key(1), key(2), key(2)):  # 1: used 3 times, 2: twice
        run(kept, k)
    assert [k for k, _ in kept.items()] == [key(1), key(2)]
    run(kept, key(3))
    _, name, drop, _ = kept.choose(key(3))  # seen twice, not more than 1's three uses
    assert (name, drop) == (None, [])
    _, name, drop, sights = kept.choose(key(3))
    assert sights == 3 and name is None  # equal is not more
    _, name, drop, sights = kept.choose(key(3))
    assert (name, drop, sights) == (b"tg3", [b"tg1"], 4)  # the least recently used goes


def test_psycopgs_rule_evicts_at_every_second_sight() -> None:
    kept = PreparedSet(max_statements=2, admission=False)
    for k in (key(1), key(1), key(1), key(2), key(2), key(3)):
        run(kept, k)
    _, name, drop, _ = kept.choose(key(3))
    assert (name, drop) == (b"tg3", [b"tg1"])


def test_a_working_set_larger_than_the_room_churns_far_less() -> None:
    order = random.Random(7).choices(range(150), k=20_000)
    stats = {}
    for admission in (False, True):
        kept = PreparedSet(max_statements=100, admission=admission)
        hits = sum(run(kept, key(n)) for n in order)
        stats[admission] = (hits, kept.get_stats()["evictions"])
    (lru_hits, lru_evictions), (hits, evictions) = stats[False], stats[True]
    assert hits >= lru_hits * 0.95  # as many hits, about
    assert evictions * 4 < lru_evictions


def test_a_new_working_set_takes_over_as_counts_age() -> None:
    kept = PreparedSet(max_statements=10, age_every=100)
    rng = random.Random(3)
    for _ in range(5_000):
        run(kept, key(rng.randrange(10)))
    old = {k for k, _ in kept.items()}
    assert old == {key(n) for n in range(10)}
    for _ in range(2_000):  # ten other statements: the old ones' counts halve away
        run(kept, key(100 + rng.randrange(10)))
    assert {k for k, _ in kept.items()} == {key(100 + n) for n in range(10)}


def test_a_text_longer_than_the_budget_is_never_kept() -> None:
    kept = PreparedSet(max_chars=20)
    long = ("SELECT " + "x" * 20, ())
    for _ in range(3):
        assert kept.choose(long) == (None, None, [], 0)
    assert kept.seen() == [] and len(kept) == 0


@pytest.mark.parametrize("option", ["max_statements", "max_chars", "age_every"])
def test_options_must_be_positive(option: str) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        PreparedSet(**{option: 0})  # type: ignore[arg-type]
