"""Link problems: expired, tampered, wrong purpose, another tenant's record, a cancelled record.

Each gets its exact answer: 403 with a page that says what happened and what to do (JSON
clients: problem+json), and nothing of the record is shown.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine

from sharewise.plugin import links
from tests.plugin.uploads.journey import create_record, path_of, record_row

LINK_KINDS = {
    "form": ("form_url", "get"),
    "pdf": ("form_pdf_url", "get"),
    "upload": ("upload_url", "post"),
}

EXPECTED = {
    "expired": ("This link has expired", "link-expired"),
    "invalid": ("This link is not valid", "link-invalid"),
    "wrong_purpose": ("This link is for something else", "link-wrong-purpose"),
}


@pytest.fixture
def made(app, signed_post, sample_event):
    return create_record(signed_post, sample_event)


def _call(client, method, path, json_client):
    headers = {"Accept": "application/json"} if json_client else {"Accept": "text/html"}
    if method == "post":
        headers["Content-Type"] = "application/pdf"
        return client.post(path, data=b"%PDF-1.7 not read", headers=headers)
    return client.get(path, headers=headers)


def _assert_403(resp, kind, json_client):
    title, slug = EXPECTED[kind]
    assert resp.status_code == 403
    assert resp.headers["Cache-Control"] == "no-store"
    if json_client:
        assert resp.mimetype == "application/problem+json"
        body = resp.get_json()
        assert (body["type"], body["title"], body["status"]) == (
            f"urn:sharewise:problem:{slug}", title, 403)
        return
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert f"<h1>{title}</h1>" in html
    assert "What happened" in html and "What to do now" in html
    assert "ask for a new Sharewise link" in html
    assert "CASE-2026-0042" not in html  # nothing of the record


def _tamper(url: str) -> str:
    token = url.split("/")[4] if "/form/" in url else url.rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    return url.replace(token, flipped)


@pytest.mark.parametrize("json_client", [False, True], ids=["page", "json"])
@pytest.mark.parametrize("purpose", list(LINK_KINDS))
def test_expired_link(app, client, made, purpose, json_client):
    key, method = LINK_KINDS[purpose]
    later = datetime.now() + timedelta(seconds=app.config["LINK_MAX_AGE"] + 60)
    with time_machine.travel(later, tick=False):
        resp = _call(client, method, path_of(made[key]), json_client)
    _assert_403(resp, "expired", json_client)


@pytest.mark.parametrize("json_client", [False, True], ids=["page", "json"])
@pytest.mark.parametrize("purpose", list(LINK_KINDS))
def test_tampered_link(app, client, made, purpose, json_client):
    key, method = LINK_KINDS[purpose]
    resp = _call(client, method, path_of(_tamper(made[key])), json_client)
    _assert_403(resp, "invalid", json_client)


@pytest.mark.parametrize("json_client", [False, True], ids=["page", "json"])
def test_wrong_purpose(app, client, made, json_client):
    pdf_token = made["form_pdf_url"].split("/")[-2]
    status_token = made["status_url"].rsplit("/", 1)[1]
    for path, method in ((f"/form/{pdf_token}", "get"), (f"/upload/{status_token}", "post"),
                         (f"/form/{status_token}/pdf", "get")):
        _assert_403(_call(client, method, path, json_client), "wrong_purpose", json_client)


def test_link_made_with_a_retired_key_is_invalid(app, client, made):
    app.config["SECRET_KEYS"] = ["a-new-key"]
    resp = client.get(path_of(made["form_url"]))
    _assert_403(resp, "invalid", False)


def test_rotated_key_keeps_old_links_working(app, client, made):
    old_keys = list(app.config["SECRET_KEYS"])
    app.config["SECRET_KEYS"] = ["a-new-key", *old_keys]
    resp = client.get(path_of(made["form_url"]))
    assert resp.status_code == 200
    assert made["record_id"] in resp.get_data(as_text=True)
    # new links are signed with the new key: they stop working if it is dropped again
    with app.app_context():
        fresh = links.make_token("northshire", made["record_id"], "form")
    app.config["SECRET_KEYS"] = old_keys
    _assert_403(client.get(links.PATHS["form"].format(token=fresh)), "invalid", False)


@pytest.mark.parametrize("purpose", list(LINK_KINDS))
def test_one_tenants_link_never_opens_another_tenants_record(app, client, made, purpose):
    key, method = LINK_KINDS[purpose]
    with app.app_context():
        # a genuine token, signed by Sharewise, naming the other tenant and this record id
        token = links.make_token("southvale", made["record_id"], purpose)
    path = links.PATHS[purpose].format(token=token)
    _assert_403(_call(client, method, path, False), "invalid", False)
    _assert_403(_call(client, method, path, True), "invalid", True)
    assert record_row(app, made["record_id"]).status == "awaiting_completion"


def test_status_link_of_another_tenant_is_refused(app, client, made):
    with app.app_context():
        token = links.make_token("southvale", made["record_id"], "status")
    resp = client.get(f"/status/{token}")
    assert resp.status_code in (403, 404)  # served by plugin.records.views
    assert resp.mimetype == "application/problem+json"
    assert "awaiting_completion" not in resp.get_data(as_text=True)


def test_cancelled_record_link_says_it_was_cancelled(app, client, made, signed_post):
    request_id = record_row(app, made["record_id"]).request_id
    event = {"type": "share.cancelled", "timestamp": "2026-01-01T00:00:00Z",
             "data": {"request_id": request_id, "reason": "Request withdrawn"}}
    assert signed_post("northshire", event).status_code == 200

    page = client.get(path_of(made["form_url"]))
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    assert "<h1>This request was cancelled</h1>" in html
    assert "CASE-2026-0042" in html
    assert "<form" not in html  # no upload form on a cancelled record

    pdf = client.get(path_of(made["form_pdf_url"]))
    assert pdf.status_code == 410 and pdf.mimetype == "text/html"
    pdf_json = client.get(path_of(made["form_pdf_url"]), headers={"Accept": "application/json"})
    assert pdf_json.status_code == 410
    assert pdf_json.get_json()["type"] == "urn:sharewise:problem:record-cancelled"

    status = client.get(path_of(made["status_url"]))
    assert status.status_code == 200 and status.get_json()["status"] == "cancelled"
