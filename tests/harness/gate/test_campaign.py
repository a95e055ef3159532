"""Campaigns for real: the conditions they control, fault injection reaching the embedded service, and a real
campaign run pinning its service and recording the fault.

The gate's false-alarm rate and power are proven on synthetic data (tests/harness/gate/test_stats.py); the proof on
real Locust runs (an A/A pair passes, a 2 ms delay on the single lookup fails on that endpoint alone) is a benchmark,
tests/performance/benchmarks/test_campaign_gate_bench.py: 24 runs that want the machine to themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.gate.campaign import Campaign, CampaignConfig, parse_scenario
from harness.gate.conditions import QuietCheck, split_cores, wait_until_quiet
from harness.gate.fingerprint import cpu_frequency, machine_differences, machine_fingerprint
from harness.gate.metrics_table import BadInputError
from harness.target.faults import faults_from_environment
from service.fault_specs import route_pattern
from service.faults import active_faults
from service.launcher import start_service
from service.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[3]
LOOKUP_ROUTE = "/v1/online/{group}/{feature}/{entity_id}"
LOOKUP = f"GET {LOOKUP_ROUTE}"
UNTOUCHED = ("POST /v1/online/{group}/{feature} [batch]", "GET /v1/ping")


def test_route_filters_templates_prefixes_and_bad_values() -> None:
    template = route_pattern(LOOKUP_ROUTE)
    assert template.match("/v1/online/tmdb/movie_features/42")
    assert not template.match("/v1/online/tmdb/movie_features")  # the batch lookup is another route
    assert route_pattern("/v1/online/").match("/v1/online/tmdb/movie_features")
    with pytest.raises(SettingsError, match=r"inject_delay_route='\(' is invalid"):
        Settings(inject_delay_ms=2.0, inject_delay_route="(")
    with pytest.raises(SettingsError, match=r"inject_delay_ms=-1\.0 is invalid"):
        Settings(inject_delay_ms=-1.0)
    assert active_faults(Settings()) == {}
    assert faults_from_environment({"FEATURESTORE_INJECT_DELAY_MS": "2"}) == {"inject_delay_ms": 2.0, "route": None}


def test_an_inherited_fault_variable_reaches_the_embedded_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher filters FEATURESTORE_* out of the environment it passes on, but for the fault variables: set for
    a Locust run, they must slow the service it embeds, and its /health must say so."""
    monkeypatch.setenv("FEATURESTORE_INJECT_DELAY_MS", "30")
    monkeypatch.setenv("FEATURESTORE_INJECT_DELAY_ROUTE", LOOKUP_ROUTE)
    monkeypatch.setenv("FEATURESTORE_MAX_BATCH_IDS", "3")  # any other setting stays filtered out
    with start_service({}, tmp_path / "store") as service:
        health = json.loads(urllib.request.urlopen(service.base_url + "/health", timeout=10).read())
        assert health["faults"] == {"inject_delay_ms": 30.0, "route": LOOKUP_ROUTE}

        def elapsed_ms(path: str) -> float:
            started = time.perf_counter()
            with contextlib.suppress(urllib.error.HTTPError):  # 404, no such feature: the delay comes first
                urllib.request.urlopen(service.base_url + path, timeout=10).read()
            return (time.perf_counter() - started) * 1000

        assert elapsed_ms("/v1/online/g/f/1") >= 30
        assert elapsed_ms("/v1/ping") < 30
    monkeypatch.delenv("FEATURESTORE_INJECT_DELAY_MS")
    with start_service({}, tmp_path / "store2") as service:
        assert json.loads(urllib.request.urlopen(service.base_url + "/health", timeout=10).read())["faults"] == {}


def test_scenario_arguments_are_checked() -> None:
    assert parse_scenario(["-f", "x/concurrent_users.py", "-u", "5", "-t", "3s"])["locustfile"] == "concurrent_users.py"
    for args, message in ((["-u", "5"], "need a locustfile"), (["-f", "a.py"], "must end by themselves"),
                          (["-f", "a.py", "-t", "1s", "--runs-dir", "r"], "leave --runs-dir out")):  # fmt: skip
        with pytest.raises(BadInputError, match=message):
            parse_scenario(args)


def test_quiet_wait_waits_then_records_a_busy_machine() -> None:
    readings = iter([90.0, 80.0, 5.0])
    quiet = wait_until_quiet(25.0, 10.0, lambda: QuietCheck(True, 0.0, next(readings), 1.0), sleep=lambda s: None)
    assert quiet.quiet and quiet.cpu_percent == 5.0
    busy = [{"pid": 1, "name": "chromium", "cpu_percent": 150.0}]
    stuck = wait_until_quiet(25.0, 0.0, lambda: QuietCheck(True, 0.0, 95.0, 3.0, busy), sleep=lambda s: None)
    assert not stuck.quiet and stuck.to_dict()["busy_processes"] == busy


def test_cores_split_and_cpu_frequency_readable_or_unavailable(tmp_path: Path) -> None:
    assert split_cores([0]) is None
    assert split_cores([0, 1, 2, 3]) == ([0, 1], [2, 3])
    for cpu, freq in (("cpu0", "2400000"), ("cpu1", "1200000")):
        (tmp_path / cpu / "cpufreq").mkdir(parents=True)
        (tmp_path / cpu / "cpufreq" / "scaling_governor").write_text("performance\n")
        (tmp_path / cpu / "cpufreq" / "scaling_cur_freq").write_text(freq)
    read = cpu_frequency(tmp_path)
    assert read["governors"] == ["performance"] and read["cpus"]["cpu0"]["cur_mhz"] == 2400.0
    assert cpu_frequency(tmp_path / "none")["reason"].startswith("unavailable")


def test_fingerprint_keys_the_machine_not_the_software() -> None:
    here = machine_fingerprint({}, ROOT)
    assert len(here["key"]) == 16 and here["machine"]["cpu_count_logical"] >= 1
    moved = {**here, "software": {**here["software"], "git": {"commit": "other"}}}
    assert machine_differences(here, moved) == []
    other = {**here, "machine": {**here["machine"], "cpu_model": "Other CPU"}}
    assert machine_differences(here, other)[0].startswith("cpu_model")


def test_a_campaign_run_pins_its_embedded_service_and_records_the_fault(tmp_path: Path) -> None:
    campaign = Campaign(
        CampaignConfig(locust_args=GATE_ARGS, repeat=1, warmup_s=0.5, name="pinned", campaigns_dir=tmp_path,
                       quiet_timeout_s=0.0, inject_delay_ms=1.0, inject_delay_route=LOOKUP_ROUTE),
        dict(os.environ), ROOT, out=lambda line: None,
    )  # fmt: skip
    record = campaign.run_one()
    assert record["exit_code"] == 0 and "error" not in record, record
    assert record["faults"] == {"inject_delay_ms": 1.0, "route": LOOKUP_ROUTE}
    if split_cores():
        assert record["cores"]["service_pids"], record["cores"]  # the embedded service's tree, found and pinned


GATE_ARGS = ["-f", str(ROOT / "tests" / "harness" / "gate" / "gate_locustfile.py"), "-u", "10", "-r", "10", "-t", "2s",
             "--catalog-size", "300", "--only-summary"]  # fmt: skip
