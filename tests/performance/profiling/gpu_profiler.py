"""GPU usage at a high rate: utilization, memory, power, temperature and per-process GPU memory (NVML).

    python tests/performance/profiling/gpu_profiler.py [--seconds 10] [--interval-ms 10] [--runs-dir runs]

Run it beside a load test (``locust -f locustfiles/cpu_intensive.py ...``) to see the GPU during the run; the
backend is the sampler's (harness.sampling.gpu: NVML, then GPUtil). Without a GPU it says so plainly and exits 0.
Writes ``runs/<stamp>-profiling-gpu/gpu_profile.json`` when a GPU was sampled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from harness.profiling.gpu_profile import profile_gpu
from harness.recording.rundir import RunDirectory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    args = parser.parse_args(argv)
    profile = profile_gpu(args.seconds, args.interval_ms / 1000.0)
    print(profile.summary_line())
    if profile.available:
        run_dir = RunDirectory(args.runs_dir, "profiling-gpu")
        run_dir.write_json("gpu_profile.json", profile.to_dict())
        print(f"wrote {run_dir.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
