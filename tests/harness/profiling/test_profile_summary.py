"""harness.profiling.profile_summary: py-spy stacks and cProfile stats to layers, top functions, speedscope and a flame
graph; harness.report.profile shows it in the report."""

from __future__ import annotations

import cProfile
import json
from pathlib import Path

from harness.profiling.profile_summary import (
    flamegraph_svg,
    layer_of,
    read_collapsed,
    speedscope,
    summarize_pstats,
    summarize_stacks,
    write_outputs,
)
from harness.report.profile import with_profile_section

SITE = "/x/.venv/lib/python3.11/site-packages"
ROOT = 'process 42:"python -m service";run (uvicorn/main.py:10)'
ROUTE = f"{ROOT};get_entity (/repo/service/routes/online.py:40)"
RAW = (
    f"{ROUTE};dumps (/repo/service/responses.py:45) 30\n"
    f"{ROUTE};lookup (/repo/features/store/feature_store.py:410) 50\n"
    f"{ROOT};send ({SITE}/uvicorn/protocols/http/httptools_impl.py:524) 20\n"
    "garbage line without a count\n"
)


def test_layers_follow_the_innermost_known_frame() -> None:
    assert layer_of(f"{SITE}/starlette/routing.py") == "http"
    assert layer_of(f"{SITE}/pydantic/main.py") == "framework"
    assert layer_of("/repo/features/store/cache.py") == "store"
    assert layer_of("/repo/features/engineering/tmdb_processor.py") == "pipeline"
    assert layer_of(f"{SITE}/pyarrow/ipc.py") == "serialization"
    assert layer_of("/repo/service/responses.py", "dumps") == "serialization"
    assert layer_of("/usr/lib/python3.11/threading.py") == "other"


def test_stacks_summarize_into_layers_top_functions_and_routes(tmp_path: Path) -> None:
    stacks = read_collapsed(RAW)
    assert len(stacks) == 3 and sum(count for _, count in stacks) == 100
    summary = summarize_stacks(stacks, rate_hz=100, window_s=1.0, pids=[42])
    shares = {row["layer"]: row["share"] for row in summary["layers"]}
    assert shares["store"] == 0.5 and shares["serialization"] == 0.3 and shares["http"] == 0.2
    assert summary["top_self"][0]["function"] == "lookup"
    assert summary["top_cumulative"][0]["cumulative"] == 100  # run is on every stack, counted once each
    route = summary["routes"][0]
    assert route["samples"] == 80 and route["layers"]["serialization"] == 30 / 80
    scope = speedscope(stacks, "t")
    assert scope["profiles"][0]["weights"] == [30, 50, 20] and len(scope["shared"]["frames"]) == 5
    svg = flamegraph_svg(stacks, "t")
    assert svg.startswith("<svg") and "lookup" in svg
    write_outputs(tmp_path, stacks, summary)
    page = with_profile_section('<html><body><footer class="note">x</footer></body></html>', tmp_path)
    assert page.index('id="profile"') < page.index("<footer") and "Where the time goes" in page
    assert with_profile_section("<body></body>", tmp_path / "none") == "<body></body>"


def test_cprofile_stats_summarize_by_self_and_cumulative_seconds(tmp_path: Path) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    json.dumps([list(range(50)) for _ in range(2000)])
    profiler.disable()
    profiler.dump_stats(tmp_path / "p.prof")
    summary = summarize_pstats(tmp_path / "p.prof")
    assert summary["source"] == "cProfile" and summary["unit"] == "seconds" and summary["total"] > 0
    assert any(row["layer"] == "serialization" and row["share"] > 0 for row in summary["layers"])
