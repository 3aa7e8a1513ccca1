"""The Celery application the worker and beat run: ``celery -A sharewise.tasks.worker worker|beat``.

Builds the Flask app (settings from the environment) and its Celery app; importing this module
imports every task module (each concern adds one import line: their ``shared_task``s and
sweeps register themselves) and :func:`install` puts the beat sweeps in with the intervals of
the app's settings. A bad setting or an unreachable database stops the process
with one line (no traceback). In beat, the routine "Scheduler: Sending due task" lines are
logged at DEBUG (:data:`ROUTINE_BEAT_LINES`, installed on the ``celery.beat`` logger when
beat starts: Celery's ``beat_init`` signal), and so are the sweeps' own "Task ... received /
succeeded" lines (:data:`ROUTINE_TASK_LINES`; each a :class:`sharewise.plugin.logs.DemoteToDebug`
filter). Celery's log handlers get the service's log format (``after_setup_logger``). Celery's
multi-line "superuser privileges" warning is replaced by one
line saying what to do, logged once when a worker starts as root.

``sharewise serve`` runs one worker for the whole service, with beat as a thread of it
(``--beat-thread``, :class:`BeatThread`: a worker bootstep, Celery's documented way to add to a
worker, running ``celery.beat.EmbeddedService(thread=True)``). Celery's own ``--beat`` forks a
process for beat, which costs a copy of the worker's memory; a scaled-out installation runs
``sharewise beat`` once instead.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import warnings
from typing import Any

import click
from celery import Celery, bootsteps
from celery.beat import EmbeddedService
from celery.exceptions import SecurityWarning
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    beat_init,
    task_postrun,
    task_prerun,
    worker_init,
)
from flask import Flask

from sharewise.plugin import logs, metrics
from sharewise.plugin.settings import SettingsError, StartupError, build, settings_of
from sharewise.tasks import delivery, reminders, retention  # noqa: F401 (tasks register)
from sharewise.tasks.sweeps import SWEEPS, beat_schedule

# replaced by one line of our own that says what to do (_privileges)
warnings.filterwarnings("ignore", category=SecurityWarning)


class BeatThread(bootsteps.StartStopStep):
    """Celery beat as a thread of this worker (``celery worker --beat-thread``)."""

    def __init__(self, parent: Any, beat_thread: bool = False, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.enabled = bool(beat_thread)
        self.service: Any = None

    def start(self, parent: Any) -> None:
        """Start beat (its schedule file: Celery's ``beat_schedule_filename``)."""
        self.service = EmbeddedService(parent.app, thread=True)
        self.service.start()

    def stop(self, parent: Any) -> None:
        """Stop beat (it saves its schedule)."""
        if self.service is not None:
            self.service.stop()
            self.service = None


def install(flask_app: Flask) -> Celery:
    """The app's Celery application with every task and the beat schedule."""
    celery_app: Celery = flask_app.extensions["celery"]
    celery_app.conf.beat_schedule = beat_schedule(settings_of(flask_app))
    celery_app.conf.beat_schedule_filename = str(
        settings_of(flask_app).data_dir / "celerybeat-schedule")
    celery_app.user_options["worker"].add(click.Option(
        ["--beat-thread"], is_flag=True, default=False,
        help="Run Celery beat as a thread of this worker (sharewise serve's one worker)."))
    celery_app.steps["worker"].add(BeatThread)
    return celery_app


def make_celery() -> Celery:
    """Create the Flask app from the environment and return its Celery application."""
    from sharewise.plugin.app import create_app

    try:
        celery_app = install(create_app(web=False))  # serves no HTTP: no web modules
    except (SettingsError, StartupError) as exc:
        raise SystemExit(f"sharewise: {exc}") from None
    gc.freeze()  # before the pool forks: the collector then leaves the shared pages alone
    return celery_app


def _routine_beat_line(record: logging.LogRecord) -> bool:
    """Beat's "Scheduler: Sending due task ..." (every sweep, every minute)."""
    return isinstance(record.msg, str) and record.msg.startswith("Scheduler: Sending due task")


#: the sweeps' task names (their lines are routine)
_SWEEP_TASKS = frozenset(s["task"] for s in SWEEPS.values())


def _routine_task_line(record: logging.LogRecord) -> bool:
    """A sweep's "Task ... received" and "... succeeded" lines (every minute, each sweep);
    not other tasks' lines, nor any failure."""
    args = record.args
    return (record.levelno == logging.INFO and isinstance(args, dict)
            and args.get("name") in _SWEEP_TASKS)


#: the routine lines of beat and of the sweeps, logged at DEBUG; one instance each, so adding
#: it to a logger again changes nothing (``logging.Filterer.addFilter``)
ROUTINE_BEAT_LINES = logs.DemoteToDebug(_routine_beat_line)
ROUTINE_TASK_LINES = logs.DemoteToDebug(_routine_task_line)
_EXCEPTION_TYPE_ONLY = logs.ExceptionTypeOnly()


@beat_init.connect
def _quiet_routine_beat_lines(sender: Any = None, **_kwargs: Any) -> None:
    logging.getLogger("celery.beat").addFilter(ROUTINE_BEAT_LINES)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger | None = None, **_kwargs: Any) -> None:
    """Celery's handlers write the service's log format (:mod:`sharewise.plugin.logs`); a
    failed task's line names its exception's type, not its message; the sweeps' routine
    lines are DEBUG."""
    if logger is not None:
        logs.use_format(logger, build().log_format)
    logging.getLogger("celery.app.trace").addFilter(_EXCEPTION_TYPE_ONLY)
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).addFilter(ROUTINE_TASK_LINES)


@worker_init.connect
def _privileges(**_kwargs: Any) -> None:
    """Celery's "superuser privileges" warning, once and with what to do (its own is a
    multi-line SecurityWarning that names no remedy)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        logging.getLogger(__name__).warning(
            "the Celery worker runs as root: run Sharewise as an unprivileged user (in "
            "systemd, User= in the unit; in a container, USER in the image)")


_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str | None = None, **_kwargs: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_ended(task_id: str | None = None, task: Any = None, state: str | None = None,
                **_kwargs: Any) -> None:
    """The task's run time in ``sharewise_task_duration_seconds`` (plugin/metrics.py)."""
    started = _started.pop(task_id or "", None)
    if started is not None and task is not None:
        metrics.TASK_SECONDS.labels(task.name, state or "unknown").observe(
            time.perf_counter() - started)


_celery: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``tasks.worker.app`` / ``.celery``: built on first use (so importing this is cheap)."""
    global _celery
    if name in ("app", "celery"):
        if _celery is None:
            _celery = make_celery()
        return _celery
    raise AttributeError(name)
