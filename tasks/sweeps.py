"""Beat sweeps: the registry other task modules add to, and a ``ping`` task for health checks.

A sweep re-enqueues work that the database says is due and not done (the broker may lose a
message; the row never is). Register one with :func:`register_sweep` at import time of your
task module; ``tasks.worker`` puts every registered sweep into Celery's ``beat_schedule``
(interval ``SWEEP_INTERVAL`` seconds unless given).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from sharewise.plugin.storage import storage

#: name -> {"task": task name, "seconds": interval or None for SWEEP_INTERVAL, "args": (...)}
SWEEPS: dict[str, dict[str, Any]] = {}


def register_sweep(
    name: str, task: str, seconds: float | None = None, args: tuple[Any, ...] = ()
) -> None:
    """Add (or replace) a periodic sweep."""
    SWEEPS[name] = {"task": task, "seconds": seconds, "args": args}


def beat_schedule(default_seconds: float) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` for every registered sweep."""
    return {
        name: {
            "task": s["task"],
            "schedule": float(s["seconds"] or default_seconds),
            "args": tuple(s["args"]),
            "options": {"expires": float(s["seconds"] or default_seconds)},
        }
        for name, s in SWEEPS.items()
    }


@shared_task(name="sharewise.ping")
def ping(token: str) -> str:
    """Write ``health/<token>`` to the file store: proves a worker runs with the app context."""
    storage().put(f"health/{token}", token.encode())
    return token
