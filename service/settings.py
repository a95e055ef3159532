"""The service's settings: one typed, frozen object read once at start-up.

``Settings.from_env(environ)`` reads ``FEATURESTORE_*`` variables; ``python -m service`` parses
flags on top of that and hands the result to uvicorn workers through the same variables (``to_env``).
Nothing else in the service reads the environment.

Every field ``name`` below is read from ``FEATURESTORE_<NAME>`` (e.g. ``max_body_bytes`` from
``FEATURESTORE_MAX_BODY_BYTES``); booleans accept true/false, 1/0, yes/no, on/off; an empty value means unset.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from service.fault_specs import parse_stall, route_pattern

__all__ = ["ENV_PREFIX", "LOG_LEVELS", "Settings", "SettingsError"]

ENV_PREFIX = "FEATURESTORE_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and what would be right."""


@dataclass(frozen=True)
class Settings:
    """Everything the service can be configured with. Sizes in bytes or MB (2**20 bytes), times in seconds."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    store_path: Path = Path("data/featurestore")
    compression: str = "snappy"
    verify_checksums: bool = True
    cache_enabled: bool = True
    cache_max_entries: int = 256
    cache_max_bytes: int = 1 << 30
    cache_ttl_s: float = 300.0
    max_body_bytes: int = 64 << 20
    # Request bodies held at once by the requests in flight in one worker (503 with Retry-After beyond it). They
    # also draw on the worker's memory budget (max_total_memory_mb), with what /v1/load/* holds (service.guards).
    max_inflight_body_bytes: int = 256 << 20
    # Hostile clients, per worker process (service.http_protocol): a request head (request line and headers) over
    # max_head_bytes gets 431; one not complete within header_timeout_s of the connection opening (or of its first
    # byte on a kept-alive connection) gets 408; a body that pauses body_timeout_s, or arrives slower than
    # min_body_rate_bytes_s once body_timeout_s has passed (0: no minimum), gets 408; an idle kept-alive connection
    # is closed after keep_alive_timeout_s; past max_connections open connections a new one gets 503 and is closed.
    max_head_bytes: int = 64 << 10
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    min_body_rate_bytes_s: float = 1024.0
    keep_alive_timeout_s: float = 5.0
    max_connections: int = 4096
    max_request_memory_mb: float = 512.0
    max_total_memory_mb: float = 1024.0  # per worker process
    max_hold_s: float = 30.0
    max_batch_ids: int = 10_000
    max_pipeline_movies: int = 50_000
    max_catalog_movies: int = 2_000_000
    max_io_rows: int = 1_000_000
    max_io_columns: int = 256
    max_io_cells: int = 16_000_000  # rows x columns: 128 MB of float64
    # A written frame, decoded (Arrow/Parquet bodies can be tiny on the wire and huge once decoded): at most this
    # many values (rows x columns, list elements included) and bytes; the bytes are also capped by
    # max_request_memory_mb. 256 MB leaves room, within the default 512 MB, for the Parquet copy written.
    max_frame_cells: int = 32_000_000
    max_frame_bytes: int = 256 << 20
    write_token: str | None = None  # every route that creates, changes or deletes data needs it when set
    read_token: str | None = None  # when set, reads need it (or the write token); health and docs stay open
    allow_open_writes: bool = False  # the only way to serve writes without a token beyond loopback
    metrics_dir: Path | None = None  # prometheus multiprocess dir; None = single-process metrics
    log_level: str = "info"
    access_log: bool = False
    graceful_shutdown_s: float = 10.0
    # Fault injection (service.faults), off by default: a delay in ms added to the requests whose path matches
    # inject_delay_route (a route template, a prefix or a regex; None: every request). For proving the gate.
    inject_delay_ms: float = 0.0
    inject_delay_route: str | None = None
    # Fault injection: "SECONDS/EVERY" freezes the event loop SECONDS in every EVERY seconds (None: off).
    inject_stall: str | None = None

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``FEATURESTORE_<FIELD>`` variables; unset or empty variables keep the default.

        ``metrics_dir`` falls back to ``PROMETHEUS_MULTIPROC_DIR`` (the variable prometheus_client itself reads).
        Raises SettingsError naming the variable, the bad value and what would be right.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            raw = environ.get(name, "")
            if f.name == "metrics_dir" and not raw:
                raw = environ.get("PROMETHEUS_MULTIPROC_DIR", "")
            if raw != "":
                values[f.name] = parse_value(f.name, raw, source=name)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (and checked); ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_env(self) -> dict[str, str]:
        """Return the ``FEATURESTORE_*`` variables that ``from_env`` turns back into these settings."""
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                env[ENV_PREFIX + f.name.upper()] = ""
            elif isinstance(value, bool):
                env[ENV_PREFIX + f.name.upper()] = "true" if value else "false"
            else:
                env[ENV_PREFIX + f.name.upper()] = str(value)
        return env

    def public_dict(self) -> dict[str, Any]:
        """Settings as JSON-able values, with the tokens masked (for logs and run metadata)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("write_token", "read_token"):
            out[secret] = None if getattr(self, secret) is None else "***"
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Settings)}


def parse_value(field_name: str, raw: str, source: str | None = None) -> Any:
    """Convert the text ``raw`` to the type of setting ``field_name``; SettingsError if it cannot be."""
    kind = _FIELD_TYPES.get(field_name)
    where = source or field_name
    if kind is None:
        raise SettingsError(f"unknown setting {field_name!r}; known: {', '.join(_FIELD_TYPES)}")
    text = raw.strip()
    try:
        if kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if kind == "int":
            return int(text.replace("_", ""))
        if kind == "float":
            return float(text)
        if kind in ("Path", "Path | None"):
            return Path(text)
        return text  # str and str | None
    except ValueError:
        expected = {"bool": "true/false (or 1/0, yes/no, on/off)", "int": "an integer", "float": "a number"}[kind]
        raise SettingsError(f"{where}={raw!r} is invalid: expected {expected}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def _route_problem(route: str) -> list[str]:
    """The problem with an ``inject_delay_route`` value, if any (see service.fault_specs.route_pattern)."""
    if not route.strip():
        return ["inject_delay_route must not be blank: leave it unset to delay every request"]
    try:
        route_pattern(route)
    except ValueError as error:
        return [str(error)]
    return []


def _check(s: Settings) -> None:
    """Raise SettingsError for the first setting whose value is out of range."""
    problems: list[str] = []
    if not s.host:
        problems.append("host must not be empty")
    if not 0 <= s.port <= 65535:
        problems.append(f"port={s.port} is invalid: expected 0-65535")
    if s.workers < 1:
        problems.append(f"workers={s.workers} is invalid: expected at least 1")
    for name in (
        "cache_max_entries",
        "cache_max_bytes",
        "max_body_bytes",
        "max_inflight_body_bytes",
        "max_connections",
        "max_batch_ids",
        "max_pipeline_movies",
        "max_catalog_movies",
        "max_io_rows",
        "max_io_columns",
        "max_io_cells",
        "max_frame_cells",
        "max_frame_bytes",
    ):
        if getattr(s, name) < 1:
            problems.append(f"{name}={getattr(s, name)} is invalid: expected a positive integer")
    for name in (
        "max_request_memory_mb",
        "max_total_memory_mb",
        "cache_ttl_s",
        "max_hold_s",
        "graceful_shutdown_s",
        "header_timeout_s",
        "body_timeout_s",
        "keep_alive_timeout_s",
    ):
        value = getattr(s, name)
        if not (math.isfinite(value) and value > 0):
            problems.append(f"{name}={value} is invalid: expected a positive number")
    if not (math.isfinite(s.min_body_rate_bytes_s) and s.min_body_rate_bytes_s >= 0):
        problems.append(f"min_body_rate_bytes_s={s.min_body_rate_bytes_s} is invalid: expected 0 (no minimum) or more")
    if s.max_head_bytes < 1024:
        problems.append(f"max_head_bytes={s.max_head_bytes} is invalid: expected at least 1024")
    if s.max_body_bytes > s.max_inflight_body_bytes:
        problems.append(
            f"max_body_bytes={s.max_body_bytes} is larger than max_inflight_body_bytes={s.max_inflight_body_bytes}: "
            "a body that large could never be accepted; raise max_inflight_body_bytes too"
        )
    if s.max_request_memory_mb > s.max_total_memory_mb:
        problems.append(
            f"max_request_memory_mb={s.max_request_memory_mb:g} is larger than "
            f"max_total_memory_mb={s.max_total_memory_mb:g}: expected at most the total"
        )
    if s.log_level.lower() not in LOG_LEVELS:
        problems.append(f"log_level={s.log_level!r} is invalid: expected one of {', '.join(LOG_LEVELS)}")
    if s.write_token is not None and not s.write_token.strip():
        problems.append("write_token must not be blank: leave it unset to keep writes open")
    if s.write_token is None and not s.allow_open_writes and not _is_loopback(s.host):
        problems.append(
            f"host={s.host!r} serves beyond this machine, and with no write_token anyone who reaches it can write and "
            "delete features: set FEATURESTORE_WRITE_TOKEN (an environment variable keeps it out of the process "
            "list), bind a loopback address, or set allow_open_writes=true to accept open writes"
        )
    if not (math.isfinite(s.inject_delay_ms) and 0 <= s.inject_delay_ms <= 60_000):
        problems.append(f"inject_delay_ms={s.inject_delay_ms} is invalid: expected 0 (off) to 60000 ms")
    if s.inject_delay_route is not None:
        problems.extend(_route_problem(s.inject_delay_route))
    if s.inject_stall is not None:
        try:
            parse_stall(s.inject_stall)
        except ValueError as error:
            problems.append(str(error))
    if s.read_token is not None and not s.read_token.strip():
        problems.append("read_token must not be blank: leave it unset to keep reads open")
    if problems:
        raise SettingsError("; ".join(problems))
