"""What every request handler works with: settings, the store, metrics and the memory budget, built once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from features.store.feature_store import FeatureStoreConfig, LookupResult, SimpleFeatureStore
from features.workloads import MemoryBudget
from service.metrics import ServiceMetrics
from service.settings import Settings

__all__ = ["INLINE_BATCH_MAX", "ServiceContext", "build_context"]

# Batches up to this many ids are looked up on the event loop once the feature is warm; bigger ones go to a
# thread so a 10,000-id batch cannot stall every other request on the loop.
INLINE_BATCH_MAX = 256
_WARM_MAX = 4096


@dataclass
class ServiceContext:
    """The per-process state of one app, created at start-up and shared by every request."""

    settings: Settings
    store: SimpleFeatureStore
    metrics: ServiceMetrics
    budget: MemoryBudget
    _warm: set[tuple[str, str]] = field(default_factory=set)
    _cold_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    async def lookup(self, group: str, feature: str, entity_ids: Sequence[Any]) -> LookupResult:
        """``store.lookup`` without blocking the event loop on a cold read.

        The first lookup of a feature in this process runs in a thread (it reads the Parquet file and builds the
        index), one at a time per feature: requests arriving meanwhile wait for it instead of each loading the
        same file. Later lookups run inline: a pointer read, a hash probe and one read per column, cheaper than
        a thread hop. A feature evicted from the cache or rewritten by another worker is reloaded inline once.
        """
        key = (group, feature)
        if key not in self._warm:
            async with self._cold_locks.setdefault(key, asyncio.Lock()):
                if key not in self._warm:
                    result = await run_in_threadpool(self.store.lookup, group, feature, entity_ids)
                    if len(self._warm) >= _WARM_MAX:
                        self._warm.clear()
                        self._cold_locks.clear()
                    self._warm.add(key)
                    return result
        if len(entity_ids) <= INLINE_BATCH_MAX:
            return self.store.lookup(group, feature, entity_ids)
        return await run_in_threadpool(self.store.lookup, group, feature, entity_ids)

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
