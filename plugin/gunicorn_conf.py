"""gunicorn server hooks of ``sharewise web`` and ``serve`` (``--config python:...gunicorn_conf``).

gunicorn reads every top-level name of this module as a setting; only hooks live here, the
command-line settings stay in :func:`sharewise.plugin.cli._web_argv` where they can be read.
"""

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    """A web worker ended: its live-only metric samples go (prometheus-client's multiprocess
    mode; counters and histograms stay, summed)."""
    from sharewise.plugin.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    """A new web worker connects its task producer before it serves anything.

    Otherwise the worker would open its broker connection on the first request that sends a
    task, so a worker's open descriptors would depend on what it had served; this way a fresh
    worker (also one forked to replace a worker that reached ``--max-requests``) and a busy
    one hold the same. A broker that cannot be reached here is reported and tried again on the
    first send (the database row is written first in any case).
    """
    from sharewise.plugin.celery import celery_app_for, connect_producer

    connect_producer(celery_app_for(worker.wsgi))
