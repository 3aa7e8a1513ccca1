"""Fixtures for the delivery tests: a real host simulator wired in as northshire's callback.

* ``host``: a running :class:`sharewise.plugin.outbox.hostsim.HostSimulator` (its own secret).
* ``app_config`` (extends the root one): the tenants file points northshire's callback at
  ``host`` with ``host``'s secret; the retry schedule is shrunk so that ten attempts take well
  under a second (``FAST``), the client timeout is short.
* ``smtp``: a real SMTP server on loopback (``tests/smtp.py``), the app's ``SMTP_URL``.
* ``make_record()``: a real record through the real intake (signed ``share.requested``).
* ``stored_pdf(record)``: puts PDF-like bytes in the file store, returns (key, sha256, size).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.hostsim import HostSimulator
from sharewise.plugin.outbox.models import Delivery, DeliveryAttempt
from sharewise.plugin.signing import generate_secret

#: Ten attempts, milliseconds apart: the Standard Webhooks schedule's shape, made short.
FAST = "0,0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05"
CALLBACK_SECRET = generate_secret()


def tenants_toml(host_url: str, callback_secret: str, webhook_secret: str) -> str:
    return (
        "[tenants.northshire]\n"
        'name = "Northshire County Council"\n'
        f'webhook_secret = "{webhook_secret}"\n'
        f'callback_url = "{host_url}"\n'
        f'callback_secret = "{callback_secret}"\n'
        'admin_email = "ops@northshire.example"\n'
        "\n[tenants.southvale]\n"
        'name = "Southvale Borough Council"\n'
        f'webhook_secret = "{generate_secret()}"\n'
        'callback_url = "http://127.0.0.1:9/southvale/callback"\n'
        f'callback_secret = "{generate_secret()}"\n'
    )


@pytest.fixture
def host() -> Any:
    with HostSimulator(CALLBACK_SECRET) as sim:
        yield sim


@pytest.fixture
def smtp() -> Any:
    from tests.smtp import SmtpSink

    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def app_config(
    app_config: dict[str, Any], host: HostSimulator, smtp: Any, tmp_path: Path
) -> dict[str, Any]:
    path = tmp_path / "tenants-outbox.toml"
    path.write_text(tenants_toml(host.url, CALLBACK_SECRET, generate_secret()))
    app_config.update(
        TENANTS=str(path),
        DELIVERY_SCHEDULE=FAST,
        DELIVERY_JITTER=0.1,
        DELIVERY_TIMEOUT=1,
        DELIVERY_LEASE=3,
        DELIVERY_REQUEUE_AFTER=1,
        DELIVERY_COUNTDOWN_MAX=60,
        SMTP_URL=smtp.url(),
        MAIL_FROM="sharewise@council.example",
    )
    return app_config


@pytest.fixture
def make_record(app: Any, signed_post: Any, sample_event: Any, tenant: Any) -> Any:
    from sqlalchemy import select

    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.models import Record

    def make(**overrides: Any) -> Record:
        event = sample_event(request_id=f"REQ-{uuid.uuid4().hex[:10]}", **overrides)
        response = signed_post(tenant, event)
        assert response.status_code == 201, response.get_json()
        public_id = response.get_json()["record_id"]
        with session_scope(app) as session:
            return session.scalars(select(Record).where(Record.public_id == public_id)).one()

    return make


@pytest.fixture
def stored_pdf(app: Any) -> Any:
    from sharewise.plugin.storage import storage

    def put(record: Any) -> tuple[str, str, int]:
        data = b"%PDF-1.7\n" + os.urandom(3000) + b"\n%%EOF\n"
        key = f"{record.tenant}/{record.public_id}/final.pdf"
        storage(app).put(key, data)
        return key, hashlib.sha256(data).hexdigest(), len(data)

    return put


def load_delivery(app: Any, public_id: str) -> tuple[Delivery, list[DeliveryAttempt]]:
    """A delivery by its public id (the webhook-id) and its attempts, oldest first."""
    with session_scope(app) as s:
        d = s.scalars(select(Delivery).where(Delivery.public_id == public_id)).one()
        attempts = s.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == d.id)
            .order_by(DeliveryAttempt.id)
        ).all()
        return d, list(attempts)
