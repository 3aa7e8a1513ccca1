"""The Flask application factory.

Configuration layers: the defaults (``config/defaults.toml``), then the ``config`` mapping
passed in (tests), then ``SHAREWISE_<KEY>`` environment variables, then derived values
(:func:`sharewise.plugin.settings.finalise`). On start the database is migrated to head (unless
``MIGRATE_ON_START`` is false). Concerns register their blueprints in :data:`BLUEPRINTS`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Request, Response, jsonify
from flask.sessions import SessionInterface

from sharewise.plugin import db, problems, settings, storage, tenants
from sharewise.plugin.celery import celery_init_app

#: ``"module:attribute"`` of every blueprint; each concern adds one line.
BLUEPRINTS: list[str] = [
    "sharewise.plugin.webhooks.views:bp",
    "sharewise.plugin.records.views:bp",
    "sharewise.plugin.outbox.demo_host:bp",
    "sharewise.plugin.practitioner.views:bp",
]


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def configure_logging(level: str) -> None:
    """Plain process-wide logging (record ids only ever reach it)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


class NoSessions(SessionInterface):
    """Sharewise sets no cookies: every link carries its own signed token.

    Flask's default cookie session would build a signing serializer on every request (about
    0.05 ms of intake's time) for a session nothing reads.
    """

    def open_session(self, app: Flask, request: Request) -> None:
        """No session: Flask falls back to its null session, which refuses writes."""
        return None

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        """Nothing to save."""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Sharewise Flask app."""
    app = Flask("plugin", root_path=str(Path(__file__).resolve().parent))
    app.config.update(settings.defaults())
    app.config.update(config or {})
    app.config.from_prefixed_env(settings.ENV_PREFIX)
    settings.finalise(app.config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.session_interface = NoSessions()
    configure_logging(str(app.config.get("LOG_LEVEL", "INFO")))

    db.init_app(app)
    if app.config["MIGRATE_ON_START"]:
        db.upgrade(db.engine_for(app))
    tenants.init_app(app)
    storage.init_app(app)
    problems.init_app(app)
    celery_init_app(app)
    for ref in BLUEPRINTS:
        app.register_blueprint(_load(ref))
    app.add_url_rule("/healthz", "healthz", _healthz)
    return app


def _healthz() -> Response:
    """Liveness and database check for load balancers and ``sharewise serve``'s start-up."""
    from sqlalchemy import text

    with db.session_scope(readonly=True) as session:
        session.execute(text("SELECT 1"))
    resp = jsonify({"status": "ok"})
    resp.headers["Cache-Control"] = "no-store"
    return resp
