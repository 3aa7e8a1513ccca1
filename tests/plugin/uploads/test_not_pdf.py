"""Uploads that hold the form but do not start with ``%PDF-`` (a ZIP that stores it, a byte
order mark in front) are refused as ``not_pdf`` through the upload path, never accepted as a
version; the bytes are kept, as for every refusal."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sharewise.forms.reader import UploadRejected
from sharewise.plugin.storage import storage
from tests.forms import badpdfs
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    path_of,
    record_row,
    versions,
)

JSON = {"Accept": "application/json", "Content-Type": "application/pdf"}


@pytest.fixture
def made(app, signed_post, sample_event) -> dict[str, Any]:
    return create_record(signed_post, sample_event)


@pytest.mark.parametrize("wrap", [
    badpdfs.zip_stored,
    lambda pdf: badpdfs.prefixed(pdf, b"\xef\xbb\xbf"),
], ids=["zip_stored", "utf8_bom"])
def test_the_completed_form_wrapped_is_refused_as_not_a_pdf(app, client, made, wrap):
    rid = made["record_id"]
    form = filled_pdf(app, rid, complete_answers())  # would complete the record as a PDF
    data = wrap(form)
    assert form in data
    resp = client.post(path_of(made["upload_url"]), data=data, headers=JSON)
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["code"] == "not_pdf"
    assert body["detail"] == UploadRejected("not_pdf").message
    assert "not a PDF" in body["detail"]
    [version] = versions(app, rid)
    assert (version.outcome, version.rejection_code) == ("rejected", "not_pdf")
    assert version.values is None
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    with app.app_context():
        assert storage(app).get(version.storage_key) == data  # kept, nothing lost
    assert record_row(app, rid).status == "awaiting_completion"
    # the same form as a PDF completes the record
    resp = client.post(path_of(made["upload_url"]), data=form, headers=JSON)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert record_row(app, rid).status == "complete"
