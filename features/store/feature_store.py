"""A Parquet feature store: atomic, versioned writes; verified reads; a TTL + LRU cache; online lookup by id.

Layout under ``base_path`` (group and feature names follow ``features.store.names``)::

    <group>/<feature>/v0000000007.parquet   one file per committed version (the newest two are kept)
    <group>/<feature>/_current.json         the commit pointer: version, file, checksum, schema, rows, ...
    <group>/<feature>/_previous.json        the pointer of the commit before (a hard link, no copy)
    .staging/.v.parquet.tmp-<pid>-<rand>    frames being written, before their commit
    .locks/<bucket>.lock                    write locks (flock, shared by every process): a feature's lock is
                                            bucket crc32("<group>/<feature>") % 256, so their number is bounded
    .locks/generations                      a commit counter per bucket, mapped by every reading process

A reader reads the pointer, then the file it names, and checks size and CRC32 against the pointer, so it always
gets one complete version; a writer killed at any moment leaves the last committed version readable (every step
below keeps the old pointer or puts a complete new one in place). A cached frame is served while its lock
bucket's commit counter in ``.locks/generations`` (shared memory, ``features.store._generations``) reads as when
the frame was last checked against its pointer; when the counter moved (a save or delete in any process) or
cannot be shared (NFS), the read compares the pointer's bytes (one small read), so writes from other processes
invalidate it.

Commit protocol: one fsync per saved feature (it was three: staged data, pointer, directory).

1. Stage: serialize the frame into a temp file under ``.staging`` (outside any lock), keeping its CRC32 and
   size; write it out to the device and wait (``sync_file_range``: no journal commit, no cache flush; an fsync
   on file systems other than ext4 and XFS, see ``FileOps.for_directory``). Then, holding the feature's lock:
2. Create the group and feature directories if missing; read ``_current.json`` to get the next version N.
3. Rename the staged file to ``vN.parquet`` in the feature directory.
4. Write the new pointer into a temp file beside ``_current.json`` (not synced); hard-link the old
   ``_current.json`` to ``_previous.json`` (through a temp name, renamed over the old link); rename the new
   pointer over ``_current.json``. Concurrent readers now see version N.
5. fsync the new pointer (the one fsync), then return: the save is acknowledged. Old versions are unlinked.

Why a power cut at any point shows version N-1 or N, never a damaged one, and never loses an acknowledged N.
The model is a journaling file system (ext4, XFS; the old protocol assumed it too): renames, links and mkdirs
reach the disk in the order they were made, each in a journal commit; a commit first flushes the device's write
cache and holds the block allocations done before it; an fsync of a file makes durable its content and forces the
commit holding the last change that touched its inode (so every change made before it too); content that was
never fsynced or written out before a commit may be lost (a file renamed into place without its data reads back
empty).

- Cut before step 4's last rename is on disk: ``_current.json`` is still the old pointer, and the data it names
  was durable before its own commit was acknowledged: N-1. A ``vN.parquet`` left behind is overwritten by the
  next commit of N.
- Step 4's renames are on disk, step 5 not finished: the commit that carried them flushed the device first, and
  the staged data had reached the device (step 1 waited) before step 3, so ``vN.parquet`` is whole. The link to
  ``_previous.json`` was made before the rename, so it is on disk too, and its content is the old pointer's,
  durable since the commit before. The new pointer's content may be lost: an empty ``_current.json`` is the trace
  of exactly this window (a written pointer is never empty), and readers and the next writer then follow
  ``_previous.json``: N-1. If its content did reach the disk: N, whole.
- Step 5 returned: its fsync made the pointer's content durable, and its commit the rename that touched the
  pointer's inode, every change before it (the data file's rename, the directories) and, by the flush, the data:
  N, for good.
- A first save has no ``_previous.json``: an empty pointer then means the save never completed, and the feature
  does not exist (``FeatureNotFoundError``, not listed). A first save also removes any ``_previous.json`` left
  by a deleted feature of that name, so it can never become the fallback.

The old protocol paid three journal commits per save: the staged file's fsync, the pointer temp's before its
rename, the directory's after it. Here the data needs none of its own (only to be on the device before the rename
that makes it reachable), the pointer is fsynced after its rename, which makes both durable at once, and the hard
link covers the window in between. On file systems outside the model (btrfs, whose fsync logs only the synced
inode; NFS, where only an fsync commits data on the server; tmpfs) step 1 is an fsync: two per save. A pointer
that is not empty but unreadable is damage, as before: an ``IntegrityError``. Every mutating call goes through
``FileOps`` (``features.store.fileops``), so a test can cut power between any two of them
(``tests/features/store/test_store_power_cut.py``). An fsync that fails in step 5 (EIO) raises and puts
``_previous.json`` back as the pointer: the save is not acknowledged.

Staged files and locks live outside the feature directories so that a delete, which removes the feature's
directory (and its group's, once empty), can never remove another writer's staged file, and a failed write or
a delete of a missing feature leaves no directory behind.

Failures stay where they happen. A write the disk refuses raises StorageFullError (ENOSPC, EDQUOT) or
StoreUnavailableError (read-only, no permission), leaves nothing staged and the last committed version as it was;
every Parquet stream is closed on every path, and a closed sink refuses writes, so a failed stream's buffered
bytes can never reach a file or socket that reuses its descriptor number. A damaged pointer (unreadable, a
non-integer version, a directory) or a missing data file is an IntegrityError of that feature alone, which can
still be deleted. Column types that could be written but not read back (maps, time64[ns], fixed-size lists of
size 0) are refused at write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.store._files import (
    ChecksummingFile,
    read_small_file,
    remove_temp_files,
    replace_then_sync,
    temp_path_for,
)
from features.store._frames import table_from_frame
from features.store._generations import GENERATIONS_FILE, Generations, counts_commits, open_generations
from features.store._lock import exclusive_lock
from features.store.cache import CacheEntry, FeatureCache
from features.store.fileops import FileOps
from features.store.lookup import EntityIndex, LookupResult
from features.store.names import NAME_PATTERN, validate_name

__all__ = [
    "EntityNotFoundError",
    "FeatureMetadata",
    "FeatureNotFoundError",
    "FeatureStoreConfig",
    "IntegrityError",
    "LookupResult",
    "SimpleFeatureStore",
    "StorageFullError",
    "StoreError",
    "StoreObserver",
    "StoreUnavailableError",
]

POINTER_FILE = "_current.json"
PREVIOUS_POINTER_FILE = "_previous.json"
STAGING_DIR = ".staging"
LOCKS_DIR = ".locks"
LOCK_BUCKETS = 256
COMPRESSIONS = ("snappy", "gzip", "brotli", "zstd", "lz4", "none")
ENTITY_COLUMN_CANDIDATES = ("entity_id", "id", "movie_id")
_VERSION_FILE = re.compile(r"v(\d{10})\.parquet")
_READ_RETRIES = 5
_THREADED_READ_BYTES = 4 << 20
_WRITE_BUFFER_BYTES = 1 << 20
_POINTER_PATHS_MAX = 10_000
_GENERATIONS_RETRY_S = 1.0
_MKDIR_ATTEMPTS = 5
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_UNAVAILABLE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_READABLE_SCHEMAS_MAX = 512


class FeatureNotFoundError(LookupError):
    """The group or feature does not exist."""


class EntityNotFoundError(LookupError):
    """An entity id is not in the feature's entity column."""


class IntegrityError(RuntimeError):
    """A stored file does not match its commit pointer (size or checksum): the disk content is damaged."""


class StoreError(OSError):
    """The store's file system refused a write: nothing of it was committed (``errno`` says why)."""


class StorageFullError(StoreError):
    """No space (or quota) left on the store's file system (ENOSPC, EDQUOT). Retry once space is freed."""


class StoreUnavailableError(StoreError):
    """The store's file system is read-only or not writable by this process (EROFS, EACCES, EPERM)."""


@contextlib.contextmanager
def _disk_errors(action: str) -> Iterator[None]:
    """Turn the file system's "full" and "not writable" errors into StorageFullError / StoreUnavailableError.

    Their messages never name a path: they reach HTTP clients.
    """
    try:
        yield
    except StoreError:
        raise
    except OSError as error:
        if error.errno in _FULL_ERRNOS:
            raise StorageFullError(
                error.errno,
                f"{action} failed: the store's disk is full ({os.strerror(error.errno)}); a feature whose write "
                "failed keeps its previous version: free space and retry",
            ) from error
        if error.errno in _UNAVAILABLE_ERRNOS:
            raise StoreUnavailableError(
                error.errno,
                f"{action} failed: the store is not writable ({os.strerror(error.errno)}): read-only mount or "
                "missing permission",
            ) from error
        raise


class StoreObserver(Protocol):
    """Hooks the store calls so a host (the service's metrics) can count what it does."""

    def cache_hit(self, group: str, name: str) -> None: ...
    def cache_miss(self, group: str, name: str) -> None: ...
    def bytes_read(self, n: int) -> None: ...
    def bytes_written(self, n: int) -> None: ...


class _NullObserver:
    def cache_hit(self, group: str, name: str) -> None:
        pass

    def cache_miss(self, group: str, name: str) -> None:
        pass

    def bytes_read(self, n: int) -> None:
        pass

    def bytes_written(self, n: int) -> None:
        pass


@dataclass(frozen=True)
class FeatureStoreConfig:
    """Store settings. Sizes in entries and bytes, durations in seconds."""

    base_path: str | Path
    cache_enabled: bool = True
    compression: str = "snappy"
    cache_max_size: int = 256
    cache_max_bytes: int = 1 << 30
    cache_ttl_seconds: float = 300.0
    verify_checksums: bool = True
    lock_timeout_seconds: float = 60.0
    keep_versions: int = 2

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression {self.compression!r} is not supported: use one of {COMPRESSIONS}")
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be >= 1, got {self.keep_versions}")
        if self.lock_timeout_seconds <= 0:
            raise ValueError(f"lock_timeout_seconds must be > 0, got {self.lock_timeout_seconds}")


@dataclass(frozen=True)
class FeatureMetadata:
    """What the commit pointer records about one version of a feature."""

    group: str
    name: str
    version: int
    rows: int
    columns: list[str]
    schema: dict[str, str]
    checksum: str
    size_bytes: int
    written_at: str
    compression: str
    entity_column: str | None
    file: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        """The metadata as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Staged:
    """A frame written to a synced temp file, waiting for its commit."""

    name: str
    table: pa.Table
    entity: str | None
    temp: Path
    crc32: int
    size: int


@dataclass
class _Version:
    """One read version: the frame, its metadata, and the cache entry it lives in (None when uncached)."""

    frame: pd.DataFrame
    table: pa.Table | None
    metadata: FeatureMetadata
    entry: CacheEntry | None


def _warm_up_serialization() -> None:
    """Pay pyarrow's one-time set-up (about 15 ms each for the first write and read) at construction."""
    frame = pd.DataFrame({f"warm_{i}": np.zeros(4096) for i in range(16)})
    frame["label"] = "warm"
    for compression in ("snappy", "none"):
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(frame), sink, compression=compression)
        pq.read_table(pa.BufferReader(sink.getvalue())).to_pandas()


class SimpleFeatureStore:
    """Feature groups of named frames on local disk, safe to share between threads and processes."""

    _warmed_up = False

    def __init__(
        self,
        config: FeatureStoreConfig,
        observer: StoreObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        file_ops: FileOps | None = None,
    ) -> None:
        """``observer`` receives cache and byte counts; ``clock`` (seconds) drives cache expiry; ``file_ops``
        performs the mutating file calls (the real ``os`` calls unless a test passes its own)."""
        self.config = config
        self.base_path = Path(config.base_path)
        self.base_path.mkdir(parents=True, exist_ok=True)
        self._ops = file_ops or FileOps.for_directory(self.base_path)
        if (self.base_path / STAGING_DIR).is_dir():
            remove_temp_files(self.base_path / STAGING_DIR)  # staged by writers that died before their commit
        if not SimpleFeatureStore._warmed_up:
            _warm_up_serialization()
            SimpleFeatureStore._warmed_up = True
        self._observer: StoreObserver = observer or _NullObserver()
        self._pointer_paths: dict[tuple[str, str], tuple[str, int]] = {}
        # Commit counters (features.store._generations): every writer counts, so that other processes' caches
        # can trust them; a cached read maps them once the file exists (``_open_generations``). On NFS nothing is
        # counted and nothing mapped.
        self._counts_commits = counts_commits(self.base_path / LOCKS_DIR)
        self._generations: Generations | None = None
        self._generations_tried_at = -math.inf
        self._readable_schemas: set[pa.Schema] = set()
        self.cache: FeatureCache | None = (
            FeatureCache(config.cache_max_size, config.cache_max_bytes, config.cache_ttl_seconds, clock)
            if config.cache_enabled
            else None
        )

    # ---- writes -------------------------------------------------------------------------------------------

    def save_features(
        self,
        group: str,
        features: Mapping[str, pd.DataFrame | pa.Table],
        entity_column: str | None = None,
    ) -> dict[str, str]:
        """Write each frame as the next version of ``group/<name>``; returns ``{name: path of the data file}``.

        ``entity_column`` names the id column used by ``lookup``; by default the first of entity_id, id,
        movie_id present in the frame. Every frame is validated and serialized before anything is written,
        so bad input writes nothing. Each feature commits atomically on its own.
        Raises ValueError for invalid names, frames without columns or a missing entity column.
        """
        validate_name("group", group)
        if not isinstance(features, Mapping) or not features:
            raise ValueError("features must be a non-empty mapping of feature name to DataFrame or Arrow table")
        checked = []
        for name, frame in features.items():
            validate_name("feature", name)
            table = _to_table(name, frame)
            self._check_readable(name, table)
            checked.append((name, table, _entity_column(name, table, entity_column)))
        # Serialize every frame to its own temp file before committing any: a frame that cannot be written as
        # Parquet leaves nothing behind. The slow part runs outside the lock; the commit is two renames.
        staged: list[_Staged] = []
        try:
            with _disk_errors(f"saving {group}/{', '.join(features)}"):
                for name, table, entity in checked:
                    staged.append(self._stage(group, name, table, entity))
                return {item.name: str(self._commit(group, item)) for item in staged}
        finally:
            for item in staged:
                self._ops.unlink(item.temp)

    def _check_readable(self, name: str, table: pa.Table) -> None:
        """Refuse (ValueError naming the column) a column type that would be stored but could not be read back.

        Type rules catch what depends on the values; then, once per schema, the first rows go through the read
        path (Parquet, pandas, Arrow again, Python values, an Arrow IPC stream) to catch the rest.
        """
        for column in table.schema:
            reason = _unreadable_type(column.type)
            if reason is not None:
                raise ValueError(
                    f"feature {name!r}: column {column.name!r} of type {column.type} cannot be stored: {reason}"
                )
        key = table.schema.remove_metadata()
        if key in self._readable_schemas:
            return
        sample = table.slice(0, 16)
        if _round_trip_error(sample) is not None:
            for position, column in enumerate(table.schema):
                error = _round_trip_error(sample.select([position]))
                if error is not None:
                    raise ValueError(
                        f"feature {name!r}: column {column.name!r} of type {column.type} could not be read back: "
                        f"{error}"
                    )
            raise ValueError(f"feature {name!r}: the frame could not be read back: {_round_trip_error(sample)}")
        if len(self._readable_schemas) >= _READABLE_SCHEMAS_MAX:
            self._readable_schemas.clear()
        self._readable_schemas.add(key)

    def _stage(self, group: str, name: str, table: pa.Table, entity: str | None) -> _Staged:
        staging = self.base_path / STAGING_DIR
        self._ops.mkdir(staging)
        sink = ChecksummingFile(staging / "v.parquet", self._ops)
        # Parquet writes page by page; a 1 MB buffer turns ~100 Python-level writes per MB into one.
        buffered = pa.BufferedOutputStream(pa.PythonFile(sink, mode="w"), buffer_size=_WRITE_BUFFER_BYTES)
        try:
            try:
                pq.write_table(
                    table,
                    buffered,
                    compression=self.config.compression,
                    use_dictionary=_dictionary_columns(table.schema),
                )
            except OSError:
                raise  # the disk's error (ENOSPC, EIO, ...), not the frame's: never a 422
            except (pa.ArrowException, TypeError, ValueError) as error:
                raise ValueError(f"feature {name!r}: the frame cannot be stored as Parquet: {error}") from error
            buffered.flush()
            sink.write_out()  # step 1 of the commit protocol (module docstring)
            buffered.close()  # closes the sink too
        except BaseException:
            # The sink goes first, so the buffered stream's last flush (now, or whenever it is destroyed) hits
            # a closed file and raises instead of writing its bytes anywhere; then nothing of it stays staged.
            sink.discard()
            with contextlib.suppress(Exception):
                buffered.close()
            raise
        finally:
            sink.close()
        return _Staged(name, table, entity, sink.path, sink.crc32, sink.size)

    def _commit(self, group: str, item: _Staged) -> Path:
        """Steps 2-5 of the commit protocol (module docstring); the staged file's content is already synced."""
        directory = self.base_path / group / item.name
        pointer = directory / POINTER_FILE
        with self._lock(group, item.name), self._publishing(group, item.name):
            _make_directory(directory, self._ops)
            raw = _read_pointer(pointer, group, item.name)
            # An empty pointer is a commit cut by a power failure: _previous.json already holds what readers see
            # and must stay. With no pointer at all, a _previous.json is a deleted feature's leftover: it must
            # never become this feature's fallback.
            keep_previous = bool(raw)
            if raw == b"":
                raw = _read_pointer(directory / PREVIOUS_POINTER_FILE, group, item.name) or None
            elif raw is None:
                self._ops.unlink(directory / PREVIOUS_POINTER_FILE)
            current = _parse_pointer(raw, group, item.name)
            version = current.version + 1 if current else 1
            data_file = directory / f"v{version:010d}.parquet"
            self._ops.replace(item.temp, data_file)
            try:
                self._write_pointer(directory, group, item, version, data_file, keep_previous)
            except BaseException:
                self._undo_commit(directory, group, item.name, data_file, keep_previous)
                raise
            self._remove_old_versions(directory, version)
        self._observer.bytes_written(item.size)
        if self.cache is not None:
            self.cache.invalidate((group, item.name))
        return data_file

    def _undo_commit(self, directory: Path, group: str, name: str, data_file: Path, keep_previous: bool) -> None:
        """After a failed pointer write: put the previous pointer back if the new one was renamed (its fsync
        failed, so it is not durable and the save raises), then remove the orphan data file so a full disk gets
        its space back. Best effort: the failure that brought us here is what the caller reports."""
        pointer = directory / POINTER_FILE
        with contextlib.suppress(OSError, IntegrityError):
            now = _parse_pointer(_read_pointer(pointer, group, name) or None, group, name)
            if now is not None and now.file == data_file.name:
                if keep_previous:
                    restored = temp_path_for(pointer)
                    self._ops.link(directory / PREVIOUS_POINTER_FILE, restored)
                    self._ops.replace(restored, pointer)
                else:
                    self._ops.unlink(pointer)
            self._ops.unlink(data_file)

    def _write_pointer(
        self, directory: Path, group: str, item: _Staged, version: int, data_file: Path, keep_previous: bool
    ) -> None:
        metadata = FeatureMetadata(
            group=group,
            name=item.name,
            version=version,
            rows=item.table.num_rows,
            columns=list(item.table.column_names),
            schema={f.name: str(f.type) for f in item.table.schema},
            checksum=f"crc32:{item.crc32:08x}",
            size_bytes=item.size,
            written_at=datetime.now(UTC).isoformat(timespec="microseconds"),
            compression=self.config.compression,
            entity_column=item.entity,
            file=data_file.name,
        )
        replace_then_sync(
            directory / POINTER_FILE,
            json.dumps(vars(metadata)).encode(),  # the same dict as to_dict(): its fields are JSON values already
            self._ops,
            keep_previous_as=directory / PREVIOUS_POINTER_FILE if keep_previous else None,
        )

    def _remove_old_versions(self, directory: Path, committed: int) -> None:
        keep = range(committed - self.config.keep_versions + 1, committed + 1)
        for entry in os.scandir(directory):
            match = _VERSION_FILE.fullmatch(entry.name)
            if match and int(match.group(1)) not in keep:
                self._ops.unlink(entry.path)

    def delete_feature(self, group: str, name: str) -> None:
        """Delete every version of ``group/name``, its directory, and its group's once empty.

        Raises FeatureNotFoundError if it does not exist (and then creates and changes nothing).
        """
        directory = self._feature_dir(group, name)
        with _disk_errors(f"deleting {group}/{name}"), self._lock(group, name), self._publishing(group, name):
            pointer = directory / POINTER_FILE
            if not os.path.lexists(pointer):
                raise FeatureNotFoundError(f"feature {name!r} not found in group {group!r}")
            _remove_entry(pointer, self._ops)  # the deletion's commit point: readers now see "not found"
            self._ops.fsync_directory(directory)
            for entry in os.scandir(directory):
                _remove_entry(Path(entry.path), self._ops)
            _remove_empty_directory(directory, self._ops)
        _remove_empty_directory(directory.parent, self._ops)  # another feature's commit may be filling it
        if self.cache is not None:
            self.cache.invalidate((group, name))

    def delete_group(self, group: str) -> list[str]:
        """Delete every feature of ``group``; returns the deleted names."""
        names = self.list_features(group)
        for name in names:
            self.delete_feature(group, name)
        shutil.rmtree(self.base_path / group, ignore_errors=True)
        return names

    # ---- reads --------------------------------------------------------------------------------------------

    def get_features(self, names: Sequence[str], group: str) -> dict[str, pd.DataFrame]:
        """Read the current version of each named feature of ``group``.

        Cached frames are returned as shallow copies: no data is copied, and pandas copy-on-write keeps a
        caller's in-place change from reaching the cache. Raises FeatureNotFoundError, ValueError for bad
        names, IntegrityError when a file fails its checksum.
        """
        if isinstance(names, str):
            names = [names]
        memo, cache, generations = self._pointer_paths, self.cache, self._generations
        if len(names) == 1 and cache is not None and generations is not None:
            # A hit known current by the commit counters, without _read's loop: its calls, run with CPU caches
            # a cold read has just evicted, were a third of the hit's time (issue 19 item 3)
            key = (group, names[0])
            found = memo.get(key) if type(group) is str else None
            if found is not None and (generation := generations.read(found[1])) % 2 == 0:
                entry = cache.get_current(key, generation)
                if entry is not None:
                    self._observer.cache_hit(*key)
                    return {key[1]: entry.value[0].copy(deep=False)}
        if type(group) is not str or any((group, name) not in memo for name in names):  # memo: found names only
            validate_name("group", group)
        return {name: self._read(group, name).frame.copy(deep=False) for name in names}

    def get_table(self, group: str, name: str) -> pa.Table:
        """The current version of ``group/name`` as an Arrow table (for Arrow IPC responses)."""
        return self._table_of(group, name, self._read(group, name))

    def _table_of(self, group: str, name: str, version: _Version) -> pa.Table:
        if version.table is not None:
            return version.table
        table = pa.Table.from_pandas(version.frame, preserve_index=False)
        if version.entry is not None and self.cache is not None:
            self.cache.add_derived((group, name), version.entry, "table", table, table.nbytes)
        return table

    def get_table_and_metadata(self, group: str, name: str) -> tuple[pa.Table, FeatureMetadata]:
        """The current version of ``group/name`` as an Arrow table, with the metadata of that same version.

        Use this rather than ``get_metadata`` then ``get_table``: a commit between those two calls would label
        one version's data with the next version's number.
        """
        version = self._read(group, name)
        return self._table_of(group, name, version), version.metadata

    def get_metadata(self, group: str, name: str) -> FeatureMetadata:
        """The commit metadata of the current version. Raises FeatureNotFoundError."""
        directory = self._feature_dir(group, name)
        metadata = _parse_pointer(_followed_pointer(str(directory / POINTER_FILE), group, name), group, name)
        if metadata is None:
            raise self._not_found(group, name)
        return metadata

    def list_groups(self) -> list[str]:
        """Names of the groups holding at least one feature, sorted."""
        return sorted(
            entry.name
            for entry in os.scandir(self.base_path)
            if entry.is_dir() and NAME_PATTERN.fullmatch(entry.name) and self._has_features(Path(entry.path))
        )

    def list_features(self, group: str) -> list[str]:
        """Names of the features of ``group``, sorted. Raises FeatureNotFoundError for an unknown group."""
        directory = self.base_path / validate_name("group", group)
        names = []
        if directory.is_dir():
            names = sorted(
                entry.name
                for entry in os.scandir(directory)
                if NAME_PATTERN.fullmatch(entry.name) and _is_feature(entry.path)
            )
        if not names:
            raise FeatureNotFoundError(f"group {group!r} not found")
        return names

    def lookup(self, group: str, name: str, entity_ids: Sequence[Any]) -> LookupResult:
        """Feature rows of ``group/name`` for ``entity_ids`` (the online hot path).

        Raises ValueError when the feature has no entity column or duplicate ids, FeatureNotFoundError.
        """
        index, version = self._lookup_index(group, name)
        return index.lookup(entity_ids, version)

    def lookup_encoded(
        self, group: str, name: str, entity_id: Any, encode: Callable[[dict[str, Any]], bytes]
    ) -> tuple[bytes | None, int]:
        """``encode({column: value})`` of one entity's row and the version read; None for an unknown id.

        The encoded row is kept with the version (``EntityIndex.encoded_values``). Raises as ``lookup``.
        """
        index, version = self._lookup_index(group, name)
        return index.encoded_values(entity_id, encode), version

    def lookup_current(
        self, group: str, name: str, entity_id: Any, encode: Callable[[dict[str, Any]], bytes]
    ) -> tuple[bytes, int] | None:
        """``lookup_encoded``'s answer when it needs nothing but memory, else None.

        For a server's fast path, which must neither block nor fail: it answers only when ``group/name`` was
        found before, its cached version is known current by the commit counters (features.store._generations),
        its index is built and ``entity_id`` is in it. In every other case (a cold or changed feature, an
        unknown id, counters that cannot be shared) it returns None without counting anything, and the caller
        takes the full path (``lookup_encoded``), which reads, raises and counts as usual.
        """
        found = self._pointer_paths.get((group, name))
        generations, cache = self._generations, self.cache
        if found is None or generations is None or cache is None:
            return None
        generation = generations.read(found[1])
        if generation % 2:
            return None
        entry = cache.peek_current((group, name), generation)
        index = entry.derived.get("index") if entry is not None else None
        if index is None:
            return None
        encoded = index.encoded_values(entity_id, encode)
        if encoded is None or not cache.count_hit((group, name), entry):
            return None
        self._observer.cache_hit(group, name)
        return encoded, entry.value[1].version

    def _lookup_index(self, group: str, name: str) -> tuple[EntityIndex, int]:
        """The current version's entity index (built and kept with its cache entry the first time) and version
        number. Raises ValueError when the feature has no entity column or duplicate ids, FeatureNotFoundError."""
        version = self._read(group, name)
        entity = version.metadata.entity_column
        if entity is None:
            raise ValueError(
                f"feature {group}/{name} has no entity column: save it with entity_column=... to look rows up"
            )
        index = version.entry.derived.get("index") if version.entry is not None else None
        if index is None:
            index = EntityIndex(version.frame, entity)
            if version.entry is not None and self.cache is not None:
                # counted with the room its encoded rows may take (EntityIndex.encoded_values)
                nbytes = index.nbytes + index.encoded_budget
                self.cache.add_derived((group, name), version.entry, "index", index, nbytes)
        return index, version.metadata.version

    # ---- internals ----------------------------------------------------------------------------------------

    def _lock(self, group: str, name: str) -> contextlib.AbstractContextManager[None]:
        """The write lock of ``group/name``: one of ``LOCK_BUCKETS`` files, so locks never pile up on disk.
        Raises TimeoutError after ``lock_timeout_seconds``."""
        path = self.base_path / LOCKS_DIR / f"{_bucket(group, name):03d}.lock"
        return exclusive_lock(path, self.config.lock_timeout_seconds, f"feature {group}/{name}")

    def _publishing(self, group: str, name: str) -> contextlib.AbstractContextManager[None]:
        """Tell other processes' caches that ``group/name``'s pointer may change (hold its lock first)."""
        if not self._counts_commits:
            return contextlib.nullcontext()
        path = self.base_path / LOCKS_DIR / GENERATIONS_FILE
        return Generations.publishing(path, LOCK_BUCKETS, _bucket(group, name))

    def _feature_dir(self, group: str, name: str) -> Path:
        return self.base_path / validate_name("group", group) / validate_name("feature", name)

    def _open_generations(self) -> Generations | None:
        """Map the commit counters once they exist: tried at most once a second until then (a store nobody has
        written yet, or one written by a version that did not count)."""
        now = time.monotonic()
        if now - self._generations_tried_at >= _GENERATIONS_RETRY_S:
            self._generations_tried_at = now
            self._generations = open_generations(self.base_path / LOCKS_DIR, LOCK_BUCKETS)
        return self._generations

    def _pointer_path(self, group: str, name: str) -> tuple[str, int]:
        """The pointer's path as a string and the feature's lock bucket, memoized once found
        (``_remember_pointer``): the hot path skips validation, pathlib and the CRC. Names that were never found
        are not memoized, so looking up ever new missing names cannot grow the memo."""
        found = self._pointer_paths.get((group, name))
        if found is not None:
            return found
        return str(self._feature_dir(group, name) / POINTER_FILE), _bucket(group, name)

    def _remember_pointer(self, group: str, name: str, found: tuple[str, int]) -> None:
        key = (group, name)
        if key not in self._pointer_paths:
            if len(self._pointer_paths) >= _POINTER_PATHS_MAX:
                self._pointer_paths.clear()
            self._pointer_paths[key] = found

    def _has_features(self, group_dir: Path) -> bool:
        return any(_is_feature(e.path) for e in os.scandir(group_dir) if e.is_dir())

    def _not_found(self, group: str, name: str) -> FeatureNotFoundError:
        if not (self.base_path / group).is_dir():
            return FeatureNotFoundError(f"group {group!r} not found")
        return FeatureNotFoundError(f"feature {name!r} not found in group {group!r}")

    def _read(self, group: str, name: str) -> _Version:
        found = self._pointer_path(group, name)
        pointer, bucket = found
        cache = self.cache
        for _ in range(_READ_RETRIES):
            # The commit counter, read before the pointer (features.store._generations): even and unchanged since
            # the entry was validated means no pointer of this bucket changed, so the hit needs no system call.
            generations = self._generations
            if generations is None and self._counts_commits and cache is not None:
                generations = self._open_generations()
            generation = generations.read(bucket) if generations is not None else 1
            if generation % 2 == 0 and cache is not None:
                entry = cache.get_current((group, name), generation)
                if entry is not None:
                    self._observer.cache_hit(group, name)
                    frame, metadata = entry.value
                    return _Version(frame, entry.derived.get("table"), metadata, entry)
            known = None if generation % 2 else generation
            try:
                token = read_small_file(pointer)
            except IsADirectoryError:
                raise _pointer_not_a_file(group, name) from None
            if not token and token is not None:  # empty: a commit cut by a power failure (module docstring)
                token = _followed_pointer(pointer, group, name)
            if token is None:
                raise self._not_found(group, name)
            self._remember_pointer(group, name, found)
            if cache is not None:
                entry = cache.get((group, name), token)
                if entry is not None:
                    entry.generation = known
                    self._observer.cache_hit(group, name)
                    frame, metadata = entry.value
                    return _Version(frame, entry.derived.get("table"), metadata, entry)
                self._observer.cache_miss(group, name)
            metadata = _parse_pointer(token, group, name)
            assert metadata is not None
            try:
                table = self._read_file(Path(pointer).with_name(metadata.file), metadata)
            except FileNotFoundError:
                if _followed_pointer(pointer, group, name) != token:
                    continue  # a newer commit removed this version after we read the pointer: read it again
                raise IntegrityError(
                    f"feature {group}/{name} v{metadata.version}: data file {metadata.file} named by the pointer "
                    "is missing"
                ) from None
            frame = table.to_pandas(use_threads=metadata.size_bytes >= _THREADED_READ_BYTES)
            if cache is None:
                return _Version(frame, table, metadata, None)
            # Arrow's size of the same data: close to the frame's, and free to compute.
            entry = cache.put((group, name), token, (frame, metadata), table.nbytes)
            entry.generation = known
            return _Version(frame, None, metadata, entry)
        raise IntegrityError(f"feature {group}/{name} changed {_READ_RETRIES} times while being read; try again")

    def _read_file(self, path: Path, metadata: FeatureMetadata) -> pa.Table:
        try:
            with pa.memory_map(str(path)) as source:
                buffer = source.read_buffer()
        except FileNotFoundError:
            raise
        except OSError as error:  # a directory in its place, an I/O error: said without the absolute path
            cause = "it is a directory" if path.is_dir() else (error.strerror or type(error).__name__)
            raise IntegrityError(
                f"feature {metadata.group}/{metadata.name} v{metadata.version}: data file {metadata.file} cannot be "
                f"read: {cause}"
            ) from error
        if buffer.size != metadata.size_bytes:
            raise IntegrityError(
                f"feature {metadata.group}/{metadata.name} v{metadata.version}: file has {buffer.size} bytes, "
                f"its pointer says {metadata.size_bytes}"
            )
        self._observer.bytes_read(buffer.size)
        large = buffer.size >= _THREADED_READ_BYTES  # thread pools cost more than they give on small files
        if not self.config.verify_checksums:
            return _decode(buffer, large, metadata)
        if not large:
            _check_checksum(zlib.crc32(buffer), metadata)
            return _decode(buffer, large, metadata)
        # zlib releases the GIL: the checksum of a large file runs beside the decoding, and the table is only
        # handed out once the checksum matched.
        checksum = _checksum_pool().submit(zlib.crc32, buffer)
        try:
            table = _decode(buffer, large, metadata)
        except IntegrityError:
            _check_checksum(checksum.result(), metadata)  # the checksum's message, when it is the cause
            raise
        _check_checksum(checksum.result(), metadata)
        return table


def _bucket(group: str, name: str) -> int:
    """The lock bucket of ``group/name`` (and of its commit counter)."""
    return zlib.crc32(f"{group}/{name}".encode()) % LOCK_BUCKETS


def _make_directory(directory: Path, ops: FileOps) -> None:
    """Create ``directory`` and its parent; retried, because a delete may remove the empty parent meanwhile."""
    for attempt in range(_MKDIR_ATTEMPTS):
        try:
            ops.mkdir(directory.parent)
            ops.mkdir(directory)
            return
        except FileNotFoundError:
            if attempt == _MKDIR_ATTEMPTS - 1:
                raise


def _remove_entry(path: Path, ops: FileOps) -> None:
    """Remove a file, a symlink, or (damage: a pointer that is a directory) a whole directory tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        ops.unlink(path)


def _pointer_not_a_file(group: str, name: str) -> IntegrityError:
    return IntegrityError(f"feature {group}/{name}: commit pointer {POINTER_FILE} is a directory, not a file")


def _read_pointer(path: Path | str, group: str, name: str) -> bytes | None:
    """The pointer's bytes, None when there is none; IntegrityError when the pointer is a directory."""
    try:
        return read_small_file(path)
    except IsADirectoryError:
        raise _pointer_not_a_file(group, name) from None


def _followed_pointer(path: str, group: str, name: str) -> bytes | None:
    """The bytes of the pointer readers follow: ``_current.json``, or ``_previous.json`` when the current one is
    empty (a commit cut by a power failure between its pointer's rename and its fsync). None when neither."""
    raw = _read_pointer(path, group, name)
    if raw == b"":
        raw = _read_pointer(os.path.join(os.path.dirname(path), PREVIOUS_POINTER_FILE), group, name) or None
    return raw


def _is_feature(directory: str) -> bool:
    """Whether ``directory`` holds a committed feature: a non-empty pointer, or an empty one with a fallback."""
    try:
        if os.stat(os.path.join(directory, POINTER_FILE)).st_size > 0:
            return True
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    return os.path.exists(os.path.join(directory, PREVIOUS_POINTER_FILE))


def _dictionary_columns(schema: pa.Schema) -> bool | list[str]:
    """The columns to dictionary-encode: all but floating-point ones, whose values rarely repeat.

    For the seed's Small set (1,000 random doubles x 10 and an id) trying a dictionary per column tripled
    ``write_table``'s time (0.6-0.8 ms against 0.27 ms) and grew the file by 15%. Nested columns are named by
    leaf paths in Parquet, so a table holding any keeps pyarrow's default (every column).
    """
    if not any(pa.types.is_floating(f.type) for f in schema) or any(pa.types.is_nested(f.type) for f in schema):
        return True
    return [f.name for f in schema if not pa.types.is_floating(f.type)]


def _unreadable_type(data_type: pa.DataType) -> str | None:
    """Why a column of ``data_type`` could be written but not read back, or None. Nested types are searched."""
    if pa.types.is_map(data_type):
        return "map columns read back as lists of pairs that cannot be converted back to Arrow; use a list of structs"
    if pa.types.is_time64(data_type) and data_type.unit == "ns":
        return "reads convert times to Python times, which hold microseconds; use time64[us]"
    if pa.types.is_fixed_size_list(data_type) and data_type.list_size == 0:
        return "Parquet cannot read back fixed-size lists of size 0; use a variable-size list"
    if pa.types.is_dictionary(data_type):
        return _unreadable_type(data_type.value_type)
    children = [data_type.field(i).type for i in range(data_type.num_fields)]
    return next((reason for child in children if (reason := _unreadable_type(child)) is not None), None)


def _round_trip_error(sample: pa.Table) -> str | None:
    """The error ``sample`` meets on the read path (Parquet, pandas, back to Arrow, Python values, IPC), or None."""
    try:
        sink = pa.BufferOutputStream()
        pq.write_table(sample, sink, compression="none")
        frame = pq.read_table(pa.BufferReader(sink.getvalue())).to_pandas()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table.to_pylist()
        with pa.ipc.new_stream(pa.BufferOutputStream(), table.schema) as writer:
            writer.write_table(table)
    except (pa.ArrowException, TypeError, ValueError, OverflowError, NotImplementedError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _remove_empty_directory(directory: Path, ops: FileOps) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        ops.rmdir(directory)  # fails, harmlessly, when the directory is not empty


_CHECKSUM_POOL: ThreadPoolExecutor | None = None


def _checksum_pool() -> ThreadPoolExecutor:
    global _CHECKSUM_POOL
    if _CHECKSUM_POOL is None:
        _CHECKSUM_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="store-checksum")
    return _CHECKSUM_POOL


def _decode(buffer: pa.Buffer, use_threads: bool, metadata: FeatureMetadata) -> pa.Table:
    try:
        return pq.ParquetFile(pa.BufferReader(buffer)).read(use_threads=use_threads)
    except (pa.ArrowException, OSError) as error:  # damage on disk, not the client's input (never a 422)
        raise IntegrityError(
            f"feature {metadata.group}/{metadata.name} v{metadata.version}: data file {metadata.file} is not "
            f"readable Parquet: {error}"
        ) from error


def _check_checksum(crc: int, metadata: FeatureMetadata) -> None:
    checksum = f"crc32:{crc:08x}"
    if checksum != metadata.checksum:
        raise IntegrityError(
            f"feature {metadata.group}/{metadata.name} v{metadata.version}: checksum {checksum} does not "
            f"match {metadata.checksum}"
        )


def _to_table(name: str, frame: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(frame, pa.Table):
        table = frame
    elif isinstance(frame, pd.DataFrame):
        if any(not isinstance(c, str) for c in frame.columns):
            raise ValueError(f"feature {name!r}: column names must be strings, got {list(frame.columns)[:5]}")
        try:
            table = table_from_frame(frame)
        except (pa.ArrowException, TypeError, ValueError) as error:
            raise ValueError(f"feature {name!r}: the frame cannot be stored as Parquet: {error}") from error
    else:
        raise ValueError(f"feature {name!r} must be a pandas DataFrame or an Arrow table, got {type(frame).__name__}")
    if table.num_columns == 0:
        raise ValueError(f"feature {name!r} has no columns")
    if len(set(table.column_names)) != table.num_columns:
        raise ValueError(f"feature {name!r} has duplicate column names")
    return table


def _entity_column(name: str, table: pa.Table, requested: str | None) -> str | None:
    if requested is not None:
        if requested not in table.column_names:
            raise ValueError(
                f"feature {name!r}: entity_column {requested!r} is not a column (columns: {table.column_names[:10]})"
            )
        return requested
    return next((c for c in ENTITY_COLUMN_CANDIDATES if c in table.column_names), None)


def _parse_pointer(raw: bytes | None, group: str, name: str) -> FeatureMetadata | None:
    if raw is None:
        return None
    try:
        metadata = FeatureMetadata(**json.loads(raw))
    except (ValueError, TypeError) as error:
        raise IntegrityError(f"feature {group}/{name}: commit pointer is unreadable: {error}") from error
    for key in ("version", "rows", "size_bytes"):
        value = getattr(metadata, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "version" else 0):
            raise IntegrityError(
                f"feature {group}/{name}: commit pointer is damaged: {key} {value!r:.40} is not a "
                f"{'positive' if key == 'version' else 'non-negative'} integer"
            )
    if metadata.file != f"v{metadata.version:010d}.parquet":
        raise IntegrityError(
            f"feature {group}/{name}: commit pointer is damaged: file {metadata.file!r:.60} is not the data file "
            f"of version {metadata.version}"
        )
    return metadata
