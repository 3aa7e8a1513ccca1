"""The demo's host: ``POST /demo-host/callback`` on the service itself, for ``sharewise serve``.

When ``sharewise serve`` finds no tenants file it writes a demo tenant whose ``callback_url`` is
``<BASE_URL>/demo-host/callback``, so the whole loop (request, practitioner, post-back) can be
watched on one machine without a real case system. This endpoint plays that host: it verifies
the signature with the independent ``standardwebhooks`` package (as
:mod:`sharewise.plugin.outbox.hostsim` does), stores each ``webhook-id`` once (a file created
exclusively under ``DATA_DIR/demo-host``, so several web processes agree), and prints a summary
of what it stored to the service's console (ids, status, decision, PDF hash check; no names).

It answers ``404`` unless some tenant's ``callback_url`` points at it, so a real installation
never exposes it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Blueprint, Response, request

from sharewise.plugin.outbox.hostsim import describe
from sharewise.plugin.settings import settings_of
from sharewise.plugin.tenants import all_tenants

PATH = "/demo-host/callback"

bp = Blueprint("demo_host", __name__)


def _secrets_for_this_endpoint() -> list[str]:
    base = settings_of().base_url
    return [
        t.callback_secret
        for t in all_tenants().values()
        if t.callback_url and t.callback_secret and t.callback_url.rstrip("/") == base + PATH
    ]


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@bp.post(PATH)
def callback() -> Response:
    """Receive a post-back as a host would: verify, deduplicate, store, print a summary."""
    secrets = _secrets_for_this_endpoint()
    if not secrets:
        return _json(404, {"error": "not found"})
    try:
        from standardwebhooks import Webhook
        from standardwebhooks.webhooks import WebhookVerificationError
    except ImportError:  # a dependency of the project; missing only in odd installs
        return _json(503, {"error": "demo host needs the standardwebhooks package"})
    raw = request.get_data(cache=False)
    headers = {k.lower(): v for k, v in request.headers.items()}
    body = None
    for secret in secrets:
        try:
            body = Webhook(secret).verify(raw, headers)
            break
        except (WebhookVerificationError, ValueError):
            continue
    if not isinstance(body, dict):
        return _json(401, {"error": "bad signature"})
    webhook_id = headers["webhook-id"]
    folder = settings_of().data_dir / "demo-host"
    folder.mkdir(parents=True, exist_ok=True)
    name = "".join(c for c in webhook_id if c.isalnum() or c in "_-")[:80] or "unnamed"
    try:
        fd = os.open(folder / f"{name}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"demo host: {body.get('type')} {webhook_id} again (already stored)", flush=True)
        return _json(200, {"ok": True, "duplicate": True})
    with os.fdopen(fd, "w") as f:
        json.dump(body, f)
    print(describe(body).replace("host stored", "demo host stored", 1), flush=True)
    return _json(200, {"ok": True})
