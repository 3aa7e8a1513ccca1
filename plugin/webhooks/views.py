"""``POST /webhooks/<tenant>``: verify, validate, dispatch, answer (problem+json on errors).

Order of checks: unknown tenant (404), body size before reading it (413), Standard Webhooks
signature (401), JSON and schema (422), then the event's service, which answers a replayed
``webhook-id`` or a known ``request_id`` with the stored answer (200). Logs carry tenant,
webhook id, type and record id only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from sharewise.plugin import signing
from sharewise.plugin.access import current_client
from sharewise.plugin.logs import fields
from sharewise.plugin.metrics import EVENTS, SIGNATURE_FAILURES
from sharewise.plugin.problems import PROBLEM_JSON, Problem
from sharewise.plugin.records.audit import InvalidTransition
from sharewise.plugin.records.schemas import EventError, load_event
from sharewise.plugin.records.services import RecordNotFound
from sharewise.plugin.storage import StorageError
from sharewise.plugin.tenants import get_tenant
from sharewise.plugin.webhooks import services
from sharewise.plugin.webhooks.throttle import throttle

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)



#: A JSON escape of a UTF-16 surrogate. A pair decodes to one character; a lone one decodes to
#: a string that has no UTF-8 form, which no database column takes.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
#: At most this many fields are named in one answer about unpaired surrogates.
MAX_LISTED = 20


def lone_surrogates(data: Any, path: str) -> list[str]:
    """The paths (``data.case.reference``) of the strings and keys in loaded event ``data``
    that hold an unpaired surrogate: at most :data:`MAX_LISTED`, each once, walked without
    recursion."""
    found: list[str] = []
    stack = [(path, data)]
    while stack and len(found) < MAX_LISTED:
        here, value = stack.pop()
        if isinstance(value, str):
            bad = not _is_text(value)
        elif isinstance(value, dict):
            bad = not all(_is_text(str(k)) for k in value)
            stack.extend((f"{here}.{k}", v) for k, v in reversed(value.items())
                         if _is_text(str(k)))
        elif isinstance(value, list | tuple):
            bad = False
            stack.extend((here, v) for v in reversed(value))
        else:
            bad = False
        if bad and here not in found:
            found.append(here)
    return found


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_body(limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes; 413 before reading when Content-Length is over."""
    length = request.content_length
    if length is not None and length > limit:
        raise Problem(413, "Payload Too Large", f"The body is over the {limit}-byte limit.",
                      slug="too-large")
    chunks, total = [], 0
    stream = request.stream
    try:
        while True:
            chunk = stream.read(min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise Problem(413, "Payload Too Large",
                              f"The body is over the {limit}-byte limit.", slug="too-large")
    except RequestEntityTooLarge:
        raise Problem(413, "Payload Too Large", f"The body is over the {limit}-byte limit.",
                      slug="too-large") from None
    return b"".join(chunks)


def _invalid(errors: list[dict[str, str]], title: str = "Invalid event") -> Problem:
    return Problem(422, title, "The event does not match the contract; see errors.",
                   slug="invalid-event", errors=errors)


def _too_many(wait: int) -> Problem:
    return Problem(429, "Too many failed requests",
                   "Too many events with a wrong signature or tenant came from here or for "
                   f"this tenant. Check the signing secret, then try again in {wait} s.",
                   slug="too-many-failures", headers={"Retry-After": str(wait)})


def _answer(result: services.IntakeResult) -> Response:
    resp = jsonify(result.body)
    resp.status_code = result.status
    if result.status >= 400:
        resp.mimetype = PROBLEM_JSON
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/webhooks/<tenant_slug>")
def receive(tenant_slug: str) -> Response:
    """Receive one event from a host."""
    client = current_client()
    tenant = get_tenant(tenant_slug)
    if tenant is None:
        wait = throttle().failed(client, None)
        if wait is not None:
            raise _too_many(wait)
        raise Problem(404, "Unknown tenant", "No tenant has this name.", slug="unknown-tenant")
    body = read_body(current_app.config["MAX_BODY_BYTES"])
    try:
        webhook_id = signing.verify(
            tenant.webhook_secrets, request.headers, body,
            tolerance=current_app.config["WEBHOOK_TOLERANCE"],
        )
    except signing.VerificationError as exc:
        log.info("webhook for %s refused: %s", tenant.slug, type(exc).__name__,
                 extra=fields(tenant=tenant.slug, status=401))
        SIGNATURE_FAILURES.labels(tenant.slug).inc()
        wait = throttle().failed(client, tenant.slug)
        if wait is not None:
            raise _too_many(wait) from None
        raise Problem(401, "Invalid signature", str(exc), slug="invalid-signature") from None

    try:
        # UTF-8 (or the UTF-16 / 32 that json.loads detects), strictly: bytes that are not
        # characters in it are refused here rather than kept as lone surrogates
        text = body.decode(json.detect_encoding(body))
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid([{"field": "(body)", "message": "The body is not valid JSON."}],
                       "Body is not JSON") from None
    try:
        event_type, timestamp, data = load_event(doc)
    except EventError as exc:
        raise _invalid(exc.errors) from None
    if _ESCAPED_SURROGATE.search(text):  # rare: only then are the loaded values walked
        lone = lone_surrogates(data, "data")  # what the event keeps; unknown keys are dropped
        if lone:
            raise _invalid([{"field": path, "message": "Contains an unpaired surrogate escape "
                             "(\\uD800-\\uDFFF), which is not a character."} for path in lone])

    outcome, status, record_id = "failed", 500, None  # one log line per event: its outcome
    started = time.perf_counter()
    try:
        result = _dispatch(tenant, webhook_id, event_type, timestamp, data)
        status, record_id = result.status, result.record_id
        outcome = f"{result.status}" + (f" record {result.record_id}" if result.record_id else "")
        return _answer(result)
    except Problem as exc:
        status, outcome = exc.status, f"{exc.status} {exc.slug}"
        raise
    finally:
        EVENTS.labels(event_type, str(status)).inc()
        log.info("webhook %r for %s: %s -> %s", webhook_id[:64], tenant.slug, event_type,
                 outcome, extra=fields(
                     tenant=tenant.slug, event=event_type, status=status, record=record_id,
                     duration_ms=round((time.perf_counter() - started) * 1000, 1)))


def _dispatch(tenant: Any, webhook_id: str, event_type: str, timestamp: datetime,
              data: dict[str, Any]) -> services.IntakeResult:
    """The event's service; its errors as problems."""
    try:
        if event_type == "share.requested":
            return services.create_from_event(tenant, webhook_id, data, timestamp)
        if event_type == "share.cancelled":
            return services.cancel(tenant, webhook_id, data["request_id"], data.get("reason"))
        return _form_submitted(tenant, webhook_id, data)
    except services.PrefillRejected as exc:
        raise _invalid(exc.errors, "Values not accepted by the form") from None
    except RecordNotFound:
        raise Problem(404, "Unknown request", "No record exists for this request_id.",
                      slug="unknown-request") from None
    except services.RecordPurged:
        raise Problem(410, "Record purged", "This request's record was finished and its "
                      "content deleted after the retention period; nothing more is kept.",
                      slug="record-purged") from None
    except StorageError as exc:  # nothing was recorded: the bytes are stored before any row
        log.error("file store error on a %s event for %s: %s", event_type, tenant.slug,
                  type(exc).__name__, extra=fields(tenant=tenant.slug, event=event_type))
        raise Problem(503, "File store unavailable",
                      "The file store failed and nothing was recorded. Send the event again; "
                      "a repeat is safe.", slug="storage-unavailable",
                      headers={"Retry-After": "60"}) from None
    except services.ServiceBusy:
        raise Problem(503, "Service busy",
                      "The event was not stored in time. Send it again; a repeat is safe.",
                      slug="busy", headers={"Retry-After": "5"}) from None
    except InvalidTransition as exc:
        raise Problem(409, "Record is final",
                      f"The record is {exc.from_status} and cannot become {exc.to_status}.",
                      slug="record-final") from None


def _form_submitted(tenant: Any, webhook_id: str, data: dict[str, Any]) -> services.IntakeResult:
    """``share.form_submitted``: the same completion path as an upload through the page."""
    try:
        pdf = base64.b64decode(data["pdf_base64"], validate=True)
    except (binascii.Error, ValueError):
        raise _invalid([{"field": "data.pdf_base64", "message": "Not valid base64."}]) from None
    return services.form_submitted(tenant, webhook_id, data["request_id"], pdf)
