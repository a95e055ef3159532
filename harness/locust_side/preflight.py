"""Checks made before a run spawns any user, so that a run that cannot work stops at once with one line.

Each check raises ``PreflightError`` whose message is one line: what is wrong, then what to do
("... has no catalog: add --load-catalog"); a token flag comes last on its line, so that the log's redaction
(which masks the word after ``--read-token``) leaves the advice readable. ``harness.plugin`` logs it and exits
with ``PREFLIGHT_EXIT_CODE`` (2, Locust's own code for a run that could not start) before any user is spawned,
on the master or the only process. In order:

    check_options   the harness's options: thresholds (syntax, the % of failure_ratio, endpoints the locustfile
                    requests), the profile, --catalog-size, --service-workers, --sample-interval, --runs-dir
    check_host      -H: a http(s) scheme; GET /health answers within HEALTH_TIMEOUT_S; a read is not refused
                    (else --read-token); the catalog the scenario needs is there (else --load-catalog)

A web UI run is checked at each Start instead (``check_run_host``, from ``harness.locust_side.webui``): exiting at
start-up would take the web UI down; the Start is refused with the same line, which the UI shows.

The endpoint names and whether a scenario needs the catalog come from its user classes: ``endpoints`` and
``needs_catalog`` class attributes (``harness.users.FeatureStoreUser``); a class without them is not checked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import tempfile
import urllib.error
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.recording.redact import redact_url
from harness.target._http import open_url
from harness.verdict.thresholds import check_endpoints, parse_thresholds, split_thresholds
from profiles.model import load_profile

__all__ = [
    "CATALOG_PATH",
    "HEALTH_TIMEOUT_S",
    "PREFLIGHT_EXIT_CODE",
    "PreflightError",
    "catalog_load_problem",
    "check_host",
    "check_options",
    "check_run_host",
    "needs_catalog",
    "preflight",
    "request_names",
]

PREFLIGHT_EXIT_CODE = 2
HEALTH_TIMEOUT_S = 3.0
PROBE_BYTES = 64 * 1024  # written into --runs-dir before the run: a full disk is refused at once
CATALOG_PATH = "/v1/groups/tmdb/features/movie_features/metadata"
_READ_PROBE_PATH = "/v1/groups"  # a read every scenario's service serves; closed when the service closes reads


class PreflightError(Exception):
    """A run that cannot work; the message is one line saying what is wrong and what to do."""


def request_names(user_classes: Iterable[type]) -> list[str]:
    """'<request type> <name>' of every request the user classes declare (their ``endpoints`` attribute), sorted;
    [] when none declares any (the names are then unknown and not checked)."""
    return sorted({f"{method} {name}" for cls in user_classes for method, name in getattr(cls, "endpoints", ())})


def needs_catalog(user_classes: Iterable[type]) -> bool:
    """Whether any user class reads the catalog's ids when it starts (its ``needs_catalog`` attribute)."""
    return any(getattr(cls, "needs_catalog", False) for cls in user_classes)


def check_options(options: Any, known_requests: Sequence[str]) -> None:
    """Refuse bad harness options. Splits ``options.threshold`` in place (one value may hold several thresholds,
    see harness.verdict.thresholds.split_thresholds). Raises PreflightError."""
    if options.catalog_size < 1:
        raise PreflightError(f"--catalog-size {options.catalog_size}: the catalog needs at least 1 movie "
                             "(default 20000)")  # fmt: skip
    if options.service_workers < 1:
        raise PreflightError(f"--service-workers {options.service_workers}: the embedded service needs at least 1 "
                             "uvicorn worker (default 1)")  # fmt: skip
    if not options.sample_interval >= 0:
        raise PreflightError(f"--sample-interval {options.sample_interval:g}: seconds between resource samples must "
                             "be >= 0 (0 turns the sampler off; default 1)")  # fmt: skip
    options.threshold = split_thresholds(options.threshold or [])
    try:
        profile = load_profile(options.profile) if options.profile else None
        thresholds = parse_thresholds([*(profile.thresholds if profile else []), *options.threshold])
        if known_requests:
            check_endpoints(thresholds, known_requests)
    except ValueError as error:
        raise PreflightError(str(error)) from None
    _check_writable(Path(options.runs_dir))


def _check_writable(runs_dir: Path) -> None:
    """Create ``runs_dir`` if needed and write a probe of PROBE_BYTES in it (os.access says yes to root on a
    read-only mount; an empty file still fits on a full disk)."""
    probe = None
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-probe-", dir=runs_dir)
        with os.fdopen(handle, "wb") as file:
            file.write(bytes(PROBE_BYTES))
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        cause = error.strerror or type(error).__name__
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise PreflightError(f"--runs-dir {runs_dir} has no room for a run ({cause}): free some space or give "
                                 "another directory with --runs-dir or FEATURELOAD_RUNS_DIR") from None  # fmt: skip
        raise PreflightError(f"--runs-dir {runs_dir} is not writable ({cause}): give a writable directory with "
                             "--runs-dir or FEATURELOAD_RUNS_DIR") from None  # fmt: skip
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)


def check_host(
    host: str,
    *,
    needs_catalog: bool,
    load_catalog: bool = False,
    read_token: str | None = None,
    write_token: str | None = None,
    timeout_s: float = HEALTH_TIMEOUT_S,
) -> None:
    """Check the service at ``host`` (from -H) before the users start. Raises PreflightError."""
    shown = redact_url(host)
    parts = urlsplit(host)
    if "://" not in host:
        raise PreflightError(f"-H {shown} has no scheme: write -H http://{shown.lstrip('/')} (or https://)")
    if parts.scheme not in ("http", "https"):
        raise PreflightError(f"-H {shown}: the scheme must be http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise PreflightError(f"-H {shown} names no host: write e.g. -H http://127.0.0.1:8000")
    base = host.rstrip("/")
    status = _get(base, "/health", None, timeout_s)
    if status != 200:
        raise PreflightError(f"the service at {shown} answered {status} to GET /health: is -H the feature store's "
                             "address?")  # fmt: skip
    token = read_token or write_token
    for path in (_READ_PROBE_PATH, *((CATALOG_PATH,) if needs_catalog else ())):
        status = _get(base, path, token, timeout_s)
        if status in (401, 403):
            if token:
                raise PreflightError(f"the service at {shown} refused the token given ({status} to GET {path}): "
                                     "check FEATURELOAD_READ_TOKEN or --read-token")  # fmt: skip
            raise PreflightError(f"the service at {shown} closed its reads ({status} to GET {path}): set "
                                 "FEATURELOAD_READ_TOKEN or add --read-token")  # fmt: skip
        if path == CATALOG_PATH and status == 404 and not load_catalog:
            raise PreflightError(f"the service at {shown} has no catalog (404 to GET {path}): add --load-catalog "
                                 "(or run without -H to use the embedded service)")  # fmt: skip
        if status >= 500:
            raise PreflightError(f"the service at {shown} answered {status} to GET {path}: see the service's log")


def _get(base: str, path: str, token: str | None, timeout_s: float) -> int:
    """The status of GET base+path; raises PreflightError naming the host and the cause when no answer came."""
    try:
        with open_url(base + path, token=token, timeout_s=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError) as error:
        raise PreflightError(f"cannot reach the service at {redact_url(base)} ({_cause(error, timeout_s)}): "
                             "start it or correct -H; without -H the run starts its own service") from None  # fmt: skip


def _cause(error: BaseException, timeout_s: float) -> str:
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer within {timeout_s:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused: nothing listens on that port"
    if isinstance(reason, socket.gaierror):
        return f"host name not resolved: {reason.strerror or reason}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def catalog_load_problem(host: str, error: BaseException) -> str:
    """One line for a failed --load-catalog into the service at ``host`` (not an embedded service)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    hint = ""
    if " 401" in text or " 403" in text:
        hint = ": the service closed its writes; set FEATURELOAD_WRITE_TOKEN or add --write-token"
    return f"--load-catalog could not load the catalog into {redact_url(host)}: {text}{hint}"


def preflight(environment: Any) -> None:
    """Every check for the run about to start in ``environment`` (the master or the only process): the options,
    then, for a headless (or --autostart) run against -H, the service. Raises PreflightError."""
    options = environment.parsed_options
    check_options(options, request_names(environment.user_classes or []))
    if environment.host and (options.headless or options.autostart):
        check_run_host(environment, environment.host, load_catalog=options.load_catalog)


def check_run_host(environment: Any, host: str, *, load_catalog: bool = False) -> None:
    """``check_host`` on ``host`` for the user classes and tokens of ``environment``. ``load_catalog``: the
    harness loads the catalog before the users start (a missing one is then no error). Raises PreflightError."""
    options = environment.parsed_options
    check_host(
        host, needs_catalog=needs_catalog(environment.user_classes or []), load_catalog=load_catalog,
        read_token=options.read_token, write_token=options.write_token,
    )  # fmt: skip
