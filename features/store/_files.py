"""Crash-safe file primitives: atomic replace (temp file, fsync, rename, fsync of the directory)."""

from __future__ import annotations

import errno
import io
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

TEMP_MARKER = ".tmp-"
_SMALL_READ_BYTES = 1 << 16


def temp_path_for(path: Path) -> Path:
    """A unique hidden temp name beside ``path`` that records the writing process's pid."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")


class ChecksummingFile(io.RawIOBase):
    """A new temp file beside ``target`` that keeps the CRC32 and size of everything written to it.

    Parquet is written straight into it (no in-memory copy of the whole file); ``sync()`` makes the bytes
    durable; the caller renames ``path`` into place. Closing does not delete the file; a failure inside the
    ``with`` block does.

    It owns its file object and nothing else: once closed, ``write`` raises ValueError (the ``io`` convention)
    and no descriptor number is kept, so a stream that still holds this object (Arrow's buffered stream,
    destroyed later by the garbage collector) can never write into whatever file or socket reuses that number.
    """

    def __init__(self, target: Path) -> None:
        super().__init__()
        self.path = temp_path_for(target)
        self.crc32 = 0
        self.size = 0
        # An unbuffered FileIO: its descriptor lives and dies with it, and it refuses use after close.
        self._file: io.FileIO | None = io.FileIO(self.path, "xb")

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
        write_all(file, view)
        self.crc32 = zlib.crc32(view, self.crc32)
        self.size += written_total
        return written_total

    def tell(self) -> int:
        return self.size

    def sync(self) -> None:
        os.fsync(self._open_file().fileno())

    def close(self) -> None:
        file, self._file = self._file, None
        try:
            if file is not None:
                file.close()
        finally:
            super().close()

    def discard(self) -> None:
        """Close and remove the temp file (a failed write)."""
        try:
            self.close()
        finally:
            self.path.unlink(missing_ok=True)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


def write_all(file: io.FileIO, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to the unbuffered ``file`` (a raw write may take only part of it)."""
    view = memoryview(data).cast("B")
    while view:
        written = file.write(view)
        if not written:  # None (non-blocking) or 0: cannot happen for a regular file; never loop forever
            raise OSError(errno.EIO, f"short write to {file.name!r}")
        view = view[written:]


def atomic_write(path: Path, data: bytes | memoryview, sync_directory: bool = True) -> None:
    """Write ``data`` to ``path`` so that a reader sees either the old file or the complete new one.

    The bytes go to a hidden temp file in the same directory, are fsynced, then renamed over ``path``;
    with ``sync_directory`` the directory is fsynced so the rename itself survives a crash (callers that
    rename several files into one directory sync it once, after the last rename). A failure removes the
    temp file.
    """
    temp = temp_path_for(path)
    try:
        with io.FileIO(temp, "xb") as file:
            write_all(file, data)
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if sync_directory:
        fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make renames and unlinks inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
