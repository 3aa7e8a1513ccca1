"""The Celery application the worker and beat run: ``celery -A sharewise.tasks.worker worker|beat``.

Builds the Flask app (settings from the environment), its Celery app, imports every task
module (:data:`TASK_MODULES`; each concern adds one line) and installs the beat sweeps.
"""

from __future__ import annotations

import importlib

from celery import Celery
from flask import Flask

#: Every module defining tasks or sweeps.
TASK_MODULES: list[str] = [
    "sharewise.tasks.sweeps",
    "sharewise.tasks.reminders",
    "sharewise.tasks.delivery",
]


def load_task_modules() -> None:
    """Import every task module (registers their ``shared_task``s and sweeps)."""
    for name in TASK_MODULES:
        importlib.import_module(name)


def install(flask_app: Flask) -> Celery:
    """The app's Celery application with every task and the beat schedule."""
    load_task_modules()
    from sharewise.tasks.sweeps import beat_schedule

    celery_app: Celery = flask_app.extensions["celery"]
    celery_app.conf.beat_schedule = beat_schedule(float(flask_app.config["SWEEP_INTERVAL"]))
    return celery_app


def make_celery() -> Celery:
    """Create the Flask app from the environment and return its Celery application."""
    from sharewise.plugin.app import create_app

    return install(create_app())


_celery: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``tasks.worker.app`` / ``.celery``: built on first use (so importing this is cheap)."""
    global _celery
    if name in ("app", "celery"):
        if _celery is None:
            _celery = make_celery()
        return _celery
    raise AttributeError(name)
