"""Injected faults are recorded in every run's metadata and shown on its report (harness.target.faults): a run against a
slowed service must never pass for a real measurement of the build."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report.summary import faults_summary
from harness.target.faults import describe_faults
from tests.locust_runs import run_locust


def test_the_banner_names_the_delay_its_route_and_the_stall() -> None:
    faults = {"inject_delay_ms": 2.0, "route": "/v1/online/", "inject_stall": "1/10", "stall_s": 1.0, "every_s": 10.0}
    banner = describe_faults(faults)
    assert banner is not None
    assert "2.0 ms delay on route /v1/online/" in banner and "stall 1 s every 10 s" in banner
    assert describe_faults({"inject_stall": "0.5/5"}) == (
        "injected fault: event-loop stall 0.5 s every 5 s (not a real measurement of the build)"
    )
    assert describe_faults({}) is None


def test_a_service_that_did_not_say_falls_back_to_the_recorded_variables() -> None:
    env = {"environment": {"env": {"FEATURESTORE_INJECT_DELAY_MS": "3"}}}
    unknown = faults_summary({"service_faults": None, **env})
    assert unknown["active"] == {"inject_delay_ms": 3.0, "route": None}
    assert "did not say" in unknown["source"]
    asked = faults_summary({"service_faults": {}, **env})  # the service said: none, whatever the variables
    assert asked["banner"] is None and "GET /health" in asked["source"]


@pytest.mark.slow
def test_an_injected_run_is_recorded_and_bannered_a_clean_one_is_not(service_factory, tmp_path: Path) -> None:
    faulted = run_locust(
        tmp_path / "faulted", "-u", "2", "-r", "2", "-t", "2s", "--catalog-size", "300",
        env={"FEATURESTORE_INJECT_DELAY_MS": "2", "FEATURESTORE_INJECT_STALL": "0.2/4"},
    )  # fmt: skip
    assert faulted.code == 0, faulted.stderr[-3000:]
    recorded = faulted.metadata["service_faults"]  # asked of the embedded service (GET /health) at the start
    assert recorded["inject_delay_ms"] == 2.0 and recorded["route"] is None
    assert (recorded["stall_s"], recorded["every_s"]) == (0.2, 4.0)  # the stall variable reached the service too
    banner = faulted.summary["faults"]["banner"]
    assert banner.startswith("injected fault: 2.0 ms delay on every request; event-loop stall 0.2 s every 4 s")
    html = faulted.report_html
    assert 'id="fault-banner"' in html and html.index('id="fault-banner"') < html.index('id="headline"')
    assert banner.upper() in html
    assert banner.upper() in (faulted.run_dir / "summary.md").read_text()

    clean_service = service_factory()  # -H: a service the harness did not start, with no fault
    clean = run_locust(tmp_path / "clean", "-H", clean_service.base_url, "--load-catalog", "--catalog-size", "300",
                       "-u", "2", "-r", "2", "-t", "2s")  # fmt: skip
    assert clean.code == 0, clean.stderr[-3000:]
    assert clean.metadata["service_faults"] == {}  # asked, and the service said: none
    assert clean.summary["faults"]["banner"] is None
    assert 'id="fault-banner"' not in clean.report_html
    assert "INJECTED FAULT" not in (clean.run_dir / "summary.md").read_text()
