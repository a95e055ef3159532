"""``python -m harness <command>``: the harness' command line. Commands:

    report RUN_DIR [--out DIR] [--self-contained]
                                  build report.html, summary.json, summary.md from a run directory
    campaign, baseline, compare   the regression gate (harness.gate.cli): N runs under recorded conditions, a
                                  baseline of them, and "did this build get slower?" (exit code 4 when it did)
    ab, noise                     two builds in one job, interleaved pairs, paired statistics (harness.gate.ab);
                                  noise: an A/A of one build, each metric's minimum detectable effect

A command is a function taking the parsed arguments and returning an exit code; add one by writing it and
registering its parser in ``_parser``. Exit codes: 0 done, 2 bad usage or input (argparse's convention too).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.gate.ab import add_ab_commands
from harness.gate.cli import add_gate_commands
from harness.suites.criteria import add_criteria_command

__all__ = ["main"]


def _report(args: argparse.Namespace) -> int:
    from harness.report import NotARunDirectoryError, build_report

    try:
        result = build_report(args.run_dir, args.out, self_contained=args.self_contained)
    except NotARunDirectoryError as error:
        print(f"harness report: {error}", file=sys.stderr)
        return 2
    for problem in result.summary.get("problems", []):
        print(f"harness report: warning: {problem}", file=sys.stderr)
    print(result.summary_md_path.read_text(encoding="utf-8"), end="")
    print(f"wrote {result.html_path}, {result.summary_json_path.name}, {result.summary_md_path.name} "
          f"in {result.elapsed_s:.2f} s")  # fmt: skip
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description="Load-test harness tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report = commands.add_parser(
        "report", help="build the combined report of a run directory",
        description="Build report.html, summary.json and summary.md from the files of a run directory.",
    )  # fmt: skip
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory, e.g. runs/<stamp>-<scenario>")
    report.add_argument("--out", type=Path, metavar="DIR", help="write the three files here (default: RUN_DIR)")
    report.add_argument(
        "--self-contained", action="store_true",
        help="inline plotly.js (4.8 MB) so report.html opens alone anywhere; by default it is shared, written once "
        "into _assets/ beside the run directory (e.g. runs/_assets/) and loaded relatively",
    )  # fmt: skip
    report.set_defaults(handler=_report)
    add_gate_commands(commands)
    add_ab_commands(commands)
    add_criteria_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = _parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
