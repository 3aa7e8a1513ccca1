"""The prefilled form filled in real engines (PDFium's form-fill layer, qpdf via pikepdf), saved
the ways viewers save, and read back by the reader to the right normalised values."""

from __future__ import annotations

from datetime import date

import badpdfs
import pytest
from viewers import (
    ENTERED,
    NORMALISED,
    PdfiumFillError,
    fill_with_pdfium,
    fill_with_pikepdf,
    pdfium_field_values,
)

from sharewise.forms.prefill import normalise_prefill, prefill
from sharewise.forms.sandbox import read_upload
from sharewise.forms.validate import validate

TODAY = date(2026, 11, 24)  # the sample request was made on 20/11/2026

@pytest.fixture
def record(sample_prefill):
    expected = normalise_prefill(sample_prefill)
    return {"pdf": prefill(sample_prefill).pdf, "expected": expected,
            "record_id": expected["record_id"]}


def read_back(record, data, isolate=True):
    return read_upload(data, record_id=record["record_id"], expected=record["expected"],
                       isolate=isolate, timeout=5.0)


@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "rewritten"])
def test_pdfium_filled_form_reads_back_complete(record, incremental):
    saved = fill_with_pdfium(record["pdf"], ENTERED, incremental=incremental)
    if incremental:
        assert saved.startswith(record["pdf"][:-64])  # an update appended, original kept
    else:
        assert not saved.startswith(record["pdf"][:1024])
    result = read_back(record, saved)
    assert result.problems == ()
    for name, value in NORMALISED.items():
        assert result.values[name] == value, name
    for name, value in record["expected"].items():  # the prefilled values are untouched
        assert result.values[name] == value, name
    assert validate(result.values, today=TODAY) == []


@pytest.mark.parametrize("object_streams", [False, True], ids=["plain", "object_streams"])
def test_pikepdf_filled_form_reads_back_complete(record, object_streams):
    saved = fill_with_pikepdf(record["pdf"], ENTERED)
    if object_streams:
        saved = badpdfs.with_object_streams(saved)
        assert b"/ObjStm" in saved
    result = read_back(record, saved)
    assert result.problems == ()
    for name, value in NORMALISED.items():
        assert result.values[name] == value, name
    assert validate(result.values, today=TODAY) == []


def test_partly_filled_form_lists_what_is_missing_by_rule(record):
    partial = {k: ENTERED[k] for k in ("decision", "decision_reasons", "decided_on", "consent")}
    result = read_back(record, fill_with_pdfium(record["pdf"], partial))
    problems = validate(result.values, today=TODAY)
    by_field = {p.field: p.rule for p in problems}
    assert by_field["lawful_basis"] == 1
    assert by_field["subject_informed"] == 2
    assert by_field["public_interest_justification"] == 4
    assert by_field["check_secure"] == 6
    assert by_field["manager_endorsement"] == 7
    assert "decision" not in by_field and "decided_on" not in by_field


def test_typing_into_read_only_fields_changes_nothing(record):
    saved = fill_with_pdfium(record["pdf"], {
        "subject_name": "Someone Else", "record_id": "rec_other", "decision": "not_share",
        "urgency": "routine",
    })
    result = read_back(record, saved)  # not refused as tampered or another record
    assert result.values["subject_name"] == record["expected"]["subject_name"]
    assert result.values["urgency"] == record["expected"]["urgency"]
    assert result.values["decision"] == "not_share"


def test_editable_prefilled_text_is_replaced_not_appended(record):
    saved = fill_with_pdfium(record["pdf"], {"purpose": "A shorter purpose.",
                                             "decided_by": "Jo Adviser"})
    result = read_back(record, saved)
    assert result.values["purpose"] == "A shorter purpose."
    assert result.values["decided_by"] == "Jo Adviser"


def test_saved_twice_the_latest_values_win(record):
    first = fill_with_pdfium(record["pdf"], {"decision": "share", "decided_on": "21/11/2026",
                                             "check_secure": True})
    second = fill_with_pdfium(first, {"decision": "not_share", "decided_on": "22/11/2026",
                                      "check_secure": False})
    result = read_back(record, second)
    assert (result.values["decision"], result.values["decided_on"],
            result.values["check_secure"]) == ("not_share", "2026-11-22", False)


def test_a_bad_date_typed_in_pdfium_is_a_problem(record):
    result = read_back(record, fill_with_pdfium(record["pdf"], {"decided_on": "31/02/2026"}))
    assert result.values["decided_on"] is None
    assert [(p.field, p.rule) for p in result.problems] == [("decided_on", 7)]


def test_pdfium_shows_what_the_reader_reads(record):
    saved = fill_with_pdfium(record["pdf"], ENTERED)
    shown = pdfium_field_values(saved)
    assert shown["decision"] == "share_part"
    assert shown["check_secure"] is True
    assert shown["decided_on"] == "2026-11-21"
    assert shown["subject_name"] == record["expected"]["subject_name"]
    typed = shown["decision_reasons"].replace("\r\n", "\n").replace("\r", "\n")
    assert typed == ENTERED["decision_reasons"]


def test_harness_refuses_unknown_fields_and_options(record):
    with pytest.raises(PdfiumFillError):
        fill_with_pdfium(record["pdf"], {"no_such_field": "x"})
    with pytest.raises(PdfiumFillError):
        fill_with_pdfium(record["pdf"], {"decision": "perhaps"})


def test_drop_down_picked_in_pdfium_when_editable(record):
    # make the urgency drop-down editable (combo flag only), as a modified copy would be
    from pypdf.generic import NumberObject

    from sharewise.forms.reader import UploadRejected

    editable = badpdfs.set_entries(record["pdf"], "urgency", {"/Ff": NumberObject(1 << 17)},
                                   incremental=False)
    saved = fill_with_pdfium(editable, {"urgency": "routine"})
    assert pdfium_field_values(saved)["urgency"] in ("routine", "Routine")
    with pytest.raises(UploadRejected) as caught:  # the spec says read-only: tampering
        read_back(record, saved)
    assert caught.value.code == "tampered"


def test_pdfium_update_on_top_of_an_xref_stream_is_refused_cleanly(record):
    """PDFium's incremental save after an xref-stream section writes a damaged xref stream
    (no /Type, no endobj; qpdf has to reconstruct it). pypdf cannot read it: a clean refusal
    asking for a fresh save, never an exception. Our prefill writes classic xref tables."""
    from pypdf.generic import NumberObject

    from sharewise.forms.reader import UploadRejected

    with_stream = badpdfs.set_entries(record["pdf"], "urgency",
                                      {"/Ff": NumberObject(1 << 17)})  # an xref stream section
    saved = fill_with_pdfium(with_stream, {"decision": "share"})
    with pytest.raises(UploadRejected) as caught:
        read_back(record, saved)
    assert caught.value.code == "malformed"


@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "rewritten"])
def test_values_typed_in_pdfium_are_visible_in_poppler_and_pdfium(record, incremental):
    """What a practitioner typed shows in both engines from the saved file's own appearance
    streams (no viewer regenerates them), in the embedded Unicode font."""
    from tests.forms.render import has_ink, render_pdfium, render_poppler, widget_map

    saved = fill_with_pdfium(record["pdf"], ENTERED, incremental=incremental)
    widgets = widget_map(saved)
    for engine, pages in (("poppler", render_poppler(saved)), ("pdfium", render_pdfium(saved))):
        for name, value in NORMALISED.items():
            for page, rect, on in widgets[name]:
                small = rect[2] - rect[0] < 12
                expected = bool(value) and (not on or on == value)
                ink = has_ink(pages[page], rect, inset=2.5 if small else 3)
                assert ink == expected, (engine, name, on)
