"""The store's mutating file-system calls, behind one small object so a test can stand in for the disk.

``FileOps`` is the real implementation: each method is the plain ``os`` call (one Python call more per
operation, nothing else), and ``write_out`` is Linux's ``sync_file_range`` where the file system is one whose
journal commits flush the device first (ext4, XFS), else an fsync (``FileOps.for_directory``). The store passes
every write, write-out, fsync, rename, link, mkdir, unlink and rmdir of its commit and delete paths through the
``FileOps`` it was given, so a test double can record them and replay only what had reached the disk (the
power-cut test in ``tests/features/store/test_store_power_cut.py``). Reads stay plain ``os`` calls: they change nothing
a power cut could lose.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import os
import sys
from pathlib import Path

__all__ = ["FileOps", "PathLike"]

PathLike = str | os.PathLike[str]

# statfs f_type of the journaling file systems whose commits flush the device's write cache before the commit
# record and journal the block allocation that writeback did (the model in features/store/feature_store.py).
_JOURNALED_FILE_SYSTEMS = {0xEF53: "ext2/3/4", 0x58465342: "xfs"}
_SYNC_FILE_RANGE_WRITE_AND_WAIT = 1 | 2 | 4  # WAIT_BEFORE | WRITE | WAIT_AFTER


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libc


def file_system_type(directory: Path) -> int | None:
    """The statfs ``f_type`` of the file system holding ``directory`` (Linux), None where unknown."""
    libc = _libc()
    if libc is None:
        return None
    buffer = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    if libc.statfs(os.fsencode(directory), buffer) != 0:
        return None
    return int.from_bytes(buffer.raw[: ctypes.sizeof(ctypes.c_long)], sys.byteorder, signed=True)


class FileOps:
    """Mutating file operations of the store, done with the real ``os`` calls.

    ``write_out_without_fsync``: whether ``write_out`` may use ``sync_file_range`` (see ``for_directory``);
    the default, False, makes it an fsync, right on any file system.
    """

    def __init__(self, write_out_without_fsync: bool = False) -> None:
        self._libc = _libc() if write_out_without_fsync else None
        self.write_out_without_fsync = self._libc is not None

    @classmethod
    def for_directory(cls, directory: Path) -> FileOps:
        """The operations for a store under ``directory``: ``write_out`` skips the journal commit on ext4 and XFS,
        and is an fsync elsewhere (btrfs, NFS, tmpfs: their fsync is what makes data durable there)."""
        return cls(write_out_without_fsync=file_system_type(directory) in _JOURNALED_FILE_SYSTEMS)

    def create(self, path: PathLike) -> io.FileIO:
        """A new file opened for writing, unbuffered; FileExistsError if ``path`` exists."""
        return io.FileIO(path, "xb")

    def write(self, file: io.FileIO, data: bytes | memoryview) -> None:
        """Write every byte of ``data`` to ``file`` (a raw write may take only part of it)."""
        view = memoryview(data).cast("B")
        while view:
            written = file.write(view)
            if not written:  # None (non-blocking) or 0: cannot happen for a regular file; never loop forever
                raise OSError(errno.EIO, f"short write to {file.name!r}")
            view = view[written:]

    def fsync(self, file: io.FileIO) -> None:
        """Make the content of ``file`` durable, and every rename or link that changed its inode before."""
        os.fsync(file.fileno())

    def write_out(self, file: io.FileIO) -> None:
        """Write the content of ``file`` to the device and wait, without a journal commit or a cache flush.

        It is durable once the next journal commit (any fsync, or the file system's own timer) has flushed the
        device, which happens before any later rename or link can reach the disk: enough for data that only a
        later rename makes reachable. Where that does not hold (``write_out_without_fsync`` False), an fsync.
        """
        if self._libc is None:
            os.fsync(file.fileno())
            return
        if self._libc.sync_file_range(file.fileno(), 0, 0, _SYNC_FILE_RANGE_WRITE_AND_WAIT) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"sync_file_range: {os.strerror(error)}")

    def close(self, file: io.FileIO) -> None:
        file.close()

    def replace(self, source: PathLike, target: PathLike) -> None:
        """Rename ``source`` over ``target`` atomically (``os.replace``)."""
        os.replace(source, target)

    def link(self, source: PathLike, target: PathLike) -> None:
        """A second name ``target`` for the file ``source`` (a hard link: the same inode, no data copied)."""
        os.link(source, target)

    def mkdir(self, path: PathLike) -> bool:
        """Create the directory ``path``; False when it already exists. Its parent must exist."""
        try:
            os.mkdir(path)
        except FileExistsError:
            return False
        return True

    def unlink(self, path: PathLike) -> None:
        """Remove the file ``path``; nothing when it does not exist."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def rmdir(self, path: PathLike) -> None:
        """Remove the empty directory ``path`` (OSError when it is not empty or missing)."""
        os.rmdir(path)

    def fsync_directory(self, path: Path) -> None:
        """Make the renames, links and unlinks inside the directory ``path`` durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
