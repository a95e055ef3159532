"""User scaling: Locust steps of users against the embedded service until saturation, fitted with the USL.

    FEATURELOAD_SCALE=full pytest tests/performance/scalability/test_user_scaling.py -s     # ~8 minutes

Each step is a real harness run (``locust -f locustfiles/concurrent_users.py --headless -u N -r N -t Ss
--runs-dir ...``, its own embedded service and run directory); throughput (successful requests per second) and
p95 (nearest rank over every request) come from that run's summary.json. The Universal Scalability Law is fitted
to the steps (``harness.suites.scaling.fit_usl``): contention sigma, coherency kappa, the predicted peak concurrency and
throughput, and R^2 against the measured points (below 0.9 the suite says the model does not fit). The knee is the
highest user count whose p95 stays within the SLO (``SLO_P95_MS``). Full runs compare 1 and 2 uvicorn workers.

Load generator and service share this machine's cores, so the saturation measured is the pair's; each run's
report says whether the generator was the bottleneck (its ``generator_saturated`` finding).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
import pytest

from harness.suites.locust_step import Step, run_step
from harness.suites.scaling import fit_usl, knee, usl_throughput
from harness.suites.scaling_run import ScalingRun

ROOT = Path(__file__).resolve().parents[3]
LOCUSTFILE = "locustfiles/concurrent_users.py"
SLO_P95_MS = 50.0
STEPS = {"quick": [1, 4, 16, 48], "full": [1, 5, 10, 25, 50, 100, 200, 400]}
STEP_S = {"quick": 3, "full": 20}
WORKERS = {"quick": [1], "full": [1, 2]}


def sweep(runs_dir: Path, users: list[int], seconds: int, workers: int, run: ScalingRun) -> list[Step]:
    steps = []
    for n in users:
        step = run_step(
            LOCUSTFILE,
            users=n,
            seconds=seconds,
            runs_dir=runs_dir,
            cwd=ROOT,
            extra=["--catalog-size", "2000", "--service-workers", str(workers)],
        )
        assert step.exit_code == 0, step.stderr_tail
        steps.append(step)
        run.add(
            service_workers=workers,
            users=n,
            ok_rps=step.ok_rps,
            p95_ms=step.p95_ms,
            failure_ratio=step.headline.get("failure_ratio"),
            service_cpu_max_percent=step.headline.get("service_cpu_max_percent"),
            run_dir=str(step.run_dir),
        )
        run.say(
            f"{workers} worker(s), {n:>4} users: {step.ok_rps or 0:8,.1f} req/s, p95 {step.p95_ms} ms, "
            f"service CPU max {step.headline.get('service_cpu_max_percent')}% ({step.run_dir.name})"
        )
    return steps


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the full scale runs for minutes
def test_throughput_and_p95_per_user_step_fitted_with_the_usl(
    scale: str, scaling_root: Path, new_scaling_run: Callable[[str], ScalingRun]
) -> None:
    run = new_scaling_run("user_scaling")
    figure = go.Figure()
    for workers in WORKERS[scale]:
        steps = sweep(scaling_root / "user_scaling-steps", STEPS[scale], STEP_S[scale], workers, run)
        users = [s.users for s in steps]
        rps = [s.ok_rps or 0.0 for s in steps]
        usl = fit_usl(users, rps)
        found = knee(users, [s.p95_ms for s in steps], SLO_P95_MS)
        run.fit(
            f"usl/{workers}",
            {
                "kind": "usl",
                "service_workers": workers,
                "slo_p95_ms": SLO_P95_MS,
                "knee_users": found,
                "users": users,
                "rps": rps,
                **usl.to_dict(),
            },
        )
        run.say(f"{workers} worker(s): {usl.line()}")
        run.say(f"{workers} worker(s): knee {found} users (highest step with p95 <= {SLO_P95_MS:g} ms)")
        figure.add_trace(go.Scatter(x=users, y=rps, mode="markers", name=f"measured, {workers} worker(s)"))
        grid = [1 + i * (max(users) * 1.5 - 1) / 200 for i in range(201)]
        figure.add_trace(
            go.Scatter(
                x=grid,
                y=[usl_throughput(g, usl.lam, usl.sigma, usl.kappa) for g in grid],
                mode="lines",
                name=f"USL, {workers} worker(s), R^2 {usl.r_squared:.2f}",
            )
        )
        empty = [(s.users, s.headline, str(s.run_dir), s.stderr_tail[-800:]) for s in steps if not s.ok_rps]
        assert not empty, f"steps without a successful request (users, headline, run dir, stderr): {empty}"
        assert 0.0 <= usl.sigma <= 1.0 and usl.kappa >= 0.0
    figure.update_layout(
        title="throughput against users (each point a Locust run; lines: USL fit)",
        xaxis={"title": "users"},
        yaxis={"title": "successful requests/s"},
    )
    run.write(figure)
