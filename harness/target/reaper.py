"""Leave nothing behind when the Locust process dies: a reaper process, and a sweep of dead owners' directories.

``Reaper.start(paths)`` starts ``python -m harness.target.reaper PATH...`` in its own session (a terminal's Ctrl-C does
not reach it) with a pipe from this process on its stdin. The reaper blocks reading that pipe; the pipe closes when
this process exits, however it exits (SIGKILL included: the kernel closes its descriptors). Then the reaper
SIGKILLs the process groups it was told about (``watch(pgid)``: the service is its own group), waits until they
are gone (at most ``GROUP_WAIT_S``) and removes the paths. A clean stop (``close()``) says "done" first: the
reaper then only removes what is left of the paths.

``claim(directory)`` writes an ``owner`` file (pid and start time of this process); ``sweep(prefix)`` removes
the temporary directories with that prefix whose owner is no longer running: the second line of defence, run
when the next run starts, for a reaper that was killed too (the OOM killer, ``kill -9`` of every process).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

__all__ = ["GROUP_WAIT_S", "OWNER_FILE", "Reaper", "claim", "sweep"]

GROUP_WAIT_S = 10.0
OWNER_FILE = "owner"


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def claim(directory: Path) -> None:
    """Mark ``directory`` as owned by this process (see ``sweep``)."""
    (directory / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n", encoding="utf-8")


def sweep(prefix: str, root: Path | None = None) -> list[Path]:
    """Remove the directories ``root/prefix*`` (root: the temp directory) whose owner process has exited;
    returns them. A directory without a readable owner file is left alone (it may be being created)."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            pid_text, started_text = (path / OWNER_FILE).read_text(encoding="utf-8").split()
            pid, started = int(pid_text), float(started_text)
        except (OSError, ValueError):
            continue
        alive = _start_time(pid)
        if alive is None or abs(alive - started) > 0.01:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class Reaper:
    """The parent's side of a reaper process (see the module docstring)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    @classmethod
    def start(cls, paths: list[Path]) -> Reaper:
        argv = [sys.executable, "-m", "harness.target.reaper", *map(str, paths)]
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        return cls(process)

    def _say(self, line: str) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()

    def watch(self, pgid: int) -> None:
        """Kill the process group ``pgid`` if this process dies without ``close()``."""
        self._say(f"pgid {pgid}")

    def close(self, timeout_s: float = 10.0) -> None:
        """A clean stop: the reaper removes what is left of its paths and exits (idempotent)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self._say("done")
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting for a reaping parent do not count)."""
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError, psutil.Error):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                return True
    return False


def main(argv: list[str]) -> int:
    """Wait for the parent's pipe to close, then kill the watched groups (unless told "done") and remove
    ``argv``'s paths."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: list[int] = []
    clean = False
    for raw in sys.stdin.buffer:
        words = raw.decode(errors="replace").split()
        if words[:1] == ["pgid"] and len(words) == 2 and words[1].isdigit():
            groups.append(int(words[1]))
        elif words == ["done"]:
            clean = True
    if not clean:
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + GROUP_WAIT_S
        while any(_group_alive(g) for g in groups) and time.monotonic() < deadline:
            time.sleep(0.05)
    for path in argv:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
