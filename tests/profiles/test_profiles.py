"""profiles: the shipped TOML profiles, their validation, and the load shapes driven by a fake clock."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.verdict.thresholds import Threshold
from profiles.model import PACKAGE_DIR, Profile, list_profiles, load_profile, profile_from_dict
from tests.unpatched import locust_unpatched

with locust_unpatched():  # these tests need Locust's classes, not a gevent-patched pytest process
    from locust.util.load_locustfile import is_shape_class, load_locustfile

    from profiles import shapes
    from profiles.shapes import (
        ProfileShape,
        RampShape,
        SoakShape,
        SpikeShape,
        StagesShape,
        StepShape,
        StressShape,
        shape_from_profile,
    )

SHIPPED = {"smoke", "ramp", "step", "spike", "soak", "stress", "rate", "stress_rate"}


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def ticks(shape: ProfileShape, clock: FakeClock, at_s: list[float]) -> list[Any]:
    """The shape's tick at each run time in ``at_s`` (clock started at 1000 s)."""
    out = []
    for t in at_s:
        clock.now_s = 1000.0 + t
        out.append(shape.tick())
    return out


def make(shape: str, clock: FakeClock | None = None, **params: Any) -> Any:
    return shape_from_profile(
        profile_from_dict({"description": "test", "shape": shape, "params": params}, name=f"test-{shape}"),
        clock=clock or FakeClock(),
    )


# ---------------------------------------------------------------- shipped profiles


def test_the_shipped_profiles_are_listed() -> None:
    assert set(list_profiles()) == SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_profile_loads_and_builds_its_shape(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name and profile.description and profile.source == PACKAGE_DIR / f"{name}.toml"
    assert profile.thresholds, "a profile without thresholds cannot fail"
    for text in profile.thresholds:
        Threshold.parse(text)
    shape = shape_from_profile(profile, breach_check=lambda: None, rps_probe=lambda: 0.0, clock=FakeClock())
    assert shape.profile is profile
    limits = {"smoke": 15, "ramp": 120, "step": 180, "spike": 120, "soak": 900, "stress": 600, "rate": 120}
    limit_s = {**limits, "stress_rate": 600}[name]
    assert 0 < shape.duration_s <= limit_s
    assert shape.tick() is not None


def test_smoke_is_tiny_and_stress_is_bounded() -> None:
    smoke = load_profile("smoke")
    assert sum(s.duration_s for s in smoke.stages) == 10.0 and max(s.users for s in smoke.stages) <= 5
    stress = load_profile("stress").shape_params
    assert (stress["step_users"], stress["step_s"], stress["max_users"]) == (10, 15.0, 300)
    assert stress["max_duration_s"] is not None


def test_load_profile_by_explicit_path_and_errors_for_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('description = "x"\nshape = "soak"\n[params]\nusers = 3\nramp_s = 1\nhold_s = 2\n')
    assert load_profile(str(path)).name == "mine"
    assert list_profiles(tmp_path) == ["mine"]
    assert load_profile("mine", search_dir=tmp_path).shape_params["users"] == 3
    with pytest.raises(ValueError, match=r"unknown profile 'nope' in .*: known profiles: ramp, rate, smoke, soak"):
        load_profile("nope")
    with pytest.raises(ValueError, match=r"profile file '\.\./x\.toml' does not exist"):
        load_profile("../x.toml")
    with pytest.raises(ValueError, match=r"profile name 'a b' is invalid: use \[A-Za-z0-9_-\]"):
        load_profile("a b")


# ---------------------------------------------------------------- validation


def _stages_toml(users: int) -> str:
    return (
        'description = "x"\nshape = "stages"\n'
        + "[[stages]]\nduration_s = 1\nusers = 1\nspawn_rate = 1\n" * 2
        + f"[[stages]]\nduration_s = 1\nusers = {users}\nspawn_rate = 1\n"
    )


RAMP = 'description = "x"\nshape = "ramp"\n'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_stages_toml(-5), "stages[2].users must be an int >= 0, got -5"),
        (_stages_toml(2).replace("users = 2", "users = 2.5"), "stages[2].users must be an int >= 0, got 2.5"),
        (_stages_toml(2).replace("duration_s = 1\nusers = 2", "duration_s = 0\nusers = 2"), "stages[2].duration_s"),
        (_stages_toml(2).replace("spawn_rate = 1\n", "", 1), "stages[0].spawn_rate is required"),
        (_stages_toml(2) + "ramp = 3\n", "stages[2].ramp is unknown (known: duration_s, users, spawn_rate)"),
        ('description = "x"\nshape = "stages"\n', "stages must be a non-empty array of tables"),
        ('description = "x"\nshap = "ramp"\n', "shap is not a profile key (known: description, shape, thresholds"),
        ('shape = "ramp"\n', "description must be a non-empty string, got None"),
        ('description = "x"\nshape = "wave"\n', "shape must be one of ramp, step, spike, soak, stress, stages"),
        (RAMP + "[params]\nramp_s = 10\n", "params.peak_users is required for shape 'ramp'"),
        (RAMP + "[params]\npeak_users = 5\nramp_s = 10\npeak = 3\n", "params.peak is not a parameter of shape"),
        (RAMP + "[params]\npeak_users = true\nramp_s = 10\n", "params.peak_users must be an int >= 1, got True"),
        (RAMP + "[params]\npeak_users = 5\nramp_s = -1\n", "params.ramp_s must be a number > 0 (seconds), got -1"),
        (RAMP + "[params]\npeak_users = 5\nramp_s = 1\nhold_s = -1\n", "params.hold_s must be a number >= 0"),
        (RAMP + "[params]\npeak_users = 5\nramp_s = 1\nspawn_rate = 0\n", "params.spawn_rate must be a number > 0"),
        (RAMP + "[params]\npeak_users = 5\nramp_s = 1\nstart_users = 9\n", "params.peak_users (5) must exceed"),
        (RAMP + "[params]\npeak_users = 5\nramp_s = 1\n[[stages]]\n", "stages is only used by shapes"),
        (RAMP + 'thresholds = ["p95 < 5ms", "p95 < 5 parsecs"]\n', "thresholds[1]: invalid threshold 'p95 < 5 pars"),
        (RAMP + "thresholds = [5]\n", "thresholds[0] must be a string like 'p95 < 50ms', got 5"),
        (RAMP + "params = 3\n", "params must be a table ([params]), got 3"),
        (
            'description = "x"\nshape = "spike"\n[params]\n'
            "baseline_users = 9\nbaseline_s = 1\nspike_users = 9\nspike_s = 1\nrecovery_s = 1\n",
            "params.spike_users must exceed params.baseline_users",
        ),
        ('description = "x\n', "invalid TOML"),
    ],
)
def test_validation_errors_name_the_file_and_the_field(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(content))
    with pytest.raises(ValueError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message


def test_validation_error_names_a_shipped_file_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "spike.toml").write_text(_stages_toml(-5))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^profiles/spike\.toml: stages\[2\]\.users must be an int >= 0, got -5$"):
        load_profile("spike", search_dir=tmp_path / "profiles")


# ---------------------------------------------------------------- shapes, driven by a fake clock


def test_stages_shape_switches_at_the_boundaries_and_ends() -> None:
    clock = FakeClock()
    shape = shape_from_profile(load_profile("smoke"), clock=clock)
    assert isinstance(shape, StagesShape)
    assert ticks(shape, clock, [0, 4.99, 5, 9.99, 10, 30]) == [(2, 2.0), (2, 2.0), (4, 2.0), (4, 2.0), None, None]


def test_ramp_shape_follows_the_line_up_holds_and_ramps_down() -> None:
    clock = FakeClock()
    shape = make("ramp", clock, peak_users=60, ramp_s=60, hold_s=30, ramp_down_s=30)
    assert isinstance(shape, RampShape) and shape.duration_s == 120.0
    assert shape.spawn_rate == 2.0  # the steeper slope: 60 users down in 30 s
    users = [t if t is None else t[0] for t in ticks(shape, clock, [0, 30, 59.5, 60, 89, 90, 105, 119.5, 119.9, 120])]
    assert users == [0, 30, 59, 60, 60, 60, 30, 1, 0, None]  # the floor of the line


def test_shipped_ramp_profile_values() -> None:
    clock = FakeClock()
    shape = shape_from_profile(load_profile("ramp"), clock=clock)
    # 0 -> 50 users in 60 s, hold 30 s, 50 -> 0 in 10 s: spawn_rate is the steeper slope, 5 users/s
    assert ticks(shape, clock, [0, 30, 60, 89.9, 95, 99.9, 100]) == [
        (0, 5.0), (25, 5.0), (50, 5.0), (50, 5.0), (25, 5.0), (0, 5.0), None,
    ]  # fmt: skip


def test_step_shape_adds_users_every_step_up_to_the_maximum() -> None:
    clock = FakeClock()
    shape = make("step", clock, step_users=10, step_s=20, max_users=25, hold_s=5)
    assert isinstance(shape, StepShape) and shape.duration_s == 65.0
    assert ticks(shape, clock, [0, 19.9, 20, 39.9, 40, 60, 64.9, 65]) == [
        (10, 10.0), (10, 10.0), (20, 10.0), (20, 10.0), (25, 10.0), (25, 10.0), (25, 10.0), None,
    ]  # fmt: skip


def test_spike_shape_jumps_up_and_back_down() -> None:
    clock = FakeClock()
    shape = shape_from_profile(load_profile("spike"), clock=clock)
    assert isinstance(shape, SpikeShape)
    assert ticks(shape, clock, [0, 29.9, 30, 49.9, 50, 89.9, 90]) == [
        (10, 10.0), (10, 10.0), (100, 90.0), (100, 90.0), (10, 90.0), (10, 90.0), None,
    ]  # fmt: skip


def test_soak_shape_ramps_then_holds() -> None:
    clock = FakeClock()
    shape = shape_from_profile(load_profile("soak"), clock=clock)
    assert isinstance(shape, SoakShape) and shape.duration_s == 600.0
    assert ticks(shape, clock, [0, 30, 60, 300, 599.9, 600]) == [
        (0, 1.0), (15, 1.0), (30, 1.0), (30, 1.0), (30, 1.0), None,
    ]  # fmt: skip


def test_reset_time_restarts_the_run_clock() -> None:
    clock = FakeClock(now_s=0.0)
    shape = make("soak", clock, users=10, ramp_s=10, hold_s=10)
    clock.now_s = 500.0
    assert shape.tick() is None
    shape.reset_time()  # Locust calls this when the shape test starts
    clock.now_s = 505.0
    assert shape.tick() == (5, 1.0)


# ---------------------------------------------------------------- stress


class FakeProbe:
    """breach_check and rps_probe collaborators: breach from the ``breach_on``-th check; rps = 3 x check no."""

    def __init__(self, breach_on: int | None) -> None:
        self.breach_on, self.checks, self.probes = breach_on, 0, 0

    def breach_check(self) -> str | None:
        self.checks += 1
        return "p95 < 100ms: measured 130 ms" if self.checks == self.breach_on else None

    def rps_probe(self) -> float:
        self.probes += 1
        return 3.0 * self.probes


def run_stress(probe: FakeProbe, *, tick_every_s: int = 1, until_s: int = 10_000, **params: Any) -> tuple[Any, list]:
    """Tick a stress shape with ``params`` every ``tick_every_s`` until it stops; returns it and [(t, tick)]."""
    clock = FakeClock()
    profile = profile_from_dict({"description": "t", "shape": "stress", "params": params}, name="t")
    shape = shape_from_profile(profile, clock=clock, breach_check=probe.breach_check, rps_probe=probe.rps_probe)
    seen = []
    for t in range(0, until_s, tick_every_s):
        clock.now_s = 1000.0 + t
        tick = shape.tick()
        seen.append((t, tick))
        if tick is None:
            break
    return shape, seen


def test_stress_stops_at_the_first_breach_and_reports_the_highest_passing_step() -> None:
    probe = FakeProbe(breach_on=4)
    shape, seen = run_stress(probe, start_users=10, step_users=10, step_s=15, max_users=300)
    assert isinstance(shape, StressShape)
    assert dict(seen)[0] == (10, 10.0) and dict(seen)[14] == (10, 10.0) and dict(seen)[15] == (20, 10.0)
    assert dict(seen)[45] == (40, 10.0)
    assert seen[-1] == (60, None)  # the check at the end of the 40-user step breached
    assert (probe.checks, probe.probes) == (4, 3)
    result = shape.result()
    assert {k: result[k] for k in ("highest_ok_users", "highest_ok_rps", "breach", "breached_at_users")} == {
        "highest_ok_users": 30,
        "highest_ok_rps": 9.0,
        "breach": "p95 < 100ms: measured 130 ms",
        "breached_at_users": 40,
    }
    assert result["stopped_because"] == "breach"
    assert [s["users"] for s in result["steps"]] == [10, 20, 30, 40]
    assert shape.tick() is None and probe.checks == 4  # stays stopped, checks nothing more


def test_stress_breach_on_the_first_step_has_no_passing_step() -> None:
    shape, _ = run_stress(FakeProbe(breach_on=1), step_users=5, step_s=10, max_users=50)
    assert shape.result()["highest_ok_users"] == 0 and shape.result()["highest_ok_rps"] is None
    assert shape.result()["breached_at_users"] == 5  # start_users defaults to step_users


def test_stress_stops_after_the_max_users_step_passes() -> None:
    probe = FakeProbe(breach_on=None)
    shape, seen = run_stress(probe, start_users=10, step_users=10, step_s=15, max_users=30)
    assert seen[-1] == (45, None) and shape.duration_s == 45.0
    assert shape.result()["stopped_because"] == "max_users"
    assert (shape.result()["highest_ok_users"], shape.result()["breach"]) == (30, None)


def test_stress_is_bounded_by_max_duration() -> None:
    shape, seen = run_stress(FakeProbe(None), step_users=10, step_s=15, max_users=300, max_duration_s=40)
    assert seen[-1] == (40, None) and shape.result()["stopped_because"] == "max_duration"
    assert shape.result()["highest_ok_users"] == 20


def test_stress_checks_once_per_tick_even_after_a_clock_gap() -> None:
    probe = FakeProbe(None)
    shape, _ = run_stress(probe, tick_every_s=100, until_s=300, step_users=10, step_s=15, max_users=300)
    assert probe.checks == 2 and shape.tick() == (30, 10.0)  # steps 10 and 20 passed; 30 is running


def test_stress_needs_its_collaborators() -> None:
    with pytest.raises(ValueError, match=r"'stress' is a stress profile: pass breach_check=\.\.\. and rps_probe="):
        shape_from_profile(load_profile("stress"))
    with pytest.raises(ValueError, match="unknown collaborator 'clok'"):
        shape_from_profile(load_profile("smoke"), clok=FakeClock())


def test_a_shape_class_refuses_a_profile_of_another_shape() -> None:
    with pytest.raises(ValueError, match="profile 'spike' has shape 'spike', but RampShape runs shape 'ramp'"):
        RampShape(load_profile("spike"))
    with pytest.raises(ValueError, match="RampShape needs a profile: pass one, or set profile_name"):
        RampShape()


# ---------------------------------------------------------------- Locust integration


def test_the_library_shapes_are_abstract() -> None:
    classes = [c for _, c in inspect.getmembers(shapes, inspect.isclass) if issubclass(c, ProfileShape)]
    assert len(classes) == 7
    for cls in classes:
        assert cls.__dict__.get("abstract") is True, cls
        assert not is_shape_class(cls)


def _locustfile(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(
        "from locust import HttpUser, task\n"
        "from profiles.shapes import RampShape, SoakShape, SpikeShape, StagesShape, StepShape, StressShape\n"
        "class Reader(HttpUser):\n    @task\n    def read(self):\n        pass\n" + textwrap.dedent(body)
    )
    return path


def test_importing_the_shapes_into_a_locustfile_gives_it_no_shape(tmp_path: Path) -> None:
    users, shape_instances = load_locustfile(str(_locustfile(tmp_path, "lf_import_only", "")))
    assert list(users) == ["Reader"] and shape_instances == []


def test_a_subclass_naming_a_profile_is_picked_up_by_locust(tmp_path: Path) -> None:
    body = "class Shape(RampShape):\n    profile_name = 'ramp'\n"
    _, shape_instances = load_locustfile(str(_locustfile(tmp_path, "lf_subclass", body)))
    assert len(shape_instances) == 1 and isinstance(shape_instances[0], RampShape)
    assert shape_instances[0].profile == load_profile("ramp")
    assert isinstance(shape_instances[0].profile, Profile)
