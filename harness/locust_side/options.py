"""The options the harness adds to Locust's command line: declared here, all of them, in ``OPTIONS``, and listed
in their own group of ``locust --help`` (``harness._help_hook`` registers ``add_arguments`` before Locust prints
its help; a locustfile's ``import harness.plugin`` registers it too, idempotently).

Each option is read, highest priority first, from the command line, its ``FEATURELOAD_*`` environment variable,
then Locust's config files (``locust.conf``, ``~/.locust.conf``, ``[tool.locust]`` in pyproject.toml, ``--config``)
under its long name without dashes (``catalog-size = 1000``). That is configargparse's order, as for Locust's own
options. ``--threshold`` is repeatable; one value may hold several thresholds separated by ``;`` or a newline
(``FEATURELOAD_THRESHOLD="p95 < 50ms; failure_ratio < 1%"``): see ``harness.verdict.thresholds.split_thresholds``.

The defaults other modules act on live here too (``DEFAULT_CONNECTIONS``, ``ARRIVAL_PROCESSES``,
``HTTP_CLIENTS``, ``REQUEST_LOG_AUTO_FULL_ROWS`` / ``REQUEST_LOG_AUTO_SAMPLE``), so a help text cannot drift from
the behaviour. This module imports nothing heavy: the help hook imports it before any locustfile.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ARRIVAL_PROCESSES",
    "DEFAULT_CONNECTIONS",
    "DUET_SUFFIX",
    "ENV_ONLY",
    "GROUP_TITLE",
    "HTTP_CLIENTS",
    "OPTIONS",
    "OPTION_ENV_VARS",
    "PROFILE_HELP",
    "REQUEST_LOG_AUTO_FULL_ROWS",
    "REQUEST_LOG_AUTO_SAMPLE",
    "HarnessOption",
    "add_arguments",
]

GROUP_TITLE = "featureload harness options"
PROFILE_HELP = (
    "named load profile that drives users over time and adds its thresholds: smoke, ramp, step, spike, soak, "
    "stress (profiles/*.toml), or a path to a .toml file [env var: LOCUST_PROFILE]"
)
ARRIVAL_PROCESSES = ("constant", "poisson")
DEFAULT_CONNECTIONS = 64  # keep-alive connections per Locust process (--connections)
HTTP_CLIENTS = ("lean", "locust")
# Variables the harness reads that are not options: secrets, which must never be a flag (a command line is
# world-readable in /proc), and test-suite sizing.
ENV_ONLY = {
    "FEATURELOAD_AGENT_TOKEN": "the agents' shared secret (harness.sampling.wire.TOKEN_ENV)",
    "FEATURELOAD_SCALE": "sizes the scalability test suites, not a run",
}
DUET_SUFFIX = " @duet"  # the name suffix of the requests --duet-host received
REQUEST_LOG_AUTO_FULL_ROWS = 1_000_000  # --request-log auto: every request of a process up to this many ...
REQUEST_LOG_AUTO_SAMPLE = 0.01  # ... then this share of them


@dataclass(frozen=True)
class HarnessOption:
    """One option: its flag, its variable, its help, and argparse's other keywords (``dest`` from the flag)."""

    flag: str
    env: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _option(flag: str, help: str, **kwargs: Any) -> HarnessOption:
    env = "FEATURELOAD_" + flag.lstrip("-").replace("-", "_").upper()
    return HarnessOption(flag, env, help, kwargs)


OPTIONS: tuple[HarnessOption, ...] = (
    _option("--threshold", action="append", default=[], metavar="TEXT",
            help="a pass/fail threshold such as 'p95 < 50ms', 'GET /v1/ping: p99 < 5ms over 10s', "
                 "'failure_ratio < 1%%' (the %% is required); exit code 3 when one fails. Repeatable, and one value "
                 "may hold several separated by ';' or a newline; added to the profile's"),
    _option("--runs-dir", default="runs", metavar="DIR",
            help="where run directories are created; must be writable (default: runs)"),
    _option("--catalog-size", type=int, default=20_000, metavar="MOVIES",
            help="movies in the synthetic catalog of the embedded service (or --load-catalog), >= 1 (default: 20000)"),
    _option("--load-catalog", action="store_true", default=False,
            help="with -H: load a synthetic catalog of --catalog-size movies into the service unless it has one"),
    _option("--sample-interval", type=float, default=1.0, metavar="SECONDS",
            help="seconds between resource samples of the service, the generators and the host; 0: no sampler "
                 "(default: 1)"),
    _option("--service-pid", type=int, default=None, metavar="PID",
            help="with -H: pid of the service's root process on this machine, so the sampler follows its tree"),
    _option("--service-match", default="", metavar="REGEX",
            help="with -H: regex over command lines selecting the service's processes on this machine"),
    _option("--service-workers", type=int, default=1, metavar="N",
            help="uvicorn workers of the embedded service, >= 1 (default: 1)"),
    _option("--write-token", default=None, metavar="TOKEN",
            help="bearer token for the service's writes (its FEATURESTORE_WRITE_TOKEN); without -H a random one is "
                 "generated for the embedded service. Never recorded: prefer the variable to the flag"),
    _option("--read-token", default=None, metavar="TOKEN",
            help="bearer token for the service's reads when they are closed (its FEATURESTORE_READ_TOKEN)"),
    _option("--progress", action=argparse.BooleanOptionalAction, default=True,
            help="headless: one progress line (elapsed, left, users, req/s, p95, failures) instead of Locust's stats "
                 "table every 2 s; --no-progress (or --print-stats) brings the table back"),
    _option("--profile-cpu", default="", metavar="WINDOW[@DELAY]",
            help="record the service's CPU with py-spy (100 Hz, every worker) for WINDOW (e.g. 10s) from the test's "
                 "start or DELAY later (10s@20s): profile.svg, profile.speedscope.json and profile_summary.json in "
                 "the run directory, 'where the time goes' in its report (harness.profiling.cpu_profile)"),
    _option("--http-client", default="lean", choices=HTTP_CLIENTS,
            help="transport of the harness's requests: lean (keep-alive sockets parsed by httptools, without "
                 "Locust's session layers: no cookies, no redirects) or locust (Locust's FastHttpSession). "
                 "Default: lean"),
    _option("--duet-host", default="", metavar="URL",
            help="a second service measured in the same run (python -m harness ab --mode duet): each request goes "
                 "to -H or to this host, alternating per request name from a random first side, named with the suffix "
                 f"'{DUET_SUFFIX}' when it went here. Needs --http-client lean"),
    _option("--arrival-rate", type=float, default=0.0, metavar="PER_S",
            help="open model: requests/s in total, split across workers, sent whatever the answers (0: Locust's "
                 "closed model of users). Use one user per Locust process"),
    _option("--arrival-process", default="constant", choices=ARRIVAL_PROCESSES,
            help="open model: constant spacing (default) or poisson arrivals"),
    _option("--max-in-flight", type=int, default=1000, metavar="N",
            help="open model: arrivals in flight per Locust process; an arrival beyond it is dropped and counted "
                 "(default: 1000)"),
    _option("--connections", type=int, default=DEFAULT_CONNECTIONS, metavar="N",
            help=f"open model: keep-alive connections per Locust process, as wrk2's -c (default: "
                 f"{DEFAULT_CONNECTIONS}); an arrival that finds them all busy waits for one, the wait counted in its "
                 "response time (from the intended start), not in its service time (from the send)"),
    _option("--prometheus", default="", metavar="URL",
            help="a Prometheus server that scrapes the service (http:// or https://; credentials in the URL are "
                 "masked wherever it is recorded): the run's window of the --prometheus-query series is pulled into "
                 "prometheus.arrows, live in the web UI, and drawn in the report beside Locust's figures. "
                 "Unreachable: the report says so, the exit code is unchanged (default: none)"),
    _option("--prometheus-query", action="append", default=[], metavar="NAME=PROMQL",
            help="with --prometheus: a query to pull (step: --sample-interval, else 1 s; $window in PROMQL is the "
                 "rate window, 4 steps, at least 4 s). Repeatable, one per line in a value; added to the defaults "
                 "request_rate_per_s, server_p50_ms, server_p95_ms, server_p99_ms, cpu_percent, rss_bytes (the "
                 "service's own /metrics), or replacing the one of the same NAME"),
    _option("--request-log", default="auto", metavar="MODE",
            help=f"raw per-request log requests.arrows: full, sample:P, off, or auto (default: full for the first "
                 f"{REQUEST_LOG_AUTO_FULL_ROWS:,} requests per process, then sample:{REQUEST_LOG_AUTO_SAMPLE:g}); "
                 "percentiles and thresholds come from HDR histograms either way"),
    _option("--agents-bind", default="", metavar="HOST:PORT",
            help="listen here for agents on other hosts (python -m harness.sampling.agent --master HOST:PORT): "
                 "their processes, host and GPU join the run directory on this clock, one panel and resources "
                 "table per host. Beyond loopback FEATURELOAD_AGENT_TOKEN must be set (on every agent too)"),
)  # fmt: skip
# The environment variable of each harness option (the option's dest -> variable).
OPTION_ENV_VARS = {option.dest: option.env for option in OPTIONS}


def add_arguments(parser: Any) -> None:
    """Register every option of ``OPTIONS`` on Locust's parser, as the group GROUP_TITLE, and give Locust's own
    ``--profile`` its harness meaning (the named load profile) in its help text."""
    if any(group.title == GROUP_TITLE for group in parser._action_groups):
        return  # registered twice (harness._help_hook and a locustfile's import): once is enough
    for action in parser._actions:
        if action.dest == "profile":  # Locust's option ("a profile to group the testruns together")
            action.help = PROFILE_HELP
            action.env_var = "LOCUST_PROFILE"
    group = parser.add_argument_group(
        GROUP_TITLE,
        "Options of the featureload harness; each also reads the FEATURELOAD_* variable named in its help, "
        "and locust.conf / [tool.locust] keys without the dashes.",
    )
    for option in OPTIONS:
        action = group.add_argument(option.flag, env_var=option.env, help=f"{option.help} [env var: {option.env}]",
                                    **option.kwargs)  # fmt: skip
        action.include_in_web_ui = False  # a group's add_argument is argparse's, without Locust's keyword
