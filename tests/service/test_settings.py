"""Settings: environment parsing, flag overrides, range checks and the launcher's flag rendering."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from service.__main__ import parse_settings, prepare_metrics_dir
from service.http_protocol import effective_max_connections
from service.launcher import settings_flags
from service.settings import Settings, SettingsError


def test_defaults_when_the_environment_is_empty() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.max_body_bytes == 64 << 20 and settings.write_token is None and settings.metrics_dir is None
    assert (settings.max_request_memory_mb, settings.max_total_memory_mb, settings.max_hold_s) == (512, 1024, 30)


def test_environment_variables_of_every_type() -> None:
    settings = Settings.from_env(
        {
            "FEATURESTORE_PORT": "9100",
            "FEATURESTORE_WORKERS": "4",
            "FEATURESTORE_STORE_PATH": "/srv/store",
            "FEATURESTORE_CACHE_ENABLED": "off",
            "FEATURESTORE_CACHE_TTL_S": "2.5",
            "FEATURESTORE_MAX_BODY_BYTES": "1_048_576",
            "FEATURESTORE_WRITE_TOKEN": "t0ken",
            "FEATURESTORE_METRICS_DIR": "/tmp/m",
            "FEATURESTORE_LOG_LEVEL": "warning",
            "FEATURESTORE_HOST": "",  # empty means unset
            "UNRELATED": "x",
        }
    )
    assert (settings.port, settings.workers, settings.store_path) == (9100, 4, Path("/srv/store"))
    assert settings.cache_enabled is False and settings.cache_ttl_s == 2.5 and settings.max_body_bytes == 1 << 20
    assert (settings.write_token, settings.metrics_dir, settings.log_level) == ("t0ken", Path("/tmp/m"), "warning")
    assert settings.host == "127.0.0.1"


def test_metrics_dir_falls_back_to_the_prometheus_variable() -> None:
    assert Settings.from_env({"PROMETHEUS_MULTIPROC_DIR": "/tmp/p"}).metrics_dir == Path("/tmp/p")
    both = {"PROMETHEUS_MULTIPROC_DIR": "/tmp/p", "FEATURESTORE_METRICS_DIR": "/tmp/f"}
    assert Settings.from_env(both).metrics_dir == Path("/tmp/f")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FEATURESTORE_PORT", "eighty", "FEATURESTORE_PORT='eighty' is invalid: expected an integer"),
        ("FEATURESTORE_CACHE_ENABLED", "maybe", "expected true/false"),
        ("FEATURESTORE_MAX_HOLD_S", "soon", "expected a number"),
        ("FEATURESTORE_PORT", "70000", "port=70000 is invalid: expected 0-65535"),
        ("FEATURESTORE_WORKERS", "0", "workers=0 is invalid"),
        ("FEATURESTORE_MAX_HOLD_S", "nan", "max_hold_s=nan is invalid"),
        ("FEATURESTORE_MAX_REQUEST_MEMORY_MB", "4096", "larger than max_total_memory_mb=1024"),
        ("FEATURESTORE_LOG_LEVEL", "loud", "expected one of critical"),
        ("FEATURESTORE_WRITE_TOKEN", "   ", "write_token must not be blank"),
        ("FEATURESTORE_MAX_HEAD_BYTES", "100", "max_head_bytes=100 is invalid: expected at least 1024"),
        ("FEATURESTORE_HEADER_TIMEOUT_S", "0", "header_timeout_s=0.0 is invalid"),
        ("FEATURESTORE_BODY_TIMEOUT_S", "inf", "body_timeout_s=inf is invalid"),
        ("FEATURESTORE_KEEP_ALIVE_TIMEOUT_S", "-1", "keep_alive_timeout_s=-1.0 is invalid"),
        ("FEATURESTORE_MIN_BODY_RATE_BYTES_S", "-1", "min_body_rate_bytes_s=-1.0 is invalid"),
        ("FEATURESTORE_MAX_CONNECTIONS", "0", "max_connections=0 is invalid"),
        ("FEATURESTORE_MAX_INFLIGHT_BODY_BYTES", "1000", "larger than max_inflight_body_bytes=1000"),
    ],
)
def test_bad_environment_values_name_the_setting(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert message in str(caught.value)


def test_the_limits_against_hostile_clients_are_settings() -> None:
    defaults = Settings()
    assert (defaults.max_head_bytes, defaults.max_connections, defaults.max_inflight_body_bytes) == (
        64 << 10,
        4096,
        256 << 20,
    )
    assert (defaults.header_timeout_s, defaults.body_timeout_s, defaults.keep_alive_timeout_s) == (10, 30, 5)
    assert defaults.min_body_rate_bytes_s == 1024
    environ = {
        "FEATURESTORE_MAX_HEAD_BYTES": "8192",
        "FEATURESTORE_HEADER_TIMEOUT_S": "0.5",
        "FEATURESTORE_MIN_BODY_RATE_BYTES_S": "0",
        "FEATURESTORE_MAX_INFLIGHT_BODY_BYTES": "128_000_000",
    }
    settings = parse_settings(
        ["--max-connections", "100", "--body-timeout-s", "2", "--keep-alive-timeout-s", "1"], environ
    )
    assert (settings.max_head_bytes, settings.header_timeout_s, settings.min_body_rate_bytes_s) == (8192, 0.5, 0)
    assert (settings.max_connections, settings.body_timeout_s, settings.keep_alive_timeout_s) == (100, 2, 1)
    assert settings.max_inflight_body_bytes == 128_000_000


def test_the_connection_cap_fits_the_open_file_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert effective_max_connections(10) == 10
    if soft != resource.RLIM_INFINITY:
        assert effective_max_connections(10**9) < soft


def test_to_env_round_trips() -> None:
    settings = Settings(port=1234, write_token="x", metrics_dir=Path("/tmp/m"), cache_enabled=False, max_hold_s=1.5)
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env(Settings().to_env()) == Settings()
    assert settings.public_dict()["write_token"] == "***" and settings.public_dict()["metrics_dir"] == "/tmp/m"


def test_flags_override_the_environment() -> None:
    environ = {"FEATURESTORE_PORT": "9000", "FEATURESTORE_WORKERS": "3", "FEATURESTORE_WRITE_TOKEN": "env"}
    settings = parse_settings(["--port", "9001", "--no-cache-enabled", "--write-token", "flag"], environ)
    assert (settings.port, settings.workers, settings.cache_enabled, settings.write_token) == (9001, 3, False, "flag")
    assert parse_settings([], environ).port == 9000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "abc"], "--port='abc' is invalid: expected an integer"),
        (["--workers", "0"], "workers=0 is invalid: expected at least 1"),
        (["--max-body-bytes", "-5"], "max_body_bytes=-5 is invalid"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_flags_exit_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_settings(argv, {})
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_reports_bad_values_without_starting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service", "--port", "abc"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--port='abc' is invalid" in done.stderr


def test_launcher_flags_parse_back_to_the_same_settings() -> None:
    overrides = {"write_token": "t", "max_body_bytes": 2048, "cache_enabled": False, "max_hold_s": 0.5}
    settings = parse_settings(settings_flags({**overrides, "metrics_dir": None}), {})
    assert {name: getattr(settings, name) for name in overrides} == overrides
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        settings_flags({"colour": "blue"})


def test_prepare_metrics_dir_removes_only_stale_metric_files(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"x")
    (tmp_path / "gauge_livesum_9.db").write_bytes(b"x")
    (tmp_path / "notes.db").write_bytes(b"keep")
    prepare_metrics_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "feature-store.example"])
def test_a_non_loopback_host_needs_a_write_token_or_an_explicit_opt_in(host: str) -> None:
    with pytest.raises(SettingsError, match="FEATURESTORE_WRITE_TOKEN"):
        Settings(host=host)
    assert Settings(host=host, write_token="t").host == host
    assert Settings(host=host, allow_open_writes=True).host == host
    for loopback in ("127.0.0.1", "127.8.0.1", "::1", "localhost"):
        assert Settings(host=loopback).write_token is None


def test_the_service_refuses_to_listen_on_every_interface_with_open_writes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "--host", "0.0.0.0", "--port", "0", "--store-path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("FEATURESTORE_")},
    )
    assert result.returncode != 0
    assert "no write_token" in result.stderr and "Traceback" not in result.stderr
