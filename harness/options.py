"""The options the harness adds to Locust's command line (and to its config files and environment variables)."""

from __future__ import annotations

from typing import Any

__all__ = ["add_arguments"]


def add_arguments(parser: Any) -> None:
    """Register the harness's options on Locust's parser (they also read FEATURELOAD_* variables)."""
    # --profile NAME is Locust's own option ("a profile to group the testruns together", shown in the web UI);
    # the harness gives it its meaning: the named load profile from profiles/ (or a .toml path).
    parser.add_argument(
        "--threshold", action="append", default=[], include_in_web_ui=False,
        help="a threshold such as 'p95 < 50ms', 'GET /v1/ping: p99 < 5ms over 10s', 'failure_ratio < 1%%' "
             "(repeatable; added to the profile's)",
    )  # fmt: skip
    parser.add_argument(
        "--runs-dir", default="runs", env_var="FEATURELOAD_RUNS_DIR", include_in_web_ui=False,
        help="where run directories are created (default: runs)",
    )  # fmt: skip
    parser.add_argument(
        "--catalog-size", type=int, default=20_000, env_var="FEATURELOAD_CATALOG_SIZE", include_in_web_ui=False,
        help="movies in the embedded service's synthetic catalog (default: 20000)",
    )  # fmt: skip
    parser.add_argument(
        "--load-catalog", action="store_true", default=False, env_var="FEATURELOAD_LOAD_CATALOG",
        include_in_web_ui=False,
        help="with -H: load a synthetic catalog of --catalog-size movies into the service unless it has one",
    )  # fmt: skip
    parser.add_argument(
        "--sample-interval", type=float, default=1.0, env_var="FEATURELOAD_SAMPLE_INTERVAL", include_in_web_ui=False,
        help="seconds between resource samples of the service, the generators and the host (0: no sampler)",
    )  # fmt: skip
    parser.add_argument(
        "--service-pid", type=int, default=None, env_var="FEATURELOAD_SERVICE_PID", include_in_web_ui=False,
        help="with -H: pid of the service's root process on this machine, so the sampler follows its tree",
    )  # fmt: skip
    parser.add_argument(
        "--service-match", default="", env_var="FEATURELOAD_SERVICE_MATCH", include_in_web_ui=False,
        help="with -H: regex over command lines selecting the service's processes on this machine",
    )  # fmt: skip
    parser.add_argument(
        "--service-workers", type=int, default=1, env_var="FEATURELOAD_SERVICE_WORKERS", include_in_web_ui=False,
        help="uvicorn workers of the embedded service (default: 1)",
    )  # fmt: skip
    parser.add_argument(
        "--write-token", default=None, env_var="FEATURELOAD_WRITE_TOKEN", include_in_web_ui=False,
        help="bearer token for the service's writes (its FEATURESTORE_WRITE_TOKEN); without -H a random one is "
             "generated for the embedded service. Never recorded: prefer the variable to the flag",
    )  # fmt: skip
    parser.add_argument(
        "--read-token", default=None, env_var="FEATURELOAD_READ_TOKEN", include_in_web_ui=False,
        help="bearer token for the service's reads when they are closed (its FEATURESTORE_READ_TOKEN)",
    )  # fmt: skip
