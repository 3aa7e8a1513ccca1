"""Prefill: values land in the fields, show in poppler and PDFium, and bad data is refused."""

from __future__ import annotations

import io
import logging
import re

import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader
from pypdf.generic import IndirectObject

from sharewise.forms.prefill import MIN_SIZE, FormDataError, fill, normalise_prefill, prefill
from sharewise.forms.spec import load_spec
from sharewise.forms.templatefile import TEMPLATE_PATH
from sharewise.forms.values import to_display, values_hash
from tests.forms.render import has_ink, pdfium_fields, render_pdfium, render_poppler, widget_map

SPEC = load_spec()


@pytest.fixture(scope="module")
def prefilled(request) -> tuple[bytes, dict]:
    from tests.forms.conftest import SAMPLE_PREFILL

    return prefill(SAMPLE_PREFILL).pdf, dict(SAMPLE_PREFILL)


@pytest.fixture(scope="module")
def renders(prefilled) -> tuple[list, list]:
    pdf, _ = prefilled
    return render_poppler(pdf), render_pdfium(pdf)


def _fields(pdf: bytes) -> dict:
    return PdfReader(io.BytesIO(pdf)).get_fields()


def test_prefill_sets_every_value_readable_by_pypdf_and_pdfium(prefilled):
    pdf, data = prefilled
    fields = _fields(pdf)
    seen = pdfium_fields(pdf)
    for name, value in data.items():
        shown = to_display(SPEC[name], value)
        assert fields[name]["/V"] == shown, name
        assert seen[name] == shown, name
    assert fields["subject_date_of_birth"]["/V"] == "09/03/2014"
    assert fields["requested_at"]["/V"] == "20/11/2026 09:30"
    # fields the host does not fill stay empty
    assert seen["decision_reasons"] == "" and seen["check_secure"] is False
    assert "decision" not in seen


def test_every_prefilled_field_has_ink_in_both_engines_and_empty_ones_none(prefilled, renders):
    pdf, data = prefilled
    widgets = widget_map(pdf)
    for engine, pages in zip(("poppler", "pdfium"), renders, strict=True):
        for f in SPEC.fields:
            for page, rect, _ in widgets[f.name]:
                inset = 2.5 if f.type in ("checkbox", "choice") and rect[2] - rect[0] < 12 else 3
                ink = has_ink(pages[page], rect, inset=inset)
                assert ink == (f.name in data), f"{engine}: {f.name}"


def test_metadata_ties_the_copy_to_its_record(prefilled, sample_prefill):
    pdf, _ = prefilled
    info = PdfReader(io.BytesIO(pdf)).metadata
    assert info["/SharewiseSchema"] == "sharewise.decision-record/1"
    assert info["/SharewiseRecord"] == sample_prefill["record_id"]
    expected = values_hash(normalise_prefill(sample_prefill))
    assert info["/SharewisePrefillHash"] == expected
    assert prefill(sample_prefill).prefill_hash == expected
    # PDFium reads the same /Info
    doc = pdfium.PdfDocument(pdf)
    assert doc.get_metadata_value("Title") == "Information-sharing decision record"
    doc.close()


def test_prefill_hash_covers_every_prefill_field_with_iso_values(sample_prefill):
    del sample_prefill["practitioner_team"]
    values = normalise_prefill(sample_prefill)
    assert set(values) == {f.name for f in SPEC.prefilled_fields}
    assert values["practitioner_team"] is None
    assert values["subject_date_of_birth"] == "2014-03-09"
    assert values["requested_at"] == "2026-11-20T09:30:00+00:00"
    assert prefill(sample_prefill).prefill_hash == values_hash(values)


def test_output_is_an_incremental_update_that_all_engines_open(prefilled):
    pdf, _ = prefilled
    template = TEMPLATE_PATH.read_bytes()
    assert pdf.startswith(template)
    tail = pdf[len(template) :]
    assert tail.count(b"startxref") == 1 and b"/Prev " in tail
    assert b"/NeedAppearances" not in tail
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) == 3
    doc = pdfium.PdfDocument(pdf)
    assert len(doc) == 3
    doc.close()
    assert len(render_poppler(pdf)) == 3  # asserts pdftoppm exit code 0 and empty stderr


def test_update_xref_trailer_and_ids_are_exact(prefilled, caplog):
    pdf, _ = prefilled
    template = TEMPLATE_PATH.read_bytes()
    old = PdfReader(io.BytesIO(template), strict=True)
    with caplog.at_level(logging.WARNING, logger="pypdf"):
        reader = PdfReader(io.BytesIO(pdf), strict=True)
        # every object resolves in strict mode, at the offset and generation the xref gives
        for gen, entries in reader.xref.items():
            for num in entries:
                assert reader.get_object(IndirectObject(num, gen, reader)) is not None, num
        reader.get_fields()
    assert caplog.records == [], [r.getMessage() for r in caplog.records]
    tail = pdf[len(template):]
    section = tail[tail.rindex(b"\nxref\n") + 1:]
    assert section.startswith(b"xref\n0 1\n0000000000 65535 f\r\n")
    for line in re.findall(rb"\n(\d{10} \d{5} [nf]\r\n)", section):
        assert len(line) == 20  # fixed-width entries
    for offset, gen in re.findall(rb"(\d{10}) (\d{5}) n\r\n", section):
        header = pdf[int(offset):int(offset) + 20]
        assert re.match(rb"\d+ %d obj\n" % int(gen), header), header
    startxref = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", pdf)[1])
    assert pdf[startxref:].startswith(b"xref\n")
    trailer = reader.trailer
    assert trailer["/Prev"] == int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", template)[1])
    assert trailer["/Size"] == 1 + max(
        num for entries in reader.xref.values() for num in entries
    )
    assert trailer["/Size"] > old.trailer["/Size"]  # new appearance streams got new numbers
    root, old_root = trailer.raw_get("/Root"), old.trailer.raw_get("/Root")
    assert (root.idnum, root.generation) == (old_root.idnum, old_root.generation)
    first_id, second_id = trailer["/ID"]
    assert first_id == old.trailer["/ID"][0]  # the permanent identifier is kept
    assert second_id != old.trailer["/ID"][1]  # the changing one is new


def test_same_input_gives_the_same_bytes(sample_prefill):
    assert prefill(sample_prefill).pdf == prefill(sample_prefill).pdf


def test_unknown_choice_value_is_an_error_never_a_silent_off(sample_prefill):
    sample_prefill["subject_type"] = "teenager"
    with pytest.raises(FormDataError) as exc:
        prefill(sample_prefill)
    assert set(exc.value.errors) == {"subject_type"}
    with pytest.raises(FormDataError) as exc:
        fill({"decision": "maybe", "consent": "given"}, record_id="r1")
    assert set(exc.value.errors) == {"decision"}


def test_invalid_prefill_data_lists_every_problem(sample_prefill):
    del sample_prefill["subject_name"]
    sample_prefill["practitioner_email"] = "not an email"
    sample_prefill["subject_date_of_birth"] = "31/02/2014"
    sample_prefill["requested_at"] = "2026-11-20T09:30:00"  # no offset
    sample_prefill["colour"] = "blue"
    sample_prefill["record_id"] = "x" * 65
    with pytest.raises(FormDataError) as exc:
        prefill(sample_prefill)
    assert set(exc.value.errors) == {
        "subject_name",
        "practitioner_email",
        "subject_date_of_birth",
        "requested_at",
        "colour",
        "record_id",
    }
    assert all(isinstance(m, list) and m for m in exc.value.errors.values())
    assert "Zo" not in str(exc.value)  # no personal data in the message


def test_fill_rejects_unknown_fields_and_bad_dates():
    with pytest.raises(FormDataError) as exc:
        fill({"no_such_field": "x", "decided_on": "yesterday"}, record_id="r1")
    assert set(exc.value.errors) == {"no_such_field", "decided_on"}


def test_character_outside_the_font_warns_with_field_and_code_point(sample_prefill):
    sample_prefill["subject_name"] = "Ann 𝔄 Smith-Ωmega"
    result = prefill(sample_prefill)
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.startswith("subject_name:") and "U+1D504" in warning
    assert "Ann" not in warning and "Smith" not in warning
    # the value is stored unchanged, and drawn (with '?') rather than left blank
    assert _fields(result.pdf)["subject_name"]["/V"] == "Ann 𝔄 Smith-Ωmega"
    (page, rect, _), = widget_map(result.pdf)["subject_name"]
    assert has_ink(render_poppler(result.pdf)[page], rect)


def test_buttons_use_the_templates_export_values_and_show_in_both_engines():
    values = {
        "lawful_basis": "public_task",
        "special_category": "yes",
        "check_necessary": True,
        "check_secure": False,
        "decision": "share_part",
    }
    pdf = fill(values, record_id="r-buttons").pdf
    fields = _fields(pdf)
    assert fields["lawful_basis"]["/V"] == "/public_task"
    assert fields["check_necessary"]["/V"] == "/Yes"
    assert fields["check_secure"]["/V"] == "/Off"
    seen = pdfium_fields(pdf)
    assert seen["lawful_basis"] == "public_task" and seen["decision"] == "share_part"
    assert seen["check_necessary"] is True and seen["check_secure"] is False
    widgets = widget_map(pdf)
    for pages in (render_poppler(pdf), render_pdfium(pdf)):
        for name in ("lawful_basis", "special_category", "decision"):
            for page, rect, on in widgets[name]:
                assert has_ink(pages[page], rect, inset=2.5) == (on == values[name]), (name, on)
        for name in ("check_necessary", "check_secure"):
            ((page, rect, _),) = widgets[name]
            assert has_ink(pages[page], rect, inset=2.5) == values[name], name


def test_combo_shows_the_label_and_stores_the_export_value(sample_prefill):
    pdf = prefill(sample_prefill).pdf
    reader = PdfReader(io.BytesIO(pdf))
    field = next(
        ref.get_object()
        for ref in reader.trailer["/Root"]["/AcroForm"]["/Fields"]
        if ref.get_object()["/T"] == "request_direction"
    )
    assert field["/V"] == "inbound_request"
    stream = field["/AP"]["/N"].get_data()
    assert b"/Tx BMC" in stream and b"EMC" in stream


def _appearance(pdf: bytes, name: str) -> bytes:
    reader = PdfReader(io.BytesIO(pdf))
    for ref in reader.trailer["/Root"]["/AcroForm"]["/Fields"]:
        obj = ref.get_object()
        if obj["/T"] == name:
            return obj["/AP"]["/N"].get_data()
    raise KeyError(name)


def test_long_text_shrinks_then_clips_but_stays_visible():
    long_line = "Wolverhampton and Black Country Integrated Care Board Safeguarding " * 3
    words = " ".join(f"word{i}" for i in range(800))[:4000]
    result = fill(
        {"statutory_gateway": long_line[:300], "decision_reasons": words}, record_id="r-long"
    )
    assert [w.split(":")[0] for w in result.warnings] == ["statutory_gateway", "decision_reasons"]
    assert "Wolverhampton" not in " ".join(result.warnings)
    pdf = result.pdf
    single = _appearance(pdf, "statutory_gateway")
    size = float(re.search(rb"/SWSans ([\d.]+) Tf", single)[1])
    assert size == MIN_SIZE  # shrunk to the floor, then clipped
    assert b"re W n" in single
    multi = _appearance(pdf, "decision_reasons")
    size = float(re.search(rb"/SWSans ([\d.]+) Tf", multi)[1])
    assert size == MIN_SIZE
    widgets = widget_map(pdf)
    pages = render_pdfium(pdf)
    for name in ("statutory_gateway", "decision_reasons"):
        ((page, rect, _),) = widgets[name]
        assert has_ink(pages[page], rect)


def test_multiline_wraps_within_the_box_and_keeps_paragraphs():
    text = "First paragraph.\n\nThird line after a blank one, " + "long enough to wrap " * 8
    result = fill({"risk_if_shared": text}, record_id="r-wrap")
    assert result.warnings == ()
    pdf = result.pdf
    stream = _appearance(pdf, "risk_if_shared").decode("latin-1")
    assert stream.count("T*") >= 3  # blank line plus at least one wrapped line
    assert "/SWSans 9 Tf" in stream  # short enough: no shrinking


def test_values_are_written_as_pdf_text_strings_for_any_script():
    pdf = fill({"advice_from": "Ю (Ünal) \\ back"}, record_id="r-esc").pdf
    assert _fields(pdf)["advice_from"]["/V"] == "Ю (Ünal) \\ back"
    pdf = fill({"advice_from": "Plain (ascii) \\ back"}, record_id="r-esc").pdf
    assert _fields(pdf)["advice_from"]["/V"] == "Plain (ascii) \\ back"


def test_flags_tooltips_and_rects_survive_the_update(prefilled):
    pdf, data = prefilled
    before = PdfReader(io.BytesIO(TEMPLATE_PATH.read_bytes())).get_fields()
    after = PdfReader(io.BytesIO(pdf)).get_fields()
    for name in data:
        for key in ("/Ff", "/TU", "/FT", "/MaxLen", "/DA"):
            assert after[name].get(key) == before[name].get(key), (name, key)
    assert widget_map(pdf) == widget_map(TEMPLATE_PATH.read_bytes())


def test_a_word_longer_than_the_box_is_broken_not_lost():
    word = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch" * 4
    pdf = fill({"advice_summary": word}, record_id="r-word").pdf
    stream = _appearance(pdf, "advice_summary").decode("latin-1")
    assert stream.count("T*") >= 1 and "/SWSans 9 Tf" in stream
    drawn = "".join(re.findall(r"<([0-9A-F]+)> Tj", stream))
    assert len(drawn) == 4 * len(word)  # every character drawn, over several lines
    ((page, rect, _),) = widget_map(pdf)["advice_summary"]
    assert has_ink(render_poppler(pdf)[page], rect)


@pytest.mark.parametrize("data", [None, [], "record", 42])
def test_prefill_data_that_is_not_an_object_is_a_form_data_error(data):
    with pytest.raises(FormDataError) as exc:
        prefill(data)
    assert exc.value.errors == {"_schema": ["Invalid input type."]}


@pytest.mark.parametrize("value", ["false", "no", 0, 1, "Yes"])
def test_a_checkbox_takes_only_a_boolean(value):
    with pytest.raises(FormDataError) as exc:
        fill({"check_secure": value}, record_id="r-box")
    assert set(exc.value.errors) == {"check_secure"}
