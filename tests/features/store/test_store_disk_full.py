"""A full or read-only disk under the store, on a small tmpfs each test mounts itself (root only; skipped otherwise).

The defect these guard against: a save failing with ENOSPC left Arrow's buffered Parquet stream open over a file
descriptor that was then closed; when the garbage collector destroyed the stream, it flushed up to 1 MB of
Parquet into whatever had reused that descriptor number (another client's socket, another feature's file).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.store import feature_store
from features.store._files import ChecksummingFile
from features.store.feature_store import FeatureNotFoundError, FeatureStoreConfig, SimpleFeatureStore

_CHUNK = 1 << 20


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's syntax: "8m") mounted on ``path`` for the block; pytest.skip where mounting
    is not allowed (not root, no mount(8), EPERM in a container)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount(8) is not installed")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def remount(path: Path, mode: str) -> None:
    """Remount the tmpfs on ``path`` read-only (``"ro"``) or read-write (``"rw"``)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True, timeout=30)


def free_bytes(path: Path) -> int:
    disk = os.statvfs(path)
    return disk.f_bavail * disk.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """Write a filler file on ``disk`` until at most ``leave`` bytes are free; returns its path."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as file:
        for _ in range(free_bytes(disk) // _CHUNK + 2):  # bounded: one chunk per free MB, and the last part
            wanted = free_bytes(disk) - leave
            if wanted <= 0:
                break
            try:
                file.write(b"\0" * min(wanted, _CHUNK))
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
    assert free_bytes(disk) <= leave + 4096
    return filler


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Random doubles: about 16 bytes a row in Parquet, whatever the compression."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(rows), "x": rng.random(rows)})


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "8m") as mounted:
        yield mounted


def _store(base: Path) -> SimpleFeatureStore:
    return SimpleFeatureStore(FeatureStoreConfig(base_path=base, compression="none"))


def test_a_save_failing_on_a_full_disk_writes_nothing_into_a_reused_descriptor(disk: Path, tmp_path: Path) -> None:
    store = _store(disk / "store")
    store.save_features("g", {"kept": frame(1_000, seed=1)})
    fill(disk, leave=256 << 10)
    # ~800 KB of Parquet: it fits Arrow's 1 MB write buffer, so the disk refuses it on the final flush.
    with pytest.raises(OSError) as raised:
        store.save_features("g", {"big": frame(50_000)})
    victims = [tmp_path / f"victim-{i}" for i in range(8)]
    descriptors = [os.open(victim, os.O_WRONLY | os.O_CREAT) for victim in victims]  # reuse the freed numbers
    try:
        del raised  # the failed stream, kept alive by the traceback, is destroyed now
        gc.collect()
    finally:
        for descriptor in descriptors:
            os.close(descriptor)
    written = {victim.name: victim.read_bytes()[:4] for victim in victims if victim.stat().st_size}
    assert written == {}, f"a failed save wrote into files that reused its descriptor: {written}"


def test_a_full_disk_fails_the_save_cleanly_and_saves_work_again_once_space_is_freed(disk: Path) -> None:
    base = disk / "store"
    store = _store(base)
    kept = frame(1_000, seed=1)
    store.save_features("g", {"kept": kept})
    filler = fill(disk, leave=256 << 10)
    for rows in (50_000, 200_000):  # fails on the final flush, and in the middle of writing
        with pytest.raises(feature_store.StorageFullError) as raised:
            store.save_features("g", {"big": frame(rows), "kept": frame(10, seed=2)})
        assert raised.value.errno == errno.ENOSPC
        assert "disk is full" in str(raised.value) and str(disk) not in str(raised.value)
    assert os.listdir(base / ".staging") == []
    with pytest.raises(FeatureNotFoundError):
        store.get_features(["big"], "g")
    pd.testing.assert_frame_equal(store.get_features(["kept"], "g")["kept"], kept)
    assert store.get_metadata("g", "kept").version == 1
    restarted = _store(base)
    pd.testing.assert_frame_equal(restarted.get_features(["kept"], "g")["kept"], kept)

    filler.unlink()
    big = frame(200_000)
    restarted.save_features("g", {"big": big})
    pd.testing.assert_frame_equal(_store(base).get_features(["big"], "g")["big"], big)


def test_a_commit_failing_on_a_full_disk_leaves_the_previous_version_and_no_orphan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pointer is the last thing a commit writes: a failure there must not leave the renamed data file behind.
    store = _store(tmp_path / "store")
    first = frame(100, seed=1)
    store.save_features("g", {"f": first})

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(feature_store, "replace_then_sync", full)
    with pytest.raises(feature_store.StorageFullError):
        store.save_features("g", {"f": frame(100, seed=2)})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "store" / "g" / "f")) == ["_current.json", "v0000000001.parquet"]
    assert os.listdir(tmp_path / "store" / ".staging") == []
    pd.testing.assert_frame_equal(_store(tmp_path / "store").get_features(["f"], "g")["f"], first)


def test_a_read_only_store_refuses_writes_with_store_unavailable(disk: Path) -> None:
    base = disk / "store"
    store = _store(base)
    kept = frame(100)
    store.save_features("g", {"kept": kept})
    remount(disk, "ro")
    try:
        with pytest.raises(feature_store.StoreUnavailableError) as raised:
            store.save_features("g", {"new": frame(100)})
        assert raised.value.errno == errno.EROFS and "not writable" in str(raised.value)
        with pytest.raises(feature_store.StoreUnavailableError):
            store.delete_feature("g", "kept")
        pd.testing.assert_frame_equal(store.get_features(["kept"], "g")["kept"], kept)
    finally:
        remount(disk, "rw")
    assert os.listdir(base / ".staging") == []


def test_a_closed_checksumming_file_refuses_writes_and_keeps_no_descriptor(tmp_path: Path) -> None:
    sink = ChecksummingFile(tmp_path / "v.parquet")
    sink.write(b"PAR1")
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write(b"more")
    with pytest.raises(ValueError):
        sink.sync()
    assert not any(isinstance(value, int) and value > 2 for key, value in vars(sink).items() if "fd" in key)
    assert sink.path.read_bytes() == b"PAR1" and sink.size == 4
