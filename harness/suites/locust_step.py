"""One headless Locust run as a subprocess, the unit of the user-scaling steps and the profiler-overhead pairs.

``run_step("locustfiles/concurrent_users.py", users=50, seconds=10, runs_dir=...)`` runs exactly the command a
user types (``python -m locust -f ... --headless -u 50 -r 50 -t 10s --runs-dir ...``), against the embedded
service, and returns the run directory it made with the headline of its summary.json (harness.report): nothing
is measured here that the run directory does not hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Step", "run_step"]


@dataclass(frozen=True)
class Step:
    """A finished run: its exit code, run directory, summary.json's headline and the stderr tail."""

    users: int
    exit_code: int
    run_dir: Path | None
    headline: dict[str, Any]
    stderr_tail: str

    @property
    def ok_rps(self) -> float | None:
        """Successful requests per second over the run (summary.json: rps x (1 - failure ratio))."""
        rps = self.headline.get("rps")
        return None if rps is None else rps * (1.0 - (self.headline.get("failure_ratio") or 0.0))

    @property
    def p95_ms(self) -> float | None:
        return self.headline.get("p95_ms")


def run_step(
    locustfile: str | Path,
    *,
    users: int,
    seconds: float,
    runs_dir: Path,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float | None = None,
) -> Step:
    """Run ``locustfile`` with ``users`` users (all started within a second) for ``seconds``; returns the Step.

    Raises RuntimeError when Locust made no run directory (the stderr tail says why)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in runs_dir.iterdir()}
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{max(1, round(seconds))}s",
        "--runs-dir",
        str(runs_dir),
        "--only-summary",
        *extra,
    ]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s or seconds + 180,
        check=False,
    )
    made = sorted(p for p in runs_dir.iterdir() if p.name not in before and not p.name.startswith("_"))
    if not made:
        raise RuntimeError(f"locust made no run directory (exit {result.returncode}): {result.stderr[-2000:]}")
    summary_path = made[-1] / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    return Step(users, result.returncode, made[-1], summary.get("headline") or {}, result.stderr[-2000:])
