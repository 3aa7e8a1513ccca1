"""The practitioner's pages: the form page, the PDF download and the upload endpoint.

Routes (the paths :mod:`sharewise.plugin.links` hands out; ``status_url`` is served by
:mod:`sharewise.plugin.records.views`):

``GET /form/<token>``
    The page: case reference, what is asked, due date (tenant's time zone), status, a download
    button and an upload form. ``POST`` to the same URL uploads from the page and shows the
    result on the page (``200``; a refused upload re-renders the page with the refusal and the
    status below).
``GET /form/<token>/pdf``
    The prefilled PDF, or after a partial upload the practitioner's own last upload (so they do
    not retype), after an online save the form holding what it held, or once complete the
    final record. ``Content-Disposition: attachment``,
    ``Cache-Control: no-store``.
``POST /upload/<token>``
    Multipart field ``file`` or a raw ``application/pdf`` body. The answer follows ``Accept``:
    a client that prefers ``text/html`` (a browser) gets the page; any other (``*/*``, no
    ``Accept``, ``application/json``: ``curl -F file=@form.pdf UPLOAD_URL``) gets JSON
    ``{"record_id", "status", "version", "missing": [...]}`` with ``200``, and a refusal
    ``application/problem+json`` with its code.

Status codes of a refused upload (the page uses the same ones): ``400`` not a usable PDF
(``empty``, ``not_pdf``, ``malformed``), ``413`` over ``MAX_BODY_BYTES`` (checked from
``Content-Length`` before the body is read, and while reading it), ``422`` a PDF that is not an
acceptable decision form for this record (``encrypted``, ``xfa``, ``active_content``,
``wrong_form``, ``wrong_record``, ``tampered``, ``too_complex``), ``409`` the record is
``complete`` or ``cancelled``. Every one of them is stored as a rejected version. A body whose
framing is broken (a malformed chunk) or that has an encoding Sharewise does not decode is
``400`` ``malformed-body`` / ``415`` ``unsupported-encoding`` problem+json, and nothing is
stored (:mod:`sharewise.plugin.problems` guards every request body).

Link problems answer ``403`` with a page that says what happened and what to do (JSON clients:
problem+json ``link-expired`` / ``link-invalid`` / ``link-wrong-purpose``). A token names its
tenant and record; a record is only found within the token's tenant, so one tenant's link never
opens another tenant's record (``403 link-invalid``). A token Sharewise did not make, whatever
it carries and even signed with its key, is ``link-invalid`` before any database query
(:func:`sharewise.plugin.links.load_token`). A cancelled record's page and download
answer ``410`` with a page saying it was cancelled.

Pages carry ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer`` (the token is in the
URL) and a Content-Security-Policy without scripts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from sharewise.forms.spec import load_spec
from sharewise.plugin import links
from sharewise.plugin.db import session_scope
from sharewise.plugin.problems import problem, wants_problem_json
from sharewise.plugin.records.audit import audit
from sharewise.plugin.records.models import CANCELLED, COMPLETE, INCOMPLETE, Record
from sharewise.plugin.records.services import (
    RecordNotFound,
    get_by_public_id,
    links_revoked,
    prefilled_pdf,
)
from sharewise.plugin.storage import NotFound, StorageError, storage
from sharewise.plugin.tenants import DEFAULT_TIMEZONE, get_tenant
from sharewise.plugin.uploads.models import DRAFT, ONLINE, UploadVersion
from sharewise.plugin.uploads.services import (
    REJECTION_STATUS,
    UploadResult,
    handle_upload,
    latest_readable,
    online_pdf,
    record_too_large,
)

log = logging.getLogger(__name__)

bp = Blueprint(
    "practitioner",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/practitioner/static",
)

STATUS_LABELS = {
    "awaiting_completion": "Waiting for your completed form",
    "incomplete": "Started: some items are still missing",
    "complete": "Complete",
    "cancelled": "Cancelled",
}

#: Short headings for each refusal (the message itself comes from the reader or the service).
REJECTION_TITLES = {
    "empty": "The file was empty",
    "too_large": "The file is too large",
    "not_pdf": "That file is not a PDF",
    "malformed": "The PDF could not be read",
    "encrypted": "The PDF is password-protected",
    "xfa": "This is a different kind of form",
    "active_content": "The PDF contains scripts or attachments",
    "attachments": "The PDF contains attached files",
    "wrong_form": "This is not the decision form",
    "wrong_record": "This form belongs to another record",
    "tampered": "The case details on the form were changed",
    "too_complex": "The PDF is too complex to read",
    "record_complete": "This record is already complete",
    "record_cancelled": "This request was cancelled",
}

LINK_ERRORS = {
    "purged": {
        "title": "This record's content has been deleted",
        "what": "The decision was recorded and the case system has the finished record. As "
        "planned, the copy Sharewise kept was deleted after its retention period.",
        "todo": "Look for the record in the case system.",
        "slug": "record-purged",
        "status": 410,
    },
    "revoked": {
        "title": "This link has been withdrawn",
        "what": "The links to this decision record were withdrawn, for example because one was "
        "sent to the wrong person. This one no longer opens the record.",
        "todo": "Nothing you uploaded is lost. Ask for a new link from the case system or "
        "your Sharewise administrator.",
        "slug": "link-revoked",
    },
    "expired": {
        "title": "This link has expired",
        "what": "Sharewise links only work for a limited time, to keep the information safe. "
        "This one is older than that, so it no longer opens the decision record.",
        "todo": "Nothing you uploaded is lost. You need a fresh link to carry on.",
        "slug": "link-expired",
    },
    "invalid": {
        "title": "This link is not valid",
        "what": "The link could not be checked: it may have been copied only in part, changed, "
        "or it was issued for a different system.",
        "todo": "Check you copied the whole link from the email or the case system. If it "
        "still does not work, you need a new link.",
        "slug": "link-invalid",
    },
    "wrong_purpose": {
        "title": "This link is for something else",
        "what": "The link is genuine but was made for a different step (for example the "
        "download or the upload address), not for this page.",
        "todo": "Use the link to the decision record page from the email or the case system.",
        "slug": "link-wrong-purpose",
    },
}

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class LinkFailure(Exception):
    """A token that does not open a record: ``kind`` is a key of :data:`LINK_ERRORS`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@bp.after_request
def _page_headers(resp: Response) -> Response:
    resp.headers.setdefault("Cache-Control", "no-store")  # the security headers: app-wide
    return resp


@bp.errorhandler(LinkFailure)
def _link_failure(exc: LinkFailure) -> Response:
    info = LINK_ERRORS[exc.kind]
    status = int(info.get("status", 403))
    if _wants_json():
        return problem(status, info["title"], info["todo"], slug=info["slug"])
    html = render_template("practitioner/link_error.html", error=info, tenant_name=None)
    return Response(html, status=status, mimetype="text/html")


class BodyCutShort(Exception):
    """The request body ended before its declared Content-Length: the client went away."""


_CUT_SHORT = ("The connection closed before the whole file arrived, so nothing was recorded. "
              "Please upload the file again.")


@bp.errorhandler(BodyCutShort)
def _body_cut_short(exc: BodyCutShort) -> Response:
    log.info("upload on %s cut short by the client: nothing recorded", request.endpoint)
    if _wants_json():
        return problem(400, "Upload incomplete", _CUT_SHORT, slug="upload-incomplete")
    return Response(render_template("practitioner/link_error.html", tenant_name=None, error={
        "title": "The upload did not finish", "what": _CUT_SHORT,
        "todo": "Go back to the page and choose the file again."}),
        status=400, mimetype="text/html")


@bp.errorhandler(StorageError)
def _storage_failure(exc: StorageError) -> Response:
    """The file store failed: nothing was recorded (the bytes are written before any row)."""
    log.error("file store error on %s: %s", request.endpoint, type(exc).__name__)
    detail = ("Your file was not saved and nothing was recorded. Please try again in a few "
              "minutes.")
    if _wants_json():
        return problem(503, "File store unavailable", detail, slug="storage-unavailable",
                       headers={"Retry-After": "60"})
    resp = Response(render_template("practitioner/unavailable.html", tenant_name=None),
                    status=503, mimetype="text/html")
    resp.headers["Retry-After"] = "60"
    return resp


# ------------------------------------------------------------------------------ helpers


def _wants_json() -> bool:
    """JSON for clients that ask for it; and on the upload address (what scripts call:
    ``curl -F file=@form.pdf UPLOAD_URL``), for every client that does not prefer HTML. A
    browser lists ``text/html`` above everything else; ``curl`` sends ``*/*`` or nothing."""
    if wants_problem_json():
        return True
    if request.method == "POST" and request.endpoint == "practitioner.upload":
        accept = request.accept_mimetypes
        return accept["text/html"] <= accept["application/json"]
    return False


def _record_for(token: str, purpose: str) -> Record:
    """The record a token opens (detached, loaded), or :class:`LinkFailure`."""
    try:
        tenant, public_id, issued_at = links.read_token(token, purpose)
    except links.LinkExpired:
        raise LinkFailure("expired") from None
    except links.LinkWrongPurpose:
        raise LinkFailure("wrong_purpose") from None
    except links.LinkError:
        raise LinkFailure("invalid") from None
    with session_scope(readonly=True) as session:
        try:
            record = get_by_public_id(session, public_id, tenant)
        except RecordNotFound:
            raise LinkFailure("invalid") from None
    if links_revoked(record, issued_at):
        raise LinkFailure("revoked")
    if record.purged_at is not None:
        raise LinkFailure("purged")
    return record


def _accessed(record: Record, event: str, reason: str) -> None:
    """An audit entry for a view or a download (the request's client hash goes with it)."""
    with session_scope() as session:
        audit(session, get_by_public_id(session, record.public_id), "practitioner", event,
              reason)


def _zone(record: Record) -> ZoneInfo:
    tenant = get_tenant(record.tenant)
    return tenant.zone if tenant else ZoneInfo(DEFAULT_TIMEZONE)


def _tenant_name(record: Record) -> str | None:
    tenant = get_tenant(record.tenant)
    return tenant.name if tenant else None


def _when(value: datetime | None, zone: ZoneInfo) -> str | None:
    """``Thursday 26 November 2026, 17:00 GMT`` in the tenant's time zone."""
    if value is None:
        return None
    local = value.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M} {local.tzname()}"


def _asked(record: Record) -> str:
    """What is asked of the practitioner, in plain words (organisations only, no names)."""
    prefill = record.prefill or {}
    recipient = prefill.get("recipient_organisation") or "another organisation"
    if prefill.get("request_direction") == "proactive_share":
        return (
            f"You are considering sharing information about a person on this case with "
            f"{recipient}. Decide whether to share, what and why, and record that decision."
        )
    requester = prefill.get("requester_organisation") or recipient
    to_whom = "" if requester == recipient else f", to be shared with {recipient}"
    return (
        f"{requester} has asked for information about a person on this case{to_whom}. "
        f"Decide whether to share it, what to share and why, and record that decision."
    )


@dataclass
class PageModel:
    """What the page templates show about a record (no names or form text)."""

    record_id: str
    case_reference: str
    status: str
    status_label: str
    due_display: str | None
    overdue: bool
    completed_display: str | None
    cancelled_display: str | None
    request_label: str | None
    recipient_organisation: str | None
    urgency_label: str | None
    asked: str
    download_url: str
    max_mb: int
    download_is_own_upload: bool = False
    page_url: str = ""
    online_url: str = ""  # the online form (:mod:`sharewise.plugin.practitioner.online`)


@dataclass
class ResultModel:
    """The outcome panel of the page."""

    kind: str
    version: int | None = None
    fresh: bool = True
    title: str = ""
    message: str = ""
    hint: str = ""
    kept: bool = False
    missing_count: int = 0
    received_display: str | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)


def _page_model(record: Record, *, own_upload: bool) -> PageModel:
    spec = load_spec(record.schema_version)
    zone = _zone(record)
    prefill = record.prefill or {}
    direction = prefill.get("request_direction")
    urgency = prefill.get("urgency") or record.urgency
    now = datetime.now(zone)
    page_url = links.link_url(record.tenant, record.public_id, "form")
    return PageModel(
        record_id=record.public_id,
        case_reference=record.case_reference,
        status=record.status,
        status_label=STATUS_LABELS.get(record.status, record.status),
        due_display=_when(record.due_at, zone) if record.status not in (COMPLETE, CANCELLED)
        else None,
        overdue=record.status not in (COMPLETE, CANCELLED) and record.due_at < now,
        completed_display=_when(record.completed_at, zone),
        cancelled_display=_when(record.cancelled_at, zone),
        request_label=spec["request_direction"].label_for(direction) if direction else None,
        recipient_organisation=prefill.get("recipient_organisation"),
        urgency_label=spec["urgency"].label_for(urgency) if urgency else None,
        asked=_asked(record),
        download_url=links.link_url(record.tenant, record.public_id, "pdf"),
        max_mb=max(1, current_app.config["MAX_BODY_BYTES"] // (1024 * 1024)),
        download_is_own_upload=own_upload,
        page_url=page_url,
        online_url=f"{page_url}/online",
    )


def _groups(missing: list[dict[str, Any]], version: int) -> list[dict[str, Any]]:
    """Missing items grouped by golden rule, with the section title and the field label."""
    spec = load_spec(version)
    titles = {s.number: s.title for s in spec.sections}
    groups: dict[int, list[dict[str, str]]] = {}
    for item in missing:
        rule = int(item.get("rule") or 7)
        name = str(item.get("field", ""))
        label = spec[name].label if name in spec else name
        groups.setdefault(rule, []).append(
            {"field": name, "label": label, "message": _without_prefix(str(item["message"]))}
        )
    return [
        {"rule": rule, "title": titles.get(rule, f"Rule {rule}"), "problems": items}
        for rule, items in sorted(groups.items())
    ]


def _without_prefix(message: str) -> str:
    """The validator's message without its ``Rule N:`` / ``Rule N (name):`` prefix (the
    group heading says it)."""
    text = re.sub(r"^Rule [1-7](?: \([^)]*\))?:\s*", "", message)
    return text[:1].upper() + text[1:]


def _result_model(result: UploadResult, version: int) -> ResultModel:
    if result.rejection_code is not None:
        return ResultModel(
            kind="rejected",
            version=result.version,
            title=REJECTION_TITLES.get(result.rejection_code, "The upload was not accepted"),
            message=result.message or "",
            kept=result.rejection_code != "too_large",
        )
    if result.completed:
        return ResultModel(kind="complete", version=result.version)
    return ResultModel(
        kind="draft" if result.outcome == DRAFT else "incomplete",  # an online draft
        version=result.version,
        missing_count=len(result.missing),
        groups=_groups(result.missing, version),
    )


def _latest_state(record: Record) -> tuple[bool, ResultModel | None]:
    """Whether the download is the practitioner's own upload, and the standing to-do list."""
    if record.status != INCOMPLETE:
        return False, None
    with session_scope(readonly=True) as session:
        latest = latest_readable(session, record)
    if latest is None:
        return False, None
    return True, _standing(record, latest)


def _standing(record: Record, latest: UploadVersion) -> ResultModel:
    """The to-do list of the practitioner's last version (an upload or an online save)."""
    missing = list(latest.problems or [])
    return ResultModel(
        kind="draft" if latest.outcome == DRAFT else "incomplete",
        fresh=False,
        version=latest.version,
        missing_count=len(missing),
        received_display=_when(latest.received_at, _zone(record)),
        groups=_groups(missing, record.schema_version),
    )


def _html(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def _render_record(
    record: Record, result: ResultModel | None = None, status: int = 200
) -> Response:
    own, standing = _latest_state(record)
    page = _page_model(record, own_upload=own)
    tenant_name = _tenant_name(record)
    if record.status == CANCELLED:
        return _html("practitioner/cancelled.html", 410 if status == 200 else status, page=page,
                     result=result, tenant_name=tenant_name)
    if record.status == COMPLETE and (result is None or result.kind != "complete"):
        return _html("practitioner/complete.html", status, page=page, result=result,
                     tenant_name=tenant_name)
    return _html("practitioner/page.html", status, page=page, result=result or standing,
                 tenant_name=tenant_name)


def _reload(record: Record) -> Record:
    with session_scope(readonly=True) as session:
        return get_by_public_id(session, record.public_id, record.tenant)


def _read_limited(limit: int) -> bytes:
    """The raw body, at most ``limit + 1`` bytes (more means too large).

    Not ``request.get_data()``: without a Content-Length (a chunked body) Werkzeug's stream
    stops quietly at ``MAX_CONTENT_LENGTH``, so the first ``limit`` bytes of a larger body
    would be read as if they were the whole file. Asking for one byte past the limit makes
    that stream raise :class:`RequestEntityTooLarge` instead.
    """
    chunks: list[bytes] = []
    total = 0
    stream = request.stream
    while total <= limit:
        chunk = stream.read(min(65536, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _receive(record: Record, source: str, actor: str) -> UploadResult:
    """Read the request body within the size limit and hand it to the upload service."""
    limit = current_app.config["MAX_BODY_BYTES"]
    length = request.content_length
    if length is not None and length > limit:
        with session_scope() as session:
            return record_too_large(session, record, length, source=source, actor=actor)
    try:
        if request.mimetype.startswith("multipart/"):
            upload = request.files.get("file")
            data = upload.read(limit + 1) if upload is not None else b""
        else:
            data = _read_limited(limit)
    except RequestEntityTooLarge:
        with session_scope() as session:
            return record_too_large(session, record, length or limit + 1, source=source,
                                    actor=actor)
    if len(data) > limit:
        with session_scope() as session:
            return record_too_large(session, record, len(data), source=source, actor=actor)
    if length is not None and not request.mimetype.startswith("multipart/") and len(data) < length:
        # gunicorn marks its input terminated, so Werkzeug ignores Content-Length and a body
        # cut off by a disconnect just ends: the part that arrived is not the practitioner's file
        raise BodyCutShort()
    with session_scope() as session:
        return handle_upload(session, record, data, source=source, actor=actor)


def _json_result(result: UploadResult) -> Response:
    if result.rejection_code is None:
        resp = Response(
            current_app.json.dumps(result.as_json()), status=200, mimetype="application/json"
        )
        return resp
    code = result.rejection_code
    return problem(
        REJECTION_STATUS.get(code, 422),
        REJECTION_TITLES.get(code, "Upload not accepted"),
        result.message,
        slug=f"upload-{code.replace('_', '-')}",
        code=code,
        record_id=result.record_id,
        record_status=result.status,
        version=result.version,
    )


# ------------------------------------------------------------------------------ routes


@bp.get("/form/<token>")
def form_page(token: str) -> Response:
    """The practitioner's page."""
    record = _record_for(token, "form")
    _accessed(record, "viewed", "the record's page")
    return _render_record(record)


@bp.post("/form/<token>")
def form_upload(token: str) -> Response:
    """An upload from the page's form: the page again, with the result."""
    record = _record_for(token, "form")
    result = _receive(record, "page", "practitioner")
    return _render_record(_reload(record), _result_model(result, record.schema_version),
                          result.http_status)


@bp.post("/upload/<token>")
def upload(token: str) -> Response:
    """An upload from a page (multipart ``file``) or a script (raw PDF body)."""
    record = _record_for(token, "upload")
    multipart = request.mimetype.startswith("multipart/")
    result = _receive(record, "page" if multipart else "api", "practitioner")
    if _wants_json():
        return _json_result(result)
    return _render_record(_reload(record), _result_model(result, record.schema_version),
                          result.http_status)


def _pdf_response(data: bytes, filename: str) -> Response:
    resp = Response(data, mimetype="application/pdf")
    safe = _SAFE_NAME.sub("-", filename).strip("-.") or "sharewise.pdf"
    resp.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/form/<token>/pdf")
def form_pdf(token: str) -> Response:
    """The PDF to work on: prefilled, the practitioner's last upload, or the final record."""
    record = _record_for(token, "pdf")
    if record.status == CANCELLED:
        if _wants_json():
            return problem(410, "Request cancelled", "This request was cancelled.",
                           slug="record-cancelled", record_id=record.public_id)
        return _render_record(record)
    store = storage()
    rid = record.public_id
    if record.status == COMPLETE and record.final_pdf_key:
        _accessed(record, "downloaded", "the final record (PDF)")
        return _pdf_response(store.get(record.final_pdf_key), f"{rid}-final.pdf")
    with session_scope(readonly=True) as session:
        latest: UploadVersion | None = latest_readable(session, record)
    key = latest.storage_key if latest is not None else None  # never a refused one
    version = latest.version if latest is not None else None
    if latest is not None and latest.source == ONLINE:
        data = online_pdf(record, latest)
        _accessed(record, "downloaded", f"the form as saved online (version {version})")
        return _pdf_response(data, f"{rid}-version-{version}.pdf")
    if key:
        try:
            data = store.get(key)
        except NotFound:
            pass
        else:
            _accessed(record, "downloaded", f"the form as uploaded (upload {version})")
            return _pdf_response(data, f"{rid}-upload-{version}.pdf")
    data = _prefilled_pdf(record)
    _accessed(record, "downloaded", "the prefilled form (PDF)")
    return _pdf_response(data, f"{rid}.pdf")


def _prefilled_pdf(record: Record) -> bytes:
    """The stored prefilled PDF; intake stores none: the first download makes and keeps it."""
    return prefilled_pdf(record)
