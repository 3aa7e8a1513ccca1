"""``/admin``: a read-only overview of the records, for admins and for one manager's team.

What it shows: records by tenant and state, then the records themselves, overdue first, each
with its due time (in its tenant's zone), the emails sent about it (the request email and
the reminders) and the state of its post-backs. Never form content: a record is named by its
id and case reference only.

**Admins** sign in at ``/admin/login`` with a token from ``ADMIN_TOKENS`` (single sign-on is the
host system's business). The sign-in is a cookie of its own (``sharewise_admin``: signed with
the link key and its own salt, ``HttpOnly``, ``SameSite=Strict``, ``Path=/admin``, ``Secure``
when ``BASE_URL`` is https, 8 hours), which holds a digest of the token, so removing a token
from the setting ends its sessions. A script may send the token as the password of HTTP basic
credentials instead (any user name). With no ``ADMIN_TOKENS`` the overview is switched off
(404).

**A manager** opens ``/admin/team/<token>``: the same overview, filtered to the records of the
practitioners they manage, reached from their digest email. The token is signed (purpose
``team``, 14 days) and names the tenant and a keyed hash of the manager's address, never the
address itself; it shows open records only.

POSTs are guarded like every form of the service (cross-site requests refused,
:mod:`sharewise.plugin.security`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select

from sharewise.plugin import links
from sharewise.plugin.db import session_scope, utcnow
from sharewise.plugin.outbox.models import Delivery
from sharewise.plugin.records.models import FINAL_STATUSES, Record
from sharewise.plugin.reminders.models import SENT as REMINDER_SENT
from sharewise.plugin.reminders.models import Reminder
from sharewise.plugin.settings import settings_of
from sharewise.plugin.tenants import all_tenants

bp = Blueprint("admin", __name__, template_folder="templates", static_folder="static",
               static_url_path="/admin/static")

COOKIE = "sharewise_admin"
SESSION_SECONDS = 8 * 3600
LIMIT = 500
OPEN = ("awaiting_completion", "incomplete")


def _session_signer() -> URLSafeTimedSerializer:
    # compressed, as the session cookie always was, so a signed-in session stays valid
    return links.signer("sharewise.admin-session", compress=True)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _tokens() -> tuple[str, ...]:
    return settings_of(current_app).admin_tokens


def _valid_token(candidate: str) -> bool:
    return any(hmac.compare_digest(candidate.encode(), t.encode()) for t in _tokens())


def _signed_in() -> bool:
    basic = request.authorization
    if basic is not None and basic.type == "basic" and basic.password:
        return _valid_token(basic.password)
    raw = request.cookies.get(COOKIE)
    if not raw:
        return False
    try:
        digest = _session_signer().loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:
        return False
    return any(hmac.compare_digest(str(digest), _digest(t)) for t in _tokens())


def _page(template: str, code: int = 200, **context: Any) -> Response:
    resp = Response(render_template(template, **context), status=code, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _off() -> Response:
    return _page("admin/off.html", 404)


@dataclass
class Row:
    """One record as the overview shows it."""

    record_id: str
    tenant: str
    case_reference: str
    status: str
    urgency: str
    due: str
    overdue: bool
    reminders: list[str] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)


def _when(at: datetime | None, zone: ZoneInfo) -> str:
    if at is None:
        return ""
    local = at.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def _overview(records: list[Record], now: datetime) -> list[Row]:
    zones = {slug: t.zone for slug, t in all_tenants().items()}
    london = ZoneInfo("Europe/London")
    ids = [r.id for r in records]
    rows: dict[int, Row] = {}
    for r in records:
        zone = zones.get(r.tenant, london)
        rows[r.id] = Row(r.public_id, r.tenant, r.case_reference, r.status, r.urgency,
                         _when(r.due_at, zone), r.status in OPEN and r.due_at < now)
    with session_scope(readonly=True) as session:
        for rem in session.scalars(select(Reminder).where(
                Reminder.record_id.in_(ids), Reminder.state == REMINDER_SENT)
                .order_by(Reminder.sent_at)):
            row = rows[rem.record_id]
            zone = zones.get(row.tenant, london)
            what = "request email" if rem.kind == "request" else rem.kind.replace("_", " ")
            row.reminders.append(f"{what} to the {rem.recipient}, {_when(rem.sent_at, zone)}")
        for d in session.scalars(select(Delivery).where(Delivery.record_id.in_(ids))
                                 .order_by(Delivery.created_at)):
            event = d.event_type.removeprefix("share.").replace("_", " ")
            tries = f", {d.attempts} attempt{'s' if d.attempts != 1 else ''}" if d.attempts else ""
            rows[d.record_id].deliveries.append(f"{event}: {d.state}{tries}")
    return [rows[r.id] for r in records]


def _records(tenant: str | None, status: str | None,
             manager: Iterable[int] | None = None) -> tuple[list[Record], bool]:
    now = utcnow()
    overdue_first = (Record.status.in_(OPEN) & (Record.due_at < now)).desc()
    query = select(Record).order_by(overdue_first, Record.due_at, Record.id).limit(LIMIT + 1)
    if tenant:
        query = query.where(Record.tenant == tenant)
    if status:
        query = query.where(Record.status == status)
    else:
        query = query.where(Record.status.in_(OPEN))
    if manager is not None:
        query = query.where(Record.id.in_(list(manager)))
    with session_scope(readonly=True) as session:
        found = list(session.scalars(query))
        session.expunge_all()
    return found[:LIMIT], len(found) > LIMIT


def _counts(tenant: str | None = None) -> list[tuple[str, str, int]]:
    query = select(Record.tenant, Record.status, func.count()).group_by(
        Record.tenant, Record.status).order_by(Record.tenant, Record.status)
    if tenant:
        query = query.where(Record.tenant == tenant)
    with session_scope(readonly=True) as session:
        return [(t, s, n) for t, s, n in session.execute(query)]


@bp.get("/admin")
def overview() -> Response:
    """Records by state and tenant, then the records, overdue first."""
    if not _tokens():
        return _off()
    if not _signed_in():
        return redirect(url_for("admin.login"), 303)  # type: ignore[return-value]
    tenant = request.args.get("tenant") or None
    status = request.args.get("status") or None
    known = sorted(all_tenants())
    statuses = [*OPEN, *sorted(FINAL_STATUSES)]
    if (tenant and tenant not in known) or (status and status not in statuses):
        return _page("admin/overview.html", 400, error="No such tenant or state.",
                     counts=[], rows=[], more=False, tenants=known, statuses=statuses,
                     tenant=None, status=None, team=False)
    records, more = _records(tenant, status)
    return _page("admin/overview.html", counts=_counts(tenant),
                 rows=_overview(records, utcnow()), more=more, tenants=known,
                 statuses=statuses, tenant=tenant, status=status, team=False)


@bp.get("/admin/login")
def login() -> Response:
    """The sign-in form."""
    if not _tokens():
        return _off()
    return _page("admin/login.html")


@bp.post("/admin/login")
def login_post() -> Response:
    """Check the token; on success, the session cookie and the overview."""
    if not _tokens():
        return _off()
    token = (request.form.get("token") or "").strip()
    if not token or not _valid_token(token):
        return _page("admin/login.html", 401, error="That token is not valid.")
    resp = redirect(url_for("admin.overview"), 303)
    resp.set_cookie(COOKIE, _session_signer().dumps(_digest(token)),
                    max_age=SESSION_SECONDS, path="/admin", httponly=True, samesite="Strict",
                    secure=settings_of(current_app).base_url.startswith("https://"))
    return resp  # type: ignore[return-value]


@bp.post("/admin/logout")
def logout() -> Response:
    """End the session."""
    resp = redirect(url_for("admin.login"), 303)
    resp.delete_cookie(COOKIE, path="/admin")
    return resp  # type: ignore[return-value]


@bp.get("/admin/team/<token>")
def team(token: str) -> Response:
    """One manager's open records, overdue first."""
    try:
        tenant, key = links.load_team_token(token)
    except links.LinkError:
        return _page("admin/link_error.html", 403)
    with session_scope(readonly=True) as session:
        ids = [rid for rid, address in session.execute(
            select(Record.id, Record.manager_email).where(
                Record.tenant == tenant, Record.status.in_(OPEN)))
            if address and hmac.compare_digest(links.manager_key(tenant, address), key)]
    records, more = _records(tenant, None, ids)
    return _page("admin/overview.html", counts=[], rows=_overview(records, utcnow()),
                 more=more, tenants=[], statuses=[], tenant=tenant, status=None, team=True)
