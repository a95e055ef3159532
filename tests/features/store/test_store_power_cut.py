"""A power cut between any two file operations of a save or delete leaves the old or the new version, never a
damaged one, and never loses a save that returned.

The store writes through ``RecordingFileOps`` (``tests/power_cut.py``); for every cut point and each of the four
extremes of what a journaling file system may have kept (renames: only those forced by an fsync, or all made;
unsynced content: lost, or kept), the disk is rebuilt in a fresh directory and opened by a fresh store, which
must read one whole version, label it with its own version number, list exactly what it can read, and accept
the next save.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import features.store._files as files_module
import features.store.feature_store as feature_store
from features.store.feature_store import FeatureNotFoundError, FeatureStoreConfig, SimpleFeatureStore
from tests.power_cut import PowerCut, RecordingFileOps

GROUP, NAME = "g", "f"


def frame(marker: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(50), "marker": [marker] * 50, "x": [marker * 0.5 + i for i in range(50)]})


@dataclass(frozen=True)
class Visible:
    """What a reader must see: the frame with ``marker`` at ``version``, or nothing (marker None)."""

    marker: int | None
    version: int | None = None


def record(
    tmp_path: Path, steps: list[int | None], keep_versions: int = 2, start: tuple[Path, Visible] | None = None
) -> tuple[RecordingFileOps, list[int], list[Visible]]:
    """Run ``steps`` (a marker: save that frame; None: delete) through a recording store.

    ``start``: a store directory to copy and start from (what it shows), instead of an empty one.
    Returns the recording, the event count at each step boundary, and what is visible at each boundary.
    """
    base = tmp_path / "recorded"
    if start is None:
        base.mkdir()
    else:
        shutil.copytree(start[0], base, symlinks=True, copy_function=_copy_keeping_links(start[0], base))
    ops = RecordingFileOps(base)
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=base, keep_versions=keep_versions), file_ops=ops)
    boundaries, visible = [len(ops.events)], [start[1] if start else Visible(None)]
    for marker in steps:
        if marker is None:
            store.delete_feature(GROUP, NAME)
            visible.append(Visible(None))
        else:
            store.save_features(GROUP, {NAME: frame(marker)})
            visible.append(Visible(marker, store.get_metadata(GROUP, NAME).version))
        ops.mark("returned")
        boundaries.append(len(ops.events))
    return ops, boundaries, visible


def _copy_keeping_links(source_root: Path, target_root: Path) -> Callable[[str, str], object]:
    """A copytree copy function that copies a hard-linked file once and links its other names."""
    copied: dict[tuple[int, int], str] = {}

    def copy(source: str, target: str) -> object:
        stat = os.stat(source)
        key = (stat.st_dev, stat.st_ino)
        if key in copied:
            os.link(copied[key], target)
        else:
            shutil.copy2(source, target)
            copied[key] = target
        return target

    return copy


def seen_after(cut: PowerCut, ops: RecordingFileOps, directory: Path) -> Visible:
    """Rebuild the disk after ``cut``, open it with a fresh store and say what it shows (asserting consistency)."""
    directory.mkdir()
    cut.rebuild(ops, directory)
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=directory))
    try:
        table, metadata = store.get_table_and_metadata(GROUP, NAME)
    except FeatureNotFoundError:
        with pytest.raises(FeatureNotFoundError):
            store.get_metadata(GROUP, NAME)
        assert NAME not in _listed(store)
        return Visible(None)
    shown = table.to_pandas()
    marker = int(shown["marker"].iloc[0])
    pd.testing.assert_frame_equal(shown, frame(marker))  # one whole version, never a mix or a torn file
    assert store.get_metadata(GROUP, NAME).version == metadata.version
    assert _listed(store) == [NAME]
    return Visible(marker, metadata.version)


def seen_after_rebuilt(directory: Path) -> Visible:
    """What a fresh store shows in ``directory`` (``seen_after`` without the rebuild)."""
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=directory))
    try:
        table, metadata = store.get_table_and_metadata(GROUP, NAME)
    except FeatureNotFoundError:
        return Visible(None)
    return Visible(int(table.column("marker")[0].as_py()), metadata.version)


def _listed(store: SimpleFeatureStore) -> list[str]:
    try:
        return store.list_features(GROUP)
    except FeatureNotFoundError:
        return []


def assert_next_save_works(directory: Path) -> None:
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=directory))
    store.save_features(GROUP, {NAME: frame(99)})
    fresh = SimpleFeatureStore(FeatureStoreConfig(base_path=directory))
    pd.testing.assert_frame_equal(fresh.get_features([NAME], GROUP)[NAME], frame(99))


def cuts(boundaries: list[int]) -> Iterator[tuple[PowerCut, int]]:
    """Every cut point with each extreme of what reached the disk, and the step in flight (or just returned)."""
    step = 0
    for after in range(boundaries[0], boundaries[-1] + 1):
        while step + 1 < len(boundaries) and after > boundaries[step + 1]:
            step += 1
        for all_renames, unsynced_content in itertools.product((False, True), repeat=2):
            yield PowerCut(after, all_renames, unsynced_content), step


def violations(
    tmp_path: Path,
    steps: list[int | None],
    keep_versions: int = 2,
    start: tuple[Path, Visible] | None = None,
    only: Callable[[PowerCut], bool] = lambda cut: True,
) -> list[str]:
    ops, boundaries, visible = record(tmp_path, steps, keep_versions, start)
    found = []
    for number, (cut, step) in enumerate(cuts(boundaries)):
        if not only(cut):
            continue
        directory = tmp_path / f"cut-{number}"
        returned = cut.after in boundaries
        allowed = [visible[boundaries.index(cut.after)]] if returned else visible[step : step + 2]
        try:
            seen = seen_after(cut, ops, directory)
        except Exception as error:  # any failure to read is what this test looks for
            found.append(f"{cut}: {type(error).__name__}: {error}")
            continue
        if seen not in allowed:
            found.append(f"{cut}: shows {seen}, allowed {allowed} ({'after' if returned else 'during'} step {step})")
            continue
        assert_next_save_works(directory)
    return found


def test_a_second_power_cut_during_the_save_after_the_first_still_shows_one_whole_version(tmp_path: Path) -> None:
    # The first cut leaves every state of a replacing save (among them the empty pointer that _previous.json
    # covers); the save after it, cut anywhere again, must still show what the first cut left, or its own frame.
    (tmp_path / "first").mkdir()
    ops, boundaries, _ = record(tmp_path / "first", [1, 2])
    found = []
    for after in range(boundaries[1] + 1, boundaries[2]):
        cut = PowerCut(after, all_renames=True, unsynced_content=False)  # renames on disk, contents lost
        first = tmp_path / f"first-{after}"
        first.mkdir()
        cut.rebuild(ops, first)
        shown = seen_after_rebuilt(first)
        (tmp_path / f"second-{after}").mkdir()
        found += violations(tmp_path / f"second-{after}", [3], start=(first, shown))
    assert found == []


SCENARIOS = {
    "a first save then two replacements": ([1, 2, 3], 2),
    "three saves keeping one version": ([1, 2, 3], 1),
    "save, delete, save again": ([1, None, 2], 2),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_power_cut_between_any_two_operations_shows_the_old_or_the_new_version(tmp_path: Path, scenario: str) -> None:
    steps, keep_versions = SCENARIOS[scenario]
    assert violations(tmp_path, steps, keep_versions) == []


def test_a_save_costs_one_fsync_and_one_write_out(tmp_path: Path) -> None:
    ops, boundaries, _ = record(tmp_path, [1, 2])
    for start, end in itertools.pairwise(boundaries):
        kinds = [e.kind for e in ops.events[start:end]]
        assert (kinds.count("sync"), kinds.count("writeout")) == (1, 1)


def test_the_cut_test_catches_a_commit_without_the_previous_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without _previous.json, the window between the pointer's rename and its fsync loses the old version.
    real = files_module.replace_then_sync

    def without_previous(path: Path, data: bytes, ops: object, keep_previous_as: Path | None = None) -> None:
        real(path, data, ops, None)  # type: ignore[arg-type]

    monkeypatch.setattr(feature_store, "replace_then_sync", without_previous)
    found = violations(tmp_path, [1, 2])
    assert found and all("FeatureNotFoundError" in v or "shows Visible(marker=None" in v for v in found), found


def test_the_store_writes_out_without_fsync_only_on_ext4_and_xfs(tmp_path: Path) -> None:
    from features.store.fileops import FileOps, file_system_type

    kind = file_system_type(tmp_path)
    assert FileOps.for_directory(tmp_path).write_out_without_fsync == (kind in (0xEF53, 0x58465342))
    if Path("/dev/shm").is_dir():  # tmpfs: outside the model, write_out is an fsync
        assert not FileOps.for_directory(Path("/dev/shm")).write_out_without_fsync
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path / "store"))
    store.save_features(GROUP, {NAME: frame(1)})  # the real write-out path, whichever it is here
    pd.testing.assert_frame_equal(store.get_features([NAME], GROUP)[NAME], frame(1))
