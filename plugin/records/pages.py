"""Minimal practitioner pages served until ``plugin.practitioner`` (issue 4) replaces them.

``GET /form/<token>``: a plain page with the case reference, due date and download link;
``GET /form/<token>/pdf``: the current prefilled PDF as an attachment.
"""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response

from plugin import links
from plugin.db import session_scope
from plugin.records import services
from plugin.storage import NotFound, storage

bp = Blueprint("minimal_pages", __name__)


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title></head><body><main><h1>{escape(title)}</h1>"
        f"{body}</main></body></html>"
    )
    resp = Response(html, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _load(token: str, purpose: str) -> tuple[str, str] | Response:
    try:
        return links.load_token(token, purpose)
    except links.LinkExpired:
        return _page("This link has expired", "<p>Ask the case system for a new link.</p>", 403)
    except links.LinkError:
        return _page("This link is not valid", "<p>Ask the case system for a new link.</p>", 403)


@bp.get("/form/<token>")
def form(token: str) -> Response:
    """The practitioner's page (minimal)."""
    loaded = _load(token, "form")
    if isinstance(loaded, Response):
        return loaded
    tenant, record_id = loaded
    with session_scope(readonly=True) as session:
        try:
            record = services.get_by_public_id(session, record_id, tenant)
        except services.RecordNotFound:
            return _page("Record not found", "<p>Ask the case system for a new link.</p>", 404)
        pdf_url = links.link_url(tenant, record_id, "pdf")
        body = (
            f"<p>Record {escape(record.public_id)}, case {escape(record.case_reference)}.</p>"
            f"<p>Status: {escape(record.status.replace('_', ' '))}. "
            f"Due: {escape(record.due_at.strftime('%d/%m/%Y %H:%M UTC'))}.</p>"
            f"<p><a href='{escape(pdf_url)}'>Download the decision form (PDF)</a></p>"
        )
    return _page("Information-sharing decision record", body)


@bp.get("/form/<token>/pdf")
def form_pdf(token: str) -> Response:
    """The current prefilled PDF."""
    loaded = _load(token, "pdf")
    if isinstance(loaded, Response):
        return loaded
    tenant, record_id = loaded
    with session_scope(readonly=True) as session:
        try:
            record = services.get_by_public_id(session, record_id, tenant)
        except services.RecordNotFound:
            return _page("Record not found", "<p>Ask the case system for a new link.</p>", 404)
        key = record.prefill_pdf_key
    try:
        data = storage().get(key or "")
    except (NotFound, ValueError):
        return _page("Form not available", "<p>Try again in a minute.</p>", 404)
    resp = Response(data, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="{record_id}.pdf"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
