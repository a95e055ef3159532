"""The web UI as a way to run: each Start ... Stop (or shape end) in one Locust session is a run of its own, with
its own directory, thresholds (the profile's too), verdict and report; the Harness tab shows the live service
processes; the profile field lists the known profiles. A real Locust web UI process driven through Locust's HTTP
API (POST /swarm, POST /stop), and real Chromium for what the page renders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.launcher import free_port

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.slow

# 2 users for 4 s: a run that its shape ends, with the profile's own thresholds.
TINY_PROFILE = """
description = "tests: 2 users for 4 s"
shape = "stages"
thresholds = ["failure_ratio < 5%", "requests >= 1"]

[[stages]]
duration_s = 4
users = 2
spawn_rate = 2
"""


class WebUI:
    """``locust -f locustfiles/concurrent_users.py`` with its web UI on a free port; stderr collected."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.runs_dir = tmp_path / "runs"
        (tmp_path / "tmp").mkdir()
        command = [
            sys.executable, "-m", "locust", "-f", "locustfiles/concurrent_users.py", "--web-host", "127.0.0.1",
            "--web-port", str(self.port), "--runs-dir", str(self.runs_dir), "--catalog-size", "1000",
            "--sample-interval", "0.5", *args,
        ]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()
        wait_for(self._up, 60, self.stderr)

    def _collect(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self.lines.append(line)

    def stderr(self) -> str:
        return "".join(self.lines)[-3000:]

    def _up(self) -> bool:
        assert self.process.poll() is None, self.stderr()
        try:
            self.get("/stats/requests")
            return True
        except OSError:
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, form: dict[str, str] | None = None) -> Any:
        data = urllib.parse.urlencode(form or {}).encode()
        with urllib.request.urlopen(self.base + path, data=data, timeout=10) as response:
            return json.loads(response.read())

    def status(self) -> dict[str, Any]:
        return self.get("/harness/status")

    def close(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def wait_for(condition: Callable[[], bool], timeout_s: float, context: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s: {context()}"
        time.sleep(0.2)


@pytest.fixture
def web_ui(tmp_path: Path) -> Iterator[Callable[..., WebUI]]:
    started: list[WebUI] = []

    def start(*args: str) -> WebUI:
        ui = WebUI(tmp_path, *args)
        started.append(ui)
        return ui

    yield start
    for ui in started:
        ui.close()


def test_two_web_ui_runs_get_a_directory_a_verdict_and_a_report_each(tmp_path: Path, web_ui: Any) -> None:
    profile = tmp_path / "tiny.toml"
    profile.write_text(TINY_PROFILE)
    ui = web_ui("--threshold", "p99 < 10s")

    # Run 1: the profile named in the form drives it, and its shape ends it.
    started = ui.post("/swarm", {"user_count": "1", "spawn_rate": "1", "profile": str(profile)})
    assert started["success"] is True, started
    wait_for(lambda: any(p["scope"] == "service" for p in ui.status()["processes"]), 20, ui.status)
    live = ui.status()
    assert live["run"]["state"] == "running"
    service = [p for p in live["processes"] if p["scope"] == "service"]
    assert service[0]["rss_mb"] > 0 and service[0]["threads"] >= 1  # the live service process, from the sampler
    wait_for(lambda: ui.status()["thresholds"], 3, ui.status)  # judged live on the requests so far
    assert {t["threshold"] for t in ui.status()["thresholds"]} == {"failure_ratio < 5%", "requests >= 1", "p99 < 10s"}
    tab = ui.get("/stats/requests")["extended_stats"]
    assert tab[0]["key"] == "harness" and any(row["section"] == "service" for row in tab[0]["data"])
    wait_for(lambda: ui.status()["runs"][0]["report_url"] is not None, 40, ui.status)
    first = ui.status()["runs"][0]

    time.sleep(2)  # an idle gap between the runs, which must not count in either
    # Run 2: no profile, the form's users; the Stop button ends it.
    assert ui.post("/swarm", {"user_count": "2", "spawn_rate": "2", "profile": ""})["success"] is True
    wait_for(lambda: len(ui.status()["runs"]) == 2 and ui.status()["run"] is not None, 10, ui.status)
    time.sleep(2)
    assert ui.post("/stop")["success"] is True
    wait_for(lambda: ui.status()["runs"][0]["report_url"] is not None, 40, ui.status)
    second = ui.status()["runs"][0]
    with urllib.request.urlopen(ui.base + "/" + second["report_url"].removeprefix("./"), timeout=10) as response:
        assert b"</html>" in response.read()  # the report, served by the web UI
    assert ui.close() == 0

    run_dirs = sorted(p for p in ui.runs_dir.iterdir() if not p.name.startswith("_"))
    assert [p.name for p in run_dirs] == sorted([first["name"], second["name"]])
    one, two = (Path(first["directory"]), Path(second["directory"]))
    for run_dir in (one, two):
        assert {"report.html", "summary.json", "thresholds.json", "metadata.json", "requests.arrows",
                "samples.arrows", "service.log", "locust_stats.csv"} <= {p.name for p in run_dir.iterdir()}  # fmt: skip
    meta1, meta2 = (json.loads((d / "metadata.json").read_text()) for d in (one, two))
    judged1, judged2 = (json.loads((d / "thresholds.json").read_text()) for d in (one, two))
    # Run 1 judged the profile's thresholds as well as the command line's.
    assert judged1["evaluated"] is True
    assert {r["threshold"] for r in judged1["results"]} == {"failure_ratio < 5%", "requests >= 1", "p99 < 10s"}
    assert judged1["passed"] is True and meta1["profile"]["source"] == str(profile)
    assert meta1["stop_reason"] == "shape ended" and meta1["interrupted"] is False and meta1["exit_code"] == 0
    # Run 2: its own thresholds (no profile), stopped from the UI; the idle gap is not in its duration.
    assert [r["threshold"] for r in judged2["results"]] == ["p99 < 10s"]
    assert meta2["profile"] is None and meta2["stop_reason"] == "stopped from the web UI"
    assert meta2["started_from"] == "web UI" and meta2["exit_code"] == 0
    assert 1.5 < meta2["duration_s"] < 6, meta2["duration_s"]
    assert meta1["duration_s"] < 6, meta1["duration_s"]
    for meta, run_dir in ((meta1, one), (meta2, two)):
        assert meta["requests_recorded"] == meta["locust_totals"]["requests"] > 0
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["verdict"]["status"] == "PASSED"
    assert meta1["ended_at"] <= meta2["started_at"]  # each run's files cover its own window


def test_the_state_the_page_fetches_after_a_start_is_the_runners_own(tmp_path: Path, web_ui: Any) -> None:
    """Locust memoizes /stats/requests for 2 s; the page believes the state of its first fetch and polls only while
    spawning or running, so a cached "ready" read just after a Start would hold it on the start form."""
    ui = web_ui()
    assert ui.get("/stats/requests")["state"] == "ready"  # now in Locust's cache
    asked_s = time.monotonic()
    assert ui.post("/swarm", {"user_count": "2", "spawn_rate": "2", "profile": ""})["success"] is True
    wait_for(lambda: any(p["scope"] == "service" for p in ui.status()["processes"]), 20, ui.status)  # spawning
    assert ui.get("/stats/requests")["state"] in ("spawning", "running"), f"{time.monotonic() - asked_s:.1f} s"
    assert ui.post("/stop")["success"] is True


@pytest.mark.parametrize("host_in_form", [True, False])
def test_a_start_against_an_unreachable_host_is_refused_in_one_line(
    tmp_path: Path, web_ui: Any, host_in_form: bool
) -> None:
    host = f"http://127.0.0.1:{free_port()}"  # closed: bound, then released
    ui = web_ui("-H", host)  # the web UI comes up: the host is checked at each Start, not at start-up
    form = {"user_count": "2", "spawn_rate": "2", "profile": "", **({"host": host} if host_in_form else {})}
    answer = ui.post("/swarm", form)
    assert answer["success"] is False, answer
    message = answer["message"]
    assert message.startswith(f"cannot reach the service at {host} (connection refused"), message
    assert "\n" not in message and "start it or correct -H" in message
    time.sleep(1)
    assert ui.get("/stats/requests")["state"] == "ready"  # no user spawned
    assert ui.status()["runs"] == [] and ui.status()["run"] is None
    assert [p.name for p in ui.runs_dir.glob("*") if not p.name.startswith("_")] == []  # no run directory
    wait_for(lambda: "Start refused: cannot reach the service" in ui.stderr(), 5, ui.stderr)
    assert ui.close() == 0


def test_the_harness_tab_renders_in_chromium_and_the_profile_field_lists_the_profiles(
    tmp_path: Path, web_ui: Any
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (make test installs it)")
    ui = web_ui()
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(ui.base + "/")
            field = page.locator("input[name='profile']")
            field.wait_for(state="visible", timeout=15_000)  # the Advanced options panel opened by itself
            field.click()
            options = page.get_by_role("option")
            options.first.wait_for(timeout=5_000)
            names = options.all_inner_texts()
            assert {"smoke", "ramp", "step", "spike", "soak", "stress"} <= set(names), names
            page.screenshot(path=str(tmp_path / "start_form.png"))

            assert ui.post("/swarm", {"user_count": "2", "spawn_rate": "2", "profile": ""})["success"] is True
            wait_for(lambda: any(p["scope"] == "service" for p in ui.status()["processes"]), 20, ui.status)
            pid = next(p["pid"] for p in ui.status()["processes"] if p["scope"] == "service")
            page.goto(ui.base + "/?tab=harness")
            page.get_by_text(f"pid {pid}").first.wait_for(timeout=15_000)
            page.get_by_text("% of one core").first.wait_for(timeout=15_000)  # the second tick has a CPU figure
            page.screenshot(path=str(tmp_path / "harness_tab.png"), full_page=True)
            text = page.inner_text("body")
            assert "HARNESS" in text.upper() and "RSS" in text and "threads" in text, text[-2000:]
            assert "GPU" in text and "written when this run stops" in text
        finally:
            browser.close()
    shots = Path(os.environ.get("FEATURELOAD_SCREENSHOTS", "")) if os.environ.get("FEATURELOAD_SCREENSHOTS") else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        for name in ("start_form.png", "harness_tab.png"):
            (shots / name).write_bytes((tmp_path / name).read_bytes())
    ui.post("/stop")


def test_an_empty_host_field_is_refused_and_the_session_stays_usable(tmp_path: Path, web_ui: Any) -> None:
    """Locust took an empty Host field as the host of every later run: each one a StopTest traceback, recorded
    as NO REQUESTS with exit code 0."""
    ui = web_ui()  # the embedded service
    answer = ui.post("/swarm", {"user_count": "2", "spawn_rate": "2", "profile": "", "host": "  "})
    assert answer["success"] is False, answer
    assert answer["message"].startswith("the Host field is empty: give the service's URL, e.g. http://127.0.0.1:")
    assert "\n" not in answer["message"]
    assert ui.get("/stats/requests")["state"] == "ready" and ui.status()["runs"] == []
    # the next Start (the form's host field as Locust fills it: absent or the service's) runs as usual
    assert ui.post("/swarm", {"user_count": "2", "spawn_rate": "2", "profile": ""})["success"] is True
    wait_for(lambda: _requests(ui) > 5, 30, ui.stderr)
    assert ui.post("/stop")["success"] is True
    wait_for(lambda: ui.status()["runs"] and ui.status()["runs"][0]["verdict"] is not None, 60, ui.status)
    run = ui.status()["runs"][0]
    assert run["verdict"] != "NO REQUESTS" and run["exit_code"] == 0, run
    assert "StopTest" not in ui.stderr() and "Traceback" not in ui.stderr(), ui.stderr()
    assert ui.close() == 0


def _requests(ui: WebUI) -> int:
    stats = ui.get("/stats/requests")["stats"]
    return sum(row["num_requests"] for row in stats if row["name"] == "Aggregated")


def test_the_harness_tab_shows_each_agent_host(tmp_path: Path, web_ui: Any) -> None:
    master = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEATURELOAD_")}
    agent = subprocess.Popen([sys.executable, "-m", "harness.sampling.agent", "--master", master, "--name", "far-host",
                              "--no-gpu", "--interval", "0.5"], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        ui = web_ui("--agents-bind", master)
        assert ui.post("/swarm", {"user_count": "1", "spawn_rate": "1", "profile": ""})["success"] is True
        wait_for(lambda: any(a["processes"] for a in ui.status()["agents"]), 30, ui.status)
        [far] = ui.status()["agents"]
        assert far["name"] == "far-host" and far["lost_since"] is None
        rows = ui.get("/stats/requests")["extended_stats"][0]["data"]
        assert any(r["section"] == "host far-host" and r["item"] == "agent" for r in rows), rows
        assert any(r["section"] == "host far-host" and r["item"].startswith("host CPU") for r in rows), rows
        ui.post("/stop")
        wait_for(lambda: ui.status()["runs"][0]["report_url"] is not None, 60, ui.status)
        report = Path(ui.status()["runs"][0]["directory"]) / "report.html"
        assert "Host far-host (agent" in report.read_text()
    finally:
        agent.terminate()
        agent.wait(timeout=15)
