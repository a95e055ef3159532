"""Shared fixtures: factories that start the real service (uvicorn subprocesses) and stop them afterwards; and the
machine share under pytest-xdist: a test marked ``exclusive`` runs alone. (`make test` runs the shared tests on four
workers, then the exclusive ones in a second, serial pytest run, so the lock below only matters to a plain
``pytest -n 4``.)

A test that measures timing or CPU saturation (a service held at >= 90% of a core, a 1 s stall seen at p99, a
gate's A/A pair at alpha 0.01) would measure the other workers' tests too. Every test of an xdist run holds a shared
lock on a file in the run's base temporary directory while it runs; an ``exclusive`` test holds it exclusively, so
it starts once the other workers' current tests have ended and no other test starts until it is done. A turnstile
lock taken first keeps a waiting exclusive test from being starved by a stream of shared ones. Under xdist the
exclusive tests are collected last (``pytest_collection_modifyitems``). Without xdist the tests run one at a time
anyway, and nothing is locked.
"""

from __future__ import annotations

import fcntl
import signal
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from service.launcher import ServiceProcess, start_service
from tests.machine_load import MachineWatch

# A graceful uvicorn shutdown ends with status 0 or by re-raising the SIGTERM it received.
_GRACEFUL_EXIT = (0, -signal.SIGTERM)


class ServiceFactory:
    """Starts services under ``base_dir`` (one store directory per service) and stops them all at teardown."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.started: list[ServiceProcess] = []

    def __call__(self, workers: int = 1, store_path: Path | None = None, **overrides: Any) -> ServiceProcess:
        """Start ``python -m service`` with ``overrides`` (Settings fields) on a free port; returns when ready."""
        store = store_path or self.base_dir / f"store-{len(self.started)}"
        service = start_service(overrides, store_path=store, workers=workers, ready_timeout_s=30.0)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        """Stop every service and check that it, and every process it started, is gone."""
        failures = []
        for service in self.started:
            tree = _tree(service.pid)
            log = service.log_text()
            code = service.stop(timeout_s=15.0)
            leftovers = [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if code not in _GRACEFUL_EXIT or leftovers:
                failures.append(f"service pid {service.pid}: exit {code}, leftovers {leftovers}\n{log[-2000:]}")
        self.started.clear()
        assert not failures, "\n".join(failures)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed test, attach the log tail of every service it used (the server side of the failure)."""
    report = yield
    if report.failed and call.when == "call":
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, ServiceFactory):
                for service in value.started:
                    report.sections.append((f"service {service.base_url} log", service.log_text()[-4000:]))
    return report


@pytest.fixture(autouse=True)
def _unpatched_process() -> Iterator[None]:
    """No test may leave this process gevent-patched (``import locust`` outside ``tests.unpatched``): the tests
    that run a loopback server in real threads beside gevent clients would then hang, far from the cause."""
    yield
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_anything_patched():
        pytest.fail("this test left the pytest process gevent-patched: import Locust under tests.unpatched")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the ``exclusive`` tests last (in their order): each one waits for the other workers' current
    tests to end, and those workers idle meanwhile. Spread through the run, every exclusive test paid that drain;
    at the end, the shared tests are done and the exclusive ones follow one another without one."""
    if hasattr(config, "workerinput"):  # the workers collect; xdist hands out their common order
        items.sort(key=lambda item: item.get_closest_marker("exclusive") is not None)  # a stable sort


@pytest.fixture(scope="session", autouse=True)
def _private_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every process a test starts gets a TMPDIR under pytest's own temp directory, so whatever a killed process
    could not clean up (a SIGKILLed Locust worker's sample directory, say) never lands in the machine's /tmp."""
    private = tmp_path_factory.mktemp("tmpdir")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(private))
        yield private


@pytest.fixture(scope="session")
def _machine_share_dir(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """The directory every xdist worker of this run sees (their base temporary directories' parent); None when
    this process is not an xdist worker."""
    if not hasattr(pytestconfig, "workerinput"):
        return None
    return tmp_path_factory.getbasetemp().parent


@pytest.fixture(autouse=True)
def _machine_share(request: pytest.FixtureRequest, _machine_share_dir: Path | None) -> Iterator[None]:
    """Under xdist, hold the machine shared, or alone for a test marked ``exclusive`` (module docstring)."""
    if _machine_share_dir is None:
        yield
        return
    exclusive = request.node.get_closest_marker("exclusive") is not None
    with (
        open(_machine_share_dir / "machine-share.turnstile", "a") as turnstile,
        open(_machine_share_dir / "machine-share.lock", "a") as share,
    ):
        waiting_since = time.monotonic()
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(share, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        _extend_timeout(time.monotonic() - waiting_since)
        try:
            yield
        finally:
            fcntl.flock(share, fcntl.LOCK_UN)


def _extend_timeout(waited_s: float) -> None:
    """Give back to the test's pytest-timeout budget the time it waited for its share of the machine: a test
    queued behind an exclusive one (minutes, on a loaded machine) otherwise times out without having run. The
    budget is pytest-timeout's ``signal`` method's timer (ITIMER_REAL), which only this process's test arms."""
    remaining_s = signal.getitimer(signal.ITIMER_REAL)[0]
    if waited_s > 0.1 and remaining_s > 0:
        signal.setitimer(signal.ITIMER_REAL, remaining_s + waited_s)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[ServiceFactory]:
    """A factory for services living as long as one test."""
    factory = ServiceFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_service_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceFactory]:
    """A factory for services shared by the tests of one module (start-up costs about a second each)."""
    factory = ServiceFactory(tmp_path_factory.mktemp("services"))
    yield factory
    factory.stop_all()


@pytest.fixture
def other_load() -> MachineWatch:
    """Watches the CPU other processes use while the test measures (tests/machine_load.py): a failed check inside
    ``other_load.judging("what")`` on a busy machine skips, saying so, instead of failing."""
    return MachineWatch()
