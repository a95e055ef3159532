"""``python -m harness ab``: bad input refused before anything starts; a side that cannot start stops the other and
removes the git worktree; and one real, short A/A of this checkout against itself (a directory side and a command
side running the same service, real Locust runs in the seeded pair order), which cannot reach significance with
2 pairs and says so with exit code 5; both services are gone afterwards.

The real comparison runs 1 s per run (6 Locust processes: a warm-up per side, then 2 pairs) so that the whole
file stays well under a minute on a loaded 2-core machine; it proves the plumbing, not the statistics (those are
tests/harness/gate/test_paired.py's).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest

from harness.__main__ import main
from harness.gate.ab import (
    _MIN_SERVER_COUNT,
    AbConfig,
    CpuTrace,
    ab_cores,
    build_series,
    dependency_lock,
    duet_side,
    noise_lines,
    pair_order,
    probe_rate,
    server_means,
    server_totals,
    side_venv,
    verdict_lines,
)
from harness.gate.metrics_table import BadInputError
from harness.gate.paired import PairedSeries, compare_paired
from harness.locust_side.options import DUET_SUFFIX
from service.launcher import start_service

ROOT = Path(__file__).resolve().parents[3]


def _service_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "service" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _left_behind(path: Path, ports: Sequence[int]) -> list[str]:
    """Processes still running in the ab directory (Locust) or on a side's port (its service tree)."""
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or []) + " "
        if str(path) in cmdline or any(f"--port {port} " in cmdline for port in ports):
            left.append(cmdline)
    return left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--baseline", "no-such-ref-ab-test", "--candidate", "."], "neither a directory nor a git ref"),
        (["--baseline", "/no/such/dir/ab-test", "--candidate", "."], "neither a directory nor a git ref"),
        (["--baseline", ".", "--candidate-cmd", "python -m service"], "needs {port}"),
        (["--baseline", ".", "--candidate", ".", "--restart-every", "-1"], "--restart-every -1: need 0 (never)"),
        (["--baseline", ".", "--candidate", ".", "--pairs", "0"], "--pairs 0"),
        (["--baseline", ".", "--candidate", ".", "--", "-H", "http://x"], "leave -H out"),
        (["--baseline", ".", "--candidate", ".", "--candidate-cmd", "x {port}"], "exactly one of"),
        (["--baseline", "ROOT/service", "--candidate", "."], "not a checkout of this project"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_starts_nothing(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["ab", "--ab-dir", str(tmp_path / "ab"), *(a.replace("ROOT", str(ROOT)) for a in argv)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert captured.out == ""
    assert not (tmp_path / "ab").exists()
    assert _service_children() == []


def test_noise_refuses_bad_input_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["noise", "--pairs", "0", "--ab-dir", str(tmp_path / "ab")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "harness noise: --pairs 0: need 1 pair or more (6 or more to reach significance)"
    ]


def test_a_side_that_cannot_start_stops_the_other_and_removes_the_worktree(tmp_path: Path) -> None:
    """A git-ref baseline (checked out in a worktree, its service started) and a candidate command that exits at
    once: exit 2 naming the candidate's log; the baseline's service is stopped and its worktree removed."""
    argv = [
        sys.executable, "-m", "harness", "ab", "--baseline", "HEAD", "--candidate-cmd", "echo no {port}; exit 3",
        "--ab-dir", str(tmp_path / "ab"),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "harness ab: the candidate's service exited with status 3 before it was ready; see "
    ) and last.endswith(".log")
    (path,) = (tmp_path / "ab").iterdir()
    assert not (path / "worktrees").exists()
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert str(path) not in worktrees.stdout
    assert "no " in (path / "logs" / "candidate-service.log").read_text()
    info = json.loads((path / "ab.json").read_text(encoding="utf-8"))
    assert info["state"] == "failed" and info["sides"]["baseline"]["pid"]  # it did start, then was stopped
    assert _left_behind(path, [info["sides"]["baseline"]["port"]]) == []


def test_sigterm_mid_run_stops_everything_and_removes_the_worktree(tmp_path: Path) -> None:
    """SIGTERM (a CI job cancelled) while the first Locust run is going: exit 130, the Locust process, both
    services and the git worktree gone."""
    argv = [
        sys.executable, "-m", "harness", "ab", "--baseline", "HEAD", "--candidate", ".", "--run-seconds", "30",
        "--catalog-size", "200", "--quiet-timeout", "0", "--ab-dir", str(tmp_path / "ab"),
    ]  # fmt: skip
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        logs: list[Path] = []
        while not logs and time.monotonic() < deadline and process.poll() is None:
            logs = list((tmp_path / "ab").glob("*/logs/warmup-baseline.log"))
            time.sleep(0.1)
        assert logs, "the first run never started"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "harness ab: interrupted; services stopped, worktrees removed"
    path = logs[0].parents[1]
    assert not (path / "worktrees").exists()
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert str(path) not in worktrees.stdout
    info = json.loads((path / "ab.json").read_text(encoding="utf-8"))
    assert info["state"] == "interrupted" and info["runs"] == []
    ports = [side["port"] for side in info["sides"].values()]
    assert len(ports) == 2 and _left_behind(path, ports) == []


def test_pair_order_is_seeded_and_cores_are_split() -> None:
    assert pair_order(10, 3) == pair_order(10, 3)
    assert set(pair_order(40, 0)) == {"AB", "BA"}
    assert ab_cores([0]) is None
    two = ab_cores([0, 1])
    assert two is not None and two["baseline"] == two["candidate"] == [0] and two["generator"] == [1]
    four = ab_cores([0, 1, 2, 3])
    assert four is not None and (four["baseline"], four["candidate"], four["generator"]) == ([0], [1], [2, 3])


def test_series_drop_missing_values_and_failed_pairs() -> None:
    def run(pair: int, side: str, p50: float, p99: float | None, error: bool = False) -> dict[str, object]:
        record: dict[str, object] = {
            "pair": pair, "side": side, "service_cpu_ms_per_request": 1.0 + pair, "service_rss_mb": 100.0,
            "metrics": {"GET /x": {"p50": p50, "p95": p50, "p99": p99, "requests": 10.0}},
        }  # fmt: skip
        if error:
            record["error"] = "no run directory"
        return record

    records = [
        run(0, "baseline", 9.0, 9.0),  # a warm-up: never counted
        *(run(i, side, 1.0 + i, None if i == 2 else 5.0) for i in (1, 2, 3) for side in ("baseline", "candidate")),
        run(4, "baseline", 1.0, 1.0),
        run(4, "candidate", 1.0, 1.0, error=True),  # a failed run drops its pair
    ]
    series, skipped = build_series(records, 4)
    by_name = {f"{s.endpoint} {s.metric}": s for s in series}
    assert list(by_name["GET /x p50"].baseline) == [2.0, 3.0, 4.0]
    assert list(by_name["GET /x p99"].baseline) == [5.0, 5.0]  # pair 2 has no p99
    assert by_name["service cpu_ms_per_request"].gated and by_name["service rss_mb"].unit == "MB"
    assert skipped == []


def test_noise_states_the_mde_at_the_pairs_it_ran_and_at_ten() -> None:
    series = [PairedSeries("GET /x", "p50", [10.0, 10.0, 10.0, 10.0], [10.1, 9.9, 10.2, 9.8])]
    lines = noise_lines(compare_paired(series), AbConfig(pairs=4, run_seconds=3), 10, 200.0)
    assert lines[0].startswith("noise: minimum detectable effect of an ab with 3 s duet runs at 200 req/s")
    assert lines[1].startswith("  GET /x p50: ") and lines[1].endswith("% at 10 pairs (inf% at 4)")
    assert 0 < float(lines[1].split(": ")[1].split("%")[0]) < 5  # sd 1.8% of the log ratios: 2.8 x 1.8 / sqrt(10)


def test_the_headline_says_how_much_is_undecided() -> None:
    steady = PairedSeries("GET /y", "p50", [10.0] * 8, [10.0] * 8)
    noisy = PairedSeries("GET /x", "p50", [10.0] * 8, [13.0, 7.0, 12.0, 8.0, 11.0, 9.0, 14.0, 6.0])
    assert verdict_lines(compare_paired([steady]))[0] == "ab: no regression"
    lines = verdict_lines(compare_paired([noisy, steady]))
    assert lines[0] == (
        "ab: no regression found (1 of 2 gated metrics inconclusive; too noisy to judge below a significant change, "
        "MDE over 12%: GET /x p50 (36%))"
    )
    assert lines[1].startswith("GET /x p50: ") and "): inconclusive" in lines[1]
    slower = PairedSeries("GET /x", "p50", [10.0] * 8, [13.0, 14.0, 12.0, 11.0, 15.0, 8.0, 13.0, 14.0])
    comparison = compare_paired([slower, steady])
    assert comparison.exit_code == 5  # +30% that 8 pairs could not confirm is no pass
    assert verdict_lines(comparison)[0].startswith("ab: inconclusive (worse than the threshold but not significant")
    # a noisy metric whose estimate stays within what its pairs could detect does not hold the gate (A/A wander)
    wander = PairedSeries("GET /x", "p50", [10.0] * 8, [11.0, 9.0, 12.5, 8.5, 11.5, 9.5, 12.0, 10.0])
    judged = compare_paired([wander, steady])
    assert judged.results[0].verdict == "inconclusive" and judged.results[0].effect_percent > 3.0
    assert judged.results[0].effect_percent < judged.results[0].mde_percent and judged.exit_code == 0


@pytest.mark.slow
def test_a_real_interleaved_ab_of_this_checkout_against_itself(tmp_path: Path) -> None:
    seed = next(s for s in range(100) if pair_order(2, s) == ["BA", "AB"])  # both orders, the first reversed
    argv = [
        sys.executable, "-m", "harness", "ab", "--baseline", str(ROOT), "--candidate-cmd",
        "exec {python} -m service --port {port} --store-path {store}", "--pairs", "2", "--mode", "interleaved",
        "--arrival-rate", "200",
        "--seed", str(seed), "--run-seconds", "1", "--warmup-seconds", "0", "--catalog-size", "500",
        "--quiet-timeout", "0", "--restart-every", "0", "--ab-dir", str(tmp_path / "ab"),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 5, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("ab: inconclusive") and "2 pairs cannot reach significance" in lines[0]
    path = Path(lines[-1])
    assert path.parent == tmp_path / "ab" and (path / "ab.md").is_file()
    assert "GET /v1/online/{group}/{feature}/{entity_id} p50" in done.stdout
    assert "service cpu_ms_per_request" in done.stdout

    info = json.loads((path / "ab.json").read_text(encoding="utf-8"))
    assert info["pair_order"] == ["BA", "AB"]
    labels = [r["label"] for r in info["runs"]]
    assert labels == ["pair-01-candidate", "pair-01-baseline", "pair-02-baseline", "pair-02-candidate"]
    for record in info["runs"]:
        assert record["exit_code"] == 0 and "error" not in record, record
        assert (path / record["run_dir"] / "metadata.json").is_file()
        assert record["run_dir"].startswith(record["side"] + "/")
        assert record["service_cpu_ms_per_request"] > 0 and record["service_rss_mb"] > 10
    assert info["comparison"]["exit_code"] == 5 and info["pairs_with_metrics"] == 2
    assert {m["pairs"] for m in info["comparison"]["metrics"]} == {2}
    assert set(info["minimum_detectable_effects"]) >= {"service cpu_ms_per_request", "service rss_mb"}

    markdown = (path / "ab.md").read_text(encoding="utf-8")
    assert markdown.splitlines()[2].startswith("- ab: inconclusive")
    assert "cannot reach significance" in markdown
    assert info["load"]["arrival_rate"] == 200 and info["load"]["rate_probe"] == "off: --arrival-rate given"

    ports = [side["port"] for side in info["sides"].values()]
    assert info["sides"]["baseline"]["kind"] == "directory" and info["sides"]["baseline"]["directory"] == str(ROOT)
    assert info["sides"]["candidate"]["kind"] == "command"
    assert _left_behind(path, ports) == []


def test_a_duet_run_splits_into_two_sides_by_the_suffix() -> None:
    metrics = {
        "GET /a": {"p50": 1.0, "requests": 100.0, "failure_ratio": 0.0},
        f"GET /a{DUET_SUFFIX}": {"p50": 1.2, "requests": 90.0, "failure_ratio": 0.1},
        "Aggregated": {"p50": 1.1, "requests": 190.0, "failure_ratio": 0.05},
    }
    first, second = duet_side(metrics, duet=False), duet_side(metrics, duet=True)
    assert first == {"GET /a": metrics["GET /a"], "Aggregated": {"requests": 100.0, "failure_ratio": 0.0}}
    assert second["GET /a"]["p50"] == 1.2 and second["Aggregated"]["requests"] == 90.0
    assert second["Aggregated"]["failure_ratio"] == pytest.approx(0.1)


def test_the_rate_probe_keeps_the_busier_service_at_a_quarter_of_its_core() -> None:
    assert probe_rate([1.0, 1.25]) == 200.0  # 0.25 x 1000 / 1.25 ms
    assert probe_rate([1.0, 1.25], split=True) == 400.0  # a core each: each service gets half the rate
    assert probe_rate([0.001]) == 2000.0 and probe_rate([100.0]) == 20.0  # bounded
    assert probe_rate([math.nan, -1.0]) == 100.0  # nothing measured: the probe's own rate


def test_the_server_side_mean_comes_from_the_services_own_histogram() -> None:
    with start_service({}, store_path=Path(tempfile.mkdtemp(prefix="ab-server-"))) as service:
        before = server_totals(service.base_url)
        for _ in range(_MIN_SERVER_COUNT):
            with urllib.request.urlopen(service.base_url + "/v1/ping", timeout=5) as response:
                response.read()
        after = server_totals(service.base_url)
    means = server_means(before, after)
    assert set(means) == {"GET /v1/ping"}, means  # fewer than 20 of the other routes: no mean for them
    assert 0 < means["GET /v1/ping"] < 1000
    assert server_totals("http://127.0.0.1:9") == {}  # nothing listening: no server-side figures, no error


def test_the_cpu_trace_reads_the_runs_own_window() -> None:
    class Clocked:  # a service whose CPU time grows 1 s per second of the trace's clock
        def cpu_seconds(self) -> float:
            return time.time()

    with CpuTrace({"baseline": Clocked()}, interval_s=0.01) as trace:  # type: ignore[dict-item]
        started = time.time()
        deadline = started + 0.2
        while time.time() < deadline:
            time.sleep(0.01)
    assert trace.between("baseline", started + 0.05, started + 0.15) == pytest.approx(0.1, abs=0.01)
    assert math.isnan(trace.between("baseline", started - 10, started))  # outside the trace


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duet-host", "127.0.0.1:1"], "--duet-host '127.0.0.1:1' is refused: give a URL"),
        (["--duet-host", "http://127.0.0.1:1", "--http-client", "locust"], "--duet-host needs --http-client lean"),
    ],
)
def test_a_bad_duet_host_is_refused_with_one_line(args: list[str], message: str) -> None:
    argv = [sys.executable, "-m", "locust", "-f", "locustfiles/concurrent_users.py", "--headless", "-t", "1s",
            "-H", "http://127.0.0.1:9", *args]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_real_duet_ab_probes_the_rate_gates_server_side_figures_and_restarts_every_pair(tmp_path: Path) -> None:
    """The defaults but for size: duet runs at the probed rate, fresh services before each pair."""
    argv = [
        sys.executable, "-m", "harness", "ab", "--baseline", str(ROOT), "--candidate-cmd",
        "exec {python} -m service --port {port} --store-path {store}", "--pairs", "2",
        "--run-seconds", "2", "--warmup-seconds", "1", "--catalog-size", "500", "--quiet-timeout", "0",
        "--ab-dir", str(tmp_path / "ab"),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "rate probe: " in done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    info = json.loads((path / "ab.json").read_text(encoding="utf-8"))
    probe = info["load"]["rate_probe"]
    assert info["load"]["mode"] == "duet" and probe["chosen_rate"] == info["load"]["arrival_rate"]
    assert probe_rate(list(probe["cpu_ms_per_request"].values())) == probe["chosen_rate"]
    pairs = [r for r in info["runs"] if r["pair"] > 0]
    assert [(r["label"], r["side"]) for r in pairs] == [
        ("pair-01-duet", side) for side in (("baseline", "candidate") if info["pair_order"][0] == "AB"
                                            else ("candidate", "baseline"))
    ] + [("pair-02-duet", side) for side in (("baseline", "candidate") if info["pair_order"][1] == "AB"
                                             else ("candidate", "baseline"))]  # fmt: skip
    lookup = "GET /v1/online/{group}/{feature}/{entity_id}"
    for record in pairs:
        assert record["run_dir"].startswith("duet/") and record["exit_code"] == 0, record
        assert record["metrics"][lookup]["requests"] > 0 and record["server_mean_ms"][lookup] > 0
        assert record["service_cpu_ms_per_request"] > 0
    for first, second in (pairs[:2], pairs[2:]):  # the same mix on both sides (harness.users.DuetSplit)
        endpoints = [e for e in first["metrics"] if e != "Aggregated"]
        for endpoint in endpoints:
            counts = [side["metrics"][endpoint]["requests"] for side in (first, second)]
            assert abs(counts[0] - counts[1]) <= 1, (endpoint, counts)
        assert abs(first["requests"] - second["requests"]) <= len(endpoints)
    # each side's requests are its own: the two sides add up to the run's total
    run_total = json.loads((path / pairs[0]["run_dir"] / "metadata.json").read_text())["locust_totals"]["requests"]
    assert pairs[0]["requests"] + pairs[1]["requests"] == run_total
    names = set(info["minimum_detectable_effects"])
    assert f"{lookup} server_mean_ms" in names and f"{lookup} p50" in names
    pids = {(r["pair"], r["side"]): r["service_pid"] for r in info["runs"]}
    for side in ("baseline", "candidate"):
        assert pids[(1, side)] != pids[(2, side)], pids  # a new process for the second pair
        assert pids[(0, side)] == pids[(1, side)] and pids[(-2, side)] == pids[(2, side)]  # warmed, then measured
    assert [r["instance"] for r in pairs] == [0, 0, 1, 1]
    assert {r["label"] for r in info["runs"] if r["pair"] < 0} == {"rewarm-02"}
    assert info["pairs_with_metrics"] == 2  # the re-warm-up is not a pair
    assert (path / "logs" / "baseline-service-1.log").is_file()
    assert (path / "logs" / "candidate-service-1.log").is_file()  # a --candidate-cmd service restarts too
    assert not any(psutil.pid_exists(pid) for pid in set(pids.values()))
    ports = [side["port"] for side in info["sides"].values()]
    assert _left_behind(path, ports) == []


def _checkout(path: Path, dependencies: list[str], pins: str) -> Path:
    path.mkdir()
    listed = ", ".join(f'"{d}"' for d in dependencies)
    (path / "pyproject.toml").write_text(f'[project]\nname = "x"\nversion = "1"\ndependencies = [{listed}]\n')
    (path / "constraints.txt").write_text(pins)
    return path


def test_sides_share_a_venv_only_when_their_dependency_locks_agree(tmp_path: Path) -> None:
    assert dependency_lock(ROOT) == dependency_lock(ROOT)
    one = _checkout(tmp_path / "one", ["a>=1", "b"], "a==1.2\nb==3\n")
    same = _checkout(tmp_path / "same", ["b", "a>=1"], "# pins\nb==3\na==1.2\n")  # order and comments aside
    other = _checkout(tmp_path / "other", ["b", "a>=1"], "a==1.3\nb==3\n")
    assert dependency_lock(one) == dependency_lock(same) != dependency_lock(other)
    assert dependency_lock(one) != dependency_lock(ROOT)


def test_a_side_venv_is_built_once_per_lock_and_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    empty = _checkout(tmp_path / "empty", [], "")
    messages: list[str] = []
    python = side_venv(empty, tmp_path / "cache", messages.append)
    assert python.is_file() and python.parent.parent.parent == tmp_path / "cache" and len(messages) == 1
    assert subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                          check=True).stdout.strip() == str(python.parent.parent)  # fmt: skip
    assert side_venv(empty, tmp_path / "cache", messages.append) == python and len(messages) == 1  # reused
    broken = _checkout(tmp_path / "broken", ["not a requirement!"], "")  # pip refuses it at once, offline
    with pytest.raises(BadInputError, match="could not build a venv for"):
        side_venv(broken, tmp_path / "cache", messages.append, pip_timeout_s=120)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [python.parent.parent.name]
