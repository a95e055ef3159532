"""``python -m harness ab``: bad input refused before anything starts, and one real, short A/A of this checkout
against itself (two services, real Locust runs, in the seeded pair order), which cannot reach significance with
2 pairs and says so with exit code 5; both services are gone afterwards.

The real comparison runs 1 s per run (6 Locust processes: a warm-up per side, then 2 pairs) so that the whole
file stays well under a minute on a loaded 2-core machine; it proves the plumbing, not the statistics (those are
tests/test_paired.py's).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.__main__ import main
from harness.gate.ab import ab_cores, build_series, pair_order

ROOT = Path(__file__).resolve().parents[1]


def _service_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "service" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--baseline", "no-such-ref-ab-test", "--candidate", "."], "neither a directory nor a git ref"),
        (["--baseline", "/no/such/dir/ab-test", "--candidate", "."], "neither a directory nor a git ref"),
        (["--baseline", ".", "--candidate-cmd", "python -m service"], "needs {port}"),
        (["--baseline", ".", "--candidate", ".", "--pairs", "0"], "--pairs 0"),
        (["--baseline", ".", "--candidate", ".", "--", "-H", "http://x"], "leave -H out"),
        (["--baseline", ".", "--candidate", ".", "--candidate-cmd", "x {port}"], "exactly one of"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_starts_nothing(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["ab", "--ab-dir", str(tmp_path / "ab"), *argv])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert captured.out == ""
    assert not (tmp_path / "ab").exists()
    assert _service_children() == []


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


@pytest.mark.slow
def test_a_real_ab_of_this_checkout_against_itself(tmp_path: Path) -> None:
    seed = next(s for s in range(100) if pair_order(2, s) == ["BA", "AB"])  # both orders, the first reversed
    argv = [
        sys.executable, "-m", "harness", "ab", "--baseline", str(ROOT), "--candidate", ".", "--pairs", "2",
        "--seed", str(seed), "--run-seconds", "1", "--warmup-seconds", "1", "--catalog-size", "500",
        "--quiet-timeout", "0", "--ab-dir", str(tmp_path / "ab"),
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
    assert labels == ["warmup-baseline", "warmup-candidate", "pair-01-candidate", "pair-01-baseline",
                      "pair-02-baseline", "pair-02-candidate"]  # fmt: skip
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
    assert "cannot reach significance" in markdown and "Not yet: rate probe" in markdown

    ports = {f"--port {side['port']}" for side in info["sides"].values()}
    for side in info["sides"].values():
        assert side["kind"] == "directory" and side["directory"] == str(ROOT)
    left = []  # both services stopped, their whole trees: nothing runs with their ports or in the ab directory
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmdline or any(port in cmdline for port in ports):
            left.append(cmdline)
    assert left == []
