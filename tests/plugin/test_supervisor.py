"""The supervisor of ``sharewise serve``'s children, on real processes with a test clock."""

from __future__ import annotations

import signal
import sys

from sharewise.plugin import supervisor
from sharewise.plugin.supervisor import Child, Supervisor
from tests.polling import wait_until

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
FAIL = [sys.executable, "-c", "raise SystemExit(3)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_child_that_exits_is_started_again_with_doubling_back_off():
    clock, said = Clock(), []
    child = Child("worker", FAIL)
    sup = Supervisor([child], say=said.append, clock=clock)
    sup.start()
    waits = []
    for _ in range(8):
        first_pid = child.pid
        wait_until(lambda: child.process.poll() is not None, timeout=10)  # noqa: B023
        sup.check()
        assert child.restart_at is not None
        waits.append(child.restart_at - clock.now)
        clock.now = child.restart_at - 0.01
        sup.check()
        assert child.pid == first_pid  # not before its time
        clock.now = child.restart_at
        sup.check()
        assert child.pid != first_pid
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert child.restarts == 8
    assert "worker (pid" in said[0] and "exited with code 3" in said[0]
    assert "starting it again in 1 s" in said[0]
    sup.stop()


def test_the_back_off_starts_over_after_a_child_ran_for_a_while():
    clock = Clock()
    child = Child("beat", FAIL, backoff=32.0)
    sup = Supervisor([child], say=lambda _: None, clock=clock)
    sup.start()
    clock.now += supervisor.STABLE_AFTER
    wait_until(lambda: child.process.poll() is not None, timeout=10)
    sup.check()
    assert child.restart_at == clock.now + 1


def test_stop_asks_the_children_to_stop_and_kills_one_that_does_not(monkeypatch):
    monkeypatch.setattr(supervisor, "STOP_TIMEOUT", 1.0)
    polite = Child("web", SLEEP)
    stubborn = Child("worker", [sys.executable, "-c",
                                "import signal, time; signal.signal(signal.SIGTERM, "
                                "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"])
    said = []
    sup = Supervisor([polite, stubborn], say=said.append)
    sup.start()
    import time

    time.sleep(0.5)  # the stubborn child has set its handler
    sup.request_stop()
    sup.run(interval=0.01)
    assert polite.process.returncode == -signal.SIGTERM
    assert stubborn.process.returncode == -signal.SIGKILL
    assert said == [f"worker (pid {stubborn.pid}) did not stop in time; killed"]


def test_a_stopping_supervisor_starts_nothing_again():
    clock = Clock()
    child = Child("worker", FAIL)
    sup = Supervisor([child], say=lambda _: None, clock=clock)
    sup.start()
    wait_until(lambda: child.process.poll() is not None, timeout=10)
    sup.check()
    pid = child.pid
    sup.request_stop()
    clock.now += 120
    sup.check()
    assert child.pid == pid and child.restarts == 0
