"""Secrets stay out of run directories, reports, logs and command lines; the harness sends its tokens.

The redaction rule (harness.recording.redact) on its own, then real Locust runs against real services with planted
secrets: every file of the run directory, binary ones too, is searched for each planted value.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from harness.recording.recorder import read_stream
from harness.recording.redact import MASK, Redactor, redact_argv, redact_env, redact_text, redact_url
from service.launcher import start_service

ROOT = Path(__file__).resolve().parents[3]
PLANTED_TOKEN = "pl4nted-write-t0ken-7f3a"
PLANTED_PASS = "pl4nted-pass"
PLANTED_ENV = {
    "MY_API_KEY": "pl4nted-api-key-11",
    "DB_PASSWORD": "pl4nted-db-password-22",
    "X_SECRET": "pl4nted-x-secret-33",
    "FEATURELOAD_API_KEY": "pl4nted-featureload-key-44",
    "FEATURESTORE_DB_PASSWORD": "pl4nted-store-password-55",
    "PROMETHEUS_AUTH": "pl4nted-prom-auth-66",
}


# ---- the rule -------------------------------------------------------------------------------------------------


def test_url_passwords_are_masked_and_the_rest_kept() -> None:
    assert redact_url("http://user:s3cret@host:8000/x?y=1") == f"http://user:{MASK}@host:8000/x?y=1"
    assert redact_url("http://host:8000/x") == "http://host:8000/x"
    assert redact_url("https://h/p?api_key=abc&page=2") == f"https://h/p?api_key={MASK}&page=2"
    assert redact_text("GET http://u:p4ss@h/x failed") == f"GET http://u:{MASK}@h/x failed"


def test_environment_values_are_masked_by_name() -> None:
    env = {"MY_API_KEY": "a", "db_password": "b", "X_SECRET": "c", "GH_TOKEN": "d", "SSH_PRIVATE_KEY": "e",
           "AWS_CREDENTIALS": "f", "HTTP_AUTH": "g", "APIKEY": "h", "PASSWD": "i", "LOCUST_HOST": "http://u:p@h",
           "LOCUST_USERS": "10"}  # fmt: skip
    redacted = redact_env(env)
    assert {k for k, v in redacted.items() if v == MASK} == set(env) - {"LOCUST_HOST", "LOCUST_USERS"}
    assert redacted["LOCUST_HOST"] == f"http://u:{MASK}@h" and redacted["LOCUST_USERS"] == "10"


def test_command_line_values_after_secret_flags_are_masked() -> None:
    argv = ["locust", "--write-token", "t1", "--read-token=t2", "--password", "t3", "-H", "http://u:p@h",
            "--api-key", "t4", "-u", "10", "--users", "5"]  # fmt: skip
    assert redact_argv(argv) == ["locust", "--write-token", MASK, f"--read-token={MASK}", "--password", MASK, "-H",
                                 f"http://u:{MASK}@h", "--api-key", MASK, "-u", "10", "--users", "5"]  # fmt: skip
    assert redact_argv(["--prometheus=http://u:p@h:9090", "-H=https://v:q@s"]) == [
        f"--prometheus=http://u:{MASK}@h:9090",
        f"-H=https://v:{MASK}@s",
    ]  # a URL after '=' too
    assert (
        redact_text("python -m service --write-token abc --port 1")
        == f"python -m service --write-token {MASK} --port 1"
    )


def test_a_redactor_also_masks_the_secret_values_it_knows() -> None:
    redactor = Redactor(["long-secret-value", "ab"])  # values shorter than 4 characters are not searched for
    assert redactor.text("error: long-secret-value rejected, ab") == f"error: {MASK} rejected, ab"
    assert redactor.value({"a": ["x long-secret-value"], "write_token": "zz"}) == {"a": [f"x {MASK}"],
                                                                                  "write_token": MASK}  # fmt: skip


# ---- real runs ------------------------------------------------------------------------------------------------


def run_locust(runs_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "locust", *args, "--headless", "--runs-dir", str(runs_dir), "--only-summary"]
    return subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=180, check=False)  # fmt: skip


def run_dirs(runs: Path) -> list[Path]:
    """The run directories under ``runs`` (not the reports' shared ``_assets``)."""
    return [p for p in runs.iterdir() if not p.name.startswith("_")]


def files_holding(run_dir: Path, values: list[str]) -> dict[str, list[str]]:
    """{value: [files whose bytes contain it]} for the values found anywhere under ``run_dir``."""
    found: dict[str, list[str]] = {}
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in values:
                if value.encode() in data:
                    found.setdefault(value, []).append(path.name)
    return found


def test_a_token_protected_service_gets_the_harness_token_and_the_token_stays_out_of_the_run(tmp_path: Path) -> None:
    with start_service({"write_token": PLANTED_TOKEN}, tmp_path / "store") as service:
        result = run_locust(
            tmp_path / "runs", "-f", "locustfiles/io_intensive.py", "-H", service.base_url, "--load-catalog",
            "--catalog-size", "500", "-u", "3", "-r", "3", "-t", "4s", "--service-pid", str(service.pid),
            env={"FEATURELOAD_WRITE_TOKEN": PLANTED_TOKEN},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        (run_dir,) = run_dirs(tmp_path / "runs")
        metadata = json.loads((run_dir / "metadata.json").read_text())
        assert metadata["locust_totals"]["failures"] == 0 and metadata["exit_code"] == 0
        assert metadata["external_catalog"]["already_loaded"] is False  # --load-catalog wrote through the token
        requests = read_stream(run_dir / "requests.arrows").to_pylist()
        writes = [r for r in requests if r["request_type"] in ("PUT", "POST") and r["ok"]]
        assert len(writes) >= 5 and all(r["ok"] for r in requests)
        assert metadata["environment"]["env"]["FEATURELOAD_WRITE_TOKEN"] == MASK
        with pytest.raises(urllib.error.HTTPError) as refused:  # the service really is closed for writes
            urllib.request.urlopen(urllib.request.Request(f"{service.base_url}/v1/catalog/load", b"{}", method="POST"))
        assert refused.value.code == 401
    assert files_holding(run_dir, [PLANTED_TOKEN]) == {}
    assert PLANTED_TOKEN not in result.stderr


def test_the_embedded_service_is_closed_for_writes_with_a_generated_token(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "locust", "-f", "locustfiles/io_intensive.py", "--headless", "-u", "2", "-r",
               "2", "-t", "30s", "--runs-dir", str(tmp_path / "runs"), "--catalog-size", "500"]  # fmt: skip
    locust = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "host under test" not in line:  # the harness logs where the embedded service listens
            line = locust.stderr.readline()  # type: ignore[union-attr]
            assert line, "locust ended before the embedded service was up"
        base_url = re.search(r"host under test: (http://\S+)", line).group(1)  # type: ignore[union-attr]
        (service,) = [c for c in psutil.Process(locust.pid).children() if c.cmdline()[1:3] == ["-m", "service"]]
        token = service.environ()["FEATURESTORE_WRITE_TOKEN"]
        assert len(token) >= 32 and token not in " ".join(service.cmdline())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base_url}/v1/catalog/load", b"{}", method="POST"))
        assert refused.value.code == 401
        # The run's own users write with the token: wait (bounded) until the service has counted such a write.
        deadline = time.monotonic() + 30
        while not re.search(r'featurestore_requests_total\{[^}]*route="/v1/load/io"[^}]*status="200"[^}]*\} [1-9]',
                            urllib.request.urlopen(f"{base_url}/metrics").read().decode()):  # fmt: skip
            assert time.monotonic() < deadline, "no authorized write reached the embedded service in 30 s"
            time.sleep(0.2)
    finally:
        locust.terminate()
        stderr = locust.communicate(timeout=60)[1]
    (run_dir,) = run_dirs(tmp_path / "runs")
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["locust_totals"]["requests"] > 0 and metadata["locust_totals"]["failures"] == 0, stderr[-3000:]
    assert files_holding(run_dir, [token]) == {} and token not in stderr


def test_planted_secrets_never_reach_the_run_directory_nor_the_logs(tmp_path: Path) -> None:
    with start_service({"write_token": PLANTED_TOKEN}, tmp_path / "store") as service:
        tree = [psutil.Process(service.pid), *psutil.Process(service.pid).children(recursive=True)]
        assert not [p.pid for p in tree if PLANTED_TOKEN in " ".join(p.cmdline())]  # not in /proc/PID/cmdline
        host = service.base_url.replace("http://", f"http://user:{PLANTED_PASS}@")
        # The secret flags come first, so they fall inside the command line the sampler records (200 characters).
        result = run_locust(
            tmp_path / "runs", "--write-token", PLANTED_TOKEN, "-H", host, "-f", "locustfiles/io_intensive.py",
            "--load-catalog", "--catalog-size", "500", "-u", "2", "-r", "2", "-t", "3s", "--service-pid",
            str(service.pid), env=PLANTED_ENV,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "runs")
    names = {p.name for p in run_dir.iterdir()}
    assert {"metadata.json", "summary.json", "summary.md", "report.html", "locust_report.html", "samples.arrows",
            "requests.arrows"} <= names  # fmt: skip
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["host"] == host.replace(PLANTED_PASS, MASK)
    assert metadata["environment"]["env"]["FEATURELOAD_API_KEY"] == MASK
    assert metadata["locust_totals"]["failures"] == 0  # the bearer token won over the URL's basic credentials
    planted = [PLANTED_TOKEN, PLANTED_PASS, *PLANTED_ENV.values()]
    assert files_holding(run_dir, planted) == {}
    assert not [value for value in planted if value in result.stderr + result.stdout]
