"""The generator_memory_growing finding (harness.report.rundata.analysis): the load generator's RSS rising over a run,
as it did when each user built its own id pool (~7 MB per user: 256 MB to 960 MB at 100 users)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.recording.recorder import ArrowStreamWriter, read_stream
from harness.report.rundata.analysis import RULES, analyze
from harness.report.rundata.view import load_view
from tests.run_fixtures import MB, STARTED_S, make_run_dir


def _grow_generator_rss(run_dir: Path, growth_mb: float, duration_s: float) -> None:
    """Rewrite samples.arrows with the generator's RSS rising linearly by ``growth_mb`` over the run."""
    path = run_dir / "samples.arrows"
    table = read_stream(path)
    generator = pc.equal(table.column("scope"), "generator").to_numpy(zero_copy_only=False)
    elapsed = np.clip((table.column("ts_s").to_numpy() - STARTED_S) / duration_s, 0.0, 1.0)
    rss = table.column("rss_bytes").to_numpy().astype(np.float64)
    rss = np.where(generator, rss + growth_mb * MB * elapsed, rss).astype(np.int64)
    table = table.set_column(table.schema.get_field_index("rss_bytes"), "rss_bytes", pa.array(rss))
    path.unlink()
    writer = ArrowStreamWriter(path, table.schema)
    for batch in table.to_batches(max_chunksize=1000):
        writer.write(batch)
    writer.close()


def test_a_generator_whose_memory_grows_is_a_finding(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, duration_s=60.0, users=100)
    _grow_generator_rss(run_dir, growth_mb=700.0, duration_s=60.0)
    findings = {f.kind: f for f in analyze(load_view(run_dir))}
    assert "generator_memory_growing" in findings, list(findings)
    found = findings["generator_memory_growing"]
    assert found.severity == "warning"
    assert 650 <= found.evidence["rss_growth_mb"] <= 710
    assert found.evidence["users"] == 100 and 6.5 <= found.evidence["growth_mb_per_user"] <= 7.1
    assert "MB per user at 100 users" in found.message and "share" in found.suggestion
    assert "generator_memory_growing" in RULES


def test_a_generator_with_flat_memory_is_no_finding(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, duration_s=60.0, users=100)
    _grow_generator_rss(run_dir, growth_mb=20.0, duration_s=60.0)  # the users' own state, shared pool
    assert "generator_memory_growing" not in {f.kind for f in analyze(load_view(run_dir))}
