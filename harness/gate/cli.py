"""The regression gate's commands of ``python -m harness``: campaign, baseline, compare.

Registered in ``harness.__main__``'s one parser by ``add_gate_commands``; each command is a function taking the
parsed arguments and returning an exit code: 0 done (compare: no regression), 2 bad input (one line on stderr,
never a traceback), 4 a regression found by ``compare`` (3 stays a single run's threshold breach), 5 a comparison
whose runs cannot reach significance (``compare`` without ``--allow-inconclusive``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_gate_commands"]


def _campaign(args: argparse.Namespace) -> int:
    from harness.gate.baselines import MIN_BASELINE_RUNS
    from harness.gate.campaign import CampaignConfig, run_campaign
    from harness.gate.metrics_table import BadInputError
    from harness.gate.stats import min_p_value

    locust_args = list(args.locust_args)
    if locust_args[:1] == ["--"]:
        locust_args = locust_args[1:]
    config = CampaignConfig(
        locust_args=locust_args,
        repeat=args.repeat,
        warmup_s=args.warmup,
        name=args.name,
        campaigns_dir=args.campaigns_dir,
        quiet_cpu_percent=args.quiet_cpu,
        quiet_timeout_s=args.quiet_timeout,
        pin=args.pin,
        inject_delay_ms=args.inject_delay_ms,
        inject_delay_route=args.inject_delay_route,
    )
    if args.repeat < MIN_BASELINE_RUNS:
        print(
            f"harness campaign: WARNING: {args.repeat} run(s) per side cannot reach significance in a comparison "
            f"(smallest possible p {min_p_value(args.repeat, args.repeat):.2g}): compare will say inconclusive and "
            f"baseline save will refuse it; use --repeat >= {MIN_BASELINE_RUNS} (10 recommended)",
            file=sys.stderr,
        )
    try:
        path = run_campaign(config, os.environ, Path.cwd(), out=lambda line: print(line, flush=True))
    except BadInputError as error:
        print(f"harness campaign: {error}", file=sys.stderr)
        return 2
    print(f"campaign directory: {path}")
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from harness.gate.baselines import baseline_history, find_steps, save_baseline
    from harness.gate.metrics_table import BadInputError

    try:
        if args.action == "save":
            path = save_baseline(
                args.campaign, args.as_name, args.baselines_dir, allow_faults=args.allow_faults, force=args.force
            )
            print(f"baseline {args.as_name!r} saved in {path} (commit {args.baselines_dir}/ to share it)")
            return 0
        series = baseline_history(args.name, args.baselines_dir)
    except BadInputError as error:
        print(f"harness baseline: {error}", file=sys.stderr)
        return 2
    if args.metric:
        series = {k: v for k, v in series.items() if f"{k[0]}:{k[1]}".endswith(args.metric)}
    steps = find_steps(series, min_size=args.min_size, alpha=args.alpha)
    saves = max((len(v) for v in series.values()), default=0)
    print(f"baseline {args.name!r}: {saves} saves, {len(series)} series searched, {len(steps)} step(s) found")
    for step in steps:
        print(
            f"  {step.endpoint or 'service'} {step.metric}: from save {step.index} ({step.saved_at}, commit "
            f"{step.commit[:12] or '?'}): {step.before_median:.4g} -> {step.after_median:.4g} "
            f"({step.change_percent:+.1f}%)"
        )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from harness.gate.compare import GateOptions, compare_sides, load_side
    from harness.gate.metrics_table import BadInputError
    from harness.report.comparison import write_comparison

    options = GateOptions(
        alpha=args.alpha,
        correction=args.correction,
        min_effect=args.min_effect / 100.0,
        allow_different_machine=args.allow_different_machine,
        allow_inconclusive=args.allow_inconclusive,
        warmup_s=args.warmup,
    )
    try:
        base = load_side(args.baseline, args.baselines_dir, args.warmup)
        cand = load_side(args.candidate, args.baselines_dir, args.warmup)
        comparison = compare_sides(base, cand, options)
    except BadInputError as error:
        print(f"harness compare: {error}", file=sys.stderr)
        return 2
    default_out = cand.path if cand.kind == "campaign" else Path("comparisons") / f"{base.label}-vs-{cand.label}"
    paths = write_comparison(comparison, args.out or default_out, self_contained=args.self_contained)
    for warning in comparison.warnings:
        print(f"harness compare: WARNING: {warning}", file=sys.stderr)
    if comparison.unreachable:
        print(f"harness compare: {comparison.unreachable.replace('inconclusive', 'INCONCLUSIVE', 1)}", file=sys.stderr)
    for result in comparison.results:
        if result.gated and result.verdict != "no change":
            print(
                f"{result.verdict:>12}  {result.endpoint or 'service'} {result.metric}: {result.baseline_median:.4g}"
                f" -> {result.candidate_median:.4g} {result.unit}  ({result.reason})"
            )
    counts = ", ".join(f"{n} {verdict}" for verdict, n in comparison.counts().items())
    verdict = comparison.verdict.upper() if comparison.verdict != "no regression" else comparison.verdict
    print(
        f"{verdict} ({counts}; exit code {comparison.exit_code}); wrote {paths['html']}, {paths['json'].name}, "
        f"{paths['md'].name}"
    )
    return comparison.exit_code


def _baselines_dir(command: Any) -> None:
    command.add_argument(
        "--baselines-dir", type=Path, default=Path("baselines"), metavar="DIR", help="default: baselines"
    )


def _add_campaign(commands: Any) -> None:
    campaign = commands.add_parser(
        "campaign",
        help="run one scenario N times under recorded conditions",
        description="Run `locust LOCUST_ARGS --headless` N times into campaigns/<stamp>-<name>/, recording the "
        "machine fingerprint and each run's conditions; write the metrics table and a report.",
    )
    add = campaign.add_argument
    add("--repeat", type=int, default=10, help="runs (default: 10)")
    add("--warmup", type=float, default=0.0, metavar="S", help="seconds of each run left out (default: 0)")
    add("--name", default="campaign", help="the campaign directory's suffix (default: campaign)")
    add("--campaigns-dir", type=Path, default=Path("campaigns"), metavar="DIR", help="default: campaigns")
    add("--quiet-cpu", type=float, default=25.0, metavar="PERCENT",
        help="before each run, wait until the machine's CPU is under this (default: 25)")  # fmt: skip
    add("--quiet-timeout", type=float, default=30.0, metavar="S",
        help="wait at most this long for a quiet machine, then warn and run anyway (default: 30)")  # fmt: skip
    add("--no-pin", dest="pin", action="store_false",
        help="leave the service and the load generator on every core (default: separate cores)")  # fmt: skip
    add("--inject-delay-ms", type=float, default=None, metavar="MS",
        help="fault injection: the embedded service delays matching requests by MS (to prove the gate)")  # fmt: skip
    add("--inject-delay-route", default=None, metavar="ROUTE",
        help="with --inject-delay-ms: only paths matching this route template, prefix or regex")  # fmt: skip
    add("locust_args", nargs=argparse.REMAINDER, metavar="-- LOCUST_ARGS")
    campaign.set_defaults(handler=_campaign)


def _add_baseline(commands: Any) -> None:
    baseline = commands.add_parser("baseline", help="save a campaign as a baseline, or search a baseline's history")
    actions = baseline.add_subparsers(dest="action", required=True, metavar="ACTION")
    save = actions.add_parser("save", help="store a campaign's metrics as baselines/NAME")
    save.add_argument("campaign", type=Path, metavar="CAMPAIGN")
    save.add_argument("--as", dest="as_name", required=True, metavar="NAME")
    save.add_argument("--allow-faults", action="store_true", help="accept a campaign that injected a fault")
    save.add_argument("--force", action="store_true",
                      help="accept a campaign of too few runs (under 4) to reach significance")  # fmt: skip
    _baselines_dir(save)
    history = actions.add_parser("history", help="find steps (change points) in a baseline's saved history")
    history.add_argument("name", metavar="NAME")
    history.add_argument("--metric", default=None, help="only series whose 'endpoint:metric' ends with this")
    history.add_argument("--min-size", type=int, default=3, help="fewest saves on each side of a step (default: 3)")
    history.add_argument("--alpha", type=float, default=0.01, help="permutation test level per series (default: 0.01)")
    _baselines_dir(history)
    baseline.set_defaults(handler=_baseline)


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="the regression gate: did the candidate get slower than the baseline?",
        description="Compare two campaigns (directories or baseline names) or two run directories. Exit codes: "
        "0 no regression, 4 regression, 5 inconclusive (too few runs to reach significance at all), 2 bad input.",
    )
    add = compare.add_argument
    add("baseline", metavar="BASELINE")
    add("candidate", metavar="CANDIDATE")
    add("--out", type=Path, default=None, metavar="DIR",
        help="where comparison.html/.json/.md go (default: the candidate campaign's directory)")  # fmt: skip
    add("--alpha", type=float, default=0.05, help="significance level after correction (default: 0.05)")
    add("--correction", choices=("bh", "holm"), default="bh", help="Benjamini-Hochberg (default) or Holm")
    add("--min-effect", type=float, default=5.0, metavar="PERCENT", help="smallest change that counts (default: 5)")
    add("--warmup", type=float, default=0.0, metavar="S", help="single runs: seconds to drop at the start")
    add("--allow-different-machine", action="store_true", help="compare across machine fingerprints (warned)")
    add("--allow-inconclusive", action="store_true",
        help="exit 0, not 5, when the runs are too few to reach significance (the reports still say so)")  # fmt: skip
    add("--self-contained", action="store_true",
        help="plotly.js inline in comparison.html (default: shared in <out>/../_assets/)")  # fmt: skip
    _baselines_dir(compare)
    compare.set_defaults(handler=_compare)


def add_gate_commands(commands: Any) -> None:
    """Register campaign, baseline and compare on the harness's subcommand parser."""
    _add_campaign(commands)
    _add_baseline(commands)
    _add_compare(commands)
