"""The Flask application factory.

Configuration layers: the defaults (``config/defaults.toml``), then the ``config`` mapping
passed in (tests), then ``SHAREWISE_<KEY>`` environment variables, then derived values
(:func:`sharewise.plugin.settings.finalise`). On start the database is migrated to head (unless
``MIGRATE_ON_START`` is false). The app registers every concern's blueprint, imported here:
the factory is the one place that knows them all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify

from sharewise.plugin import db, problems, settings, storage, tenants
from sharewise.plugin.celery import celery_init_app
from sharewise.plugin.outbox.demo_host import bp as demo_host_bp
from sharewise.plugin.practitioner.views import bp as practitioner_bp
from sharewise.plugin.records.views import bp as records_bp
from sharewise.plugin.webhooks.views import bp as webhooks_bp

BLUEPRINTS = (webhooks_bp, records_bp, demo_host_bp, practitioner_bp)


def configure_logging(level: str) -> None:
    """Plain process-wide logging (record ids only ever reach it)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Sharewise Flask app."""
    app = Flask("plugin", root_path=str(Path(__file__).resolve().parent))
    app.config.update(settings.defaults())
    app.config.update(config or {})
    app.config.from_prefixed_env(settings.ENV_PREFIX)
    settings.finalise(app.config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    configure_logging(str(app.config.get("LOG_LEVEL", "INFO")))

    db.init_app(app)
    if app.config["MIGRATE_ON_START"]:
        db.upgrade(db.engine_for(app))
    tenants.init_app(app)
    storage.init_app(app)
    problems.init_app(app)
    celery_init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
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
