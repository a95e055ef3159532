"""The busy-machine judge of measuring tests (tests/machine_load.py): a load outside the test turns a failed
measurement into a skip that says so; the test's own processes never count as that load."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.machine_load import MachineWatch, _machine_busy_s

BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
BURN_CPU = "import time\nwhile time.process_time() < {cpu_s}: pass\n"


def _burn_outside_this_tree(seconds: float) -> int:
    """A CPU-bound process that is not this test's descendant (its shell parent exits at once: orphaned); its pid."""
    command = f'"{sys.executable}" -c "$0" >/dev/null 2>&1 & echo $!'
    done = subprocess.run(["sh", "-c", command, BURN.format(seconds=seconds)], check=True, timeout=10,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout.strip())


def test_a_failed_check_on_a_quiet_enough_machine_still_fails() -> None:
    watch = MachineWatch(max_other_cores=psutil.cpu_count() + 1)  # others can never use more cores than exist
    with pytest.raises(AssertionError, match="the real failure"), watch.judging("a figure"):
        raise AssertionError("the real failure")


def test_a_failed_check_while_another_process_burns_a_core_is_skipped_with_the_reason() -> None:
    watch = MachineWatch(max_other_cores=0.3)
    # It burns until the watch has seen it (then it is stopped): a fixed 1.5 s burn on a machine busy with the rest
    # of the suite got too little CPU to lift the average, and the judge rightly called the machine quiet.
    burner = psutil.Process(_burn_outside_this_tree(30))
    try:
        deadline = time.monotonic() + 25
        while watch.other_cores() < 0.6 and time.monotonic() < deadline:  # until the other process has shown up
            time.sleep(0.05)
        busy = r"machine too busy to measure a figure: other processes used"
        with pytest.raises(pytest.skip.Exception, match=busy), watch.judging("a figure"):
            raise AssertionError("slow because the machine was busy")
    finally:
        burner.kill()


def test_a_passing_check_is_never_skipped() -> None:
    watch = MachineWatch(max_other_cores=0.0)
    with watch.judging("a figure"):
        assert True


def test_the_test_s_own_children_do_not_count_as_others() -> None:
    """A child that burns 0.5 s of CPU (whatever the wall time a busy machine makes of it) counts as the test's."""
    watch = MachineWatch()
    busy0, started = _machine_busy_s(), time.monotonic()
    subprocess.run([sys.executable, "-c", BURN_CPU.format(cpu_s=0.5)], check=True, timeout=60)
    wall = time.monotonic() - started
    machine_cpu_s = _machine_busy_s() - busy0
    own_cpu_s = machine_cpu_s - watch.other_cores() * wall
    assert own_cpu_s >= 0.4, (machine_cpu_s, own_cpu_s, wall)


def test_time_waited_for_the_machine_goes_back_to_the_timeout_budget() -> None:
    from tests.conftest import _extend_timeout

    previous = signal.setitimer(signal.ITIMER_REAL, 200.0)  # as pytest-timeout's signal method arms it
    try:
        _extend_timeout(50.0)
        assert 249.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 250.0
        _extend_timeout(0.01)  # no queueing to speak of: the budget stays
        assert signal.getitimer(signal.ITIMER_REAL)[0] <= 250.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, *previous)
    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        _extend_timeout(50.0)  # no timer armed (pytest-timeout off or another method): nothing is armed
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, *previous)
