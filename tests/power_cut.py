"""A ``FileOps`` that records what the store does to its disk, and rebuilds what a power cut would have left.

``RecordingFileOps`` does every operation for real (so the store behaves normally during the test) and logs it.
``PowerCut(k, ...)`` then rebuilds, in a fresh directory, the disk as it could be after the power failed right
after the first ``k`` logged operations, under the model the store's commit protocol assumes (a journaling file
system, see ``features/store/feature_store.py``):

- namespace changes (create, mkdir, rename, link, unlink, rmdir) reach the disk in the order they were made;
  which of them did is a prefix, at least up to the last change that touched an inode fsynced since, and at
  most all of them (``all_renames``);
- a file's content is what its last fsync saw (empty if never fsynced), or, with ``unsynced_content``, all of it;
  content written out (``sync_file_range``) counts as fsynced once a journal commit followed: an fsync after it,
  or any namespace change after it that reached the disk (a commit flushes the device before its record).

The four combinations are the extremes of what a real cut can leave. Real fsyncs are skipped: only the log
says what was synced, and the test runs at memory speed.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from features.store.fileops import FileOps, PathLike

_ROOT = ""


@dataclass
class _Event:
    kind: str  # create, mkdir, rename, link, unlink, rmdir (namespace changes); write, writeout, sync; mark
    paths: tuple[str, ...] = ()
    inode: int = -1
    data: bytes = b""

    @property
    def is_namespace_change(self) -> bool:
        return self.kind in ("create", "mkdir", "rename", "link", "unlink", "rmdir")


@dataclass
class _Image:
    """Names (relative path -> inode), directory inodes, and each file inode's content."""

    names: dict[str, int] = field(default_factory=lambda: {_ROOT: 0})
    directories: set[int] = field(default_factory=lambda: {0})


def _parent(path: str) -> str:
    return os.path.dirname(path)


def _touched(names: dict[str, int], event: _Event) -> set[int]:
    """The inodes (files and directories) a namespace change modifies, looked up before it is applied."""
    touched = {names[_parent(p)] for p in event.paths if _parent(p) in names}
    if event.kind in ("create", "mkdir"):
        touched.add(event.inode)
    else:
        touched.update(names[p] for p in event.paths if p in names)
    return touched


def _apply(image: _Image, event: _Event) -> None:
    names = image.names
    if event.kind in ("create", "mkdir"):
        names[event.paths[0]] = event.inode
        if event.kind == "mkdir":
            image.directories.add(event.inode)
    elif event.kind == "rename":
        source, target = event.paths
        inode = names.pop(source)
        if inode in image.directories:  # a directory moves with everything below it
            for name in [n for n in names if n.startswith(source + "/")]:
                names[target + name[len(source) :]] = names.pop(name)
        names[target] = inode
    elif event.kind == "link":
        names[event.paths[1]] = names[event.paths[0]]
    elif event.kind in ("unlink", "rmdir"):
        names.pop(event.paths[0])


class RecordingFileOps(FileOps):
    """The real file operations under ``root``, each one logged; fsyncs are logged, not done."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.events: list[_Event] = []
        self._image = _Image()  # the live namespace, to know inodes of paths
        self._next_inode = 1
        self._inode_of_file: dict[int, int] = {}
        self.initial_content: dict[int, bytes] = {}
        inode_of: dict[tuple[int, int], int] = {}  # hard links (_previous.json) share one inode
        for path, dirs, files in os.walk(self.root):  # what exists already counts as synced long ago
            for name in dirs + files:
                full = Path(path) / name
                stat = full.stat()
                inode = inode_of.setdefault((stat.st_dev, stat.st_ino), self._new_inode())
                self._image.names[self._rel(full)] = inode
                if name in dirs:
                    self._image.directories.add(inode)
                else:
                    self.initial_content[inode] = full.read_bytes()
        self.initial = _Image(dict(self._image.names), set(self._image.directories))

    def _new_inode(self) -> int:
        self._next_inode += 1
        return self._next_inode - 1

    def _rel(self, path: PathLike) -> str:
        relative = os.path.relpath(os.fspath(path), self.root)
        return _ROOT if relative == "." else relative

    def _log(self, event: _Event) -> None:
        self.events.append(event)
        if event.is_namespace_change:
            _apply(self._image, event)

    def mark(self, label: str) -> None:
        """Note a point of the test's own (a save returned): ``PowerCut`` ignores it."""
        self.events.append(_Event("mark", (label,)))

    def create(self, path: PathLike) -> io.FileIO:
        file = super().create(path)
        inode = self._new_inode()
        self._inode_of_file[id(file)] = inode
        self._log(_Event("create", (self._rel(path),), inode))
        return file

    def write(self, file: io.FileIO, data: bytes | memoryview) -> None:
        super().write(file, data)
        self._log(_Event("write", inode=self._inode_of_file[id(file)], data=bytes(data)))

    def fsync(self, file: io.FileIO) -> None:
        file.fileno()  # a closed file raises, as os.fsync would
        self._log(_Event("sync", inode=self._inode_of_file[id(file)]))

    def write_out(self, file: io.FileIO) -> None:
        file.fileno()  # a closed file raises, as sync_file_range would
        self._log(_Event("writeout", inode=self._inode_of_file[id(file)]))

    def close(self, file: io.FileIO) -> None:
        super().close(file)

    def replace(self, source: PathLike, target: PathLike) -> None:
        super().replace(source, target)
        self._log(_Event("rename", (self._rel(source), self._rel(target))))

    def link(self, source: PathLike, target: PathLike) -> None:
        super().link(source, target)
        self._log(_Event("link", (self._rel(source), self._rel(target))))

    def mkdir(self, path: PathLike) -> bool:
        created = super().mkdir(path)
        if created:
            self._log(_Event("mkdir", (self._rel(path),), self._new_inode()))
        return created

    def unlink(self, path: PathLike) -> None:
        existed = self._rel(path) in self._image.names
        super().unlink(path)
        if existed:
            self._log(_Event("unlink", (self._rel(path),)))

    def rmdir(self, path: PathLike) -> None:
        super().rmdir(path)
        self._log(_Event("rmdir", (self._rel(path),)))

    def fsync_directory(self, path: Path) -> None:
        self._log(_Event("sync", inode=self._image.names[self._rel(path)]))


@dataclass(frozen=True)
class PowerCut:
    """The power fails right after the first ``after`` logged events."""

    after: int
    all_renames: bool = False
    unsynced_content: bool = False

    def rebuild(self, recording: RecordingFileOps, target: Path) -> None:
        """Write into the empty directory ``target`` what the disk would hold after this cut."""
        live = _Image(dict(recording.initial.names), set(recording.initial.directories))
        changes: list[_Event] = []
        last_touch: dict[int, int] = {}
        durable_changes = 0
        content = {inode: bytearray(data) for inode, data in recording.initial_content.items()}
        synced = dict(recording.initial_content)
        written_out: list[tuple[int, int, bytes]] = []  # (namespace changes before it, inode, content)
        for event in recording.events[: self.after]:
            if event.is_namespace_change:
                for inode in _touched(live.names, event):
                    last_touch[inode] = len(changes)
                changes.append(event)
                _apply(live, event)
            elif event.kind == "write":
                content.setdefault(event.inode, bytearray()).extend(event.data)
            elif event.kind == "writeout":
                written_out.append((len(changes), event.inode, bytes(content.get(event.inode, b""))))
            elif event.kind == "sync":
                for _, inode, data in written_out:  # this fsync's journal commit flushed the device first
                    synced[inode] = data
                written_out.clear()
                durable_changes = max(durable_changes, last_touch.get(event.inode, -1) + 1)
                synced[event.inode] = bytes(content.get(event.inode, b""))
        kept_changes = len(changes) if self.all_renames else durable_changes
        for changes_before, inode, data in written_out:  # a commit of a later change flushed the device first
            if kept_changes > changes_before:
                synced[inode] = data
        image = _Image(dict(recording.initial.names), set(recording.initial.directories))
        for event in changes[:kept_changes]:
            _apply(image, event)
        written: dict[int, Path] = {}
        for name in sorted(image.names, key=lambda n: n.count("/")):
            inode, path = image.names[name], target / name
            if inode in image.directories:
                path.mkdir(parents=True, exist_ok=True)
            elif inode in written:
                os.link(written[inode], path)
            else:
                kept = content.get(inode, b"") if self.unsynced_content else synced.get(inode, b"")
                path.write_bytes(bytes(kept))
                written[inode] = path
