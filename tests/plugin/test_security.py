"""App-wide hardening (issue 18): security headers on every response, and cross-site form
posts refused before they reach a view (nothing stored)."""

from __future__ import annotations

import io

import pytest

from tests.plugin.uploads.journey import (
    create_record,
    filled_pdf,
    partial_answers,
    path_of,
    versions,
)


@pytest.fixture
def made(app, signed_post, sample_event):
    return create_record(signed_post, sample_event)


def _pages(made):
    return {"form page": path_of(made["form_url"]),
            "link error page": "/form/not-a-real-token",
            "status (JSON)": path_of(made["status_url"]),
            "health": "/healthz"}


def test_every_response_carries_the_headers(client, made):
    for name, path in _pages(made).items():
        resp = client.get(path)
        assert resp.status_code < 500, name
        assert resp.headers["X-Content-Type-Options"] == "nosniff", name
        assert resp.headers["Referrer-Policy"] == "no-referrer", name
        assert resp.headers["X-Frame-Options"] == "DENY", name
        if resp.mimetype == "text/html":
            csp = resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, name
            assert "script" not in csp and "unsafe-inline" not in csp, name


def _multipart(app, made):
    pdf = filled_pdf(app, made["record_id"], partial_answers())
    return {"file": (io.BytesIO(pdf), "form.pdf", "application/pdf")}


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://sharewise.test"},  # a sibling subdomain
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame elsewhere
])
def test_a_cross_site_upload_is_refused_and_nothing_is_stored(app, client, made, headers):
    for path in (path_of(made["form_url"]), path_of(made["upload_url"])):
        resp = client.post(path, data=_multipart(app, made), headers=headers)
        assert resp.status_code == 403
        assert resp.get_json()["type"].endswith("cross-site-request")
    assert versions(app, made["record_id"]) == []


@pytest.mark.parametrize("headers", [
    {},  # a script (curl) sends neither header
    {"Origin": "http://sharewise.test", "Sec-Fetch-Site": "same-origin"},  # the page itself
    {"Origin": "http://localhost"},  # the address the request was sent to
    {"Sec-Fetch-Site": "none"},  # typed into the address bar
    {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # Chromium's own form, no-referrer
])
def test_the_page_itself_and_scripts_still_upload(app, client, made, headers):
    resp = client.post(path_of(made["form_url"]), data=_multipart(app, made), headers=headers)
    assert resp.status_code == 200
    assert len(versions(app, made["record_id"])) == 1


def test_signed_webhooks_are_not_judged_by_origin(signed_post, sample_event):
    resp = signed_post("northshire", sample_event(),
                       headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert resp.status_code == 201
