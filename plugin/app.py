"""The Flask application factory.

Settings (:mod:`sharewise.plugin.settings`): the defaults, then the ``config`` mapping passed in
(tests), then ``SHAREWISE_<KEY>`` environment variables, built once into a frozen
:class:`~sharewise.plugin.settings.Settings` (``settings_of(app)``; the same typed values are in
``app.config``). Keys of ``config`` that are not settings (``TESTING``, ``CELERY``,
``BROKER_TRANSPORT_OPTIONS``...) go to ``app.config`` as given. On start the database is
migrated to head (unless ``MIGRATE_ON_START`` is false); a database that cannot be reached
raises :class:`~sharewise.plugin.settings.StartupError` (one line, password masked). The app
registers every concern's blueprint (:func:`blueprints`, imported when the app is built for
the web only): the factory is the one place that knows them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from flask import Blueprint, Flask

from sharewise.plugin import (
    access,
    crypto,
    db,
    logs,
    metrics,
    problems,
    security,
    storage,
    tenants,
)
from sharewise.plugin.celery import celery_init_app
from sharewise.plugin.records import policy as records_policy
from sharewise.plugin.reminders import policy as reminders_policy
from sharewise.plugin.settings import (
    KEYS,
    Settings,
    StartupError,
    build,
    install,
    sqlite_file,
    unreachable,
)
from sharewise.plugin.webhooks import throttle

#: what each concern checks of a tenant's values when the tenants file is read
TENANT_CHECKS = (records_policy.check_policy, reminders_policy.check_policy)


def blueprints() -> tuple[Blueprint, ...]:
    """Every concern's pages and endpoints. Imported here, not at the top: a process that
    serves no HTTP (the Celery worker) never loads the web's modules and what they bring (the
    upload path's PDF reader and pypdf, the intake's prefill and schemas: about 27 MB)."""
    from sharewise.plugin.admin.views import bp as admin_bp
    from sharewise.plugin.exporter import bp as exporter_bp
    from sharewise.plugin.health import bp as health_bp
    from sharewise.plugin.openapi import bp as openapi_bp
    from sharewise.plugin.outbox.demo_host import bp as demo_host_bp
    from sharewise.plugin.practitioner import online  # noqa: F401 (its routes join the blueprint)
    from sharewise.plugin.practitioner.views import bp as practitioner_bp
    from sharewise.plugin.records.views import bp as records_bp
    from sharewise.plugin.webhooks.views import bp as webhooks_bp

    return (webhooks_bp, records_bp, demo_host_bp, practitioner_bp, openapi_bp, health_bp,
            exporter_bp, admin_bp)


def create_app(config: Mapping[str, Any] | None = None, *,
               settings: Settings | None = None, web: bool = True) -> Flask:
    """Build the Sharewise Flask app (``settings``: already built by the caller, e.g. the CLI;
    else built here from ``config`` and the environment). ``web=False`` (the Celery worker and
    beat): no blueprints, so none of the web's modules are imported."""
    config = dict(config or {})
    built = settings or build(config)
    built = dataclasses.replace(built, secret_keys=built.signing_keys())
    app = Flask("plugin", root_path=str(Path(__file__).resolve().parent))
    app.config.update({k: v for k, v in config.items() if k not in KEYS})
    install(app, built)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logs.configure(built.log_level, built.log_format)

    db.init_app(app)
    if built.migrate_on_start:
        migrate(db.engine_for(app), built.database_url)
    tenants.init_app(app, TENANT_CHECKS)
    crypto.init_app(app, built.encryption_key_list())
    db.use_keyring(app, crypto.keyring(app))
    storage.init_app(app)
    problems.init_app(app)
    security.init_app(app)
    access.init_app(app)
    throttle.init_app(app)
    metrics.init_app(app)
    celery_init_app(app)
    if web:
        for blueprint in blueprints():
            app.register_blueprint(blueprint)
    return app


def existing_app(settings: Settings | None = None) -> Flask:
    """The app of a command that works on an existing installation (``links``,
    ``deliveries``, ``reminders``): it creates no data directory and no database; when they
    do not exist, :class:`~sharewise.plugin.settings.StartupError` says so.

    ``settings``: default, those the running ``sharewise`` command built, else the environment.
    """
    if settings is None:
        ctx = click.get_current_context(silent=True)
        settings = ctx.find_object(Settings) if ctx is not None else None
    settings = settings or build()
    first = "start `sharewise serve` or run `sharewise db upgrade` first"
    if settings.uses_data_dir() and not settings.data_dir.is_dir():
        raise StartupError(f"no data directory {settings.data_dir} (SHAREWISE_DATA_DIR); {first}")
    file = sqlite_file(settings.database_url)
    if file is not None and not file.is_file():
        raise StartupError(f"no database {file} (SHAREWISE_DATABASE_URL); {first}")
    return create_app(settings=settings)


def migrate(engine: Any, url: str) -> None:
    """``upgrade head`` on ``engine``; a database that cannot be reached is a
    :class:`~sharewise.plugin.settings.StartupError` naming ``url`` (password masked)."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        db.upgrade(engine)
    except (OperationalError, InterfaceError) as exc:
        raise StartupError(unreachable("database", url, exc)) from None
