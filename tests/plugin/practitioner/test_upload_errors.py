"""Every bad upload gets its exact response, is kept as a rejected version and loses nothing.

JSON clients (``Accept: application/json``) get RFC 9457 problem+json; the page gets the same
status code with the refusal explained. Status codes: 400 not a usable PDF, 413 too large,
422 not an acceptable decision form for this record, 409 the record no longer takes uploads.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest

from sharewise.forms.reader import UploadRejected
from sharewise.plugin.storage import storage
from tests.forms import badpdfs
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    partial_answers,
    path_of,
    record_row,
    versions,
)

JSON = {"Accept": "application/json", "Content-Type": "application/pdf"}


@pytest.fixture
def made(app, signed_post, sample_event) -> dict[str, Any]:
    return create_record(signed_post, sample_event)


def _prefilled(client, made) -> bytes:
    resp = client.get(path_of(made["form_pdf_url"]))
    assert resp.status_code == 200
    return resp.data


def _other_record_pdf(app, client, signed_post, sample_event) -> bytes:
    other = create_record(signed_post, sample_event)
    return client.get(path_of(other["form_pdf_url"])).data


CASES = {
    # name: (builder(app, client, made, signed_post, sample_event) -> bytes, status, code)
    "empty": (lambda a, c, m, sp, se: b"", 400, "empty"),
    "not_pdf_png": (lambda a, c, m, sp, se: badpdfs.png_renamed(), 400, "not_pdf"),
    "not_pdf_text": (lambda a, c, m, sp, se: b"Dear team, the form is attached.", 400,
                     "not_pdf"),
    "truncated": (lambda a, c, m, sp, se: badpdfs.truncated(_prefilled(c, m)), 400,
                  "malformed"),
    "encrypted": (lambda a, c, m, sp, se: badpdfs.encrypted(_prefilled(c, m)), 422,
                  "encrypted"),
    "scripted": (lambda a, c, m, sp, se: badpdfs.javascript(_prefilled(c, m)), 422,
                 "active_content"),
    "launch_action": (lambda a, c, m, sp, se: badpdfs.field_action(_prefilled(c, m)), 422,
                      "active_content"),
    "xfa": (lambda a, c, m, sp, se: badpdfs.xfa(_prefilled(c, m)), 422, "xfa"),
    "not_our_form": (lambda a, c, m, sp, se: badpdfs.plain_pdf(), 422, "wrong_form"),
    "wrong_record": (lambda a, c, m, sp, se: _other_record_pdf(a, c, sp, se), 422,
                     "wrong_record"),
    "tampered_read_only": (
        lambda a, c, m, sp, se: badpdfs.set_text(_prefilled(c, m), "case_reference",
                                                 "CASE-9999-0001"),
        422, "tampered"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_upload_json_exact_problem(app, client, made, signed_post, sample_event, name):
    build, status, code = CASES[name]
    data = build(app, client, made, signed_post, sample_event)
    resp = client.post(path_of(made["upload_url"]), data=data, headers=JSON)
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body == {
        "type": f"urn:sharewise:problem:upload-{code.replace('_', '-')}",
        "title": body["title"],
        "status": status,
        "detail": UploadRejected(code).message,
        "code": code,
        "record_id": made["record_id"],
        "record_status": "awaiting_completion",
        "version": 1,
    }
    assert body["title"]
    # kept as a rejected version, bytes stored exactly, the record untouched
    [version] = versions(app, made["record_id"])
    assert (version.outcome, version.rejection_code, version.size) == ("rejected", code,
                                                                        len(data))
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    with app.app_context():
        assert storage(app).get(version.storage_key) == data
    assert record_row(app, made["record_id"]).status == "awaiting_completion"


@pytest.mark.parametrize("name", ["not_pdf_png", "encrypted", "tampered_read_only"])
def test_bad_upload_from_the_page_explains_it(app, client, made, signed_post, sample_event,
                                              name):
    build, status, code = CASES[name]
    data = build(app, client, made, signed_post, sample_event)
    resp = client.post(path_of(made["form_url"]),
                       data={"file": (io.BytesIO(data), "decision.pdf")},
                       content_type="multipart/form-data")
    assert resp.status_code == status
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert 'role="alert"' in html
    # Jinja escapes apostrophes; compare on the escaped text
    from markupsafe import escape

    assert str(escape(UploadRejected(code).message)) in html
    assert "We kept a copy of what you sent (upload 1)" in html
    [version] = versions(app, made["record_id"])
    assert (version.source, version.rejection_code) == ("page", code)


def test_over_the_size_limit_is_413_before_the_body_is_read(app, client, made):
    limit = app.config["MAX_BODY_BYTES"]
    body = b"%PDF-1.7\n" + b"0" * (limit + 10)
    resp = client.post(path_of(made["upload_url"]), data=body, headers=JSON)
    assert resp.status_code == 413
    problem = resp.get_json()
    assert problem["type"] == "urn:sharewise:problem:upload-too-large"
    assert problem["code"] == "too_large"
    assert problem["status"] == 413
    assert problem["detail"] == UploadRejected("too_large").message
    [version] = versions(app, made["record_id"])
    assert (version.outcome, version.rejection_code, version.storage_key) == (
        "rejected", "too_large", None)
    assert version.size == len(body)


class CountingStream:
    """A request body that counts what the server reads of it."""

    def __init__(self, size: int) -> None:
        self.size, self.pos, self.read_bytes = size, 0, 0

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.size + offset
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else min(n, self.size - self.pos)
        self.pos += n
        self.read_bytes += n
        return b"0" * n

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


def test_declared_length_over_the_limit_is_refused_without_reading_the_body(app, client, made):
    limit = app.config["MAX_BODY_BYTES"]
    body = CountingStream(limit + 1)
    resp = client.post(path_of(made["upload_url"]), input_stream=body,
                       headers={**JSON, "Content-Length": str(limit + 1)})
    assert resp.status_code == 413
    assert resp.get_json()["code"] == "too_large"
    assert body.read_bytes == 0


def test_over_the_size_limit_with_a_small_limit_on_the_page(app_config, signed_post,
                                                            sample_event):
    """A multipart upload over a (configured) limit gets the page with 413."""
    from sharewise.plugin.app import create_app

    app_config["MAX_BODY_BYTES"] = 200_000
    app = create_app(app_config)
    client = app.test_client()
    from sharewise.plugin.demo import signed_request
    from sharewise.plugin.tenants import get_tenant

    secret = get_tenant("northshire", app).webhook_secrets[0]
    body, headers = signed_request(secret, sample_event())
    made = client.post("/webhooks/northshire", data=body, headers=headers).get_json()
    resp = client.post(path_of(made["form_url"]),
                       data={"file": (io.BytesIO(b"%PDF-1.7\n" + b"1" * 300_000), "big.pdf")},
                       content_type="multipart/form-data")
    assert resp.status_code == 413
    html = resp.get_data(as_text=True)
    assert "The file is too large" in html


def test_complete_record_refuses_with_409_and_keeps_the_bytes(app, client, made):
    rid = made["record_id"]
    done = client.post(path_of(made["upload_url"]),
                       data=filled_pdf(app, rid, complete_answers()), headers=JSON)
    assert done.status_code == 200 and done.get_json()["status"] == "complete"
    final_before = record_row(app, rid).final_sha256

    late = filled_pdf(app, rid, {**complete_answers(), "decision_reasons": "Changed my mind."})
    resp = client.post(path_of(made["upload_url"]), data=late, headers=JSON)
    assert resp.status_code == 409
    assert resp.get_json() == {
        "type": "urn:sharewise:problem:upload-record-complete",
        "title": "This record is already complete",
        "status": 409,
        "detail": resp.get_json()["detail"],
        "code": "record_complete",
        "record_id": rid,
        "record_status": "complete",
        "version": 2,
    }
    assert "already complete" in resp.get_json()["detail"]
    record = record_row(app, rid)
    assert (record.status, record.final_sha256) == ("complete", final_before)
    first, second = versions(app, rid)
    assert (first.outcome, second.outcome, second.rejection_code) == (
        "accepted", "rejected", "record_complete")
    with app.app_context():
        assert storage(app).get(second.storage_key) == late


def test_cancelled_record_refuses_uploads_with_409(app, client, made, signed_post):
    cancel = {"type": "share.cancelled", "timestamp": "2026-01-01T00:00:00Z",
              "data": {"request_id": record_row(app, made["record_id"]).request_id,
                       "reason": "Duplicate request"}}
    assert signed_post("northshire", cancel).status_code == 200
    pdf = filled_pdf(app, made["record_id"], partial_answers())
    resp = client.post(path_of(made["upload_url"]), data=pdf, headers=JSON)
    assert resp.status_code == 409
    assert resp.get_json()["code"] == "record_cancelled"
    [version] = versions(app, made["record_id"])
    assert version.rejection_code == "record_cancelled"
    assert record_row(app, made["record_id"]).status == "cancelled"


def test_multipart_without_a_file_is_an_empty_upload(app, client, made):
    resp = client.post(path_of(made["upload_url"]), data={},
                       content_type="multipart/form-data",
                       headers={"Accept": "application/json"})
    assert resp.status_code == 400
    assert resp.get_json()["code"] == "empty"


def test_no_personal_data_in_any_refusal(app, client, made, signed_post, sample_event):
    """Names and form text never appear in a refusal (page or JSON)."""
    pdf = badpdfs.set_text(_prefilled(client, made), "case_reference", "CASE-9999-0001")
    for headers in (JSON, {"Content-Type": "application/pdf", "Accept": "text/html"}):
        text = client.post(path_of(made["upload_url"]), data=pdf,
                           headers=headers).get_data(as_text=True)
        for secret in ("Zoë", "Ångström", "Siân", "Dafydd", "School attendance"):
            assert secret not in text


def test_file_store_failure_is_503_and_records_nothing(app, client, made, monkeypatch):
    from sharewise.plugin.storage import StorageError
    from sharewise.plugin.storage.local import LocalStorage

    def broken_put(self, key, data):
        raise StorageError("disk unavailable")

    monkeypatch.setattr(LocalStorage, "put", broken_put)
    pdf = filled_pdf(app, made["record_id"], partial_answers())
    resp = client.post(path_of(made["upload_url"]), data=pdf, headers=JSON)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "60"
    assert resp.get_json()["type"] == "urn:sharewise:problem:storage-unavailable"
    page = client.post(path_of(made["form_url"]),
                       data={"file": (io.BytesIO(pdf), "a.pdf")},
                       content_type="multipart/form-data")
    assert page.status_code == 503
    assert "<h1>We could not take your file just now</h1>" in page.get_data(as_text=True)
    assert versions(app, made["record_id"]) == []
    assert record_row(app, made["record_id"]).status == "awaiting_completion"


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_chunked_body_over_the_limit_is_413_not_a_truncated_upload(app_config, signed_post,
                                                                   sample_event, accept):
    """A raw body without Content-Length (chunked) over the limit is refused as too large.

    Werkzeug's max-length stream stops quietly at the limit, so reading it whole handed the
    reader the first MAX_BODY_BYTES: a complete form followed by padding was read (and could
    complete the record) instead of being refused.
    """
    from sharewise.plugin.app import create_app
    from sharewise.plugin.demo import signed_request
    from sharewise.plugin.tenants import get_tenant

    app_config["MAX_BODY_BYTES"] = 600_000
    app = create_app(app_config)
    client = app.test_client()
    secret = get_tenant("northshire", app).webhook_secrets[0]
    body, headers = signed_request(secret, sample_event())
    made = client.post("/webhooks/northshire", data=body, headers=headers).get_json()
    pdf = filled_pdf(app, made["record_id"], complete_answers())
    assert len(pdf) < 600_000
    body = pdf + b"\n%" + b"x" * (600_000 - len(pdf) + 10_000) + b"\n"
    resp = client.post(path_of(made["upload_url"]), input_stream=io.BytesIO(body),
                       headers={"Content-Type": "application/pdf", "Accept": accept,
                                "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})
    assert resp.status_code == 413
    if accept == "application/json":
        assert resp.get_json()["code"] == "too_large"
    else:
        assert "The file is too large" in resp.get_data(as_text=True)
    [version] = versions(app, made["record_id"])
    assert (version.outcome, version.rejection_code, version.storage_key) == (
        "rejected", "too_large", None)
    assert record_row(app, made["record_id"]).status == "awaiting_completion"


def test_body_shorter_than_its_content_length_is_not_read_as_an_upload(app, client, made):
    """A client that goes away mid-upload: the part that arrived is not taken for the file.

    gunicorn marks its input as terminated, so Werkzeug then ignores Content-Length and a short
    body simply ends; a cut-off PDF (an incremental update lost, say) could otherwise be read
    as an older revision of the form.
    """
    rid = made["record_id"]
    pdf = filled_pdf(app, rid, complete_answers())
    resp = client.post(path_of(made["upload_url"]), input_stream=io.BytesIO(pdf[:-1000]),
                       headers=JSON,
                       environ_overrides={"wsgi.input_terminated": True,
                                          "CONTENT_LENGTH": str(len(pdf))})
    assert resp.status_code == 400
    assert resp.get_json()["type"] == "urn:sharewise:problem:upload-incomplete"
    assert versions(app, rid) == []
    assert record_row(app, rid).status == "awaiting_completion"
