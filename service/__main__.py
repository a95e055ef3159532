"""``python -m service``: run the feature store service under uvicorn.

Every setting has a flag (``--max-body-bytes``, ``--write-token``, ``--no-cache-enabled``...) that overrides its
``FEATURESTORE_*`` variable. The resolved settings reach the workers through those variables. With several workers
and no ``--metrics-dir``, a temporary Prometheus multiprocess directory is created and removed at exit.

uvicorn runs ``service.http_protocol.GuardedHttpToolsProtocol`` (httptools with a head size cap, header and body
timeouts and a connection cap), and the open-file limit is raised (up to its hard limit) so that
``max_connections`` connections fit in every worker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from service.settings import Settings, SettingsError, parse_value

__all__ = ["build_parser", "main", "parse_settings", "prepare_metrics_dir", "raise_open_file_limit"]

_METRIC_FILE_PREFIXES = ("counter_", "gauge_", "histogram_", "summary_")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _converter(name: str) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            return parse_value(name, raw, source=_flag(name))
        except SettingsError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    """One flag per Settings field; unset flags keep the environment's (or the default) value."""
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Run the feature store service (FastAPI under uvicorn). Flags override FEATURESTORE_* variables.",
        argument_default=argparse.SUPPRESS,
    )
    defaults = Settings()
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        if str(f.type) == "bool":
            parser.add_argument(
                _flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, help=f"(default: {default})"
            )
        else:
            parser.add_argument(
                _flag(f.name),
                dest=f.name,
                type=_converter(f.name),
                metavar=f.name.upper(),
                help=f"(env FEATURESTORE_{f.name.upper()}, default: {default})",
            )
    return parser


def parse_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
    """Settings from ``environ`` overridden by the flags in ``argv``; exits with status 2 and a message on
    invalid values (argparse's convention)."""
    parser = build_parser()
    flags = vars(parser.parse_args(argv))
    try:
        return Settings.from_env(environ).replace(**flags)
    except SettingsError as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits


def prepare_metrics_dir(path: Path) -> None:
    """Create the Prometheus multiprocess directory and remove metric files a previous run left there."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.suffix == ".db" and entry.name.startswith(_METRIC_FILE_PREFIXES):
            entry.unlink(missing_ok=True)


def raise_open_file_limit(max_connections: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE (inherited by the workers) towards ``max_connections`` plus room
    for the store's files, within the hard limit; a worker lowers its cap to what the limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + 1024
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        print(
            f"python -m service: the open-file limit ({target}) leaves room for fewer than max_connections="
            f"{max_connections} connections per worker; the cap is lowered to fit (raise ulimit -n to keep it)",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse settings, export them for the workers and run uvicorn until it is stopped; returns the exit code."""
    settings = parse_settings(argv, os.environ)
    settings = settings.replace(store_path=settings.store_path.resolve())
    temporary_metrics_dir: str | None = None
    if settings.workers > 1 and settings.metrics_dir is None:
        temporary_metrics_dir = tempfile.mkdtemp(prefix="featurestore-metrics-")
        settings = settings.replace(metrics_dir=Path(temporary_metrics_dir))
    if settings.metrics_dir is not None:
        settings = settings.replace(metrics_dir=settings.metrics_dir.resolve())
        prepare_metrics_dir(settings.metrics_dir)
        # prometheus_client picks its multiprocess mode from this variable when it is imported: set it before
        # the workers start (and before this process imports the app, with a single worker).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.metrics_dir)
    os.environ.update(settings.to_env())

    raise_open_file_limit(settings.max_connections)
    import uvicorn  # after the environment is final

    try:
        uvicorn.run(
            "service.app:app",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level.lower(),
            access_log=settings.access_log,
            timeout_graceful_shutdown=max(1, round(settings.graceful_shutdown_s)),
            loop="auto",
            http="service.http_protocol:GuardedHttpToolsProtocol",
            timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]  # a float works
            lifespan="on",
        )
    finally:
        if temporary_metrics_dir is not None:
            shutil.rmtree(temporary_metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
