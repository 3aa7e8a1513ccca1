"""End to end through the HTTP surface: a signed ``share.requested``, the page, a partial upload
filled through PDFium (incomplete, the right rules listed), a full one (complete), and the final
PDF: flattened, with the summary page, its SHA-256 matching what the record and the post-back
carry."""

from __future__ import annotations

import hashlib
import io

from pypdf import PdfReader
from sqlalchemy import select

from sharewise.forms.values import values_hash
from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.models import Delivery
from tests.forms.viewers import fill_with_pdfium
from tests.plugin.uploads.journey import (
    PARTIAL_KEYS,
    as_typed,
    complete_answers,
    partial_answers,
    path_of,
    record_row,
    versions,
)


def upload_from_page(client, form_url: str, pdf: bytes):
    return client.post(path_of(form_url), data={"file": (io.BytesIO(pdf), "decision.pdf")},
                       content_type="multipart/form-data")


def test_the_whole_journey(app, client, signed_post, sample_event):
    created = signed_post("northshire", sample_event())
    assert created.status_code == 201
    made = created.get_json()
    rid = made["record_id"]

    page = client.get(path_of(made["form_url"]))
    assert page.status_code == 200
    assert "CASE-2026-0042" in page.get_data(as_text=True)

    prefilled = client.get(path_of(made["form_pdf_url"]))
    assert prefilled.mimetype == "application/pdf"

    # first attempt: only the decision and the risks, typed through PDFium
    first = fill_with_pdfium(prefilled.data, as_typed(partial_answers()))
    resp = upload_from_page(client, made["form_url"], first)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "We received your form, but it is not finished yet" in html
    for rule in ("Rule 1.", "Rule 2.", "Rule 3.", "Rule 4.", "Rule 6."):
        assert f"<h3>{rule}" in html
    for rule in ("Rule 5.", "Rule 7."):
        assert f"<h3>{rule}" not in html
    status = client.get(path_of(made["status_url"])).get_json()
    assert status["status"] == "incomplete"
    assert {m["rule"] for m in status["missing"]} == {1, 2, 3, 4, 6}

    # they download their own upload and carry on from it
    own = client.get(path_of(made["form_pdf_url"])).data
    assert own == first
    rest = {k: v for k, v in complete_answers().items() if k not in PARTIAL_KEYS}
    second = fill_with_pdfium(own, as_typed(rest))
    resp = upload_from_page(client, made["form_url"], second)
    assert resp.status_code == 200
    assert "Complete, thank you" in resp.get_data(as_text=True)

    record = record_row(app, rid)
    assert record.status == "complete"
    final = client.get(path_of(made["form_pdf_url"]))
    assert final.headers["Content-Disposition"] == f'attachment; filename="{rid}-final.pdf"'
    digest = hashlib.sha256(final.data).hexdigest()
    assert digest == record.final_sha256

    # flattened: no form, no widgets, on any page; then the summary page(s)
    reader = PdfReader(io.BytesIO(final.data))
    assert "/AcroForm" not in reader.trailer["/Root"]
    for pg in reader.pages:
        annots = pg.get("/Annots") or []
        assert not [a for a in annots if a.get_object().get("/Subtype") == "/Widget"]
    summary_text = "".join(p.extract_text() for p in reader.pages[-2:])
    assert rid in summary_text
    # the summary's values hash is the hash of what was submitted
    latest = versions(app, rid)[-1]
    submitted = {**record.prefill, **latest.values}
    assert reader.metadata["/SharewiseValuesSHA256"] == values_hash(submitted)
    assert values_hash(submitted) in summary_text.replace("\n", "")
    # what was typed is what was recorded
    for name, value in complete_answers().items():
        assert latest.values[name] == value

    # the post-back carries the same PDF hash and the typed values
    with session_scope(app) as session:
        [delivery] = session.scalars(select(Delivery).where(Delivery.record_id == record.id))
        data = delivery.payload["data"]
    assert data["pdf"]["sha256"] == digest
    assert data["status"] == "complete" and data["fields"]["decision"] == "share"
