"""What every request handler works with: settings, the store, metrics and the memory budget, built once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from features.store.feature_store import FeatureStoreConfig, LookupResult, SimpleFeatureStore
from features.store.names import validate_name
from features.workloads import MemoryBudget
from service.metrics import ServiceMetrics
from service.settings import Settings

__all__ = ["INLINE_BATCH_MAX", "KeyedLocks", "ServiceContext", "build_context"]

# Batches up to this many ids are looked up on the event loop once the feature is warm; bigger ones go to a
# thread so a 10,000-id batch cannot stall every other request on the loop.
INLINE_BATCH_MAX = 256
_WARM_MAX = 4096
T = TypeVar("T")


class KeyedLocks:
    """One asyncio.Lock per key, kept only while a task holds or awaits it.

    Keys come from clients (any group/feature name), so an entry is removed when its last user leaves: the map
    holds at most one entry per request in flight, never one per name ever asked for.
    """

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the ``with`` block (tasks holding other keys are not blocked)."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class ServiceContext:
    """The per-process state of one app, created at start-up and shared by every request."""

    settings: Settings
    store: SimpleFeatureStore
    metrics: ServiceMetrics
    budget: MemoryBudget
    _warm: set[tuple[str, str]] = field(default_factory=set)
    _cold_locks: KeyedLocks = field(default_factory=KeyedLocks)

    async def lookup(self, group: str, feature: str, entity_ids: Sequence[Any]) -> LookupResult:
        """``store.lookup`` without blocking the event loop on a cold read (see ``_read_warm``)."""
        inline = len(entity_ids) <= INLINE_BATCH_MAX
        return await self._read_warm(group, feature, self.store.lookup, (entity_ids,), inline)

    async def lookup_encoded(
        self, group: str, feature: str, entity_id: Any, encode: Callable[[dict[str, Any]], bytes]
    ) -> tuple[bytes | None, int]:
        """``store.lookup_encoded`` (one entity's encoded row) without blocking the event loop on a cold read."""
        return await self._read_warm(group, feature, self.store.lookup_encoded, (entity_id, encode), True)

    async def _read_warm(
        self, group: str, feature: str, read: Callable[..., T], args: tuple[Any, ...], inline: bool
    ) -> T:
        """``read(group, feature, *args)``, in a thread the first time in this process, inline after if ``inline``.

        The first lookup of a feature in this process runs in a thread (it reads the Parquet file and builds the
        index), one at a time per feature: requests arriving meanwhile wait for it instead of each loading the
        same file. Later lookups run inline: a hash probe and one read per column (or one kept encoded row),
        cheaper than a thread hop. A feature evicted from the cache or rewritten by another worker is reloaded
        inline once.
        """
        key = (group, feature)
        if key not in self._warm:
            validate_name("group", group)  # a bad name costs neither a thread hop nor a lock
            validate_name("feature", feature)
            async with self._cold_locks.hold(key):
                if key not in self._warm:
                    result = await run_in_threadpool(read, group, feature, *args)
                    if len(self._warm) >= _WARM_MAX:
                        self._warm.clear()
                    self._warm.add(key)  # only features that exist: a missing one raised above
                    return result
        if inline:
            return read(group, feature, *args)
        return await run_in_threadpool(read, group, feature, *args)

    def forget(self, group: str, feature: str) -> None:
        """Mark a feature cold after this process wrote or deleted it, so its next lookup reads in a thread."""
        self._warm.discard((group, feature))


def build_context(settings: Settings, metrics: ServiceMetrics) -> ServiceContext:
    """Open the store at ``settings.store_path`` (creating the directory) and assemble the context."""
    config = FeatureStoreConfig(
        base_path=settings.store_path,
        cache_enabled=settings.cache_enabled,
        compression=settings.compression,
        cache_max_size=settings.cache_max_entries,
        cache_max_bytes=settings.cache_max_bytes,
        cache_ttl_seconds=settings.cache_ttl_s,
        verify_checksums=settings.verify_checksums,
    )
    store = SimpleFeatureStore(config, observer=metrics.observer)
    return ServiceContext(settings, store, metrics, MemoryBudget(settings.max_total_memory_mb))
