"""CPU profile of the service under load: where its time goes, by function and by layer.

    python tests/performance/profiling/cpu_profiler.py [--scenario concurrent_users] [--users 50] [--seconds 20]
                                                       [--window 10s@5s] [--runs-dir runs] [--cprofile]
    python -m cProfile tests/performance/profiling/cpu_profiler.py      # the seed's command (profiles this
                                                                        # driver too; the service's profile is
                                                                        # in the run directory)

A real harness run (``locust -f locustfiles/<scenario>.py --headless ... --profile-cpu WINDOW``): py-spy records
the embedded service's process tree for the window (harness.profiling.cpu_profile) and the run directory gets
profile.svg, profile.speedscope.json and profile_summary.json, shown in its report.html as "Where the time goes".

Where py-spy cannot attach (no ptrace rights), or with ``--cprofile``: the service runs under cProfile in its own
process (``python -m cProfile -o service.prof -m service``), the scenario drives it with ``-H``, and the summary is
built from cProfile's stats (deterministic: it times every call, so it inflates small functions and slows the
service; the summary says so).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from harness.profiling.cpu_profile import py_spy_path  # noqa: E402
from harness.profiling.profile_summary import summarize_pstats  # noqa: E402
from harness.report import build_report  # noqa: E402
from harness.suites.locust_step import Step, run_step  # noqa: E402
from service.launcher import free_port  # noqa: E402


def py_spy_can_attach() -> str | None:
    """None when py-spy can attach to a Python process here, else why not."""
    executable = py_spy_path()
    if executable is None:
        return "py-spy is not installed"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        probe = subprocess.run(
            [executable, "dump", "--pid", str(child.pid)], capture_output=True, text=True, timeout=30, check=False
        )
        return None if probe.returncode == 0 else f"py-spy cannot attach: {probe.stderr.strip()[:300]}"
    finally:
        child.kill()
        child.wait()


def with_py_spy(args: argparse.Namespace) -> Step:
    return run_step(
        f"locustfiles/{args.scenario}.py",
        users=args.users,
        seconds=args.seconds,
        runs_dir=args.runs_dir,
        cwd=ROOT,
        extra=["--catalog-size", str(args.catalog_size), "--profile-cpu", args.window],
    )


def _wait_ready(url: str, service: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and service.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the service under cProfile did not become ready at {url} (exit {service.poll()})")


def with_cprofile(args: argparse.Namespace) -> Step:
    token = secrets.token_urlsafe(16)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="featureload-cprofile-") as tmp:
        prof = Path(tmp) / "service.prof"
        env = {**os.environ, "FEATURESTORE_WRITE_TOKEN": token, "FEATURELOAD_WRITE_TOKEN": token}
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(prof),
                "-m",
                "service",
                "--port",
                str(port),
                "--store-path",
                str(Path(tmp) / "store"),
                "--workers",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(f"http://127.0.0.1:{port}/health", service)
            step = run_step(
                f"locustfiles/{args.scenario}.py",
                users=args.users,
                seconds=args.seconds,
                runs_dir=args.runs_dir,
                cwd=ROOT,
                env=env,
                extra=[
                    "-H",
                    f"http://127.0.0.1:{port}",
                    "--load-catalog",
                    "--catalog-size",
                    str(args.catalog_size),
                    "--service-pid",
                    str(service.pid),
                ],
            )
        finally:
            service.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully; cProfile then writes its file
            service.wait(timeout=30)
        if step.run_dir is not None and prof.is_file():
            summary = summarize_pstats(prof)
            (step.run_dir / "service.prof").write_bytes(prof.read_bytes())
            (step.run_dir / "profile_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            build_report(step.run_dir)
    return step


def print_summary(run_dir: Path) -> None:
    path = run_dir / "profile_summary.json"
    if not path.is_file():
        print(f"no profile_summary.json in {run_dir}")
        return
    summary = json.loads(path.read_text(encoding="utf-8"))
    if summary.get("error"):
        print(f"no CPU profile: {summary['error']}")
        return
    print(f"{summary['method']}; {summary['total']:,.{0 if summary['unit'] == 'samples' else 3}f} {summary['unit']}")
    print("by layer: " + ", ".join(f"{r['layer']} {r['share']:.1%}" for r in summary["layers"] if r["share"] > 0))
    for title, key in (("self", "self"), ("cumulative", "cumulative")):
        print(f"top by {title}:")
        for r in summary[f"top_{key}"][:8]:
            print(f"  {r['share']:6.1%}  {r['function']}  [{r['layer']}]  {r['file']}:{r['line']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenario", default="concurrent_users")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--window", default="10s@5s", help="py-spy window WINDOW[@DELAY] (default: 10s@5s)")
    parser.add_argument("--catalog-size", type=int, default=20_000)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--cprofile", action="store_true", help="cProfile in the service process instead of py-spy")
    args = parser.parse_args(argv)
    why_not = None if args.cprofile else py_spy_can_attach()
    if why_not:
        print(f"{why_not}: falling back to cProfile inside the service process")
    step = with_cprofile(args) if args.cprofile or why_not else with_py_spy(args)
    if step.run_dir is None or step.exit_code not in (0, 3):
        print(step.stderr_tail, file=sys.stderr)
        return 1
    print_summary(step.run_dir)
    print(f"run directory: {step.run_dir} (report.html: 'Where the time goes')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
