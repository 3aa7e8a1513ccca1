"""The final record: flattened (no widgets, no AcroForm), values drawn, summary page appended."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime

import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from sharewise.forms.finalise import finalise
from sharewise.forms.prefill import FormDataError, normalise_prefill
from sharewise.forms.spec import load_spec
from sharewise.forms.values import values_hash
from tests.forms.conftest import SAMPLE_PREFILL
from tests.forms.render import has_ink, pdfium_text, render_pdfium, render_poppler, widget_map

SPEC = load_spec()
COMPLETED = datetime(2026, 7, 21, 15, 4, 5, tzinfo=UTC)  # 16:04 BST
AUDIT = [
    {"at": "2026-07-20T09:30:00+00:00", "event": "Form sent to the practitioner",
     "actor": "system"},
    {"at": "2026-07-21T15:04:05+00:00", "event": "Completed form uploaded", "actor": "Дмитрий"},
]


def completed_values() -> dict:
    values = normalise_prefill(SAMPLE_PREFILL)
    values.update(
        requested_at="2026-07-20T09:30:00+00:00",
        lawful_basis="public_task",
        statutory_gateway="Children Act 1989 section 47",
        special_category="yes",
        special_category_condition="DPA 2018 Schedule 1 paragraph 18",
        subject_informed="no",
        not_informed_reason="Telling the family could put the child at greater risk.",
        advice_sought="yes",
        advice_from="Ngozi Adébáyọ̀, designated safeguarding lead",
        advice_summary="Share attendance and the teacher's notes only.",
        identity_withheld=True,
        consent="not_sought",
        consent_not_sought_reason="Asking could increase the risk to the child.",
        public_interest_justification="Risk of significant harm outweighs the duty of confidence.",
        risk_if_shared="The family may disengage from the school.",
        risk_if_not_shared="The child may suffer significant harm. " * 50,
        check_necessary=True,
        check_proportionate=True,
        check_relevant=True,
        check_accurate=True,
        check_timely=True,
        check_secure=True,
        information_shared="Attendance records; notes of 12 and 18 November.",
        sharing_method="secure_email",
        shared_on="2026-07-21",
        decision="share",
        decision_reasons="The section 47 threshold is met.",
        decided_on="2026-07-21",
        manager_endorsement="endorsed",
    )
    return values


@pytest.fixture(scope="module")
def final():
    values = completed_values()
    record = finalise(
        values, record_id=values["record_id"], decision="share", completed_at=COMPLETED, audit=AUDIT
    )
    return values, record


def test_final_record_has_no_form_left(final):
    _, record = final
    reader = PdfReader(io.BytesIO(record.pdf))
    assert "/AcroForm" not in reader.trailer["/Root"]
    for page in reader.pages:
        for ref in page.get("/Annots", []):
            assert ref.get_object().get("/Subtype") != "/Widget"
    # no field object left anywhere in the file, not even unreferenced
    assert b"/Widget" not in record.pdf and b"/FT" not in record.pdf
    assert widget_map(record.pdf) == {}
    doc = pdfium.PdfDocument(record.pdf)
    assert len(doc) == 4
    doc.close()


def test_hashes_and_metadata(final):
    values, record = final
    assert record.sha256 == hashlib.sha256(record.pdf).hexdigest()
    assert record.values_sha256 == values_hash(values)
    info = PdfReader(io.BytesIO(record.pdf)).metadata
    assert info["/SharewiseRecord"] == values["record_id"]
    assert info["/SharewiseSchema"] == SPEC.schema
    assert info["/SharewiseValuesSHA256"] == record.values_sha256


def test_summary_page_carries_record_decision_times_hash_and_audit(final):
    values, record = final
    text = pdfium_text(record.pdf)
    summary = text[text.index("Decision record summary") :]
    assert values["record_id"] in summary
    assert "Share" in summary
    assert "21/07/2026 16:04 BST" in summary and "2026-07-21 15:04:05 UTC" in summary
    assert record.values_sha256 in re.sub(r"\s+", "", summary)
    assert "Form sent to the practitioner" in summary and "Дмитрий" in summary
    # the over-long answer is printed in full on the summary pages
    assert re.sub(r"\s+", " ", summary).count("may suffer significant harm.") == 50


def test_values_are_drawn_and_extract_as_the_same_text(final):
    values, record = final
    text = pdfium_text(record.pdf)
    for name in ("subject_name", "practitioner_name", "manager_name", "advice_from"):
        assert values[name] in text.replace("\r\n", "\n"), name
    assert "Zoë Łódź-Ņikolajeva" in text and "Αλέξανδρος" in text and "Дмитрий" in text
    # drop-downs show their labels, and the summary the decision's label
    assert "Request from another organisation" in text and "inbound_request" not in text
    assert "21/07/2026" in text  # dates as the practitioner typed them


def test_flattened_values_have_ink_in_both_engines(final):
    values, record = final
    from sharewise.forms.prefill import fill

    widgets = widget_map(fill(values, record_id="layout").pdf)
    for pages in (render_poppler(record.pdf), render_pdfium(record.pdf)):
        assert len(pages) == 4
        for f in SPEC.fields:
            value = values.get(f.name)
            for page, rect, on in widgets[f.name]:
                small = rect[2] - rect[0] < 12
                expected = bool(value) and (not on or on == value)
                assert has_ink(pages[page], rect, inset=2.5 if small else 3) == expected, f.name


def test_same_arguments_give_the_same_bytes(final):
    values, record = final
    again = finalise(
        values, record_id=values["record_id"], decision="share", completed_at=COMPLETED, audit=AUDIT
    )
    assert again.pdf == record.pdf


def test_bad_arguments_are_refused():
    values = completed_values()
    record_id = values["record_id"]
    with pytest.raises(ValueError, match="timezone"):
        finalise(values, record_id=record_id, decision="share",
                 completed_at=datetime(2026, 7, 21), audit=[])
    with pytest.raises(ValueError, match="audit entry 0"):
        finalise(values, record_id=record_id, decision="share", completed_at=COMPLETED,
                 audit=[{"at": "yesterday", "event": "x", "actor": "y"}])
    values["decision"] = "perhaps"
    with pytest.raises(FormDataError):
        finalise(values, record_id=record_id, completed_at=COMPLETED, audit=[])


def test_incomplete_record_without_decision_still_finalises():
    values = normalise_prefill(SAMPLE_PREFILL)
    record = finalise(values, record_id=values["record_id"], decision=None,
                      completed_at=COMPLETED, audit=[])
    text = pdfium_text(record.pdf)
    assert "Not recorded" in text and "No audit entries" in text


def _fonts_embedded(pdf: bytes) -> list[str]:
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pdf") as fh:
        fh.write(pdf)
        fh.flush()
        out = subprocess.run(["pdffonts", fh.name], capture_output=True, text=True, check=True)
    rows = out.stdout.splitlines()[2:]
    assert rows
    return [row.split()[-5] for row in rows]  # the "emb" column


def test_every_font_is_embedded_in_template_and_final_record(final):
    from sharewise.forms.templatefile import TEMPLATE_PATH

    _, record = final
    assert set(_fonts_embedded(TEMPLATE_PATH.read_bytes())) == {"yes"}
    assert set(_fonts_embedded(record.pdf)) == {"yes"}


def test_summary_never_contradicts_the_values_it_hashes():
    values = completed_values()
    with pytest.raises(ValueError, match="decision"):
        finalise(values, record_id=values["record_id"], decision="not_share",
                 completed_at=COMPLETED, audit=[])
    with pytest.raises(ValueError, match="record_id"):
        finalise(values, record_id="rec_someone_else", completed_at=COMPLETED, audit=[])
    # the decision shown comes from the values; passing the same code changes nothing
    implicit = finalise(values, record_id=values["record_id"], completed_at=COMPLETED, audit=[])
    explicit = finalise(values, record_id=values["record_id"], decision="share",
                        completed_at=COMPLETED, audit=[])
    assert implicit.pdf == explicit.pdf
    summary = pdfium_text(implicit.pdf).split("Decision record summary")[1]
    assert "Share" in summary and "Not recorded" not in summary


def test_values_hash_is_the_same_for_date_objects_and_their_iso_text():
    from datetime import date

    values = completed_values()
    as_objects = {**values, "decided_on": date(2026, 7, 21),
                  "requested_at": datetime.fromisoformat(values["requested_at"])}
    assert values_hash(as_objects) == values_hash(values)
    record = finalise(as_objects, record_id=values["record_id"], completed_at=COMPLETED, audit=[])
    assert record.values_sha256 == values_hash(values)
