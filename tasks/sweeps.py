"""Beat sweeps: the registry other task modules add to, a ``ping`` task for health checks, and
the embedded broker's purge of handled messages (every ``SWEEP_INTERVAL``).

A sweep re-enqueues work that the database says is due and not done (the broker may lose a
message; the row never is). Register one with :func:`register_sweep` at import time of your
task module, naming the setting that holds its interval; ``tasks.worker`` puts every registered
sweep into Celery's ``beat_schedule`` with the app's settings (``SWEEP_INTERVAL`` unless named).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from flask import current_app

from sharewise.plugin.celery import purge_handled_messages
from sharewise.plugin.settings import Settings, settings_of
from sharewise.plugin.storage import storage

#: name -> {"task": task name, "every": the setting holding its interval, "args": (...)}
SWEEPS: dict[str, dict[str, Any]] = {}


def register_sweep(
    name: str, task: str, every: str = "sweep_interval", args: tuple[Any, ...] = ()
) -> None:
    """Add (or replace) a periodic sweep, run every ``every`` seconds (a :class:`Settings`
    field such as ``"delivery_sweep_interval"``)."""
    if every not in Settings.__dataclass_fields__:
        raise ValueError(f"no setting {every!r}")
    SWEEPS[name] = {"task": task, "every": every, "args": args}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` for every registered sweep, intervals from ``settings``."""
    schedule = {}
    for name, s in SWEEPS.items():
        seconds = getattr(settings, s["every"])
        schedule[name] = {"task": s["task"], "schedule": seconds, "args": tuple(s["args"]),
                          "options": {"expires": seconds}}
    return schedule


@shared_task(name="sharewise.ping")
def ping(token: str) -> str:
    """Write ``health/<token>`` to the file store: proves a worker runs with the app context."""
    storage().put(f"health/{token}", token.encode())
    return token


@shared_task(name="tasks.broker.purge")
def purge_broker() -> int:
    """Drop the embedded broker's rows of messages already handed to a worker."""
    return purge_handled_messages(settings_of(current_app).broker_url)


register_sweep("broker-purge", "tasks.broker.purge")
