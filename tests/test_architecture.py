"""The house's import graph: no circles, and every import runs down the floors below.

The graph is built by grimp (the library behind import-linter) from the source of the four packages, so it holds
every import statement: module level, inside functions (lazy) and under ``if TYPE_CHECKING``; a lazy import is
still an edge. ``locustfiles/`` is not a package (each file is run by ``locust -f``): its imports are read with
``ast`` and checked against its floor; nothing may import it.

The floors, top to bottom (``LAYERS`` below is the same table as data; README.md "Architecture" shows it too):

========================  ===================================================================================
room                      may import (besides the standard library and third-party packages not forbidden)
========================  ===================================================================================
locustfiles               harness (plugin, users), profiles, features (test data); never service (they talk
                          to it over HTTP)
harness.__main__,         anything below: the commands, the gate's runners (campaign, ab, baselines), the
harness.gate (runners)    gate's pages in harness.report, the Locust side (target.embedded,
                          locust_side.options), service.launcher
harness (Locust side):    harness.report, harness.sampling, profiles, service (to start it), features (seed
plugin, users,            002's criteria)
locust_side, timing,
verdict.hdr_thresholds,
target.embedded,
profiling, suites
harness.report (pages)    ``GATE_DATA`` and ``HARNESS_BASE`` only, of harness: a report is rebuilt from a run
                          (or campaign) directory alone
harness.report.rundata    ``HARNESS_BASE`` only: the report's reading layer (a run directory read back, the
                          findings); nothing of the pages above it
harness.gate data         ``GATE_DATA``: a campaign read back, the statistics; imports ``HARNESS_BASE`` only
harness.sampling          ``HARNESS_BASE``; never harness.report, harness.gate, profiles
harness base              ``HARNESS_BASE``: harness.recording (the run directory's formats), and the helpers
                          kept beside the parts that use them (timing.hdr, timing.hdr_log,
                          verdict.thresholds, target.faults, target.reaper, target._http); nothing else of
                          harness
profiles                  locust (the shapes); never service, never harness
service                   features; never harness, profiles, locust or gevent
features                  nothing of the house; never fastapi, starlette, uvicorn, locust or gevent
========================  ===================================================================================

``KNOWN_UPWARD`` lists the imports that still run up a floor, each with why it is there and what fixes it (none
today); the test fails on any other, and also when one of them is gone (so the list only shrinks).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="grimp builds the import graph: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "service", "features", "profiles")

# The bottom of harness: what a run directory holds (formats, readers, writers) and small helpers; a folder
# (harness.recording) or single modules of the folders whose other modules sit higher.
HARNESS_BASE = (
    "harness.recording",
    "harness.target._http",
    "harness.target.faults",
    "harness.target.reaper",
    "harness.timing.hdr",
    "harness.timing.hdr_log",
    "harness.verdict.thresholds",
)
# The gate's data and statistics, which its pages (harness.report.comparison, ab_page) render.
GATE_DATA = (
    "harness.gate.campaign_data",
    "harness.gate.compare",
    "harness.gate.fingerprint",
    "harness.gate.metrics_table",
    "harness.gate.paired",
    "harness.gate.stats",
)


@dataclass(frozen=True)
class Layer:
    """Rooms (module prefixes) and what they must not import: ``forbidden`` prefixes, minus ``allowed`` ones."""

    rooms: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    why: str = ""


LAYERS: tuple[Layer, ...] = (
    Layer(("locustfiles",), ("service",), why="a scenario talks to the service over HTTP"),
    Layer(
        ("harness.report",),
        ("harness",),
        allowed=("harness.report", *GATE_DATA, *HARNESS_BASE),
        why="a report is rebuilt from a run (or campaign) directory alone, not from the Locust side",
    ),
    Layer(
        ("harness.report.rundata",),
        ("harness",),
        allowed=("harness.report.rundata", *HARNESS_BASE),
        why="the report's reading layer: the pages and findings stand on it, it renders nothing",
    ),
    Layer(
        GATE_DATA,
        ("harness",),
        allowed=(*GATE_DATA, *HARNESS_BASE),
        why="the gate's data and statistics sit below the runners and the pages that use them",
    ),
    Layer(
        ("harness.sampling",),
        ("harness",),
        allowed=("harness.sampling", *HARNESS_BASE),
        why="the sampler measures; it neither reports nor judges",
    ),
    Layer(HARNESS_BASE, ("harness",), allowed=HARNESS_BASE, why="the bottom of harness: formats and helpers"),
    Layer(("profiles",), ("harness", "service"), why="profiles are data and the shapes the harness runs"),
    Layer(
        ("service",),
        ("harness", "profiles", "locustfiles", "locust", "gevent"),
        why="the system under test knows nothing of what measures it; gevent would patch its event loop",
    ),
    Layer(
        ("features",),
        ("harness", "service", "profiles", "locustfiles", "fastapi", "starlette", "uvicorn", "locust", "gevent"),
        why="the domain: no HTTP, no Locust",
    ),
)

# (importer, imported): imports that still run up a floor, each to be removed, never added to. Empty since the
# findings (analysis, outage) moved into the report's reading layer, harness.report.rundata.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def _matches(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)


def _edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules if _matches(m, PACKAGES)}


def _where(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    if not details:
        return f"{importer} -> {imported}"
    first = details[0]
    return f"{importer} -> {imported} (line {first['line_number']}: {first['line_contents'].strip()})"


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The circles of ``edges``: each strongly connected set of two or more modules, sorted (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _one_circle(edges: dict[str, set[str]], members: list[str]) -> list[str]:
    """A shortest path from the first member back to itself inside ``members`` (breadth first)."""
    inside = set(members)
    start = members[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(edges.get(node, ())):
                if child == start:
                    return [*paths[node], start]
                if child in inside and child not in paths:
                    paths[child] = [*paths[node], child]
                    nxt.append(child)
        frontier = nxt
    return members


def test_strongly_connected_finds_a_circle_and_only_circles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(edges) == [["a", "b", "c"]]
    assert _one_circle(edges, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_the_packages_import_no_circle(graph: grimp.ImportGraph) -> None:
    edges = _edges(graph)
    problems = []
    for members in strongly_connected(edges):
        circle = _one_circle(edges, members)
        steps = "\n    ".join(_where(graph, a, b) for a, b in itertools.pairwise(circle))
        problems.append(f"import circle {' -> '.join(circle)}:\n    {steps}")
    assert not problems, "move the shared piece below both modules:\n" + "\n".join(problems)


def _locustfile_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "locustfiles").glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[f"locustfiles.{path.stem}"] = names
    return found


def _violations(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    bad = set()
    for importer, imported in ((a, b) for a, targets in edges.items() for b in targets):
        for layer in LAYERS:
            if (
                _matches(importer, layer.rooms)
                and _matches(imported, layer.forbidden)
                and not _matches(imported, layer.allowed)
            ):
                bad.add((importer, imported))
    return bad


def test_every_import_runs_down_the_floors(graph: grimp.ImportGraph) -> None:
    named = {room for layer in LAYERS for room in (*layer.rooms, *layer.allowed)} - {"locustfiles"}
    assert not (missing := sorted(n for n in named if n not in graph.modules)), f"LAYERS names no module: {missing}"
    edges = _edges(graph) | _locustfile_imports()
    bad = _violations(edges)
    new = sorted(bad - set(KNOWN_UPWARD))
    rooms = {room: layer.why for layer in LAYERS for room in layer.rooms}

    def why(importer: str) -> str:
        room = max((r for r in rooms if _matches(importer, [r])), key=len)
        return f"{room}: {rooms[room]}"

    assert not new, "imports that run up a floor:\n" + "\n".join(
        f"  {_where(graph, a, b) if a in graph.modules else f'{a} -> {b}'}\n    ({why(a)})" for a, b in new
    )
    gone = sorted(set(KNOWN_UPWARD) - bad)
    assert not gone, f"no longer imported, remove from KNOWN_UPWARD: {gone}"


def test_nothing_imports_the_locustfiles(graph: grimp.ImportGraph) -> None:
    assert "locustfiles" not in graph.modules or not graph.find_modules_that_directly_import("locustfiles")


def test_the_layers_catch_an_upward_import() -> None:
    assert _violations({"service.app": {"harness.locust_side.run"}}) == {("service.app", "harness.locust_side.run")}
    assert _violations({"harness.report.build": {"harness.verdict.thresholds", "harness.plugin"}}) == {
        ("harness.report.build", "harness.plugin")
    }
    assert _violations({"harness.report.rundata.view": {"harness.report.charts", "harness.recording.recorder"}}) == {
        ("harness.report.rundata.view", "harness.report.charts")
    }
    assert _violations({"features.store.cache": {"numpy"}}) == set()


def test_the_harness_docstring_names_every_room_and_module() -> None:
    """harness/__init__.py's prose is where a newcomer finds the right file: it names every folder and module."""
    import harness

    doc = harness.__doc__ or ""
    base = ROOT / "harness"
    folders = sorted(p.parent.relative_to(base).as_posix() for p in base.rglob("__init__.py") if p.parent != base)
    modules = sorted(p.relative_to(base).as_posix() for p in base.rglob("*.py") if p.name != "__init__.py")
    missing = [f"{f}/" for f in folders if f"``{f}/``" not in doc]
    missing += [m for m in modules if f"``{Path(m).stem}``" not in doc]
    assert not missing, f"harness/__init__.py does not name: {missing}"
