"""``python -m harness ab`` on this machine, printed: does an A/A pass, is a 3% code change caught on its endpoint
and no other, is a 2 ms delay caught, and how long does each take (issue 16's proof).

    pytest tests/performance/benchmarks/test_ab_bench.py --benchmark-only -s
    AB_BENCH_AA=20 pytest ... -k a_a -s     (the full A/A proof: about 2.5 hours)
    AB_BENCH_AA=6 AB_BENCH_AA_FIRST=14 ...  (seeds 14-19: the rest of a proof run in parts)

Defaults: 10 pairs of 30 s with a restart every pair (ab's own defaults; AB_BENCH_RESTART_EVERY=0 for none),
AB_BENCH_AA=3 A/A comparisons (20 for the proof: each takes about 7.5 minutes). Every comparison is a real
``run_ab`` of this checkout: real services, real Locust runs.

* A/A: this checkout against itself, AB_BENCH_AA times with different seeds: how many pass (exit 0), and each gated
  metric's median MDE at the pairs run.
* A code change: a throwaway clone of this repository's HEAD with one commit on top, where the single lookup
  route spins for 3% of its client-side p50 (measured first with a short A/A duet) before answering; ab between
  HEAD and that commit. Caught when its lookup metrics regress and no other endpoint's latency does.
* A 2 ms delay: the service's own fault injection (``FEATURESTORE_INJECT_DELAY_MS=2``) on the candidate.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.gate.ab import SERVICE, AbConfig, AbResult, run_ab

ROOT = Path(__file__).resolve().parents[3]
LOOKUP = "GET /v1/online/{group}/{feature}/{entity_id}"
PAIRS = int(os.environ.get("AB_BENCH_PAIRS", "10"))
RUN_SECONDS = int(os.environ.get("AB_BENCH_RUN_SECONDS", AbConfig.run_seconds))
# fresh instances of both services every N pairs (ab --restart-every; 0: the same instances throughout)
RESTART_EVERY = int(os.environ.get("AB_BENCH_RESTART_EVERY", AbConfig.restart_every))
SERVICE_CMD = "exec {python} -m service --port {port} --store-path {store}"
# In parse_entity_id: the single lookup's route calls it on both of its paths (service/fast_lookup.py answers
# from memory, service/routes/online.py the rest), and nothing else does.
SPIN_PATCH = (
    '    """An id from the URL: an int when it looks like one (up to 18 digits), else the text itself."""\n',
    '    """An id from the URL: an int when it looks like one (up to 18 digits), else the text itself."""\n'
    "    spin_until = time.perf_counter() + {seconds!r}  # ab benchmark: a route that does more work\n"
    "    while time.perf_counter() < spin_until:\n"
    "        pass\n",
)


def _kept_dir() -> Path:
    """A directory for the comparisons that outlives the test (printed, for reading ab.html afterwards), and that
    pytest's rotation of its own temp directories (other pytest sessions on the machine) cannot remove mid-run."""
    path = Path(tempfile.mkdtemp(prefix="ab-bench-"))
    print(f"\nab directories under {path}")
    return path


def _ab(tmp_path: Path, cwd: Path, name: str, **sides: str) -> tuple[AbResult, float]:
    config = AbConfig(pairs=PAIRS, run_seconds=RUN_SECONDS, name=name, ab_dir=tmp_path / "ab",
                      quiet_timeout_s=10.0, restart_every=RESTART_EVERY, **sides)  # type: ignore[arg-type]  # fmt: skip
    started = time.monotonic()
    result = run_ab(config, dict(os.environ), cwd, out=lambda line: None)
    return result, time.monotonic() - started


def _print(title: str, result: AbResult, elapsed_s: float) -> None:
    print(f"\n{title}: exit {result.exit_code} in {elapsed_s / 60:.1f} min at {result.arrival_rate:g} req/s "
          f"({result.path})")  # fmt: skip
    for line in result.lines:
        print("  " + line)


def _regressed(result: AbResult) -> set[str]:
    return {r.endpoint for r in result.comparison.results if r.verdict == "regression"}


@pytest.mark.benchmark(group="ab")
@pytest.mark.timeout(0)  # minutes per comparison: bounded by ab itself (its runs and its waits)
def test_a_a_passes(benchmark: object) -> None:
    benchmark.pedantic(_a_a_passes, args=(_kept_dir(),), rounds=1, iterations=1)  # type: ignore[attr-defined]


def _a_a_passes(tmp_path: Path) -> None:
    count = int(os.environ.get("AB_BENCH_AA", "3"))
    first = int(os.environ.get("AB_BENCH_AA_FIRST", "0"))  # the first seed: a proof run in parts uses each seed once
    passed, mdes = 0, {}
    for index in range(first, first + count):
        config = AbConfig(baseline=".", candidate=".", pairs=PAIRS, run_seconds=RUN_SECONDS, seed=index,
                          name=f"aa{index}", ab_dir=tmp_path / "ab", quiet_timeout_s=10.0,
                          restart_every=RESTART_EVERY)  # fmt: skip
        started = time.monotonic()
        result = run_ab(config, dict(os.environ), ROOT, out=lambda line: None)
        elapsed = time.monotonic() - started
        passed += result.exit_code == 0
        print(f"A/A seed {index} ({index - first + 1}/{count}): exit {result.exit_code} in {elapsed / 60:.1f} min; "
              f"{result.lines[0]} ({result.path})")  # fmt: skip
        for r in result.comparison.results:
            mdes.setdefault(r.name, []).append(r.mde_percent)
    print(
        f"\nA/A: {passed} of {count} passed (exit 0); {PAIRS} pairs of {RUN_SECONDS} s each, "
        f"restart every {RESTART_EVERY or 'never'}"
    )
    for name, values in mdes.items():
        print(f"  {name}: median MDE {statistics.median(values):.1f}% over {len(values)} A/As")


def _clone_with_spin(tmp_path: Path, seconds: float) -> Path:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--local", str(ROOT), str(clone)], check=True)
    route = clone / "service" / "routes" / "online.py"
    text = route.read_text(encoding="utf-8")
    old, new = SPIN_PATCH
    assert old in text, "parse_entity_id changed: update SPIN_PATCH"
    text = text.replace(old, new.format(seconds=seconds), 1)
    if "\nimport time\n" not in text:
        text = text.replace(
            "from __future__ import annotations\n", "from __future__ import annotations\n\nimport time\n", 1
        )
    route.write_text(text, encoding="utf-8")
    git = ["git", "-C", str(clone), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "checkout", "--quiet", "-b", "spin"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-am", f"lookup: spin {seconds * 1e6:.0f} us"], check=True)
    return clone


@pytest.mark.benchmark(group="ab")
@pytest.mark.timeout(0)  # minutes per comparison: bounded by ab itself (its runs and its waits)
def test_a_three_percent_code_change_is_caught_on_its_endpoint(benchmark: object) -> None:
    benchmark.pedantic(
        _a_three_percent_code_change_is_caught_on_its_endpoint, args=(_kept_dir(),), rounds=1, iterations=1
    )  # type: ignore[attr-defined]


def _a_three_percent_code_change_is_caught_on_its_endpoint(tmp_path: Path) -> None:
    probe = run_ab(AbConfig(baseline=".", candidate=".", pairs=2, run_seconds=5, name="p50", ab_dir=tmp_path / "ab",
                            quiet_timeout_s=10.0, allow_inconclusive=True), dict(os.environ), ROOT,
                   out=lambda line: None)  # fmt: skip
    lookup = next(r for r in probe.comparison.results if r.name == f"{LOOKUP} p50")
    # the quietest run's p50: a busy moment inflates it, and the spin with it (AB_BENCH_SPIN_US sets it outright)
    p50_ms = min([*lookup.baseline_values, *lookup.candidate_values])
    spin_s = float(os.environ.get("AB_BENCH_SPIN_US", 30.0 * p50_ms)) / 1e6
    clone = _clone_with_spin(tmp_path, spin_s)
    result, elapsed = _ab(tmp_path, clone, "spin3", baseline="master" if _has(clone, "master") else "main",
                          candidate="spin")  # fmt: skip
    _print(f"3% code change (lookup p50 {p50_ms:.3f} ms, spin {spin_s * 1e6:.0f} us)", result, elapsed)
    others = _regressed(result) - {LOOKUP, SERVICE}  # the service's CPU per request is the same change
    print(f"caught on the lookup: {LOOKUP in _regressed(result)}; other endpoints flagged: {sorted(others) or 'none'}")


def _has(clone: Path, branch: str) -> bool:
    return subprocess.run(["git", "-C", str(clone), "rev-parse", "--verify", "--quiet", branch],
                          capture_output=True, check=False).returncode == 0  # fmt: skip


@pytest.mark.benchmark(group="ab")
@pytest.mark.timeout(0)  # minutes per comparison: bounded by ab itself (its runs and its waits)
def test_a_two_millisecond_delay_is_caught(benchmark: object) -> None:
    benchmark.pedantic(_a_two_millisecond_delay_is_caught, args=(_kept_dir(),), rounds=1, iterations=1)  # type: ignore[attr-defined]


def _a_two_millisecond_delay_is_caught(tmp_path: Path) -> None:
    result, elapsed = _ab(tmp_path, ROOT, "delay2", baseline_cmd=SERVICE_CMD,
                          candidate_cmd=f"FEATURESTORE_INJECT_DELAY_MS=2 {SERVICE_CMD}")  # fmt: skip
    _print("2 ms injected delay", result, elapsed)
    print(f"endpoints with a regression: {sorted(_regressed(result))}")
