"""Start the service as a real uvicorn subprocess on a free port, wait until it is ready, stop its whole tree.

Used by the tests and by the load-test harness (which must keep the service out of the gevent-patched Locust
process). Only the standard library and psutil: safe to import under gevent.

    with start_service({"write_token": "s3cret"}, store_path=tmp / "store") as service:
        httpx.get(service.base_url + "/health")
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from service.lifeline import preexec_die_with_parent
from service.settings import ENV_PREFIX, Settings, SettingsError

__all__ = [
    "INHERITED_SETTINGS",
    "SECRET_SETTINGS",
    "PortTakenError",
    "ServiceProcess",
    "ServiceStartError",
    "free_port",
    "settings_flags",
    "start_process",
    "start_service",
]

# Settings start_service passes through the environment, never as flags: /proc/PID/cmdline is world-readable.
SECRET_SETTINGS = ("write_token", "read_token")
# Settings whose FEATURESTORE_* variable reaches the service even when start_service filters the environment: fault
# injection (service.faults) set for a Locust run must slow the service that run embeds.
INHERITED_SETTINGS = ("inject_delay_ms", "inject_delay_route", "inject_stall")

_PORT_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.05


class ServiceStartError(RuntimeError):
    """The service exited or did not become ready in time; the message ends with its log's tail."""


class PortTakenError(ServiceStartError):
    """Another process answered on the service's port (it took the port before the service could bind it)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def settings_flags(overrides: Mapping[str, Any]) -> list[str]:
    """``python -m service`` flags for the given Settings field values (None values are skipped).

    Raises SettingsError for a name that is not a Settings field. ``start_service`` does not use it for
    SECRET_SETTINGS: a flag's value is readable by every user in /proc/PID/cmdline.
    """
    known = Settings.__dataclass_fields__
    argv: list[str] = []
    for name, value in overrides.items():
        if name not in known:
            raise SettingsError(f"unknown setting {name!r}; known: {', '.join(known)}")
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            argv += [flag, str(value)]
    return argv


class ServiceProcess:
    """A running service: ``base_url``, ``pid``, ``stop()``; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen[bytes], host: str, port: int, log_path: Path, own_log: bool) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.log_path = log_path
        self._own_log = own_log

    @property
    def base_url(self) -> str:
        """``http://host:port``, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The pid of the service's main process (uvicorn's supervisor when running several workers)."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.process.poll()

    def tree(self) -> list[psutil.Process]:
        """The main process and every process under it, alive now."""
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        return []

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the tree's live processes."""
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the tree, summed."""
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def pin(self, cores: list[int]) -> list[int]:
        """Pin every process of the tree to ``cores``; the pids pinned."""
        pinned = []
        for proc in self.tree():
            with contextlib.suppress(psutil.Error, OSError):
                proc.cpu_affinity(cores)
                pinned.append(proc.pid)
        return pinned

    def log_text(self) -> str:
        """Everything the service printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> int:
        """Stop the service and every process it started: SIGTERM, then SIGKILL after ``timeout_s``.

        Returns the main process's exit status (negative: killed by that signal). Safe to call twice.
        """
        deadline = time.monotonic() + timeout_s
        tree: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            tree = psutil.Process(self.process.pid).children(recursive=True)
        if self.process.poll() is None:
            self.process.terminate()  # uvicorn shuts down gracefully and stops its own workers
            try:
                self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.process.wait()
        _, alive = psutil.wait_procs(tree, timeout=max(0.0, deadline - time.monotonic()))
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(alive, timeout=5.0)
        if self._own_log:
            self.log_path.unlink(missing_ok=True)
            self._own_log = False
        return self.process.returncode

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the service is its own session: the group is its tree

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_service(
    settings_overrides: Mapping[str, Any] | None,
    store_path: str | Path,
    port: int | None = None,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    ready_timeout_s: float = 30.0,
    log_path: str | Path | None = None,
    python: str | None = None,
) -> ServiceProcess:
    """Start ``python -m service`` and return once ``GET /ready`` answers 200.

    ``settings_overrides`` maps Settings field names to values: passed as flags, except the tokens
    (SECRET_SETTINGS), passed as ``FEATURESTORE_WRITE_TOKEN`` / ``FEATURESTORE_READ_TOKEN`` variables so that they
    never show in the process list. ``port`` None picks a free one (and retries with another if it was taken
    meanwhile). ``env`` None means this process's environment without any ``FEATURESTORE_*`` or
    ``PROMETHEUS_MULTIPROC_DIR`` (but for the fault-injection variables of INHERITED_SETTINGS, which pass), so
    only the overrides configure the service.
    Output goes to ``log_path`` (default: a temp file removed by ``stop()``).

    The service is its own process group and dies with this process: its main process gets SIGKILL when the
    thread calling start_service exits (Linux parent-death signal), and its uvicorn workers die with it (see
    ``service.lifeline``). Call it from a thread that lives as long as the service should.
    Raises ServiceStartError (with the log's tail) if it exits or is not ready within ``ready_timeout_s``.
    """
    overrides = dict(settings_overrides or {})
    for reserved in ("host", "port", "workers", "store_path"):
        if reserved in overrides:
            raise SettingsError(f"pass {reserved} as start_service's own argument, not in settings_overrides")
    if env is None:
        inherited = {ENV_PREFIX + name.upper() for name in INHERITED_SETTINGS}
        env = {
            k: v
            for k, v in os.environ.items()
            if (k in inherited or not k.startswith(ENV_PREFIX)) and k != "PROMETHEUS_MULTIPROC_DIR"
        }
    child_env = {**env, "PYTHONUNBUFFERED": "1"}
    for name in SECRET_SETTINGS:
        value = overrides.pop(name, None)
        if value is not None:
            child_env[ENV_PREFIX + name.upper()] = str(value)
    return start_process(
        lambda chosen: [python or sys.executable, "-m", "service", "--host", host, "--port", str(chosen),
                        "--workers", str(workers), "--store-path", str(store_path), *settings_flags(overrides)],
        child_env, host=host, port=port, ready_timeout_s=ready_timeout_s, log_path=log_path,
    )  # fmt: skip


def start_process(
    argv_for_port: Callable[[int], list[str]],
    env: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    cwd: str | Path | None = None,
    ready_timeout_s: float = 30.0,
    log_path: str | Path | None = None,
    ready_statuses: tuple[int, ...] = (200,),
    check_owner: bool = True,
) -> ServiceProcess:
    """Start ``argv_for_port(port)`` (any HTTP server: ours, another build of it, or a service that is not ours)
    as its own process group that dies with this thread, and return once ``GET /ready`` answers one of
    ``ready_statuses``. ``check_owner`` asks ``/health`` for the pid that answered (our service's route), so that
    another server already on the port is not taken for this one. ``port`` None picks a free one and retries with
    another when the first was taken meanwhile. Raises ServiceStartError with the log's tail."""
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    error: ServiceStartError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else free_port(host)
        own_log = log_path is None
        path = Path(log_path) if log_path is not None else _temp_log_path()
        with open(path, "ab") as log:
            process = subprocess.Popen(
                argv_for_port(chosen),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,  # its own process group: stop() can reach every process it starts
                preexec_fn=preexec_die_with_parent(),  # and SIGKILL when this process dies, however it dies
            )
        service = ServiceProcess(process, host, chosen, path, own_log)
        try:
            _wait_ready(service, ready_timeout_s, ready_statuses, check_owner)
            return service
        except ServiceStartError as failure:
            error = failure
            text = service.log_text()
            service.stop(timeout_s=5.0)
            # the free port was taken meanwhile: the bind failed, or the other process answered before it did
            if not isinstance(failure, PortTakenError) and "address already in use" not in text.lower():
                break
        except BaseException:  # Ctrl-C meanwhile: this process is nobody else's to stop yet
            service.stop(timeout_s=5.0)
            raise
    assert error is not None
    raise error


def _temp_log_path() -> Path:
    handle, name = tempfile.mkstemp(prefix="featurestore-service-", suffix=".log")
    os.close(handle)
    return Path(name)


def _get(service: ServiceProcess, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(service.host, service.port, timeout=2.0)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_ready(
    service: ServiceProcess, timeout_s: float, ready_statuses: tuple[int, ...] = (200,), check_owner: bool = True
) -> None:
    """Poll ``GET /ready`` until it answers one of ``ready_statuses``, then (``check_owner``) check via
    ``/health`` that the answer came from this service's own process tree (not another server on that port).

    Raises ServiceStartError if the process exits, another process answers, or time runs out.
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        try:
            status, body = _get(service, "/ready")
            if status in ready_statuses:
                if check_owner:
                    _check_answered_by(service)
                return
            last = f"/ready answered {status}: {body[:200]!r}"
        except OSError as error:
            last = f"{type(error).__name__}: {error}"
        try:
            code = service.process.wait(timeout=_POLL_INTERVAL_S)  # doubles as the pause between polls
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            raise ServiceStartError(f"the service exited with status {code} before it was ready{_tail(service)}")
        if time.monotonic() > deadline:
            raise ServiceStartError(f"the service was not ready after {timeout_s:g} s ({last}){_tail(service)}")


def _check_answered_by(service: ServiceProcess) -> None:
    _, body = _get(service, "/health")
    try:
        pid = int(json.loads(body)["pid"])
    except (ValueError, KeyError, TypeError):
        pid = -1
    own = {service.pid}
    with contextlib.suppress(psutil.Error):
        own.update(child.pid for child in psutil.Process(service.pid).children(recursive=True))
    if pid not in own:
        raise PortTakenError(
            f"another process (pid {pid}) already answers on {service.base_url}; choose another port{_tail(service)}"
        )


def _tail(service: ServiceProcess, lines: int = 30) -> str:
    text = service.log_text().rstrip()
    return "\n--- service log (tail) ---\n" + "\n".join(text.splitlines()[-lines:]) if text else ""
