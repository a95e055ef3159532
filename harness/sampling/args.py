"""Command-line arguments of ``python -m harness.sampling.sampler``: targets with roles, and their checks."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from harness.sampling.proc import ProcessTarget

__all__ = ["add_target_arguments", "checked_targets", "parse_args"]


class _TargetAction(argparse.Action):
    """Appends (role, kind, value) using the role set by the nearest preceding --role."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        namespace.targets.append((namespace.role, self.dest, values))
        namespace.role_used = True


class _RoleAction(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        namespace.role, namespace.role_used = values, False


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """--role, --pid and --match (each --pid/--match takes the role of the nearest --role before it)."""
    parser.set_defaults(targets=[], role="service", role_used=True)
    parser.add_argument("--role", action=_RoleAction, help="role for the following --pid/--match (default: service)")
    parser.add_argument("--pid", action=_TargetAction, type=int, help="follow this process and its descendants")
    parser.add_argument("--match", action=_TargetAction, help="follow processes whose command line matches this regex")


def checked_targets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[ProcessTarget]:
    """The targets of ``args``; ``parser.error`` (exit 2, one line) for a bad role, regex or pid."""
    if not args.role_used:
        parser.error(f"--role {args.role} is not followed by a --pid or --match (the role applies to those after it)")
    targets = []
    for role, kind, value in args.targets:
        try:
            target = ProcessTarget(role, pid=value) if kind == "pid" else ProcessTarget(role, pattern=value)
        except ValueError as exc:
            parser.error(str(exc))
        if target.pid is not None and not psutil.pid_exists(target.pid):
            parser.error(f"--pid {target.pid}: no such process; give the pid of a running process")
        targets.append(target)
    return targets


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.sampling.sampler",
        description="Sample processes, the host and the GPU into a run directory until SIGTERM/SIGINT or --duration.",
        epilog="Each --pid/--match takes the role of the nearest --role before it ('service' before any --role): "
        "--role service --match 'uvicorn' --role generator --pid 456. Descendants of a selected process are "
        "followed with its role; new ones are picked up every tick.",
    )
    add_target_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="directory to write into (created if missing)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks (default: 1.0)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--no-gpu", action="store_true", help="do not look for a GPU")
    parser.add_argument("--uss", action="store_true", help="also record USS (reads smaps: slower)")
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[ProcessTarget]]:
    """Parsed arguments and targets (``argv`` None: sys.argv); exits with status 2 and a message for bad ones."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.targets:
        parser.error("no process to follow: give at least one --pid PID or --match REGEX")
    if not 0.01 <= args.interval <= 3600:
        parser.error(f"--interval {args.interval:g} is out of range: use seconds between 0.01 and 3600")
    if args.duration is not None and not args.duration > 0:
        parser.error(f"--duration {args.duration:g} is invalid: use a positive number of seconds")
    return args, checked_targets(parser, args)
