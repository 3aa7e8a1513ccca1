"""``GET /status/<token>``: the record's status as JSON (for the host and scripts)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from sharewise.plugin import links
from sharewise.plugin.db import session_scope
from sharewise.plugin.problems import Problem
from sharewise.plugin.records import services

bp = Blueprint("records", __name__)


def record_for_token(token: str, purpose: str) -> tuple[str, str]:
    """``(tenant, public id)`` of a token, or a 403 / 404 problem."""
    try:
        return links.load_token(token, purpose)
    except links.LinkExpired:
        raise Problem(403, "Link expired", "Ask the case system for a new link.",
                      slug="link-expired") from None
    except links.LinkWrongPurpose:
        raise Problem(403, "Wrong link", "This link is not a status link.",
                      slug="link-wrong-purpose") from None
    except links.LinkError:
        raise Problem(403, "Invalid link", "This link is not valid.", slug="link-invalid") from None


@bp.get("/status/<token>")
def status(token: str) -> Response:
    """The record's status, what is missing, when it is due, when it was completed."""
    tenant, record_id = record_for_token(token, "status")
    with session_scope(readonly=True) as session:
        try:
            record = services.get_by_public_id(session, record_id, tenant)
        except services.RecordNotFound:
            raise Problem(404, "Unknown record", slug="unknown-record") from None
        body = services.status_body(record)
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp
