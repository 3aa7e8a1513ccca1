"""Celery wiring (Flask's ``examples/celery`` pattern) and :func:`enqueue` by task name.

The plugin never imports ``tasks/``: it hands work to the worker by task *name*. Tasks are
defined in ``tasks/`` with ``@shared_task(name=...)`` and run inside the Flask app context.
The broker only carries work: anything that must happen is a database row first, and a beat
sweep re-enqueues what is due and not done (see ``tasks/sweeps.py``).
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from queue import Empty
from typing import Any

from celery import Celery, Task
from flask import Flask, current_app
from kombu.transport import sqlalchemy as sqla

from sharewise.plugin.settings import SQLA_SQLITE, settings_of

log = logging.getLogger(__name__)

FILESYSTEM_PREFIX = "filesystem://"


def broker_settings(url: str) -> dict[str, Any]:
    """Celery broker settings for ``url``.

    ``sqla+sqlite:///<file>`` (the embedded default): kombu's SQLAlchemy transport, which keeps
    each message as one row written in one SQLite transaction, so concurrent producers and
    consumers of several processes never see half a message (the file's folder is created),
    with one pooled connection per process.
    ``filesystem://<dir>`` becomes kombu's filesystem transport options (not safe with several
    processes: kombu issue 1551).
    """
    if url.startswith(SQLA_SQLITE):
        Path(url[len(SQLA_SQLITE):]).parent.mkdir(parents=True, exist_ok=True)
        # kombu passes these to create_engine: one pooled connection to the file, and any
        # more a burst needs are closed when it is over (QueuePool's overflow), so a process
        # keeps at most one descriptor on broker.db however busy it was
        return {"broker_url": url[len("sqla+"):], "broker_transport": EMBEDDED_TRANSPORT,
                "broker_transport_options": {"pool_size": 1, "max_overflow": 8}}
    if url.startswith(FILESYSTEM_PREFIX):
        root = Path(url[len(FILESYSTEM_PREFIX) :] or "broker").expanduser().resolve()
        queue, processed, control = root / "queue", root / "processed", root / "control"
        for d in (queue, processed, control):
            d.mkdir(parents=True, exist_ok=True)
        return {
            "broker_url": "filesystem://localhost/",  # kombu ignores the host; avoids a warning
            "broker_transport_options": {
                "data_folder_in": str(queue),
                "data_folder_out": str(queue),
                "processed_folder": str(processed),
                "control_folder": str(control),
                "store_processed": False,
                "polling_interval": 0.1,
            },
        }
    return {"broker_url": url, "broker_transport_options": {}}


#: The embedded broker's transport: kombu's SQLAlchemy transport, skipping damaged messages.
EMBEDDED_TRANSPORT = f"{__name__}:EmbeddedTransport"


class _SkippingChannel(sqla.Channel):
    """kombu's SQLAlchemy channel that skips a message it cannot read instead of failing.

    kombu takes the row (marks it invisible, commits) and then decodes it; a row that is not
    JSON, or not a kombu message, would raise out of the worker's event loop and stop the
    worker ("Unrecoverable error"). Such a row can only come from outside (each message is one
    row, written in one transaction), and whatever work it stood for is a database row that a
    beat sweep hands out again; so it is logged and skipped, and the worker carries on.
    """

    def _get(self, queue: str) -> Any:
        try:
            message = super()._get(queue)
        except ValueError:  # not JSON (json.JSONDecodeError is a ValueError)
            message = None
        if isinstance(message, dict) and {"body", "properties"} <= message.keys():
            return message
        log.error("a message on broker queue %r could not be read and was skipped "
                  "(the sweeps hand out again whatever work it stood for)", queue)
        raise Empty()


class EmbeddedTransport(sqla.Transport):
    """kombu's SQLAlchemy transport with :class:`_SkippingChannel` (Celery's
    ``broker_transport`` names it; the URL is the SQLite file's SQLAlchemy URL).

    It looks for a new message every 0.1 s rather than kombu's 1 s: with one task prefetched
    per thread, a worker takes its next task only on a poll, so 1 s would cap it at about a
    task a second per thread (a backlog of post-backs after an outage would take hours). The
    transport option cannot say so: kombu passes this transport's options to
    ``create_engine``.
    """

    Channel = _SkippingChannel
    polling_interval = 0.1


def purge_handled_messages(url: str) -> int:
    """Delete the rows of the messages workers have taken from the embedded broker; how many.

    kombu's SQLAlchemy transport marks a message it hands to a worker invisible and keeps the
    row; it never reads such a row again (a message a worker gives back is written anew), so
    the rows only grow the file (about 1.4 KB a message). Other brokers: nothing to do (0).
    """
    if not url.startswith(SQLA_SQLITE):
        return 0
    with closing(sqlite3.connect(url[len(SQLA_SQLITE):], timeout=30)) as conn, conn:
        try:
            return conn.execute("DELETE FROM kombu_message WHERE visible = 0").rowcount
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # nothing was ever sent
                return 0
            raise


def celery_init_app(app: Flask) -> Celery:
    """Create the app's Celery application (``app.extensions['celery']``)."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    conf: dict[str, Any] = {
        **broker_settings(settings_of(app).broker_url),
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": {},
    }
    conf["broker_transport_options"].update(settings_of(app).broker_transport_options)
    conf.update(app.config.get("CELERY") or {})
    celery_app.config_from_object(conf)
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def celery_app_for(app: Flask | None = None) -> Celery:
    """The Celery app of ``app`` (default: the current app)."""
    return (app or current_app).extensions["celery"]


def connect_producer(celery_app: Celery) -> None:
    """Open the connection of the pooled task producer now, as a web worker starts
    (:mod:`sharewise.plugin.gunicorn_conf`), so its open descriptors do not depend on what it
    has served; a broker that does not answer is logged, not raised."""
    try:
        with celery_app.producer_or_acquire() as producer:
            # declaring the queue tasks go to reaches the broker itself (the embedded one
            # opens its database connection only then); the worker declares it as well
            producer.maybe_declare(celery_app.amqp.queues[celery_app.conf.task_default_queue])
    except Exception as exc:  # noqa: BLE001  (the first send tries again)
        log.warning("broker not reachable when the web worker started (%s); "
                    "the first task sent will try again", type(exc).__name__)


def enqueue(task_name: str, *args: Any, app: Flask | None = None, **options: Any) -> str:
    """Send a task by name (arguments: ids only, never personal data); returns the task id.

    Call it *after* the transaction that wrote the row the task works on has committed.
    """
    result = celery_app_for(app).send_task(task_name, args=args, **options)
    return result.id
