"""``/healthz`` and ``/readyz``: each dependency checked on its own, a failure named, 503."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from sqlalchemy import text

from sharewise.plugin import db
from sharewise.plugin.storage import storage


def test_healthz_answers_ok(client: Any) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_readyz_is_ready_with_every_check_named(client: Any) -> None:
    resp = client.get("/readyz")
    body = resp.get_json()
    assert resp.status_code == 200 and body["status"] == "ready", body
    assert set(body["checks"]) == {"database", "migrations", "broker", "file_store"}
    assert all(c["ok"] for c in body["checks"].values())
    assert body["checks"]["migrations"]["detail"] == f"at {db.head_revision()}"
    assert resp.headers["Cache-Control"] == "no-store"


def test_an_old_schema_is_not_ready_and_says_what_to_run(app: Any, client: Any) -> None:
    engine = db.engine_for(app)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0009_keyed_hashes'"))
    try:
        resp = client.get("/readyz")
    finally:  # the PostgreSQL database is shared by the tests that follow
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"),
                         {"v": db.head_revision()})
    body = resp.get_json()
    assert resp.status_code == 503 and body["status"] == "not_ready"
    assert not body["checks"]["migrations"]["ok"]
    assert "sharewise db upgrade" in body["checks"]["migrations"]["detail"]
    assert body["checks"]["database"]["ok"] and body["checks"]["file_store"]["ok"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unreachable_broker_is_not_ready(app_config: dict[str, Any], backend: str) -> None:
    from sharewise.plugin.app import create_app

    app_config["BROKER_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    resp = create_app(app_config).test_client().get("/readyz")
    body = resp.get_json()
    assert resp.status_code == 503 and not body["checks"]["broker"]["ok"]
    assert body["checks"]["broker"]["detail"].endswith("not reachable or not usable")
    assert "127.0.0.1:1" not in resp.get_data(as_text=True)  # no URL in the answer
    assert body["checks"]["database"]["ok"]


def test_a_broken_file_store_is_not_ready(app: Any, client: Any) -> None:
    root = storage(app).inner.root  # the local store under the encryption layer
    shutil.rmtree(root)
    root.write_text("a file where the store's directory should be")
    body = client.get("/readyz").get_json()
    assert body["status"] == "not_ready" and not body["checks"]["file_store"]["ok"]
    assert str(root) not in body["checks"]["file_store"]["detail"]
