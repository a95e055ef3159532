"""Where the service's time goes: CPU profiles (py-spy's sampled stacks, or cProfile's stats) turned into one
summary, a speedscope file and a flame graph.

Inputs: py-spy's ``raw`` (collapsed) format, one stack a line, root first, ``frame;frame;... count``, a frame
``function (path:line)`` (with ``--subprocesses`` the first frame names the process); or a cProfile/pstats file.

``profile_summary.json`` (``summarize_stacks`` / ``summarize_pstats``)::

    source        "py-spy" (sampled, ``rate_hz``) or "cProfile" (deterministic: every call, so its overhead
                  inflates small functions)
    total         samples (py-spy) or seconds of self time (cProfile); ``unit`` says which
    layers        [{layer, self, share}]: each sample counted once, in the layer of its innermost frame that
                  belongs to one (http, framework, store, pipeline, serialization, service), else "other"
    top_self      [{function, file, line, layer, self, share}]            the top functions by self time
    top_cumulative [{function, file, line, layer, cumulative, share}]     by time on the stack (counted once a stack)
    routes        [{route, samples, share, layers: {layer: share within the route}}]  service/routes functions

Layers: http (uvicorn, h11, httptools, starlette, anyio, asyncio, uvloop), framework (fastapi, pydantic),
store (features/store), pipeline (features/engineering), serialization (orjson, json, pyarrow's ipc and parquet,
pandas' Arrow conversion, service/codec.py, service/responses.py's dumps), service (the rest of service/).
"""

from __future__ import annotations

import html
import json
import pstats
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LAYERS",
    "Frame",
    "flamegraph_svg",
    "layer_of",
    "read_collapsed",
    "speedscope",
    "summarize_pstats",
    "summarize_stacks",
    "write_outputs",
]

LAYERS = ("http", "framework", "store", "pipeline", "serialization", "service", "other")
TOP = 15
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "serialization",
        re.compile(
            r"(^|/)(orjson|json|pyarrow/(ipc|parquet|feather)|pyarrow/pandas_compat)|"
            r"(^|/)service/(codec|ipc_sizes)\.py|pandas/io/parquet"
        ),
    ),
    ("pipeline", re.compile(r"(^|/)features/engineering/")),
    ("store", re.compile(r"(^|/)features/store/")),
    ("framework", re.compile(r"(^|/)(fastapi|pydantic|pydantic_core)/")),
    ("http", re.compile(r"(^|/)(uvicorn|h11|httptools|starlette|anyio|asyncio|uvloop|websockets)/")),
    ("service", re.compile(r"(^|/)service/")),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int

    @property
    def layer(self) -> str:
        return layer_of(self.file, self.function)

    def label(self) -> str:
        return f"{self.function} ({_short(self.file)}:{self.line})"


def layer_of(file: str, function: str = "") -> str:
    """The layer a frame of ``file`` belongs to, else "other"."""
    path = file.replace("\\", "/")
    if path.endswith("service/responses.py") and function in ("dumps", "json_response"):
        return "serialization"
    for layer, pattern in _RULES:
        if pattern.search(path):
            return layer
    return "other"


def _short(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3."):
        if marker in file:
            tail = file.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker.startswith("/lib") and "/" in tail else tail
    for root in ("features/", "service/", "harness/"):
        if f"/{root}" in file:
            return root + file.split(f"/{root}", 1)[1]
    return file


def _parse_frame(text: str) -> Frame | None:
    match = _FRAME.match(text.strip())
    if match is None:
        return None  # "process 123:..." or "thread (...)" pseudo-frames
    return Frame(match["function"], match["file"], int(match["line"] or 0))


def read_collapsed(text: str) -> list[tuple[list[Frame], int]]:
    """Stacks (root first) and their sample counts from py-spy's raw output; unparsable lines are skipped."""
    stacks = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        frames = [f for f in (_parse_frame(part) for part in match["stack"].split(";")) if f is not None]
        if frames:
            stacks.append((frames, int(match["count"])))
    return stacks


def _innermost_layer(frames: list[Frame]) -> str:
    for frame in reversed(frames):
        if (layer := frame.layer) != "other":
            return layer
    return "other"


def _rows(counter: Counter[Frame], total: float, key: str) -> list[dict[str, Any]]:
    return [
        {
            "function": f.function,
            "file": _short(f.file),
            "line": f.line,
            "layer": f.layer,
            key: value,
            "share": value / total if total else 0.0,
        }
        for f, value in counter.most_common(TOP)
    ]


def _layers(by_layer: Mapping[str, float], total: float) -> list[dict[str, Any]]:
    return [
        {"layer": layer, "self": by_layer.get(layer, 0), "share": by_layer.get(layer, 0) / total if total else 0.0}
        for layer in sorted(LAYERS, key=lambda name: -by_layer.get(name, 0))
    ]


def summarize_stacks(
    stacks: Iterable[tuple[list[Frame], int]], *, rate_hz: float, window_s: float, pids: Iterable[int] = ()
) -> dict[str, Any]:
    """The summary (see the module docstring) of sampled stacks."""
    self_time: Counter[Frame] = Counter()
    cumulative: Counter[Frame] = Counter()
    by_layer: Counter[str] = Counter()
    routes: dict[str, Counter[str]] = defaultdict(Counter)
    total = 0
    for frames, count in stacks:
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count
        layer = _innermost_layer(frames)
        by_layer[layer] += count
        route = next((f for f in frames if "service/routes/" in f.file.replace("\\", "/")), None)
        if route is not None:
            routes[f"{route.function} ({_short(route.file)})"][layer] += count
    return {
        "source": "py-spy",
        "unit": "samples",
        "rate_hz": rate_hz,
        "window_s": window_s,
        "pids": sorted(pids),
        "total": total,
        "layers": _layers(by_layer, total),
        "top_self": _rows(self_time, total, "self"),
        "top_cumulative": _rows(cumulative, total, "cumulative"),
        "routes": sorted(
            (
                {
                    "route": name,
                    "samples": sum(c.values()),
                    "share": sum(c.values()) / total,
                    "layers": {k: v / sum(c.values()) for k, v in c.most_common()},
                }
                for name, c in routes.items()
            ),
            key=lambda r: -r["samples"],
        ),
        "method": f"py-spy sampled the service's processes at {rate_hz:g} Hz for {window_s:g} s (idle threads "
        "excluded); self = samples with the function innermost, cumulative = samples with it on the stack",
    }


def summarize_pstats(path: Path | str) -> dict[str, Any]:
    """The summary of a cProfile file: seconds of self time (tt) and cumulative time (ct) per function."""
    raw = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    self_time: Counter[Frame] = Counter()
    cumulative: Counter[Frame] = Counter()
    by_layer: Counter[str] = Counter()
    for (file, line, function), (_cc, _nc, tt, ct, _callers) in raw.items():
        frame = Frame(function, file, line)
        self_time[frame] += tt
        cumulative[frame] += ct
        by_layer[frame.layer] += tt
    total = float(sum(self_time.values()))
    return {
        "source": "cProfile",
        "unit": "seconds",
        "total": total,
        "layers": _layers(by_layer, total),
        "top_self": _rows(self_time, total, "self"),
        "top_cumulative": _rows(cumulative, total, "cumulative"),
        "routes": [],
        "method": "cProfile (deterministic: every call is timed, which inflates small functions); "
        "layers by each function's own self time",
    }


def speedscope(stacks: Iterable[tuple[list[Frame], int]], name: str) -> dict[str, Any]:
    """A speedscope "sampled" profile (https://www.speedscope.app) of the stacks."""
    index: dict[Frame, int] = {}
    samples, weights = [], []
    for frames, count in stacks:
        samples.append([index.setdefault(f, len(index)) for f in frames])
        weights.append(count)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": f.function, "file": f.file, "line": f.line} for f in index]},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": name,
        "exporter": "featureload harness.profile_summary",
    }


_COLORS = {
    "http": "#9ecae1",
    "framework": "#c6dbef",
    "store": "#fdae6b",
    "pipeline": "#a1d99b",
    "serialization": "#fc9272",
    "service": "#bcbddc",
    "other": "#d9d9d9",
}


def flamegraph_svg(stacks: Iterable[tuple[list[Frame], int]], title: str, width: int = 1200) -> str:
    """A flame graph (root at the bottom, width = samples), colored by layer, with a tooltip per frame."""
    tree: dict[str, Any] = {"count": 0, "children": {}}
    for frames, count in stacks:
        node = tree
        node["count"] += count
        for frame in frames:
            node = node["children"].setdefault(frame, {"count": 0, "children": {}})
            node["count"] += count
    depth = _depth(tree)
    row_h, total = 16, max(tree["count"], 1)
    height = (depth + 2) * row_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
        f'font-size="11"><text x="4" y="12">{html.escape(title)} ({total} samples)</text>'
    ]

    def draw(node: dict[str, Any], x: float, level: int) -> None:
        for frame, child in sorted(node["children"].items(), key=lambda item: -item[1]["count"]):
            w = child["count"] / total * width
            if w >= 0.5:
                y = height - (level + 1) * row_h
                label = html.escape(frame.label())
                parts.append(
                    f"<g><title>{label}: {child['count']} samples ({child['count'] / total:.1%})</title>"
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 1}" '
                    f'fill="{_COLORS[frame.layer]}"/>'
                )
                if w > 40:
                    parts.append(
                        f'<text x="{x + 2:.1f}" y="{y + 11}">{html.escape(frame.function[: int(w / 7)])}</text>'
                    )
                parts.append("</g>")
                draw(child, x, level + 1)
            x += w

    draw(tree, 0.0, 0)
    parts.append("</svg>")
    return "".join(parts)


def _depth(node: dict[str, Any]) -> int:
    return 1 + max((_depth(c) for c in node["children"].values()), default=0)


def write_outputs(run_dir: Path, stacks: list[tuple[list[Frame], int]], summary: dict[str, Any]) -> list[Path]:
    """profile.speedscope.json, profile.svg and profile_summary.json in ``run_dir``; returns their paths."""
    paths = [run_dir / "profile.speedscope.json", run_dir / "profile.svg", run_dir / "profile_summary.json"]
    paths[0].write_text(json.dumps(speedscope(stacks, "service CPU")), encoding="utf-8")
    paths[1].write_text(flamegraph_svg(stacks, "service CPU, py-spy"), encoding="utf-8")
    paths[2].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return paths
