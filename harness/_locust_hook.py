"""Make ``locust --help`` list the harness's options.

Locust prints ``--help`` before it imports any locustfile (locustio/locust#2917), so options that a locustfile
registers through ``events.init_command_line_parser`` never show there. This module closes the gap: a one-line
``featureload-locust-help.pth`` in the environment's site-packages calls ``install()`` at interpreter start-up,
which only adds an import hook (nothing is imported); when ``locust.main`` is imported (the ``locust`` command),
the hook registers ``harness.options.add_arguments`` right after it, before Locust parses the command line.
``harness.options.add_arguments`` is idempotent, so the locustfile's own registration adds nothing twice.

    python -m harness._locust_hook install      # writes the .pth (make run and make distributed do it)
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

__all__ = ["PTH_NAME", "install", "write_pth"]

PTH_NAME = "featureload-locust-help.pth"
_TARGET = "locust.main"


class _AfterLocustMain(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``locust.main`` so that the harness's options are registered once it has run."""

    def find_spec(self, fullname: str, path: object, target: ModuleType | None = None) -> object:
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)  # one shot; and find the real spec without finding ourselves
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)  # type: ignore[arg-type]
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            from locust import events

            from harness.options import add_arguments

            events.init_command_line_parser.add_listener(add_arguments)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Add the import hook (idempotent; called by the .pth file at start-up)."""
    if not any(isinstance(finder, _AfterLocustMain) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterLocustMain())


def write_pth(site_packages: Path | None = None) -> Path:
    """Write the .pth file into ``site_packages`` (default: this interpreter's purelib); returns its path."""
    directory = site_packages or Path(sysconfig.get_paths()["purelib"])
    path = directory / PTH_NAME
    line = "import harness._locust_hook as _h; _h.install()\n"
    if not path.exists() or path.read_text(encoding="utf-8") != line:
        path.write_text(line, encoding="utf-8")
    return path


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m harness._locust_hook install")
    print(f"wrote {write_pth()}")
