"""harness.users.ZipfIds: the catalog's ids drawn with a zipf skew from a pool built once per process and shared
by every user (one pool per user cost the generator about 7 MB of memory per user)."""

from __future__ import annotations

import tracemalloc
from collections import Counter

import numpy as np

from tests.unpatched import locust_unpatched

with locust_unpatched():  # Locust's classes without a gevent-patched pytest process
    from harness.users import ZipfIds

IDS = np.arange(1000, 21_000)  # a 20,000-movie catalog, most popular first


def test_users_share_one_pool_per_process() -> None:
    ZipfIds(IDS, seed=1)  # the first user builds the pool
    tracemalloc.start()
    try:
        users = [ZipfIds(IDS, seed=seed) for seed in range(2, 12)]
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert allocated < 10 * 64 * 1024, f"{allocated / 2**20:.1f} MB for 10 more users"  # was ~7 MB per user
    assert len(users) == 10


def test_the_skew_holds_and_each_user_draws_its_own_sequence() -> None:
    one, other, again = ZipfIds(IDS, seed=7), ZipfIds(IDS, seed=8), ZipfIds(IDS, seed=7)
    drawn = [one.one() for _ in range(20_000)]
    counts = Counter(drawn)
    assert counts.most_common(1)[0][0] == IDS[0]  # the most popular id is drawn most
    assert counts[IDS[0]] > 5 * counts.get(IDS[100], 0)  # 1/k**1.1: the 101st is drawn ~160x less often
    assert set(drawn) <= set(IDS.tolist())
    assert [other.one() for _ in range(50)] != drawn[:50]
    assert [again.one() for _ in range(50)] == drawn[:50]
    batch = one.many(100)
    assert len(batch) == 100 and all(type(i) is int for i in batch)  # JSON-serializable by any encoder
