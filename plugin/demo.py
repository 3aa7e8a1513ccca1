"""The demo host: a sample ``share.requested`` event and a signed POST of it.

``sample_event()`` is also what the tests use. The names are invented (with non-ASCII letters
to exercise the form's Unicode font).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sharewise.plugin.signing import sign_headers


def sample_event(
    request_id: str | None = None, urgency: str | None = "routine", **data_overrides: Any
) -> dict[str, Any]:
    """A valid ``share.requested`` body."""
    data: dict[str, Any] = {
        "request_id": request_id or f"REQ-{uuid.uuid4().hex[:12]}",
        "case": {"reference": "CASE-2026-0042"},
        "subject": {"name": "Zoë Ångström-Nørgaard", "date_of_birth": "2014-03-09",
                    "type": "child"},
        "direction": "inbound_request",
        "requester": {"organisation": "Northshire Police"},
        "practitioner": {
            "id": "P-17",
            "name": "Siân O'Connor",
            "email": "sian.oconnor@example.org",
            "team": "Children's Services East",
            "manager": {"name": "Dafydd Llŷr", "email": "dafydd.llyr@example.org"},
        },
        "recipient": {"organisation": "Northshire Police", "name": "DC Renée Faÿ",
                      "role": "Investigating officer"},
        "purpose": "To support a joint safeguarding assessment — strategy discussion.",
        "information_requested": "School attendance and recent contact notes.",
    }
    if urgency is not None:
        data["urgency"] = urgency
    data.update(data_overrides)
    return {
        "type": "share.requested",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": data,
    }


def signed_request(
    secret: str, event: dict[str, Any] | bytes, webhook_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)`` of a signed delivery."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    headers = sign_headers(secret, webhook_id or f"msg_{uuid.uuid4().hex}", body,
                           int(time.time()) if timestamp is None else timestamp)
    headers["content-type"] = "application/json"
    return body, headers
