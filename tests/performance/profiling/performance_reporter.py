"""One performance report (HTML + MD + JSON) from the latest benchmarks, scalability results, profiles, load runs
and criteria: measurements, bottlenecks identified, optimization suggestions (harness.suites.perf_report).

    python tests/performance/profiling/performance_reporter.py [--runs-dir runs] [--benchmarks .benchmarks]

Every bottleneck and suggestion shows the figure it rests on and the file it came from; with nothing measured,
the report says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from harness.suites.perf_report import build_performance_report  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--benchmarks", type=Path, default=Path(".benchmarks"))
    args = parser.parse_args(argv)
    out = build_performance_report(args.runs_dir, args.benchmarks)
    print((out / "performance_report.md").read_text(encoding="utf-8"))
    print(f"wrote {out}/performance_report.html, performance_report.md, performance_report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
