from __future__ import annotations

import threading

import pytest

from features.store.cache import FeatureCache


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def make_cache(**overrides: object) -> tuple[FeatureCache, FakeClock]:
    clock = FakeClock()
    options = {"max_entries": 3, "max_bytes": 1000, "ttl_seconds": 10.0, **overrides}
    return FeatureCache(clock=clock, **options), clock  # type: ignore[arg-type]


def test_hit_returns_the_same_object_without_copying() -> None:
    cache, _ = make_cache()
    value = object()
    cache.put("a", b"v1", value, 10)
    entry = cache.get("a", b"v1")
    assert entry is not None and entry.value is value
    assert cache.get_stats()["hits"] == 1


def test_lru_evicts_least_recently_used_entry_first() -> None:
    cache, _ = make_cache()
    for key in "abc":
        cache.put(key, b"t", key, 10)
    cache.get("a", b"t")  # a becomes most recent, so b is the oldest
    cache.put("d", b"t", "d", 10)
    assert cache.get("b", b"t") is None
    assert cache.get("a", b"t") is not None
    assert cache.get_stats()["evictions"] == 1


def test_a_lock_free_hit_gives_its_entry_a_second_chance() -> None:
    """Hits known current by the commit counters take no lock and do not reorder: they mark the entry, and the
    eviction passes a marked entry over once (CLOCK), so the oldest entry nobody hit goes instead."""
    cache, _ = make_cache()
    for key in "abc":
        cache.put(key, b"t", key, 10).generation = 2
    cache.put("d", b"t", "d", 10)  # a full pass clears every put's mark; a goes
    assert list(cache._entries) == ["b", "c", "d"]
    assert cache.get_current("b", 2) is not None and cache.get_current("b", 4) is None  # another counter: no hit
    entry = cache.peek_current("c", 2)
    assert entry is not None and cache.count_hit("c", entry)
    cache.put("e", b"t", "e", 10)
    assert list(cache._entries) == ["e", "b", "c"]  # d, the oldest not hit, went; b and c were passed over
    assert cache.get_stats()["hits"] == 2 and cache.get_stats()["evictions"] == 2


def test_eviction_ends_when_every_entry_was_hit_and_keeps_the_new_one() -> None:
    cache, _ = make_cache(max_entries=50)
    for i in range(50):
        cache.put(i, b"t", i, 1).generation = 0
    for i in range(50):
        assert cache.get_current(i, 0) is not None
    cache.put("new", b"t", "new", 1)
    assert len(cache) == 50 and "new" in cache._entries and 0 not in cache._entries


def test_byte_budget_evicts_and_oversize_values_are_not_kept() -> None:
    cache, _ = make_cache(max_entries=100, max_bytes=100)
    cache.put("a", b"t", "a", 60)
    cache.put("b", b"t", "b", 60)
    assert cache.get("a", b"t") is None
    assert cache.get_stats()["bytes"] == 60
    entry = cache.put("huge", b"t", "huge", 101)
    assert entry.value == "huge"
    assert cache.get("huge", b"t") is None
    assert cache.get_stats()["bytes"] <= 100


def test_ttl_expiry_counts_and_forces_a_miss() -> None:
    cache, clock = make_cache()
    cache.put("a", b"t", "a", 10)
    clock.now_s += 9.9
    assert cache.get("a", b"t") is not None
    clock.now_s += 0.2
    assert cache.get("a", b"t") is None
    stats = cache.get_stats()
    assert stats["expirations"] == 1
    assert stats["size"] == 0


def test_a_different_token_invalidates_the_entry() -> None:
    cache, _ = make_cache()
    cache.put("a", b"v1", "old", 10)
    assert cache.get("a", b"v2") is None
    assert cache.get("a", b"v1") is None  # dropped, not kept beside the newer version
    stats = cache.get_stats()
    assert stats["invalidations"] == 1
    assert stats["misses"] == 2


def test_derived_objects_count_against_the_byte_budget() -> None:
    cache, _ = make_cache(max_entries=10, max_bytes=100)
    entry = cache.put("a", b"t", "a", 40)
    cache.add_derived("a", entry, "index", "idx", 30)
    assert cache.get_stats()["bytes"] == 70
    assert cache.get("a", b"t").derived["index"] == "idx"
    cache.put("b", b"t", "b", 40)  # 110 > 100: a (the LRU) goes
    assert cache.get("a", b"t") is None


def test_hit_rate_and_stats_keys() -> None:
    cache, _ = make_cache()
    assert cache.get_stats()["hit_rate"] == 0.0
    cache.put("a", b"t", "a", 1)
    for _ in range(9):
        cache.get("a", b"t")
    cache.get("missing", b"t")
    stats = cache.get_stats()
    assert stats["hit_rate"] == pytest.approx(0.9)
    expected = {"size", "max_size", "ttl_seconds", "hits", "misses", "hit_rate", "evictions", "expirations"}
    assert expected <= stats.keys()


@pytest.mark.parametrize("field, value", [("max_entries", 0), ("max_bytes", 0), ("ttl_seconds", 0)])
def test_invalid_bounds_are_rejected_with_the_field_named(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        make_cache(**{field: value})


def test_concurrent_use_keeps_the_accounting_exact() -> None:
    cache, _ = make_cache(max_entries=50, max_bytes=10_000)

    def worker(offset: int) -> None:
        for i in range(2000):
            key = (offset + i) % 80
            if cache.get(key, b"t") is None:
                cache.put(key, b"t", key, 7)

    threads = [threading.Thread(target=worker, args=(n * 13,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = cache.get_stats()
    assert stats["size"] <= 50
    assert stats["bytes"] == 7 * stats["size"]
    assert stats["hits"] + stats["misses"] == 8 * 2000
