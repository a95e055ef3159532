"""A thread-safe TTL + LRU cache of feature frames, bounded by entries and by bytes.

Each entry remembers the *token* of the version it holds (the bytes of the feature's commit pointer). A read
passes the token it just saw on disk; a different token means another writer, in this process or another one,
committed a newer version, and the entry is dropped ("invalidation") instead of being served stale.

Values are stored and returned as they are, without copying. The store hands callers a shallow copy of a cached
DataFrame: pandas (>= 3.0) copy-on-write then guarantees that a caller mutating its frame copies the touched data
first, so the cached object is never changed through it.

Recency is LRU for what goes through the lock (``get``, ``put``) and CLOCK's second chance for the hot path: a hit
known current by the commit counters (``get_current``, ``count_hit``) takes no lock and does not reorder; it marks
the entry ``referenced``, and eviction moves a referenced entry to the young end once instead of dropping it. With
a lock and a reorder per hit, the hit right after a cold read cost 11-12 us in this class alone, 5-6 us without
(issue 19 item 3). Those hits are counted without the lock: under the GIL an attribute increment is not split by
another thread in practice; were one lost, it is one count of a statistic, never a wrong answer.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CacheEntry", "FeatureCache"]


@dataclass
class CacheEntry:
    """One cached version: its token, the value, its size in bytes and derived objects built from it."""

    token: bytes
    value: Any
    nbytes: int
    stored_at_s: float
    derived: dict[str, Any] = field(default_factory=dict)
    # The store's commit counter read before the pointer this entry was last validated against (None: not
    # known); while the counter still reads the same, the pointer cannot have changed (features.store._generations).
    generation: int | None = None
    referenced: bool = False  # hit since the eviction scan last passed it: it gets a second chance


class FeatureCache:
    """LRU cache (CLOCK's second chance for lock-free hits: module docstring) with TTL expiry, an entry bound and a
    byte bound.

    ``clock`` returns seconds (monotonic); tests inject their own to exercise expiry without sleeping.
    """

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"cache max_entries must be >= 1, got {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"cache max_bytes must be >= 1, got {max_bytes}")
        if ttl_seconds <= 0:
            raise ValueError(f"cache ttl_seconds must be > 0, got {ttl_seconds}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[Hashable, CacheEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._evictions = self._expirations = self._invalidations = 0

    def get(self, key: Hashable, token: bytes) -> CacheEntry | None:
        """Return the entry for ``key`` if it holds version ``token`` and has not expired, else None (a miss)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return None
            if entry.token != token:
                self._drop(key, entry)
                self._invalidations += 1
                self._misses += 1
                return None
            if self._clock() - entry.stored_at_s >= self.ttl_seconds:
                self._drop(key, entry)
                self._expirations += 1
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return entry

    def get_current(self, key: Hashable, generation: int) -> CacheEntry | None:
        """The entry for ``key`` if it was validated at commit counter ``generation`` and has not expired, counted
        as a hit; else None, counted as nothing (the caller goes on to ``get`` with the pointer's token, which
        expires it and counts that). Takes no lock (module docstring). ``peek_current``'s test written out, not
        called: on the hit right after a cold read each call is measurable."""
        entry = self._entries.get(key)
        if entry is None or entry.generation != generation or self._clock() - entry.stored_at_s >= self.ttl_seconds:
            return None
        entry.referenced = True
        self._hits += 1
        return entry

    def peek_current(self, key: Hashable, generation: int) -> CacheEntry | None:
        """As ``get_current``, but counts nothing and leaves the entry's recent use alone (``count_hit`` does both)."""
        entry = self._entries.get(key)
        if entry is None or entry.generation != generation:
            return None
        if self._clock() - entry.stored_at_s >= self.ttl_seconds:
            return None
        return entry

    def count_hit(self, key: Hashable, entry: CacheEntry) -> bool:
        """Count a hit on ``entry`` found by ``peek_current``; False (nothing counted) if it left the cache since."""
        if self._entries.get(key) is not entry:
            return False
        entry.referenced = True
        self._hits += 1
        return True

    def put(self, key: Hashable, token: bytes, value: Any, nbytes: int) -> CacheEntry:
        """Store ``value`` (``nbytes`` large) as version ``token`` of ``key``; returns the new entry.

        A value larger than the whole byte budget is returned in an entry but not kept.
        """
        # referenced from the start: the eviction its own put may start passes it over once (CLOCK's initial bit)
        entry = CacheEntry(token=token, value=value, nbytes=nbytes, stored_at_s=self._clock(), referenced=True)
        with self._lock:
            old = self._entries.get(key)
            if old is not None:
                self._drop(key, old)
            if nbytes <= self.max_bytes:
                self._entries[key] = entry
                self._bytes += nbytes
                self._evict_over_budget()
        return entry

    def add_derived(self, key: Hashable, entry: CacheEntry, name: str, value: Any, nbytes: int) -> None:
        """Attach an object derived from ``entry``'s value (an index, an Arrow table) and count its bytes."""
        with self._lock:
            entry.derived[name] = value
            entry.nbytes += nbytes
            if self._entries.get(key) is entry:
                self._bytes += nbytes
                self._evict_over_budget()

    def invalidate(self, key: Hashable) -> None:
        """Drop ``key`` if present (used after this process writes or deletes it)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._drop(key, entry)
                self._invalidations += 1

    def clear(self) -> None:
        """Drop every entry; counters are kept."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_stats(self) -> dict[str, Any]:
        """Counters and sizes: size, max_size (entries), bytes, max_bytes, ttl_seconds, hits, misses, hit_rate,
        evictions, expirations, invalidations. hit_rate is hits / (hits + misses), 0.0 before any lookup."""
        with self._lock:
            lookups = self._hits + self._misses
            return {
                "size": len(self._entries),
                "max_size": self.max_entries,
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "ttl_seconds": self.ttl_seconds,
                "hits": self._hits,
                "misses": self._misses,
                "hit_rate": self._hits / lookups if lookups else 0.0,
                "evictions": self._evictions,
                "expirations": self._expirations,
                "invalidations": self._invalidations,
            }

    def _drop(self, key: Hashable, entry: CacheEntry) -> None:
        del self._entries[key]
        self._bytes -= entry.nbytes

    def _evict_over_budget(self) -> None:
        chances = len(self._entries)  # each entry's second chance, once: hits meanwhile cannot keep the scan going
        while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
            key, entry = next(iter(self._entries.items()))
            if entry.referenced and chances > 0:
                entry.referenced = False
                self._entries.move_to_end(key)
                chances -= 1
                continue
            self._drop(key, entry)
            self._evictions += 1
