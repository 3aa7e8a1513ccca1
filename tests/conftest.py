"""Fixtures every test uses.

* ``backend``: parametrised ``"sqlite"`` / ``"postgres"``. PostgreSQL runs only with
  ``SHAREWISE_TEST_SERVICES=1`` (skipped otherwise, with that reason). It uses one throwaway
  database per test session (unique name, migrated once, dropped at the end) and truncates
  every table before each test; SQLite gets a fresh copy of a migrated database file per test.
* ``app``: ``create_app`` with a temporary ``DATA_DIR``, a tenants file with two tenants
  (``northshire``, ``southvale``), migrations applied, ``BASE_URL=http://sharewise.test``.
  The broker is the embedded one (kombu's SQLAlchemy transport on ``DATA_DIR/broker.db``) or Redis
  (PostgreSQL run, own key prefix). Every ``SHAREWISE_*`` variable of the environment (except
  ``SHAREWISE_TEST_SERVICES``) is removed for the session so it cannot leak into tests.
* ``client``: the Flask test client. ``db_session``: a SQLAlchemy session on the app's database
  (on SQLite its transactions BEGIN deferred, so holding it open never blocks the app; call
  ``db_session.expire_all()`` or ``rollback()`` to see the app's later writes).
* ``tenant`` / ``other_tenant``: the two :class:`sharewise.plugin.tenants.Tenant` objects.
* ``sample_event(request_id=None, urgency="routine", **data_overrides)``: a valid
  ``share.requested`` body (Unicode names).
* ``signed_post(tenant, event, webhook_id=None, secret=None, timestamp=None, headers=None)``:
  signs ``event`` (dict or raw bytes) with the tenant's first webhook secret (or ``secret``) and
  POSTs it to ``/webhooks/<tenant>`` through ``client``; returns the response.
* ``celery_worker``: a REAL Celery worker (``celery.contrib.testing.worker.start_worker``, in a
  thread) consuming from the app's broker, with every task module of ``tasks.worker`` loaded.
  Never eager mode.
* ``services_required`` (marker ``services``): ``pytest.mark.services`` tests, and the helper
  ``require_services()``, skip unless ``SHAREWISE_TEST_SERVICES=1``.
* ``live_server_url`` helpers live with the tests that need them (tests/plugin/test_cli.py).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SERVICES = os.environ.get("SHAREWISE_TEST_SERVICES") == "1"
SKIP_SERVICES = "needs PostgreSQL/Redis/RabbitMQ: set SHAREWISE_TEST_SERVICES=1 to run"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"

from sharewise.plugin.signing import generate_secret  # noqa: E402
from tests.polling import wait_until  # noqa: E402

TENANT_SECRETS = {
    "northshire": generate_secret(),
    "southvale": generate_secret(),
}


def require_services() -> None:
    """Skip the calling test unless the real services are available."""
    if not SERVICES:
        pytest.skip(SKIP_SERVICES)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if SERVICES:
        return
    skip = pytest.mark.skip(reason=SKIP_SERVICES)
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def services_required() -> None:
    require_services()


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items()
             if k.startswith("SHAREWISE_") and k != "SHAREWISE_TEST_SERVICES"}
    for k in saved:
        del os.environ[k]
    yield
    os.environ.update(saved)


# ------------------------------------------------------------------------------ databases


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sharewise.plugin.db import make_engine, upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "sharewise.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    # (the WAL checkpointer's pass may hold the last connection for a moment)
    wait_until(lambda: not Path(f"{path}-wal").exists(), timeout=10)
    return path


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    import sqlalchemy as sa

    from sharewise.plugin.db import make_engine, upgrade

    name = f"sharewise_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _truncate_all(url: str) -> None:
    import sqlalchemy as sa

    import sharewise.plugin.models  # noqa: F401
    from sharewise.plugin.db import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgres":
        require_services()
        url = request.getfixturevalue("_pg_database")
        _truncate_all(url)
        return url
    template = request.getfixturevalue("_sqlite_template")
    target = tmp_path / "data" / "sharewise.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, target)
    return f"sqlite:///{target}"


# ------------------------------------------------------------------------------ app


def write_tenants_file(path: Path, secrets: dict[str, str] | None = None,
                       extra: str = "") -> Path:
    secrets = secrets or TENANT_SECRETS
    blocks = []
    names = {"northshire": "Northshire County Council", "southvale": "Southvale Borough Council"}
    for slug, secret in secrets.items():
        blocks.append(
            f"[tenants.{slug}]\nname = \"{names.get(slug, slug)}\"\n"
            f"webhook_secret = \"{secret}\"\n"
            f"callback_url = \"http://127.0.0.1:9/{slug}/callback\"\n"
            f"callback_secret = \"{generate_secret()}\"\n"
            f"admin_email = \"admin@{slug}.example\"\n"
        )
    path.write_text("\n".join(blocks) + extra)
    return path


@pytest.fixture
def app_config(tmp_path: Path, backend: str, database_url: str) -> dict[str, Any]:
    """The configuration mapping ``app`` is created with (tests may change it first)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "TESTING": True,
        "DATA_DIR": str(data_dir),
        "TENANTS": str(write_tenants_file(tmp_path / "tenants.toml")),
        "DATABASE_URL": database_url,
        "BASE_URL": "http://sharewise.test",
        "SECRET_KEYS": "test-link-key",
        "STORAGE_URL": str(data_dir / "files"),
        "LOG_LEVEL": "WARNING",
    }
    if backend == "postgres":
        config["BROKER_URL"] = REDIS_URL
        config["BROKER_TRANSPORT_OPTIONS"] = {
            "global_keyprefix": f"sharewise-test-{uuid.uuid4().hex[:8]}:"
        }
    else:
        config["BROKER_URL"] = f"sqla+sqlite:///{data_dir / 'broker.db'}"
    return config


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Any]:
    from sharewise.plugin.app import create_app
    from sharewise.plugin.db import engine_for

    flask_app = create_app(app_config)
    yield flask_app
    engine_for(flask_app).dispose()
    prefix = (app_config.get("BROKER_TRANSPORT_OPTIONS") or {}).get("global_keyprefix")
    if prefix and app_config["BROKER_URL"].startswith("redis://"):
        import redis

        client = redis.Redis.from_url(app_config["BROKER_URL"])
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def db_session(app: Any) -> Iterator[Any]:
    from sharewise.plugin.db import sessionmaker_for

    # deferred BEGIN on SQLite: a test holding this session open never blocks the app's writers
    session = sessionmaker_for(app, readonly=True)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def tenant(app: Any) -> Any:
    from sharewise.plugin.tenants import get_tenant

    return get_tenant("northshire", app)


@pytest.fixture
def other_tenant(app: Any) -> Any:
    from sharewise.plugin.tenants import get_tenant

    return get_tenant("southvale", app)


@pytest.fixture
def sample_event() -> Callable[..., dict[str, Any]]:
    from sharewise.plugin.demo import sample_event as make

    return make


@pytest.fixture
def signed_post(client: Any) -> Callable[..., Any]:
    from sharewise.plugin.demo import signed_request

    def post(tenant: Any, event: dict[str, Any] | bytes, webhook_id: str | None = None,
             secret: str | None = None, timestamp: int | None = None,
             headers: dict[str, str] | None = None) -> Any:
        slug = tenant if isinstance(tenant, str) else tenant.slug
        if secret is None:
            secret = TENANT_SECRETS[slug] if isinstance(tenant, str) else tenant.webhook_secrets[0]
        body, signed = signed_request(secret, event, webhook_id, timestamp)
        signed.update(headers or {})
        return client.post(f"/webhooks/{slug}", data=body, headers=signed)

    return post


@pytest.fixture
def celery_worker(app: Any) -> Iterator[Any]:
    from celery.contrib.testing.worker import start_worker

    from sharewise.tasks.worker import install

    celery_app = install(app)
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=10,
    ) as worker:
        yield worker
        if app.config["BROKER_URL"].startswith(("filesystem://", "amqp://")):
            # With these transports the worker's loop blocks in 2 s drain cycles: it notices
            # the stop only after one, and drains once more after it has seen it. Ask it to
            # stop, then wake both drains with harmless messages (the filesystem transport
            # consumes them on fetch; a RabbitMQ test deletes its own queue afterwards).
            from celery.worker import state

            state.should_terminate = 0
            for _ in range(2):
                celery_app.send_task("sharewise.ping", args=["worker-stop"])
