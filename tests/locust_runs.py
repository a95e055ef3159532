"""Real headless Locust runs for tests: ``run_locust(runs_dir, *args)`` runs ``locust -f
locustfiles/concurrent_users.py --headless ...`` in a subprocess and returns what it left: the exit code, its
stderr, and the run directory's metadata.json, summary.json and report.html.

The run is short and quiet by default (no sampler, no progress line, only the summary); ``env`` adds variables
to the Locust process's environment (the embedded service inherits the FEATURESTORE_INJECT_* ones).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LOCUST", "ROOT", "FinishedRun", "collect", "run_locust", "start_locust"]

ROOT = Path(__file__).resolve().parents[1]
LOCUST = str(Path(sys.executable).with_name("locust"))
_QUIET = ("--sample-interval", "0", "--only-summary", "--no-progress")
# What Locust logs once every user is spawned: a master whose workers' reports came later than 1 s after the ramp
# (a busy machine) logs the second instead of the first (locust.runners.MasterRunner._spawn_users).
SPAWNED_LINES = ("All users spawned", "Spawning is complete")


def spawning_done(text: str) -> bool:
    """Whether Locust's log ``text`` says the users are all spawned (either of SPAWNED_LINES)."""
    return any(line in text for line in SPAWNED_LINES)


@dataclass
class FinishedRun:
    """A finished run: its exit code, stderr and run directory (with metadata.json and summary.json read)."""

    code: int
    stderr: str
    run_dir: Path
    metadata: dict[str, Any]
    summary: dict[str, Any]

    @property
    def report_html(self) -> str:
        return (self.run_dir / "report.html").read_text(encoding="utf-8")


def _command(runs_dir: Path, args: tuple[str, ...]) -> list[str]:
    return [LOCUST, "-f", str(ROOT / "locustfiles" / "concurrent_users.py"), "--headless", "--runs-dir",
            str(runs_dir), *_QUIET, *args]  # fmt: skip


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURESTORE_INJECT", "FEATURELOAD_"))}
    return {**base, "PYTHONPATH": str(ROOT), **(env or {})}


def start_locust(runs_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the run without waiting (stdout discarded, stderr piped)."""
    return subprocess.Popen(_command(runs_dir, args), cwd=ROOT, env=_environment(env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def collect(runs_dir: Path, code: int, stderr: str) -> FinishedRun:
    """The run directory a finished run left in ``runs_dir`` (the newest); fails with its stderr if none."""
    found = runs_dir.iterdir() if runs_dir.is_dir() else []
    dirs = sorted(p for p in found if p.is_dir() and not p.name.startswith("_"))  # not _assets
    assert dirs and (dirs[-1] / "summary.json").is_file(), f"exit {code}, no report:\n{stderr[-4000:]}"
    run_dir = dirs[-1]
    return FinishedRun(code, stderr, run_dir, json.loads((run_dir / "metadata.json").read_text()),
                       json.loads((run_dir / "summary.json").read_text()))  # fmt: skip


def run_locust(runs_dir: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 120) -> FinishedRun:
    """Run to the end and return what it left."""
    done = subprocess.run(_command(runs_dir, args), cwd=ROOT, env=_environment(env), capture_output=True, text=True,
                          timeout=timeout_s, check=False)  # fmt: skip
    return collect(runs_dir, done.returncode, done.stderr)
