"""Crash-safe file primitives: atomic replace (temp file, fsync, rename, fsync of the directory)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

TEMP_MARKER = ".tmp-"


def atomic_write(path: Path, data: bytes | memoryview, sync_directory: bool = True) -> None:
    """Write ``data`` to ``path`` so that a reader sees either the old file or the complete new one.

    The bytes go to a hidden temp file in the same directory, are fsynced, then renamed over ``path``;
    with ``sync_directory`` the directory is fsynced so the rename itself survives a crash (callers that
    rename several files into one directory sync it once, after the last rename). A failure removes the
    temp file.
    """
    temp = path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data).cast("B")
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
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
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove_temp_files(directory: Path) -> int:
    """Remove temp files left by writers that died; call only while holding the directory's write lock."""
    removed = 0
    for entry in os.scandir(directory):
        if TEMP_MARKER in entry.name:
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed
