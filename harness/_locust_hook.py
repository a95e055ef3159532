"""Install the start-up hook that makes ``locust --help`` list the harness's options (``harness._help_hook``
explains why it is needed):

    python -m harness._locust_hook install      # writes the .pth (make run and make distributed do it)

The .pth imports ``harness._help_hook``, never this module, so that running this module with ``-m`` finds it
not yet imported (runpy warns otherwise). ``install`` stays importable from here for a .pth written before.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from harness._help_hook import install

__all__ = ["PTH_LINE", "PTH_NAME", "install", "write_pth"]

PTH_NAME = "featureload-locust-help.pth"
PTH_LINE = "import harness._help_hook as _h; _h.install()\n"


def write_pth(site_packages: Path | None = None) -> Path:
    """Write the .pth file into ``site_packages`` (default: this interpreter's purelib); returns its path."""
    directory = site_packages or Path(sysconfig.get_paths()["purelib"])
    path = directory / PTH_NAME
    if not path.exists() or path.read_text(encoding="utf-8") != PTH_LINE:
        path.write_text(PTH_LINE, encoding="utf-8")
    return path


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m harness._locust_hook install")
    print(f"wrote {write_pth()}")
