"""Synthetic workloads for load tests: a memory hog, a store I/O round trip and a memory budget.

Nothing here knows about HTTP; the service's ``/v1/load/*`` routes are thin wrappers around these.
A "megabyte" (MB) here is 2**20 bytes, the unit of ``MemoryBudget`` and ``materialize_frame``.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from features.store.feature_store import SimpleFeatureStore

__all__ = [
    "BYTES_PER_MB",
    "IO_SCRATCH_GROUP",
    "MemoryBudget",
    "MemoryBudgetExceededError",
    "MemoryLease",
    "RoundTripMismatchError",
    "io_roundtrip",
    "materialize_frame",
]

BYTES_PER_MB = 1 << 20
IO_SCRATCH_GROUP = "io-scratch"
_FRAME_COLUMNS = 8  # float64 columns in a memory frame: wide enough to look like data, few enough to be cheap


def materialize_frame(megabytes: float, seed: int | None = None) -> pd.DataFrame:
    """Return a float64 DataFrame whose values take about ``megabytes`` MB (2**20 bytes) of RAM.

    Every value is drawn from a seeded RNG, so every page is written and really resident (no lazy zero pages).
    The frame is built without a second copy, so the peak is about the frame itself.
    Raises ValueError when ``megabytes`` is not a positive finite number.
    """
    if not (isinstance(megabytes, int | float) and math.isfinite(megabytes) and megabytes > 0):
        raise ValueError(f"megabytes must be a positive finite number, got {megabytes!r}")
    rows = max(1, math.ceil(megabytes * BYTES_PER_MB / (8 * _FRAME_COLUMNS)))
    rng = np.random.default_rng(seed)
    # (columns, rows) C-ordered is exactly pandas' internal block layout, so copy=False keeps one buffer.
    values = rng.random((_FRAME_COLUMNS, rows), dtype=np.float64)
    return pd.DataFrame(values.T, columns=[f"f{i}" for i in range(_FRAME_COLUMNS)], copy=False)


class RoundTripMismatchError(RuntimeError):
    """The frame read back from the store differs from the frame written."""


def io_roundtrip(store: SimpleFeatureStore, rows: int, columns: int, seed: int | None = None) -> dict[str, object]:
    """Write a ``rows`` x ``columns`` float64 frame to the store, read it back, verify it, delete it.

    The frame goes to group ``io-scratch`` under a feature name unique to this call (pid + random suffix), through
    the store's normal write and read paths. Returns ``rows``, ``columns``, ``feature``, ``bytes_written`` and
    ``bytes_read`` (the stored file's size), ``frame_bytes`` (in memory), ``write_ms``, ``read_ms``,
    ``delete_ms`` and ``verified`` (always True: a mismatch raises RoundTripMismatchError).
    Raises ValueError for non-positive sizes.
    """
    for label, value in (("rows", rows), ("columns", columns)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.random((columns, rows)).T, columns=[f"c{i}" for i in range(columns)], copy=False)
    feature = f"rt-{os.getpid()}-{uuid.uuid4().hex[:16]}"
    try:
        started = time.perf_counter()
        store.save_features(IO_SCRATCH_GROUP, {feature: frame})
        written = time.perf_counter()
        loaded = store.get_features([feature], IO_SCRATCH_GROUP)[feature]
        read = time.perf_counter()
        _verify_equal(frame, loaded)
        size_bytes = store.get_metadata(IO_SCRATCH_GROUP, feature).size_bytes
    finally:
        deleting = time.perf_counter()
        with contextlib.suppress(LookupError):  # the write itself failed: nothing to clean up
            store.delete_feature(IO_SCRATCH_GROUP, feature)
        deleted = time.perf_counter()
    return {
        "rows": rows,
        "columns": columns,
        "feature": feature,
        "bytes_written": size_bytes,
        "bytes_read": size_bytes,
        "frame_bytes": int(frame.memory_usage(index=False).sum()),
        "write_ms": (written - started) * 1000.0,
        "read_ms": (read - written) * 1000.0,
        "delete_ms": (deleted - deleting) * 1000.0,
        "verified": True,
    }


def _verify_equal(expected: pd.DataFrame, actual: pd.DataFrame) -> None:
    """Raise RoundTripMismatchError unless ``actual`` has ``expected``'s columns and identical values."""
    missing = [c for c in expected.columns if c not in actual.columns]
    if missing or len(actual) != len(expected):
        raise RoundTripMismatchError(
            f"read back {len(actual)} rows x {list(actual.columns)}, "
            f"expected {len(expected)} rows x {list(expected.columns)}"
        )
    left = expected.to_numpy()
    right = actual[list(expected.columns)].to_numpy(dtype=np.float64)
    if not np.array_equal(left, right):
        bad = int(np.count_nonzero(left != right))
        raise RoundTripMismatchError(f"{bad} of {left.size} values differ after the round trip")


class MemoryBudgetExceededError(RuntimeError):
    """Acquiring would take the memory held past the budget's cap."""

    def __init__(self, requested_mb: float, held_mb: float, cap_mb: float, retry_after_s: float) -> None:
        self.requested_mb = requested_mb
        self.held_mb = held_mb
        self.cap_mb = cap_mb
        self.retry_after_s = retry_after_s
        super().__init__(
            f"cannot hold {requested_mb:g} MB more: {held_mb:g} MB of the {cap_mb:g} MB budget is already held; "
            f"retry in about {retry_after_s:.0f} s or ask for at most {max(cap_mb - held_mb, 0.0):g} MB"
        )


@dataclass(eq=False)
class MemoryLease:
    """``megabytes`` held against a MemoryBudget until ``release()`` (or the end of a ``with`` block)."""

    budget: MemoryBudget
    megabytes: float
    release_by: float | None = None  # time.monotonic() by which the holder expects to release, if known
    released: bool = field(default=False, init=False)

    def release(self) -> None:
        """Give the megabytes back; calling it again does nothing."""
        self.budget._release(self)

    def __enter__(self) -> MemoryLease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class MemoryBudget:
    """Thread-safe accounting of the megabytes currently held, against a total cap (``cap_mb``)."""

    def __init__(self, cap_mb: float) -> None:
        if not (math.isfinite(cap_mb) and cap_mb > 0):
            raise ValueError(f"cap_mb must be a positive finite number, got {cap_mb!r}")
        self.cap_mb = float(cap_mb)
        self._lock = threading.Lock()
        self._held_mb = 0.0
        self._leases: set[MemoryLease] = set()

    @property
    def held_mb(self) -> float:
        """Megabytes held right now by unreleased leases."""
        with self._lock:
            return self._held_mb

    def acquire(self, megabytes: float, hold_s: float | None = None) -> MemoryLease:
        """Reserve ``megabytes`` and return the lease; ``hold_s`` is how long the caller means to keep it.

        Raises ValueError for a non-positive amount and MemoryBudgetExceededError (with ``retry_after_s``, the
        soonest a current holder expects to release, at least 1 s) when the cap would be exceeded.
        """
        if not (math.isfinite(megabytes) and megabytes > 0):
            raise ValueError(f"megabytes must be a positive finite number, got {megabytes!r}")
        now = time.monotonic()
        with self._lock:
            if self._held_mb + megabytes > self.cap_mb + 1e-9:
                raise MemoryBudgetExceededError(megabytes, self._held_mb, self.cap_mb, self._retry_after_s(now))
            lease = MemoryLease(self, float(megabytes), None if hold_s is None else now + hold_s)
            self._held_mb += lease.megabytes
            self._leases.add(lease)
            return lease

    def _release(self, lease: MemoryLease) -> None:
        with self._lock:
            if lease.released:
                return
            lease.released = True
            self._leases.discard(lease)
            self._held_mb = max(0.0, self._held_mb - lease.megabytes)

    def _retry_after_s(self, now: float) -> float:
        release_times = [lease.release_by for lease in self._leases if lease.release_by is not None]
        return max(1.0, min(release_times) - now) if release_times else 1.0
