"""The child processes of ``sharewise serve``: start them, keep them running, stop them.

A child that exits is logged with its exit code and started again after a back-off that
doubles with each quick failure (1 s, 2 s, 4 s ... at most :data:`MAX_BACKOFF`) and starts
over once a child has run for :data:`STABLE_AFTER` seconds. Only a signal (``SIGINT``,
``SIGTERM``) stops the service: every child's main process is asked to stop (``SIGTERM``:
gunicorn and Celery then stop their own workers), given :data:`STOP_TIMEOUT` seconds, then
its whole process group is killed.

This module imports nothing of the app: the supervisor stays a small process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Longest wait before starting a child that keeps failing again (seconds).
MAX_BACKOFF = 60.0
#: A child that ran this long before it exited is restarted after the first back-off again.
STABLE_AFTER = 60.0
#: How long the children get to stop before they are killed (seconds).
STOP_TIMEOUT = 15.0


@dataclass
class Child:
    """One supervised program: ``argv`` run in a process group of its own."""

    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    restarts: int = 0
    env: dict[str, str] | None = field(default=None, repr=False)

    def start(self, now: float) -> None:
        """Start (or start again) the program; ``now`` is the supervisor's clock."""
        self.process = subprocess.Popen(list(self.argv), start_new_session=True, env=self.env)
        self.started_at = now
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        """The running process's id, if any."""
        return self.process.pid if self.process is not None else None


class Supervisor:
    """Keeps ``children`` running until :meth:`request_stop` (or a signal) and stops them."""

    def __init__(self, children: Sequence[Child], *,
                 say: Callable[[str], None] = lambda line: log.warning("%s", line),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.children = list(children)
        self.say = say
        self.clock = clock
        self.stopping = False

    def request_stop(self, *_args: Any) -> None:
        """Ask the loop to stop (safe in a signal handler)."""
        self.stopping = True

    def install_signal_handlers(self) -> None:
        """``SIGINT`` and ``SIGTERM`` stop the service."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def start(self) -> None:
        """Start every child."""
        for child in self.children:
            child.start(self.clock())

    def check(self) -> None:
        """One round: note children that exited and start those whose back-off is over."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at and not self.stopping:
                    child.restarts += 1
                    child.start(now)
                    self.say(f"{child.name} started again (pid {child.pid})")
                continue
            code = child.process.poll() if child.process is not None else None
            if code is None:
                continue
            ran = now - child.started_at
            if ran >= STABLE_AFTER:
                child.backoff = 1.0
            wait, child.backoff = child.backoff, min(child.backoff * 2, MAX_BACKOFF)
            child.restart_at = now + wait
            self.say(f"{child.name} (pid {child.pid}) exited with code {_describe(code)} after "
                     f"{ran:.0f} s; starting it again in {wait:.0f} s")

    def run(self, interval: float = 0.2) -> None:
        """Supervise until asked to stop, then stop every child."""
        while not self.stopping:
            self.check()
            time.sleep(interval)
        self.stop()

    def stop(self) -> None:
        """Ask every running child to stop; kill those still running after the timeout."""
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = self.clock() + STOP_TIMEOUT
        for child in running:
            assert child.process is not None  # noqa: S101 - running children have one
            try:
                child.process.wait(max(0.1, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} (pid {child.pid}) did not stop in time; killed")
                _signal_group(child, signal.SIGKILL)
                child.process.wait()


def _signal_group(child: Child, sig: int) -> None:
    try:
        os.killpg(child.process.pid, sig)  # type: ignore[union-attr]
    except ProcessLookupError:
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)


def wait_until_up(sup: Supervisor, health_url: str, interval: float = 0.2) -> bool:
    """Supervise until ``health_url`` answers 200 (``True``) or a stop is asked (``False``)."""
    import urllib.request

    while not sup.stopping:
        try:  # health_url is http://<our own host>:<port>/healthz, built by `serve` (B310)
            with urllib.request.urlopen(health_url, timeout=2) as resp:  # noqa: S310  # nosec B310
                if resp.status == 200:
                    return True
        except OSError:
            pass
        sup.check()
        time.sleep(interval)
    return False


def main(argv: Sequence[str]) -> int:
    """``python -m sharewise.plugin.supervisor SPEC``: what ``sharewise serve`` turns into.

    ``SPEC`` is JSON: ``{"children": [{"name", "argv"}...], "health_url", "ready"}``; the
    ``ready`` line is printed once ``health_url`` answers. A fresh interpreter that imports
    only this module, so the long-lived supervisor holds none of the app's memory.
    """
    import json
    import sys

    spec = json.loads(argv[1])

    def say(line: str) -> None:
        print(f"sharewise: {line}", file=sys.stderr, flush=True)

    sup = Supervisor([Child(c["name"], c["argv"]) for c in spec["children"]], say=say)
    sup.install_signal_handlers()
    sup.start()
    if wait_until_up(sup, spec["health_url"]):
        pids = ", ".join(f"{child.name} pid {child.pid}" for child in sup.children)
        say(spec["ready"].replace("{pids}", pids))
    sup.run()
    say("stopped")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
