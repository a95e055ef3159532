"""Run the seed document's own scripts against this code base.

Seed 002 (``../shared/seeds/002_*.txt``) holds its checks as ``docker compose exec dev python -c "..."`` blocks.
This module extracts them, undoes the shell's double-quote escaping, and changes only what the brief allows:
``sys.path.append('/app/src')`` points at this checkout and ``/app/data`` at a scratch directory.

    python -m tests.seed_scripts --list
    python -m tests.seed_scripts --run all|INDEX [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_FILE_GLOB = "002_*.txt"
_BLOCK = re.compile(r'docker compose exec dev python -c "\n(.*?)\n"\n```', re.S)


def seed_file(shared_dir: Path = ROOT.parent / "shared") -> Path:
    """The seed 002 document; FileNotFoundError says where it was looked for."""
    matches = sorted((shared_dir / "seeds").glob(SEED_FILE_GLOB))
    if not matches:
        raise FileNotFoundError(f"seed 002 not found: expected {shared_dir / 'seeds' / SEED_FILE_GLOB}")
    return matches[0]


def _unescape_double_quoted(text: str) -> str:
    # Inside "..." bash removes the backslash only before $ ` " \ and newline.
    return re.sub(r'\\([$`"\\\n])', r"\1", text)


def extract_scripts(document: str, data_dir: Path) -> list[str]:
    """The seed's Python scripts, ready to run here."""
    scripts = []
    for block in _BLOCK.findall(document):
        code = _unescape_double_quoted(block)
        code = code.replace("sys.path.append('/app/src')", f"sys.path.insert(0, {str(ROOT)!r})")
        code = code.replace("/app/data", str(data_dir))
        scripts.append(code)
    return scripts


def first_line_title(script: str) -> str:
    """The script's first printed line, used as its name."""
    match = re.search(r"print\('([^']+)'\)", script)
    return match.group(1) if match else script.splitlines()[0]


def run_script(script: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run one script in a fresh interpreter; returns the finished process with its output."""
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the seed's scripts")
    parser.add_argument("--run", default="all", help="'all' or the index of one script")
    parser.add_argument("--data-dir", type=Path, default=None, help="replaces /app/data (default: a temp dir)")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seed-data-") as scratch:
        scripts = extract_scripts(seed_file().read_text(encoding="utf-8"), args.data_dir or Path(scratch))
        chosen = range(len(scripts)) if args.run == "all" else [int(args.run)]
        if args.list:
            for index, script in enumerate(scripts):
                print(index, first_line_title(script))
            return
        failed = 0
        for index in chosen:
            result = run_script(scripts[index], args.timeout_s)
            print(result.stdout, end="")
            if result.returncode != 0:
                failed += 1
                print(result.stderr, file=sys.stderr)
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
