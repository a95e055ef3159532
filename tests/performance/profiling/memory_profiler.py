"""Memory profile of the service under memory pressure: tracemalloc snapshot diffs, top allocation sites, growth.

    python -m memory_profiler tests/performance/profiling/memory_profiler.py     # the seed's command: adds
                                                                                # line-by-line RSS of pressure()
    python tests/performance/profiling/memory_profiler.py [--rounds 5] [--megabytes 64] [--runs-dir runs]

The service runs in this process (``service.app.create_app`` behind Starlette's TestClient: the real routes,
store and cache, no new endpoint and so no new attack surface), so tracemalloc sees its allocations. The
pressure repeats the memory_pressure scenario's requests: a catalog load, frames materialised by
``POST /v1/load/memory``, large pages read, batch lookups. A snapshot is taken after the warm-up and after each
round; the report lists the top allocation sites (by file and line) still held at the end, and the growth between
the first and the last snapshot per site: a site that grows every round is a leak suspect. numpy and pyarrow
buffers are seen where they come from Python's allocator (numpy reports to tracemalloc; Arrow's own pool does
not: its bytes are given apart, from ``pyarrow.total_allocated_bytes()``).

Writes ``runs/<stamp>-profiling-memory/``: memory_profile.json and memory_profile.md.
"""

from __future__ import annotations

import argparse
import builtins
import gc
import itertools
import sys
import tempfile
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from harness.recording.rundir import RunDirectory  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

TOKEN = "memory-profile-token"
TOP = 15
MB = 2**20
# memory_profiler's line-by-line report when run as `python -m memory_profiler <this file>`; a no-op otherwise
profile: Callable[[Callable[..., Any]], Callable[..., Any]] = builtins.__dict__.get("profile", lambda f: f)


def _site(stat: tracemalloc.Statistic | tracemalloc.StatisticDiff) -> str:
    frame = stat.traceback[0]
    path = frame.filename
    for marker in ("site-packages/", str(ROOT) + "/"):
        path = path.split(marker, 1)[-1]
    return f"{path}:{frame.lineno}"


@profile
def pressure(client: Any, megabytes: float) -> None:
    """One round of the memory_pressure scenario, in process."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert (
        client.post("/v1/load/memory", json={"megabytes": megabytes, "hold_s": 0}, headers=headers).status_code == 200
    )
    for offset in range(0, 5_000, 1_000):
        page = client.get(f"/v1/groups/tmdb/features/movie_features?limit=1000&offset={offset}")
        assert page.status_code == 200
    for start in range(1, 2_000, 500):
        batch = client.post("/v1/online/tmdb/movie_features", json={"entity_ids": list(range(start, start + 500))})
        assert batch.status_code == 200


def run(rounds: int, megabytes: float, catalog: int) -> dict[str, Any]:
    from starlette.testclient import TestClient

    process = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="featureload-memprof-") as store:
        settings = Settings(store_path=Path(store), write_token=TOKEN)
        tracemalloc.start(10)
        with TestClient(create_app(settings)) as client:
            loaded = client.post(
                "/v1/catalog/load", json={"movies": catalog, "seed": 1}, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert loaded.status_code == 200, loaded.text[:300]
            pressure(client, megabytes)  # warm-up: caches, indexes, first-use imports
            gc.collect()
            snapshots = [tracemalloc.take_snapshot()]
            rss = [process.memory_info().rss]
            traced = [tracemalloc.get_traced_memory()[0]]
            for _ in range(rounds):
                pressure(client, megabytes)
                gc.collect()
                snapshots.append(tracemalloc.take_snapshot())
                rss.append(process.memory_info().rss)
                traced.append(tracemalloc.get_traced_memory()[0])
            peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    filters = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ]
    first, last = (s.filter_traces(filters) for s in (snapshots[0], snapshots[-1]))
    top = [{"site": _site(s), "bytes": s.size, "blocks": s.count} for s in last.statistics("lineno")[:TOP]]
    growth = [
        {"site": _site(d), "growth_bytes": d.size_diff, "bytes": d.size, "blocks_growth": d.count_diff}
        for d in last.compare_to(first, "lineno")[:TOP]
        if d.size_diff > 0
    ]
    per_round = [(b - a) for a, b in itertools.pairwise(traced)]
    return {
        "rounds": rounds,
        "megabytes_per_round": megabytes,
        "catalog_movies": catalog,
        "traced_bytes": traced,
        "rss_bytes": rss,
        "traced_peak_bytes": peak,
        "traced_growth_per_round_bytes": per_round,
        "arrow_pool_bytes": pa.total_allocated_bytes(),
        "top_sites": top,
        "growth_sites": growth,
        "method": "tracemalloc (10 frames), snapshots after gc.collect() following the warm-up and each round; "
        "growth = last snapshot minus the first, per allocating line",
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"## Memory profile: {result['rounds']} rounds of memory pressure ({result['megabytes_per_round']:g} MB "
        f"frames, catalog of {result['catalog_movies']:,} movies)",
        "",
        f"Traced (Python allocator) per snapshot: {', '.join(f'{b / MB:.1f}' for b in result['traced_bytes'])} MB; "
        f"peak {result['traced_peak_bytes'] / MB:.1f} MB. RSS: "
        f"{', '.join(f'{b / MB:.0f}' for b in result['rss_bytes'])} MB.",
        "",
        "### Top allocation sites (held)",
        "",
    ]
    lines += [f"- {s['site']}: {s['bytes'] / MB:.2f} MB in {s['blocks']:,} blocks" for s in result["top_sites"]]
    lines += ["", "### Growth between the first and the last snapshot", ""]
    lines += [f"- {s['site']}: +{s['growth_bytes'] / 1024:.1f} KB" for s in result["growth_sites"]] or ["- none"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--megabytes", type=float, default=64.0)
    parser.add_argument("--catalog", type=int, default=20_000)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    args = parser.parse_args(argv)
    result = run(args.rounds, args.megabytes, args.catalog)
    run_dir = RunDirectory(args.runs_dir, "profiling-memory")
    run_dir.write_json("memory_profile.json", result)
    text = markdown(result)
    run_dir.file("memory_profile.md").write_text(text, encoding="utf-8")
    print(text + f"\nwrote {run_dir.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
