"""harness.locust_side.options: the harness's options in `locust --help` as their own group, each settable by
environment variable (thresholds included) and by locust.conf / [tool.locust], as Locust's own are. Locust is imported
in subprocesses only (importing it patches this process)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.locust_side.options import ENV_ONLY, GROUP_TITLE, OPTION_ENV_VARS, OPTIONS
from harness.verdict.thresholds import split_thresholds

ROOT = Path(__file__).resolve().parents[3]

_PARSE = """
import json, sys
import locust
from locust.argument_parser import get_parser
from harness.locust_side.options import add_arguments
locust.events.init_command_line_parser.add_listener(add_arguments)
options = get_parser().parse_args(sys.argv[1:])
print(json.dumps({k: options.__dict__[k] for k in ("threshold", "catalog_size", "runs_dir", "progress",
                  "load_catalog", "sample_interval", "service_workers", "profile")}))
"""


def parse(cwd: Path, *args: str, **env: str) -> dict:
    """The harness's options as Locust's parser reads them in ``cwd`` (its config files) with ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURELOAD_", "LOCUST_"))}
    result = subprocess.run([sys.executable, "-c", _PARSE, *args], cwd=cwd, capture_output=True, text=True,
                            env={**clean, **env, "PYTHONPATH": str(ROOT)}, timeout=60, check=True)  # fmt: skip
    return json.loads(result.stdout)


def test_every_option_has_its_variable(tmp_path: Path) -> None:
    values = {"threshold": "p95 < 50ms; failure_ratio < 1%\nrps > 2", "catalog_size": "123", "runs_dir": "there",
              "progress": "false", "load_catalog": "true", "sample_interval": "0.5",
              "service_workers": "3"}  # fmt: skip
    env = {OPTION_ENV_VARS[k]: v for k, v in values.items()}
    options = parse(tmp_path, **env)
    assert split_thresholds(options["threshold"]) == ["p95 < 50ms", "failure_ratio < 1%", "rps > 2"]
    assert (options["catalog_size"], options["runs_dir"], options["progress"]) == (123, "there", False)
    assert (options["load_catalog"], options["sample_interval"], options["service_workers"]) == (True, 0.5, 3)
    assert parse(tmp_path, "--threshold", "p99 < 1s", **env)["threshold"] == ["p99 < 1s"]  # the flag wins


def test_locust_conf_sets_harness_options(tmp_path: Path) -> None:
    (tmp_path / "locust.conf").write_text(
        "catalog-size = 77\nthreshold = [p95 < 5ms, rps > 1]\nprogress = false\nprofile = smoke\n"
    )
    options = parse(tmp_path)
    assert (options["catalog_size"], options["threshold"], options["progress"]) == (77, ["p95 < 5ms", "rps > 1"], False)
    assert options["profile"] == "smoke"
    assert parse(tmp_path, **{OPTION_ENV_VARS["catalog_size"]: "5"})["catalog_size"] == 5  # the variable wins


def test_pyproject_tool_locust_sets_harness_options(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.locust]\ncatalog-size = 88\nthreshold = ["p95 < 5ms; failure_ratio < 2%"]\nruns-dir = "from-pyproject"\n'
    )
    options = parse(tmp_path)
    assert (options["catalog_size"], options["runs_dir"]) == (88, "from-pyproject")
    assert split_thresholds(options["threshold"]) == ["p95 < 5ms", "failure_ratio < 2%"]


@pytest.mark.slow
def test_a_real_run_reads_the_threshold_variable_and_locust_conf(tmp_path: Path) -> None:
    """FEATURELOAD_THRESHOLD's second threshold, and locust.conf's catalog-size, reach a real run (refused at once)."""

    def run(**env: str) -> str:
        command = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles/concurrent_users.py"), "--headless",
                   "-t", "30s", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
        result = subprocess.run(command, cwd=tmp_path, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                                capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert result.returncode == 2, result.stderr[-2000:]
        return result.stderr

    assert "threshold 'GET /nope: p99 < 5ms' names an unknown endpoint" in run(
        FEATURELOAD_THRESHOLD="p95 < 50ms;GET /nope: p99 < 5ms"
    )
    (tmp_path / "locust.conf").write_text("catalog-size = 0\n")
    assert "--catalog-size 0: the catalog needs at least 1 movie" in run()


def test_locust_help_shows_the_harness_group() -> None:
    subprocess.run([sys.executable, "-m", "harness._locust_hook", "install"], cwd=ROOT, check=True, timeout=60)
    result = subprocess.run([sys.executable, "-m", "locust", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    assert f"{GROUP_TITLE}:" in result.stdout
    group = result.stdout.split(f"{GROUP_TITLE}:", 1)[1]
    for flag in ("--threshold", "--runs-dir", "--catalog-size", "--load-catalog", "--progress, --no-progress"):
        assert flag in group
    assert "FEATURELOAD_THRESHOLD" in " ".join(group.split())
    profile_help = " ".join(result.stdout.split("--profile PROFILE", 1)[1].split("\n  -")[0].split())
    assert profile_help.startswith("named load profile") and "smoke, ramp" in profile_help


def _help_group() -> str:
    """The harness's group of ``locust --help`` (the .pth hook installed as make does), whitespace collapsed."""
    installed = subprocess.run([sys.executable, "-m", "harness._locust_hook", "install"], cwd=ROOT,
                               capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    assert "Warning" not in installed.stderr, installed.stderr  # make run calls it before each run
    result = subprocess.run([sys.executable, "-m", "locust", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    assert "Warning" not in result.stderr, result.stderr
    return " ".join(result.stdout.split(f"{GROUP_TITLE}:", 1)[1].split("Examples:", 1)[0].split())


def test_locust_help_lists_every_declared_option_with_its_variable() -> None:
    """harness.locust_side.options.OPTIONS is the one declaration: each option shows in `locust --help` with its
    variable (the open model's, --request-log and --http-client were registered elsewhere and were missing)."""
    group = _help_group()
    for option in OPTIONS:
        assert f" {option.flag}" in f" {group}", f"{option.flag} missing from locust --help"
        assert f"[env var: {option.env}]" in group, f"{option.env} missing from locust --help"
    declared = {o.flag for o in OPTIONS}
    for flag in ("--arrival-rate", "--arrival-process", "--max-in-flight", "--connections", "--request-log",
                 "--http-client"):  # fmt: skip
        assert flag in declared


def test_installing_the_help_hook_prints_no_runtime_warning() -> None:
    """`python -m harness._locust_hook install` (make run's first step) ran with the .pth importing that very
    module at start-up: runpy printed a RuntimeWarning on every run."""
    for _ in range(2):  # the second time with the .pth the first one wrote
        done = subprocess.run([sys.executable, "-m", "harness._locust_hook", "install"], cwd=ROOT,
                              capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
        assert "RuntimeWarning" not in done.stderr, done.stderr


_ADDED = """
import importlib.util, json, sys
from pathlib import Path
import locust
from locust.argument_parser import get_parser
from harness.locust_side.options import GROUP_TITLE

def flags(parser):
    return {s for action in parser._actions for s in action.option_strings}

bare = flags(get_parser())
import harness.plugin  # noqa: every listener the harness registers, as a locustfile's import does
for path in sorted(Path("locustfiles").glob("*.py")):  # and whatever a scenario would add
    spec = importlib.util.spec_from_file_location(f"_lf_{path.stem}", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
parser = get_parser()
group = next(g for g in parser._action_groups if g.title == GROUP_TITLE)
print(json.dumps({
    "added": sorted(flags(parser) - bare),
    "group": {a.option_strings[0]: getattr(a, "env_var", None) for a in group._group_actions},
}))
"""


def test_every_option_the_harness_adds_to_locust_is_declared_in_options() -> None:
    """What the harness (plugin and locustfiles imported) adds to Locust's parser is exactly OPTIONS, all in the
    harness's group, each with its FEATURELOAD_* variable: an option registered anywhere else would show here."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURELOAD_", "LOCUST_"))}
    result = subprocess.run([sys.executable, "-c", _ADDED], cwd=ROOT, capture_output=True, text=True,
                            env={**clean, "PYTHONPATH": str(ROOT)}, timeout=120, check=True)  # fmt: skip
    found = json.loads(result.stdout)
    negations = {"--no-" + o.flag[2:] for o in OPTIONS if o.kwargs.get("action") is argparse.BooleanOptionalAction}
    assert found["added"] == sorted({o.flag for o in OPTIONS} | negations)
    assert found["group"] == {o.flag: o.env for o in OPTIONS}


def test_every_featureload_variable_named_in_the_harness_or_readme_is_an_option() -> None:
    """A FEATURELOAD_* variable named in harness/ or README.md is one a declared option reads, or one of
    ``ENV_ONLY`` (a secret, never a flag; the scalability suites' size), so no text points at a variable nothing
    reads."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "harness").rglob("*.py"))]
    texts.append((ROOT / "README.md").read_text(encoding="utf-8"))
    named = {m for text in texts for m in re.findall(r"FEATURELOAD_[A-Z0-9_]*[A-Z0-9]", text)}
    assert named - set(ENV_ONLY) <= set(OPTION_ENV_VARS.values()), sorted(
        named - set(ENV_ONLY) - set(OPTION_ENV_VARS.values())
    )
    assert not set(ENV_ONLY) & set(OPTION_ENV_VARS.values())
