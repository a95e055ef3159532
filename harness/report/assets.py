"""Where report.html gets plotly.js (4.8 MB) from.

Shared (the default): one copy, ``_assets/plotly-<version>.min.js``, beside the run directories (in the parent
of the directory report.html is written to, e.g. ``runs/_assets/``), referenced relatively
(``../_assets/...``): a report then costs its own data only, and still opens offline from ``file://``. Written
once per plotly.js version, atomically, so concurrent runs can share it. A report copied away from its runs
directory shows a note saying how to rebuild it standalone.

Self-contained: plotly.js inline in the page; it opens anywhere, alone, offline. Chosen with ``--self-contained``,
and used whenever the shared copy cannot be written (the note in ``PlotlyScript.note`` says why).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from plotly.offline import get_plotlyjs, get_plotlyjs_version

__all__ = ["ASSETS_DIR", "PlotlyScript", "plotly_asset_name", "plotly_script"]

ASSETS_DIR = "_assets"


def plotly_asset_name() -> str:
    """The shared file's name, with the plotly.js version: reports built by another version keep theirs."""
    return f"plotly-{get_plotlyjs_version()}.min.js"


@dataclass(frozen=True)
class PlotlyScript:
    """The ``<script>`` loading plotly.js, the shared file it refers to (None when inline), and a note when the
    shared copy was asked for but could not be written."""

    tag: str
    asset: Path | None
    src: str | None
    note: str | None = None


def _inline(note: str | None = None) -> PlotlyScript:
    return PlotlyScript(f'<script type="text/javascript">{get_plotlyjs()}</script>', None, None, note)


def plotly_script(out_dir: Path, *, self_contained: bool) -> PlotlyScript:
    """The plotly.js script for a report written into ``out_dir``: inline when ``self_contained``, else the
    shared ``<out_dir>/../_assets/plotly-<version>.min.js`` (written when missing or of another size)."""
    if self_contained:
        return _inline()
    name = plotly_asset_name()
    target = out_dir.resolve().parent / ASSETS_DIR / name
    try:
        data = get_plotlyjs().encode("utf-8")
        if not target.is_file() or target.stat().st_size != len(data):
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{name}.{os.getpid()}.tmp")
            temp.write_bytes(data)
            os.replace(temp, target)
    except OSError as error:
        return _inline(f"plotly.js is inline: the shared copy {target} could not be written ({error})")
    src = f"../{ASSETS_DIR}/{name}"
    return PlotlyScript(f'<script type="text/javascript" src="{src}"></script>', target, src)
