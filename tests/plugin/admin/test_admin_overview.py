"""``/admin``: signed-in admins see records by state, overdue first, with reminders and
post-backs and no form content; a manager's team link shows only their team's open records."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from sharewise.plugin.db import session_scope, utcnow
from sharewise.plugin.records.models import Record
from tests.plugin.uploads.journey import create_record

TOKEN = "admin-token-for-the-tests-0123456789abcdef"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config["ADMIN_TOKENS"] = f"an-older-token-9876543210,{TOKEN}"
    return app_config


def _sign_in(client: Any, token: str = TOKEN) -> Any:
    return client.post("/admin/login", data={"token": token})


def _overdue(app: Any, record_id: str, minutes: int = 90) -> None:
    with session_scope(app) as session:
        session.execute(update(Record).where(Record.public_id == record_id)
                        .values(due_at=utcnow() - timedelta(minutes=minutes)))


def test_the_overview_needs_a_token(client: Any) -> None:
    resp = client.get("/admin")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/admin/login")
    form = client.get("/admin/login")
    policy = dict(directive.strip().split(" ", 1)
                  for directive in form.headers["Content-Security-Policy"].split(";"))
    assert policy["frame-ancestors"] == "'none'"
    # no script rule of its own: scripts fall back to default-src, which allows none
    assert not [name for name in policy if name.startswith("script-src")], policy
    assert policy["default-src"] == "'none'"
    wrong = _sign_in(client, "not-the-token")
    assert wrong.status_code == 401 and "That token is not valid." in wrong.get_data(True)
    assert "sharewise_admin" not in wrong.headers.get("Set-Cookie", "")
    assert client.get("/admin").status_code == 303


def test_signed_in_the_overview_lists_records_overdue_first_without_form_content(
        app: Any, client: Any, signed_post: Any, sample_event: Any) -> None:
    later = create_record(signed_post, sample_event)
    late = create_record(signed_post, sample_event, case={"reference": "CASE-LATE-1"})
    _overdue(app, late["record_id"])
    signed = _sign_in(client)
    assert signed.status_code == 303
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    page = client.get("/admin")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert html.index(late["record_id"]) < html.index(later["record_id"])  # overdue first
    assert "CASE-LATE-1" in html and "overdue" in html
    assert "northshire" in html and "awaiting completion" in html
    # no personal data: the sample event's subject, staff and free text are not on the page
    for text in ("Zoë", "Siân", "sian.oconnor", "dafydd", "Renée", "safeguarding assessment",
                 "School attendance"):
        assert text not in html, text
    filtered = client.get("/admin?status=complete").get_data(as_text=True)
    assert late["record_id"] not in filtered
    assert client.get("/admin?tenant=nowhere").status_code == 400


def test_basic_credentials_work_for_scripts(client: Any, signed_post: Any,
                                            sample_event: Any) -> None:
    made = create_record(signed_post, sample_event)
    auth = base64.b64encode(f"ops:{TOKEN}".encode()).decode()
    page = client.get("/admin", headers={"Authorization": f"Basic {auth}"})
    assert page.status_code == 200 and made["record_id"] in page.get_data(as_text=True)
    bad = base64.b64encode(b"ops:guess").decode()
    assert client.get("/admin", headers={"Authorization": f"Basic {bad}"}).status_code == 303


def test_removing_a_token_ends_its_sessions(app: Any, client: Any) -> None:
    import dataclasses

    from sharewise.plugin.settings import install, settings_of

    _sign_in(client)
    assert client.get("/admin").status_code == 200
    install(app, dataclasses.replace(settings_of(app), admin_tokens=("a-new-token-only",)))
    assert client.get("/admin").status_code == 303
    client.post("/admin/logout")


def test_signing_out_ends_the_session(client: Any) -> None:
    _sign_in(client)
    assert client.get("/admin").status_code == 200
    assert client.post("/admin/logout").status_code == 303
    assert client.get("/admin").status_code == 303


def test_without_tokens_the_overview_is_off(app: Any, client: Any) -> None:
    import dataclasses

    from sharewise.plugin.settings import install, settings_of

    install(app, dataclasses.replace(settings_of(app), admin_tokens=()))
    assert client.get("/admin").status_code == 404
    assert _sign_in(client).status_code == 404


def test_a_team_link_shows_only_that_managers_open_records(
        app: Any, client: Any, signed_post: Any, sample_event: Any) -> None:
    from sharewise.plugin.links import team_url

    theirs = create_record(signed_post, sample_event)  # manager dafydd.llyr@example.org
    other_event = sample_event()
    other_event["data"]["practitioner"]["manager"]["email"] = "someone.else@example.org"
    other = signed_post("northshire", other_event).get_json()
    _overdue(app, theirs["record_id"])
    with app.test_request_context():
        url = team_url("northshire", "Dafydd.Llyr@example.org")
    assert "dafydd" not in url.lower()  # the address is not in the link
    page = client.get(url.removeprefix(app.config["BASE_URL"]))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert theirs["record_id"] in html and other["record_id"] not in html
    assert "Your team's open records" in html
    tampered = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
    assert client.get(tampered.removeprefix(app.config["BASE_URL"])).status_code == 403


def test_the_request_email_is_listed_as_such(app: Any, client: Any, signed_post: Any,
                                             sample_event: Any) -> None:
    from sqlalchemy import select

    from sharewise.plugin.reminders.models import Reminder
    from sharewise.plugin.reminders.services import send_reminder

    made = create_record(signed_post, sample_event)
    with session_scope(app) as session:
        row = session.scalars(select(Reminder).join(Record, Record.id == Reminder.record_id)
                              .where(Record.public_id == made["record_id"],
                                     Reminder.kind == "request")).one()
        claimed = row.id, row.claim
    assert send_reminder(*claimed, app=app).state == "sent"  # what the worker does
    _sign_in(client)
    html = client.get("/admin").get_data(as_text=True)
    assert "Emails sent" in html and "request email to the practitioner, " in html
