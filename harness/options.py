"""The options the harness adds to Locust's command line, in their own group of ``locust --help``.

Each option is read, highest priority first, from the command line, its ``FEATURELOAD_*`` environment variable,
then Locust's config files (``locust.conf``, ``~/.locust.conf``, ``[tool.locust]`` in pyproject.toml, ``--config``)
under its long name without dashes (``catalog-size = 1000``). That is configargparse's order, as for Locust's own
options. ``--threshold`` is repeatable; one value may hold several thresholds separated by ``;`` or a newline
(``FEATURELOAD_THRESHOLD="p95 < 50ms; failure_ratio < 1%"``): see ``harness.thresholds.split_thresholds``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["GROUP_TITLE", "OPTION_ENV_VARS", "PROFILE_HELP", "add_arguments"]

GROUP_TITLE = "featureload harness options"
PROFILE_HELP = (
    "named load profile that drives users over time and adds its thresholds: smoke, ramp, step, spike, soak, "
    "stress (profiles/*.toml), or a path to a .toml file [env var: LOCUST_PROFILE]"
)
# The environment variable of each harness option (the option's dest -> variable).
OPTION_ENV_VARS = {
    "threshold": "FEATURELOAD_THRESHOLD",
    "runs_dir": "FEATURELOAD_RUNS_DIR",
    "catalog_size": "FEATURELOAD_CATALOG_SIZE",
    "load_catalog": "FEATURELOAD_LOAD_CATALOG",
    "sample_interval": "FEATURELOAD_SAMPLE_INTERVAL",
    "service_pid": "FEATURELOAD_SERVICE_PID",
    "service_match": "FEATURELOAD_SERVICE_MATCH",
    "service_workers": "FEATURELOAD_SERVICE_WORKERS",
    "write_token": "FEATURELOAD_WRITE_TOKEN",
    "read_token": "FEATURELOAD_READ_TOKEN",
    "progress": "FEATURELOAD_PROGRESS",
    "profile_cpu": "FEATURELOAD_PROFILE_CPU",
}


def add_arguments(parser: Any) -> None:
    """Register the harness's options on Locust's parser, as the group GROUP_TITLE, and give Locust's own
    ``--profile`` its harness meaning (the named load profile) in its help text."""
    if any(group.title == GROUP_TITLE for group in parser._action_groups):
        return  # registered twice (harness._locust_hook and a locustfile's import): once is enough
    for action in parser._actions:
        if action.dest == "profile":  # Locust's option ("a profile to group the testruns together")
            action.help = PROFILE_HELP
            action.env_var = "LOCUST_PROFILE"
    group = parser.add_argument_group(
        GROUP_TITLE,
        "Options of the featureload harness; each also reads the FEATURELOAD_* variable named in its help, "
        "and locust.conf / [tool.locust] keys without the dashes.",
    )

    def add(*flags: str, env: str, **kwargs: Any) -> None:
        kwargs["help"] = f"{kwargs['help']} [env var: {env}]"
        action = group.add_argument(*flags, env_var=env, **kwargs)
        action.include_in_web_ui = False  # a group's add_argument is argparse's, without Locust's keyword

    add("--threshold", action="append", default=[], env=OPTION_ENV_VARS["threshold"], metavar="TEXT",
        help="a pass/fail threshold such as 'p95 < 50ms', 'GET /v1/ping: p99 < 5ms over 10s', "
             "'failure_ratio < 1%%' (the %% is required); exit code 3 when one fails. Repeatable, and one value may "
             "hold several separated by ';' or a newline; added to the profile's")  # fmt: skip
    add("--runs-dir", default="runs", env=OPTION_ENV_VARS["runs_dir"], metavar="DIR",
        help="where run directories are created; must be writable (default: runs)")  # fmt: skip
    add("--catalog-size", type=int, default=20_000, env=OPTION_ENV_VARS["catalog_size"], metavar="MOVIES",
        help="movies in the synthetic catalog of the embedded service (or --load-catalog), >= 1 "
             "(default: 20000)")  # fmt: skip
    add("--load-catalog", action="store_true", default=False, env=OPTION_ENV_VARS["load_catalog"],
        help="with -H: load a synthetic catalog of --catalog-size movies into the service unless it has "
             "one")  # fmt: skip
    add("--sample-interval", type=float, default=1.0, env=OPTION_ENV_VARS["sample_interval"], metavar="SECONDS",
        help="seconds between resource samples of the service, the generators and the host; 0: no sampler "
             "(default: 1)")  # fmt: skip
    add("--service-pid", type=int, default=None, env=OPTION_ENV_VARS["service_pid"], metavar="PID",
        help="with -H: pid of the service's root process on this machine, so the sampler follows its tree")  # fmt: skip
    add("--service-match", default="", env=OPTION_ENV_VARS["service_match"], metavar="REGEX",
        help="with -H: regex over command lines selecting the service's processes on this machine")  # fmt: skip
    add("--service-workers", type=int, default=1, env=OPTION_ENV_VARS["service_workers"], metavar="N",
        help="uvicorn workers of the embedded service, >= 1 (default: 1)")  # fmt: skip
    add("--write-token", default=None, env=OPTION_ENV_VARS["write_token"], metavar="TOKEN",
        help="bearer token for the service's writes (its FEATURESTORE_WRITE_TOKEN); without -H a random one is "
             "generated for the embedded service. Never recorded: prefer the variable to the flag")  # fmt: skip
    add("--read-token", default=None, env=OPTION_ENV_VARS["read_token"], metavar="TOKEN",
        help="bearer token for the service's reads when they are closed (its FEATURESTORE_READ_TOKEN)")  # fmt: skip
    add("--progress", action=argparse.BooleanOptionalAction, default=True, env=OPTION_ENV_VARS["progress"],
        help="headless: one progress line (elapsed, left, users, req/s, p95, failures) instead of Locust's stats "
             "table every 2 s; --no-progress (or --print-stats) brings the table back")  # fmt: skip
    add("--profile-cpu", default="", env=OPTION_ENV_VARS["profile_cpu"], metavar="WINDOW[@DELAY]",
        help="record the service's CPU with py-spy (100 Hz, every worker) for WINDOW (e.g. 10s) from the test's start "
             "or DELAY later (10s@20s): profile.svg, profile.speedscope.json and profile_summary.json in the run "
             "directory, 'where the time goes' in its report (harness.cpu_profile)")  # fmt: skip
