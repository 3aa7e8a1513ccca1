"""Health checks for load balancers, orchestrators and ``sharewise serve``.

``GET /healthz``
    Liveness: the process answers and its database answers ``SELECT 1``. ``200 {"status":
    "ok"}``; a database that cannot be reached is a 503 problem (``plugin/problems.py``).
``GET /readyz``
    Readiness: every dependency a request needs, each checked on its own so one answer says
    which failed. ``{"status": "ready" | "not_ready", "checks": {name: {"ok": bool, "detail":
    str, "ms": float}}}``, ``200`` when all pass, else ``503``. The checks:

    - ``database``: ``SELECT 1``;
    - ``migrations``: the database's Alembic revision is the code's head (a web process started
      before ``sharewise db upgrade`` finished is not ready);
    - ``broker``: a connection to ``BROKER_URL`` opens within 3 seconds;
    - ``file_store``: a small object can be written to and deleted from the file store.

    A failed check's ``detail`` names the error's type and a fixed sentence, never the
    exception's text (a URL with a password, a path) or anything else a client sent.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from sharewise.plugin import db
from sharewise.plugin.celery import celery_app_for
from sharewise.plugin.storage import storage

bp = Blueprint("health", __name__)

BROKER_TIMEOUT = 3.0
PROBE_PREFIX = "health"


def _database() -> str:
    with db.session_scope(readonly=True) as session:
        session.execute(text("SELECT 1"))
    return "answers"


def _migrations() -> str:
    current, head = db.current_revision(db.engine_for()), db.head_revision()
    if current != head:
        raise RuntimeError(f"the database is at {current or 'no revision'}, the code at {head};"
                           " run `sharewise db upgrade`")
    return f"at {head}"


def _broker() -> str:
    with celery_app_for().connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)
        return f"{conn.transport_cls} reachable"


def _file_store() -> str:
    key = f"{PROBE_PREFIX}/probe-{secrets.token_hex(8)}"
    store = storage()
    store.put(key, b"ok")
    store.delete(key)
    return "writable"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database, "migrations": _migrations, "broker": _broker,
    "file_store": _file_store,
}


def _run(check: Callable[[], str]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        ok, detail = True, check()
    except RuntimeError as exc:  # our own sentence (the migrations check)
        ok, detail = False, str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", named by its type
        ok, detail = False, f"{type(exc).__name__}: not reachable or not usable"
    return {"ok": ok, "detail": detail,
            "ms": round((time.perf_counter() - started) * 1000, 1)}


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness and database check for load balancers and ``sharewise serve``'s start-up."""
    _database()
    resp = jsonify({"status": "ok"})
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/readyz")
def readyz() -> Response:
    """Every dependency, each with its result; 503 unless all are ready."""
    results = {name: _run(check) for name, check in CHECKS.items()}
    ready = all(r["ok"] for r in results.values())
    resp = jsonify({"status": "ready" if ready else "not_ready", "checks": results})
    resp.status_code = 200 if ready else 503
    resp.headers["Cache-Control"] = "no-store"
    if not ready:
        current_app.logger.warning("not ready: %s", ", ".join(
            n for n, r in results.items() if not r["ok"]))
    return resp
