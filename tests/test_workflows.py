"""The CI workflows (.github/workflows): every file passes actionlint, and the pull-request gate is the same-machine
A/B of issue 16: `harness ab` with the merge base as --baseline and the head as --candidate, in one job, with no
baseline restored from a cache (a cached baseline was measured on another runner). The stored baselines stay in
the nightly history workflow, for pushes to main and the schedule only.

actionlint comes from the dev extras (`make setup` installs it into .venv/bin); it runs with ShellCheck and
pyflakes off, so that its verdict does not depend on which of them a machine happens to have on PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files, f"no workflow in {WORKFLOWS}"
    return files


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def _triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on:` key as True
    if isinstance(on, str):
        return {on}
    return set(on or ())


def _pr_workflows() -> list[tuple[Path, dict[str, Any]]]:
    found = [(p, w) for p in _workflow_files() if {"pull_request", "pull_request_target"} & _triggers(w := _load(p))]
    assert found, "no workflow runs on pull_request"
    return found


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def test_actionlint_passes_on_every_workflow() -> None:
    actionlint = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert actionlint, (
        f"actionlint is not installed in {Path(sys.executable).parent}: run `make setup` "
        "(the dev extras in pyproject.toml install it; make test runs setup first)"
    )
    files = _workflow_files()
    proc = subprocess.run(
        [actionlint, "-no-color", "-shellcheck=", "-pyflakes=", *[str(f) for f in files]],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"actionlint exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}"


def test_pull_requests_are_gated_by_ab_against_the_merge_base() -> None:
    for path, workflow in _pr_workflows():
        jobs = workflow.get("jobs") or {}
        ab_jobs = [
            (name, job) for name, job in jobs.items()
            if any("harness ab" in str(step.get("run", "")) for step in _steps(job))
        ]  # fmt: skip
        assert ab_jobs, f"{path.name}: no pull-request job runs `python -m harness ab`"
        for name, job in ab_jobs:
            steps = _steps(job)
            checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@"))
            assert (checkout.get("with") or {}).get("fetch-depth") == 0, (
                f"{path.name} job {name}: checkout needs fetch-depth: 0 for the merge base"
            )
            merge_base = [s for s in steps if "git merge-base" in str(s.get("run", ""))]
            assert merge_base, f"{path.name} job {name}: no step computes the merge base"
            base_var = re.search(r"echo \"(\w+)=\$\w+\" >> \"\$GITHUB_ENV\"", merge_base[0]["run"])
            assert base_var, f"{path.name} job {name}: the merge base is not exported to $GITHUB_ENV"
            run = next(str(s["run"]) for s in steps if "harness ab" in str(s.get("run", "")))
            assert steps.index(merge_base[0]) < next(i for i, s in enumerate(steps) if s.get("run") == run)
            command = " ".join(line for line in run.splitlines() if "harness ab" in line)
            assert re.search(rf"--baseline \"?\${base_var.group(1)}\b", command), (
                f"{path.name} job {name}: --baseline is not the merge base ${base_var.group(1)}: {command}"
            )
            assert "--candidate HEAD" in command, f"{path.name} job {name}: the candidate is not HEAD: {command}"
            assert "GITHUB_STEP_SUMMARY" in run and "ab.md" in run, f"{path.name} job {name}: ab.md not in summary"
            assert re.search(r"^\s*exit \"?\$code\"?", run, re.M), f"{path.name} job {name}: ab's exit code is lost"


def test_no_pull_request_step_restores_a_baseline_cache() -> None:
    for path, workflow in _pr_workflows():
        for name, job in (workflow.get("jobs") or {}).items():
            for step in _steps(job):
                uses = str(step.get("uses", ""))
                assert not uses.startswith("actions/cache"), (
                    f"{path.name} job {name}: step {step.get('name', uses)!r} uses {uses} on pull requests"
                )
                assert "baselines/" not in str(step.get("with", "")), f"{path.name} job {name}: {step}"


def test_stored_baselines_stay_for_the_history_on_main() -> None:
    history = [
        (p, w) for p in _workflow_files()
        if "compare main" in p.read_text(encoding="utf-8") and not {"pull_request"} & _triggers(w := _load(p))
    ]  # fmt: skip
    assert history, "no workflow outside pull requests keeps the stored-baseline comparison"
    for path, workflow in history:
        assert {"push", "schedule"} & _triggers(workflow), f"{path.name}: neither on push to main nor scheduled"
        text = path.read_text(encoding="utf-8")
        assert "actions/cache/restore@" in text and "actions/cache/save@" in text, path.name
        assert '"verdict": "no regression"' in text, f"{path.name}: the baseline is no longer kept on a non-pass"
