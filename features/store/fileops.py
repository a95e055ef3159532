"""The store's mutating file-system calls, behind one small object so a test can stand in for the disk.

``FileOps`` is the real implementation: each method is the plain ``os`` call (one Python call more per
operation, nothing else). The store passes every write, fsync, rename, link, mkdir, unlink and rmdir of its
commit and delete paths through the ``FileOps`` it was given, so a test double can record them and replay
only what had reached the disk (the power-cut test in ``tests/test_store_power_cut.py``). Reads stay plain
``os`` calls: they change nothing a power cut could lose.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from pathlib import Path

__all__ = ["FileOps", "PathLike"]

PathLike = str | os.PathLike[str]


class FileOps:
    """Mutating file operations of the store, done with the real ``os`` calls."""

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
