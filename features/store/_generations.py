"""Commit counters in shared memory: a cache hit without a system call, still coherent across processes.

Without them, every read re-reads the feature's commit pointer (open, read, close) to learn whether another
process committed since the frame was cached; after a cold read elsewhere in the process those three calls cost
as much as the rest of the hit together. Here each lock bucket (``.locks/<bucket>.lock``, see
``SimpleFeatureStore._lock``) has a 64-bit counter in ``.locks/generations``, mapped into every process that
uses the store. A writer holding the bucket's lock makes the counter odd before it changes a pointer and even
again after (a seqlock); a reader that finds the counter even and equal to the one it recorded when it last
validated an entry against the pointer serves the entry without touching the disk.

Why a reader never serves a version older than a completed save:

* a save returns after its counter went even again, so a read that starts later sees a counter that differs
  from any recorded before the save's pointer changed;
* an entry records the counter read *before* the pointer it was validated against; a pointer renamed after that
  read comes with a later counter, so the entry is validated again at its next read;
* a writer killed between the two steps leaves the counter odd: readers of that bucket take the slow path (read
  the pointer every time) until the next save in the bucket makes it even, so a crash costs speed, never
  coherence.

The counters live in page cache only; they are never synced, and their values mean nothing across restarts
(a new process starts with an empty cache). The map is used only on local file systems, where every process
maps the same pages: on NFS, CIFS or FUSE, each host would see its own copy, so there nothing is counted and
readers check the pointer on every read as before. Readers map the file read-only; where it cannot be mapped
(it does not exist yet), that process checks the pointer on every read. Delete ``.locks`` only while no process
uses the store: a reader keeps the file it mapped.
Every writer of a store directory must be of this version or later: an older one changes pointers without
counting, and readers of this version would serve its older frame until the cache's TTL.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

from features.store.fileops import file_system_type

__all__ = ["GENERATIONS_FILE", "Generations", "counts_commits", "open_generations"]

GENERATIONS_FILE = "generations"
# statfs f_type of file systems whose pages every process of the host shares: ext2/3/4, xfs, btrfs, tmpfs,
# overlayfs (containers), f2fs, zfs.
_LOCAL_FILE_SYSTEMS = frozenset({0xEF53, 0x58465342, 0x9123683E, 0x01021994, 0x794C7630, 0xF2F52010, 0x2FC12FC1})


class Generations:
    """The counters of ``buckets`` lock buckets in the file ``path``.

    Readers map it read-only, once, when it exists (``open_generations``); a writer maps it writable only for the
    span of ``publishing``, so no process holds the file open for writing between saves (a writable mapping
    would keep the file system from being remounted read-only under a running service).
    """

    def __init__(self, path: Path, buckets: int) -> None:
        size = buckets * 8
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size < size:
                raise ValueError(f"{path} is shorter than {size} bytes")
            self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)  # the mapping keeps the pages
        # An aligned 8-byte item: one load on 64-bit CPUs, so a reader never sees half a counter.
        self._counters = memoryview(self._map).cast("Q")

    def read(self, bucket: int) -> int:
        """The bucket's counter: odd while a writer is changing one of its pointers."""
        return self._counters[bucket]

    @classmethod
    @contextlib.contextmanager
    def publishing(cls, path: Path, buckets: int, bucket: int) -> Iterator[None]:
        """Mark ``bucket`` as changing for the body (call holding the bucket's write lock).

        Odd on entry (by two when a killed writer left it odd), even on every way out, including an exception:
        whatever the body changed on disk, readers validate again. Creates the file when missing, its blocks
        written (never sparse: a store to an unallocated page of a full disk would kill the process with
        SIGBUS). Raises OSError (ENOSPC, EACCES, EROFS) before the body runs when the counters cannot be written;
        the caller's save then fails before changing anything.
        """
        size = buckets * 8
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            length = os.fstat(fd).st_size
            if length < size:
                os.pwrite(fd, bytes(size - length), length)  # zeros, allocated now (ENOSPC here, not SIGBUS later)
            mapped = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        counters = memoryview(mapped).cast("Q")
        try:
            value = counters[bucket]
            value += 1 if value % 2 == 0 else 2
            counters[bucket] = value
            try:
                yield
            finally:
                counters[bucket] = value + 1
        finally:
            counters.release()
            mapped.close()


def open_generations(locks_dir: Path, buckets: int) -> Generations | None:
    """The store's counters for reading, or None where there are none yet. Never creates anything: a store that is
    only read stays as it was. Call only where ``counts_commits`` holds (elsewhere no writer counts)."""
    try:
        return Generations(locks_dir / GENERATIONS_FILE, buckets)
    except (OSError, ValueError):  # no file yet (no save by this version), a short file
        return None


def counts_commits(locks_dir: Path) -> bool:
    """Whether saves into the store whose locks are in ``locks_dir`` count commits (a local file system)."""
    return file_system_type(locks_dir.parent) in _LOCAL_FILE_SYSTEMS
