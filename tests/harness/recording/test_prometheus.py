"""Prometheus as a source (harness.recording.prometheus): a real Prometheus (Debian's package), started here on a free
loopback port with a 1 s scrape of a real service also started here, and real Locust runs with ``--prometheus``.

The run's window lands in prometheus.arrows; the service's request counter, as Prometheus scraped it, agrees with
Locust's count within 1 %; the report draws client-side and server-side latency in one panel (read back from
headless Chromium); an unreachable Prometheus is named in the report and leaves the exit code alone; bad option
values are refused before anything starts (exit 2, one line naming the option).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from harness.locust_side.options import OPTIONS
from harness.recording.prometheus import DEFAULT_QUERIES, source_from_options
from harness.recording.recorder import read_stream
from service.launcher import ServiceProcess, free_port, start_service
from service.lifeline import preexec_die_with_parent
from tests.locust_runs import FinishedRun, run_locust

PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is absent: `make system-deps` installs Debian's package"
)
SECRET = "pr0m-s3cret-pw"  # a password in the --prometheus URL: it must be written nowhere
# The requests the service counted on the routes Locust's users load. The harness's own calls (GET /health, the
# catalog's load, the cache counters) fall in the scrape before the start or after the end, so they are left out;
# the users' catalog fetch (one GET .../features/{feature} per Locust process, not a Locust request) remains.
LOAD_ROUTES = "/v1/online/.*|/v1/groups/[{]group[}]/features/[{]feature[}]"
SERVED = f'sum(featurestore_requests_total{{route=~"{LOAD_ROUTES}"}}) or vector(0)'


@dataclass
class PrometheusServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def query(self, promql: str) -> list:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        answer.raise_for_status()
        return answer.json()["data"]["result"]


def _poll(check, timeout_s: float, what: str, log: Path | None = None):
    """``check()``'s first truthy value, polled every 0.2 s for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
        assert time.monotonic() < deadline, f"{what} not within {timeout_s} s\n{tail}"
        time.sleep(0.2)  # a poll's pace, not a synchronization: the loop waits for the condition itself


def start_prometheus(tmp: Path, target: str) -> PrometheusServer:
    """Prometheus on a free loopback port, scraping ``target`` (host:port) every second, its storage under
    ``tmp``; returns once it has scraped the target (``up == 1``)."""
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: featurestore\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = tmp / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=preexec_die_with_parent(),  # dies with the test process, however it ends
        )  # fmt: skip
    server = PrometheusServer(process, f"http://127.0.0.1:{port}", log)
    try:
        _poll(lambda: process.poll() is None and server.query('up{job="featurestore"} == 1'), 30,
              "Prometheus scraping the service", log)  # fmt: skip
    except BaseException:
        stop_prometheus(server)
        raise
    return server


def stop_prometheus(server: PrometheusServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)
    assert server.process.returncode is not None


@dataclass
class PrometheusRun:
    run: FinishedRun
    service: ServiceProcess
    prometheus: PrometheusServer


@pytest.fixture(scope="module")
def prometheus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusRun]:
    """One real run: a service, Prometheus scraping it each second, 8 s of Locust with --prometheus (a URL with
    credentials, which Prometheus ignores) and one query added (SERVED). ``--stop-timeout`` lets each user finish
    the request it is sending at the stop, so that Locust counts every request the service served."""
    if PROMETHEUS is None:
        pytest.skip("the prometheus binary is absent: `make system-deps` installs Debian's package")
    tmp = tmp_path_factory.mktemp("prometheus")
    with start_service({}, tmp / "store") as service:
        server = start_prometheus(tmp, f"127.0.0.1:{service.port}")
        try:
            url = server.url.replace("http://", f"http://scraper:{SECRET}@")
            run = run_locust(
                tmp / "runs", "-H", service.base_url, "--load-catalog", "--catalog-size", "2000", "-u", "10", "-r",
                "10", "-t", "8s", "--stop-timeout", "5", "--prometheus", url, "--prometheus-query", f"served={SERVED}",
                "--sample-interval", "1", timeout_s=180,
            )  # fmt: skip
            yield PrometheusRun(run, service, server)
        finally:
            stop_prometheus(server)


def _series(run_dir: Path, name: str) -> list[tuple[float, float]]:
    table = read_stream(run_dir / "prometheus.arrows")
    rows = [r for r in table.to_pylist() if r["name"] == name]
    return sorted((r["ts_s"], r["value"]) for r in rows)


# ---- the real run ----------------------------------------------------------------------------------------------


@needs_prometheus
@pytest.mark.slow
def test_the_run_window_lands_in_prometheus_arrows_and_its_counts_agree_with_locust(prometheus_run) -> None:
    run = prometheus_run.run
    assert run.code == 0, run.stderr[-3000:]
    meta = run.metadata["prometheus"]
    assert meta["error"] is None, meta
    started_s = datetime.fromisoformat(run.metadata["started_at"]).timestamp()
    ended_s = started_s + run.metadata["duration_s"]
    window = meta["window"]
    assert window[0] <= started_s and window[1] >= ended_s, (window, started_s, ended_s)
    # every default query answered with a series over the window, at one point per step (1 s)
    for name in DEFAULT_QUERIES:
        points = _series(run.run_dir, name)
        assert points, f"{name}: no rows"
        assert points[0][0] <= started_s + 1 and points[-1][0] >= ended_s, (name, points[0], points[-1])
    served = _series(run.run_dir, "served")
    increase = served[-1][1] - served[0][1]
    sent = run.metadata["locust_totals"]["requests"]
    assert sent > 300, sent
    # the users' catalog fetch (one per Locust process) is the server's only extra request on these routes
    assert abs(increase - sent) <= 0.01 * sent, (increase, sent)
    print(f"agreement: Prometheus counted {increase:.0f}, Locust {sent}: {100 * (increase - sent) / sent:+.3f} %")
    p95 = [v for _, v in _series(run.run_dir, "server_p95_ms") if math.isfinite(v)]
    assert p95 and all(0 < v < 60_000 for v in p95)
    rss = [v for _, v in _series(run.run_dir, "rss_bytes")]
    assert rss and min(rss) > 10 * 2**20  # a Python service holds more than 10 MB
    assert any(v > 0 for _, v in _series(run.run_dir, "cpu_percent"))


@needs_prometheus
@pytest.mark.slow
def test_the_source_is_recorded_without_its_credentials(prometheus_run) -> None:
    run = prometheus_run.run
    meta = run.metadata["prometheus"]
    assert meta["url"] == prometheus_run.prometheus.url.replace("http://", "http://scraper:***@")
    assert meta["queries"]["served"] == SERVED and set(DEFAULT_QUERIES) <= set(meta["queries"])
    assert meta["step_s"] == 1.0
    for path in run.run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"{path.name} holds the --prometheus password"
    assert SECRET not in run.stderr


@needs_prometheus
@pytest.mark.slow
def test_the_report_draws_client_and_server_latency_in_one_panel(prometheus_run) -> None:
    from tests.harness.report.test_report_browser import ARTIFACTS, open_page

    run = prometheus_run.run
    summary = run.summary["prometheus"]
    assert summary["error"] is None and summary["url"].endswith(prometheus_run.prometheus.url.split("//")[1])
    charts, errors, fetched, seen = open_page(run.run_dir / "report.html", ARTIFACTS / "report-prometheus.png")
    assert errors == [] and fetched == []
    legend = set(seen["legend"])
    for p in ("p50", "p95", "p99"):
        assert {f"client {p} (Locust)", f"server {p} (Prometheus)"} <= legend, legend
    assert {"served req/s (Prometheus)", "sent req/s (Locust)", "served"} <= legend
    timeline = next(c for c in charts if c["id"] == "chart-timeline")
    assert timeline["drawn"] == timeline["declared"] > 0
    assert "Latency: client (Locust) and server (Prometheus)" in run.report_html


@needs_prometheus
@pytest.mark.slow
def test_the_web_ui_shows_prometheus_live_and_its_run_gets_the_window(tmp_path: Path) -> None:
    from tests.harness.locust_side.test_webui import WebUI, wait_for

    with start_service({}, tmp_path / "store") as service:
        server = start_prometheus(tmp_path, f"127.0.0.1:{service.port}")
        ui = None
        try:
            ui = WebUI(tmp_path, "-H", service.base_url, "--load-catalog", "--prometheus", server.url)
            assert ui.post("/swarm", {"user_count": "4", "spawn_rate": "4", "profile": ""})["success"] is True

            def live_rate() -> float | None:
                queries = (ui.status().get("prometheus") or {}).get("queries") or []
                values = [q["values"] for q in queries if q["name"] == "request_rate_per_s"]
                return next(iter(values[0].values()), None) if values else None

            wait_for(lambda: (live_rate() or 0) > 0, 40, ui.status)  # pulled while the run goes on
            rows = ui.get("/stats/requests")["extended_stats"][0]["data"]
            mine = {r["item"]: r["value"] for r in rows if r["section"] == "prometheus"}
            assert mine["source"] == server.url and set(DEFAULT_QUERIES) <= set(mine), mine
            assert ui.post("/stop")["success"] is True
            wait_for(lambda: ui.status()["runs"][0]["report_url"] is not None, 60, ui.status)
            (run_dir,) = [p for p in ui.runs_dir.iterdir() if not p.name.startswith("_")]
            metadata = json.loads((run_dir / "metadata.json").read_text())
            assert metadata["prometheus"]["error"] is None and metadata["prometheus"]["step_s"] == 0.5
            assert "server p95 (Prometheus)" in (run_dir / "report.html").read_text()
            assert ui.close() == 0, ui.stderr()
        finally:
            if ui is not None:
                ui.close()
            stop_prometheus(server)


@needs_prometheus
@pytest.mark.slow
def test_a_pull_is_bounded_and_one_bad_query_spoils_only_itself(prometheus_run, monkeypatch) -> None:
    """Against the module's real Prometheus: a query Prometheus refuses is the error line, the others are pulled;
    more than MAX_SERIES series are cut (and said so); a window beyond MAX_STEPS steps gets a coarser step; an
    answer beyond MAX_RESPONSE_BYTES is refused."""
    from harness.recording import prometheus

    queries = {"broken": "sum(", "buckets": "featurestore_request_duration_seconds_bucket", "up": "up"}
    client = prometheus.PrometheusClient(prometheus.PrometheusSource(prometheus_run.prometheus.url, queries, 1.0))
    now = time.time()
    result = client.pull(now - 30, now)
    assert result.error.startswith("query broken: Prometheus at http://127.0.0.1:") and "HTTP 400" in result.error
    assert result.series == {"buckets": prometheus.MAX_SERIES, "up": 1}, result.series
    assert any(n.startswith("query buckets: ") and f"the first {prometheus.MAX_SERIES} kept" in n for n in result.notes)
    labels = {json.loads(row)["le"] for row in result.table.column("labels").to_pylist() if "le" in row}
    assert len(labels) > 1
    long = client.pull(now - 12_000, now)
    assert long.step_s == 2 and any("at most 11000 points" in n for n in long.notes), long.notes
    monkeypatch.setattr(prometheus, "MAX_RESPONSE_BYTES", 2_000)
    capped = client.pull(now - 30, now)
    assert capped.error.startswith("query broken: ") and capped.series == {"up": 1}
    assert any(n.startswith("query buckets: ") and "answered more than 2,000 bytes" in n for n in capped.notes)


# ---- no Prometheus, or none reachable, or bad values -----------------------------------------------------------


@pytest.mark.slow
def test_an_unreachable_prometheus_is_named_in_the_report_and_the_exit_code_is_unchanged(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    run = run_locust(tmp_path / "runs", "-u", "2", "-r", "2", "-t", "2s", "--prometheus", url, timeout_s=120)
    assert run.code == 0, run.stderr[-3000:]
    error = run.metadata["prometheus"]["error"]
    assert error.startswith("query request_rate_per_s: Prometheus at") and "unreachable" in error, error
    assert "\n" not in error
    assert run.summary["prometheus"]["error"] == error
    assert "unreachable" in run.report_html and error.split(": ", 1)[1] in run.report_html
    pulled = run.run_dir / "prometheus.arrows"
    assert not pulled.exists() or read_stream(pulled).num_rows == 0
    assert "server p95 (Prometheus)" not in run.report_html
    assert run.report_html.count(error.split(": ", 1)[1]) == 1  # one line says it, not one per panel


@pytest.mark.slow
def test_without_prometheus_the_report_has_no_prometheus_panel(tmp_path: Path) -> None:
    run = run_locust(tmp_path / "runs", "-u", "2", "-r", "2", "-t", "1s", timeout_s=120)
    assert run.code == 0, run.stderr[-3000:]
    assert run.metadata["prometheus"] is None and run.summary.get("prometheus") is None
    assert "(Prometheus)" not in run.report_html


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--prometheus", "ftp://127.0.0.1:9090"), "--prometheus 'ftp://127.0.0.1:9090' is not an http:// or https://"),
        (("--prometheus", "http://127.0.0.1:9", "--prometheus-query", "rate_without_equals"),
         "--prometheus-query 'rate_without_equals' is not NAME=PROMQL"),
        (("--prometheus-query", "x=up"), "--prometheus-query needs --prometheus URL"),
        (("--prometheus", "http://127.0.0.1:9", "--prometheus-query", "bad name=up"), "the name 'bad name' is invalid"),
    ],
)  # fmt: skip
def test_bad_option_values_are_refused_with_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    from tests.locust_runs import _command, _environment

    done = subprocess.run(_command(tmp_path / "runs", ("-t", "5s", *args)), env=_environment(None),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if message in line]
    assert len(lines) == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not any((tmp_path / "runs").glob("*/requests.arrows"))  # refused before any run started


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="installed by `make system-deps` (Debian's)")
def test_the_compose_prometheus_profile_scrapes_the_service_and_the_master_can_point_at_it() -> None:
    root = Path(__file__).resolve().parents[3]
    env = {
        "PATH": "/usr/bin:/bin",
        "FEATURELOAD_WRITE_TOKEN": "planted",
        "FEATURELOAD_PROMETHEUS": "http://prometheus:9090",
    }
    done = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "--profile", "prometheus", "config"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "FEATURELOAD_PROMETHEUS: http://prometheus:9090" in done.stdout  # the master's
    assert f"{root / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro" in done.stdout
    config = (root / "prometheus.yml").read_text()
    assert "scrape_interval: 1s" in config and '"service:8000"' in config  # the compose service's port
    if PROMETHEUS is not None:  # promtool ships with it
        checked = subprocess.run(["promtool", "check", "config", str(root / "prometheus.yml")], capture_output=True,
                                 text=True, timeout=60, check=False)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr


# ---- units -----------------------------------------------------------------------------------------------------


def test_queries_from_options_add_to_or_replace_the_defaults() -> None:
    options = SimpleNamespace(prometheus="http://127.0.0.1:9090/", sample_interval=0.0,
                              prometheus_query=["extra=up", "server_p95_ms=1000 * x\nlast=y"])  # fmt: skip
    source = source_from_options(options)
    assert source is not None and source.url == "http://127.0.0.1:9090" and source.step_s == 1.0
    assert source.queries["extra"] == "up" and source.queries["server_p95_ms"] == "1000 * x"
    assert source.queries["last"] == "y" and set(DEFAULT_QUERIES) <= set(source.queries)
    assert source_from_options(SimpleNamespace(prometheus="", prometheus_query=[], sample_interval=1)) is None


def test_the_help_names_every_default_query() -> None:
    (option,) = [o for o in OPTIONS if o.flag == "--prometheus-query"]
    for name in DEFAULT_QUERIES:
        assert name in option.help
    assert {"--prometheus": "FEATURELOAD_PROMETHEUS"}.items() <= {o.flag: o.env for o in OPTIONS}.items()
