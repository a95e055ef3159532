"""The start-up hook that makes ``locust --help`` list the harness's options (``harness.locust_side.options.OPTIONS``).

Locust prints ``--help`` before it imports any locustfile (locustio/locust#2917), so options that a locustfile
registers through ``events.init_command_line_parser`` never show there. The one-line
``featureload-locust-help.pth`` that ``python -m harness._locust_hook install`` writes into site-packages calls
``install()`` here at interpreter start-up, which only adds an import hook (nothing else is imported); when
``locust.main`` is imported (the ``locust`` command), the hook registers ``harness.locust_side.options.add_arguments``
right after it, before Locust parses the command line.

This module is not ``harness._locust_hook``: the .pth imports this one at every start-up, and had it imported the
installer's own module, ``python -m harness._locust_hook install`` would find it in ``sys.modules`` already and
runpy would warn (RuntimeWarning) each time ``make run`` calls it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

__all__ = ["install"]

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

            from harness.locust_side.options import add_arguments

            events.init_command_line_parser.add_listener(add_arguments)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Add the import hook (idempotent; called by the .pth file at start-up)."""
    if not any(isinstance(finder, _AfterLocustMain) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterLocustMain())
