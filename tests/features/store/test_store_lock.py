"""The per-feature write lock: threads of one process exclude each other, a timeout says who waited on what."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from features.store._lock import exclusive_lock


def test_two_threads_never_hold_the_lock_together(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "001.lock"  # the directory is created on first use
    inside, overlaps = [0], []

    def hold() -> None:
        for _ in range(50):
            with exclusive_lock(path, 10.0, "feature g/f"):
                inside[0] += 1
                overlaps.append(inside[0])
                time.sleep(0.0005)
                inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(overlaps) == 150 and max(overlaps) == 1


def test_a_lock_held_too_long_raises_timeout_naming_the_feature(tmp_path: Path) -> None:
    path = tmp_path / "001.lock"
    with exclusive_lock(path, 10.0, "feature g/f"):
        waited = []

        def wait() -> None:
            message = r"feature g/f is locked by another writer for more than 0.05 s"
            with pytest.raises(TimeoutError, match=message), exclusive_lock(path, 0.05, "feature g/f"):
                pass
            waited.append(True)

        thread = threading.Thread(target=wait)
        thread.start()
        thread.join()
    assert waited == [True]
    with exclusive_lock(path, 0.05, "feature g/f"):  # released on exit: free again
        pass
