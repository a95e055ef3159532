"""The regression gate on this machine, printed, not asserted: what it can detect with N = 10, and what a campaign
costs beyond its runs.

    pytest tests/performance/benchmarks/test_gate_bench.py --benchmark-only -s
    GATE_BENCH_RUN_TIME=30s GATE_BENCH_REPEAT=10 pytest ... -s     (longer runs: less noise, smaller effects)

One real campaign of the concurrent_users scenario (10 runs); from its run-to-run spread (robust SD: 1.4826 x
MAD), the minimum detectable effect with N = 10 per side at 80% power (harness.gate.stats.min_detectable_effect, alpha
0.05 divided by the gated metrics, the correction's worst case) for the lookup's p50 and p99 and the total
throughput; and the campaign's overhead (campaign.json ``timing``: its own work, and the wait for a quiet machine).
Then, in the same run, an A/A of ``python -m harness ab`` at 10 pairs (its defaults: duet, 20 s runs) and each MDE
beside the campaign's (GATE_BENCH_AB=0 leaves it out, GATE_BENCH_AB_RUN_SECONDS sets its runs' length).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from harness.gate import stats
from harness.gate.ab import AbConfig, run_ab
from harness.gate.campaign import CampaignConfig, run_campaign
from harness.gate.metrics_table import SERVICE
from harness.gate.paired import minimum_detectable_effect

ROOT = Path(__file__).resolve().parents[3]
LOOKUP = "GET /v1/online/{group}/{feature}/{entity_id}"


@pytest.mark.benchmark(group="gate")
@pytest.mark.timeout(0)  # a campaign and an ab: minutes, bounded by their own runs
def test_minimum_detectable_effect_and_campaign_overhead(benchmark: object, tmp_path: Path) -> None:
    repeat = int(os.environ.get("GATE_BENCH_REPEAT", "10"))
    run_time = os.environ.get("GATE_BENCH_RUN_TIME", "10s")
    args = [
        "-f",
        str(ROOT / "locustfiles" / "concurrent_users.py"),
        "-u",
        "50",
        "-r",
        "50",
        "-t",
        run_time,
        "--only-summary",
    ]
    config = CampaignConfig(locust_args=args, repeat=repeat, warmup_s=2.0, name="bench", campaigns_dir=tmp_path)
    path = benchmark.pedantic(  # type: ignore[attr-defined]
        run_campaign, args=(config, dict(os.environ), ROOT), kwargs={"out": print}, rounds=1, iterations=1
    )
    table = pq.read_table(path / "metrics.parquet").to_pylist()
    gated = {(r["endpoint"], r["metric"]) for r in table if r["endpoint"] not in ("Aggregated",)}
    alpha = 0.05 / max(1, len(gated))
    print(f"\ncampaign {path.name}: {repeat} runs of {run_time}; alpha per test {alpha:.4f} ({len(gated)} metrics)")
    campaign_mde: dict[str, float] = {}
    for endpoint, metric in ((LOOKUP, "p50"), (LOOKUP, "p99"), ("Aggregated", "throughput_rps"),
                             (SERVICE, "service_cpu_ms_per_request")):  # fmt: skip
        values = np.asarray([r["value"] for r in table if (r["endpoint"], r["metric"]) == (endpoint, metric)])
        values = values[np.isfinite(values)]
        if values.size < 2:
            print(f"{endpoint} {metric}: not measured in enough runs ({values.size})")
            continue
        sd, median = stats.robust_sd(values), statistics.median(values)
        mde = stats.min_detectable_effect(sd, 10, alpha=alpha)
        campaign_mde[f"{endpoint} {metric}"] = 100.0 * mde / median
        print(
            f"{endpoint} {metric}: median {median:.4g}, run-to-run robust SD {sd:.3g} ({sd / median:.1%}); "
            f"minimum detectable effect with N=10: {mde:.3g} ({mde / median:.1%} of the median)"
        )
    timing = json.loads((path / "campaign.json").read_text())["timing"]
    print(
        f"campaign overhead beyond the runs: own work {timing['own_overhead_s']} s "
        f"({timing['own_overhead_ratio']:.1%} of {timing['runs_s']} s of runs), waiting for a quiet machine "
        f"{timing['quiet_wait_s']} s; total {timing['overhead_ratio']:.1%} (target <= 5%)"
    )
    if os.environ.get("GATE_BENCH_AB", "1") != "1":
        return
    # the same machine, the same hour: ab's A/A at 10 pairs, its MDE beside the campaign's
    seconds = int(os.environ.get("GATE_BENCH_AB_RUN_SECONDS", AbConfig.run_seconds))
    result = run_ab(AbConfig(baseline=".", candidate=".", pairs=10, run_seconds=seconds, name="bench-aa",
                             ab_dir=tmp_path / "ab", quiet_timeout_s=10.0), dict(os.environ), ROOT,
                    out=lambda line: None)  # fmt: skip
    ab_mde = {r.name: minimum_detectable_effect(r.log_ratios, pairs=10) for r in result.comparison.results}
    print(f"\nab A/A: exit {result.exit_code}; {result.lines[0]}")
    print(
        f"\nminimum detectable effect at N = 10 (campaign: runs per side; ab {result.path.name}: pairs, "
        f"{result.arrival_rate:g} req/s duet, {seconds} s runs)\n  goal for ab: lookup p50 <= 3%, p99 <= 10%, "
        "CPU/request <= 2%"
    )
    rows = [("lookup p50", f"{LOOKUP} p50", f"{LOOKUP} p50"), ("lookup p99", f"{LOOKUP} p99", f"{LOOKUP} p99"),
            ("service CPU per request", f"{SERVICE} service_cpu_ms_per_request", "service cpu_ms_per_request"),
            ("lookup server-side mean", None, f"{LOOKUP} server_mean_ms")]  # fmt: skip
    for label, campaign_key, ab_key in rows:
        left = campaign_mde.get(campaign_key or "", math.nan)
        print(f"  {label:28s} campaign {left:6.1f}%   ab {ab_mde.get(ab_key, math.nan):6.1f}%")
