"""Crash-safe file primitives: a checksumming temp file, and the pointer's replace-then-fsync.

Every mutating call goes through a ``FileOps`` (``features.store.fileops``), so a test can record them.
"""

from __future__ import annotations

import io
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

from features.store.fileops import FileOps

TEMP_MARKER = ".tmp-"
_SMALL_READ_BYTES = 1 << 16


def temp_path_for(path: Path) -> Path:
    """A unique hidden temp name beside ``path`` that records the writing process's pid."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")


class ChecksummingFile(io.RawIOBase):
    """A new temp file beside ``target`` that keeps the CRC32 and size of everything written to it.

    Parquet is written straight into it (no in-memory copy of the whole file); ``sync()`` makes the bytes
    durable, ``write_out()`` puts them on the device for a later journal commit to make durable; the caller
    renames ``path`` into place. Closing does not delete the file; a failure inside the
    ``with`` block does.

    It owns its file object and nothing else: once closed, ``write`` raises ValueError (the ``io`` convention)
    and no descriptor number is kept, so a stream that still holds this object (Arrow's buffered stream,
    destroyed later by the garbage collector) can never write into whatever file or socket reuses that number.
    """

    def __init__(self, target: Path, ops: FileOps | None = None) -> None:
        super().__init__()
        self.path = temp_path_for(target)
        self.crc32 = 0
        self.size = 0
        self._ops = ops or FileOps()
        # An unbuffered FileIO: its descriptor lives and dies with it, and it refuses use after close.
        self._file: io.FileIO | None = self._ops.create(self.path)

    def writable(self) -> bool:
        return True

    def _open_file(self) -> io.FileIO:
        file = self._file
        if file is None or self.closed:
            raise ValueError(f"write to closed file {self.path.name}")
        return file

    def write(self, data: Any) -> int:
        file = self._open_file()
        view = memoryview(data).cast("B")
        written_total = len(view)
        self._ops.write(file, view)
        self.crc32 = zlib.crc32(view, self.crc32)
        self.size += written_total
        return written_total

    def tell(self) -> int:
        return self.size

    def sync(self) -> None:
        self._ops.fsync(self._open_file())

    def write_out(self) -> None:
        """Put the bytes on the device without a journal commit (``FileOps.write_out``)."""
        self._ops.write_out(self._open_file())

    def close(self) -> None:
        file, self._file = self._file, None
        try:
            if file is not None:
                self._ops.close(file)
        finally:
            super().close()

    def discard(self) -> None:
        """Close and remove the temp file (a failed write)."""
        try:
            self.close()
        finally:
            self._ops.unlink(self.path)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


def replace_then_sync(path: Path, data: bytes, ops: FileOps, keep_previous_as: Path | None = None) -> None:
    """Replace ``path`` by a file holding ``data``: a reader sees the old file or the whole new one.

    The bytes go to a hidden temp file beside ``path``, which is renamed over ``path`` and only then fsynced:
    that one fsync makes the content durable and, because the rename changed the file's inode, the journal
    commit it forces holds the rename (and every metadata change made before it). Until it returns, a power
    cut can leave ``path`` renamed but empty; with ``keep_previous_as``, the old ``path`` is first hard-linked
    under that name (its content was synced by the commit that wrote it), so the previous state survives that
    window. A failure before the rename removes the temp file and changes nothing.
    """
    temp = temp_path_for(path)
    file = ops.create(temp)
    try:
        try:
            ops.write(file, data)
            if keep_previous_as is not None:
                link = temp_path_for(keep_previous_as)
                ops.link(path, link)
                try:
                    ops.replace(link, keep_previous_as)
                except BaseException:
                    ops.unlink(link)
                    raise
            ops.replace(temp, path)
        except BaseException:
            ops.unlink(temp)
            raise
        ops.fsync(file)
    finally:
        ops.close(file)


def read_small_file(path: Path | str) -> bytes | None:
    """Return the whole content of a small file, or None if it does not exist (one open, one read)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        first = os.read(fd, _SMALL_READ_BYTES)
        if len(first) < _SMALL_READ_BYTES:  # a short read of a regular file is its end: one syscall, not two
            return first
        chunks = [first]
        while chunk := os.read(fd, _SMALL_READ_BYTES):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove_temp_files(directory: Path) -> int:
    """Remove temp files left by writers that died (their pid is gone); live writers' files stay.

    Call while holding the directory's write lock. Returns how many were removed.
    """
    removed = 0
    for entry in os.scandir(directory):
        if TEMP_MARKER in entry.name and not _writer_alive(entry.name):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def _writer_alive(temp_name: str) -> bool:
    try:
        pid = int(temp_name.split(TEMP_MARKER, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True  # another thread of this process may be writing it right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
