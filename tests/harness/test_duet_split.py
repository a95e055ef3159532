"""harness.users.DuetSplit: a duet's two services get the same mix of requests, each name alternating between
them from a side drawn at random, and the table of names stays bounded."""

from __future__ import annotations

import itertools
import random
from collections import Counter

from tests.unpatched import locust_unpatched

with locust_unpatched():  # Locust's classes without a gevent-patched pytest process
    from harness.users import DuetSplit

NAMES = ("lookup", "batch", "page", "write")


def _sides(split: DuetSplit, names: list[str]) -> Counter[tuple[str, bool]]:
    return Counter((name, split.to_duet(name)) for name in names)


def test_every_name_is_split_evenly_whatever_the_mix() -> None:
    rng = random.Random(3)
    names = rng.choices(NAMES, weights=(80, 10, 7, 3), k=4001)
    counts = _sides(DuetSplit(rng=random.Random(4)), names)
    for name in NAMES:
        assert abs(counts[(name, True)] - counts[(name, False)]) <= 1, (name, counts)
        assert counts[(name, True)] > 0 and counts[(name, False)] > 0


def test_each_name_alternates_from_a_random_first_side() -> None:
    firsts = set()
    for seed in range(40):
        split = DuetSplit(rng=random.Random(seed))
        sequence = [split.to_duet("lookup") for _ in range(6)]
        assert all(a != b for a, b in itertools.pairwise(sequence)), sequence
        firsts.add(sequence[0])
    assert firsts == {True, False}  # neither service always gets the first request


def test_names_beyond_the_bound_get_a_coin_and_are_not_kept() -> None:
    split = DuetSplit(max_names=3, rng=random.Random(5))
    for name in ("a", "b", "c"):
        split.to_duet(name)
    drawn = [split.to_duet(f"/movies/{i}") for i in range(2000)]  # a class naming its requests by URL
    assert len(split._next) == 3
    assert 800 < sum(drawn) < 1200  # a fair coin for each
    assert [split.to_duet("a") for _ in range(4)] in ([True, False] * 2, [False, True] * 2)  # kept names alternate
