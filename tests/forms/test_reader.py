"""Read-back of uploads: the bad-input corpus gets its specific refusal in bounded time, and
values written the ways viewers write them come back normalised."""

from __future__ import annotations

import time

import badpdfs  # tests/forms is on sys.path (rootdir conftest layout, no packages)
import pytest
from pypdf.generic import ArrayObject, NameObject, TextStringObject

from sharewise.forms.prefill import normalise_prefill, prefill
from sharewise.forms.reader import ReadBack, UploadRejected, precheck, read_pdf
from sharewise.forms.sandbox import read_upload
from sharewise.forms.validate import Problem

TIME_BOUND = 15.0  # seconds: a bound, not a speed target (CI is 2 shared cores)


@pytest.fixture
def record(sample_prefill):
    expected = normalise_prefill(sample_prefill)
    filled = prefill(sample_prefill)
    other = prefill({**sample_prefill, "record_id": "rec_someone_else"})
    return {"pdf": filled.pdf, "hash": filled.prefill_hash, "expected": expected,
            "record_id": expected["record_id"], "other": other.pdf}


def read(record, data, *, isolate=True, **kw):
    return read_upload(data, record_id=record["record_id"], expected=record["expected"],
                       isolate=isolate, timeout=3.0, **kw)


CORPUS = [
    ("zero_bytes", lambda r: badpdfs.zero_bytes(), "empty"),
    ("png_renamed", lambda r: badpdfs.png_renamed(), "not_pdf"),
    ("zip_stored_form", lambda r: badpdfs.zip_stored(r["pdf"]), "not_pdf"),
    ("utf8_bom_then_form", lambda r: badpdfs.prefixed(r["pdf"], b"\xef\xbb\xbf"), "not_pdf"),
    ("whitespace_then_form", lambda r: badpdfs.prefixed(r["pdf"], b"\r\n "), "not_pdf"),
    ("truncated", lambda r: badpdfs.truncated(r["pdf"]), "malformed"),
    ("garbage", lambda r: badpdfs.garbage_after_header(), "malformed"),
    ("encrypted_empty_password", lambda r: badpdfs.encrypted(r["pdf"]), "encrypted"),
    ("javascript_names_and_openaction", lambda r: badpdfs.javascript(r["pdf"]),
     "active_content"),
    ("javascript_openaction", lambda r: badpdfs.open_action_only(r["pdf"]), "active_content"),
    ("field_aa_launch", lambda r: badpdfs.field_action(r["pdf"], "/Launch"), "active_content"),
    ("field_aa_javascript", lambda r: badpdfs.field_action(r["pdf"], "/JavaScript"),
     "active_content"),
    ("field_a_submitform",
     lambda r: badpdfs.field_action(r["pdf"], "/SubmitForm", additional=False),
     "active_content"),
    ("field_a_resetform",
     lambda r: badpdfs.field_action(r["pdf"], "/ResetForm", additional=False),
     "active_content"),
    ("field_aa_importdata", lambda r: badpdfs.field_action(r["pdf"], "/ImportData"),
     "active_content"),
    ("link_next_chain_javascript", lambda r: badpdfs.link_with_next_chain(r["pdf"]),
     "active_content"),
    ("next_chain_javascript_other_generation",
     lambda r: badpdfs.next_chain_other_generation(r["pdf"]), "active_content"),
    ("javascript_link_other_generation",
     lambda r: badpdfs.annotation_other_generation(r["pdf"]), "active_content"),
    ("embedded_file", lambda r: badpdfs.embedded_file(r["pdf"]), "active_content"),
    ("xfa", lambda r: badpdfs.xfa(r["pdf"]), "xfa"),
    ("flate_bomb_150MB", lambda r: badpdfs.flate_bomb(), "too_complex"),
    ("circular_xref", lambda r: badpdfs.circular_xref(), "malformed"),
    ("self_referencing_objects", lambda r: badpdfs.self_referencing(), "malformed"),
    ("field_tree_loop", lambda r: badpdfs.field_tree_loop(r["pdf"]), "malformed"),
    ("plain_pdf_no_form", lambda r: badpdfs.plain_pdf(), "wrong_form"),
    ("blank_template", lambda r: open("forms/decision_record.pdf", "rb").read(), "wrong_form"),
    ("other_schema_version",
     lambda r: badpdfs.set_info(r["pdf"], SharewiseSchema="sharewise.decision-record/2"),
     "wrong_form"),
    ("field_removed", lambda r: badpdfs.without_field(r["pdf"], "decision"), "wrong_form"),
    ("other_record", lambda r: r["other"], "wrong_record"),
    ("other_record_metadata_only",
     lambda r: badpdfs.set_info(r["pdf"], SharewiseRecord="rec_someone_else"), "wrong_record"),
    ("other_record_field_only",
     lambda r: badpdfs.set_text(r["pdf"], "record_id", "rec_someone_else"), "wrong_record"),
    ("tampered_subject_name",
     lambda r: badpdfs.set_text(r["pdf"], "subject_name", "Someone Else"), "tampered"),
    ("tampered_rewritten_file",
     lambda r: badpdfs.set_text(r["pdf"], "case_reference", "CASE/1", incremental=False),
     "tampered"),
    ("tampered_combo",
     lambda r: badpdfs.set_text(r["pdf"], "urgency", "routine"), "tampered"),
    ("tampered_cleared_optional_dob",
     lambda r: badpdfs.set_text(r["pdf"], "subject_date_of_birth", ""), "tampered"),
    ("too_large", lambda r: badpdfs.oversized(12 * 1024 * 1024), "too_large"),
]


@pytest.mark.parametrize("isolate", [True, False], ids=["sandboxed", "in_process"])
@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_gets_its_specific_refusal(record, case, isolate):
    _, build, code = case
    data = build(record)
    started = time.perf_counter()
    with pytest.raises(UploadRejected) as caught:
        read(record, data, isolate=isolate)
    elapsed = time.perf_counter() - started
    assert caught.value.code == code
    assert elapsed < TIME_BOUND
    message = caught.value.message
    assert message and "Traceback" not in message and "pypdf" not in message
    # no personal data from the form in the message
    for value in record["expected"].values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in message


def test_the_right_form_is_accepted_after_all_that(record):
    result = read(record, record["pdf"])
    assert isinstance(result, ReadBack)
    assert result.record_id == record["record_id"]
    assert result.prefill_hash == record["hash"]
    for name, value in record["expected"].items():
        assert result.values[name] == value, name
    assert result.problems == ()


def test_harmless_link_is_not_active_content(record):
    result = read(record, badpdfs.harmless_link(record["pdf"]))
    assert result.values["subject_name"] == record["expected"]["subject_name"]


def test_every_spec_field_is_present_and_only_those(record):
    from sharewise.forms.spec import load_spec

    result = read(record, record["pdf"], isolate=False)
    assert list(result.values) == list(load_spec().names)


@pytest.mark.parametrize("typed,iso", [
    ("05/03/2026", "2026-03-05"),
    ("5/3/2026", "2026-03-05"),
    ("2026-03-05", "2026-03-05"),
    (" 05.03.2026 ", "2026-03-05"),
])
def test_typed_dates_normalise_to_iso(record, typed, iso):
    pdf = badpdfs.set_text(record["pdf"], "decided_on", typed)
    result = read(record, pdf)
    assert result.values["decided_on"] == iso
    assert result.problems == ()


@pytest.mark.parametrize("typed", ["31/02/2026", "next tuesday", "2026-13-01"])
def test_a_bad_date_is_a_problem_not_a_refusal(record, typed):
    pdf = badpdfs.set_text(record["pdf"], "shared_on", typed)
    result = read(record, pdf)
    assert result.values["shared_on"] is None
    assert result.problems == (
        Problem("shared_on", 6, "Rule 6: \u201cDate shared\u201d must be a real date, typed as "
                "DD/MM/YYYY."),
    )
    assert typed not in result.problems[0].message


def test_unknown_choice_value_is_a_problem(record):
    pdf = badpdfs.set_entries(record["pdf"], "decision", {"/V": NameObject("/maybe")})
    result = read(record, pdf)
    assert result.values["decision"] is None
    assert [p.field for p in result.problems] == ["decision"]
    assert result.problems[0].message.startswith("Rule 7: ")


def test_utf16_text_with_bom_is_decoded(record):
    text = "Ελένη Łukasz — Дарья"
    pdf = badpdfs.with_raw_value(
        record["pdf"], "decision_reasons",
        b"<" + ("\ufeff" + text).encode("utf-16-be").hex().encode() + b">",
    )
    assert read(record, pdf).values["decision_reasons"] == text


def test_multiline_carriage_returns_become_newlines(record):
    pdf = badpdfs.set_text(record["pdf"], "decision_reasons", "First line\rSecond line")
    assert read(record, pdf).values["decision_reasons"] == "First line\nSecond line"


def test_radio_read_from_parent_v(record):
    pdf = badpdfs.set_entries(record["pdf"], "decision", {"/V": NameObject("/share_part")})
    assert read(record, pdf).values["decision"] == "share_part"


def test_radio_read_from_kid_appearance_state_when_parent_has_no_v(record):
    def kid_state(kid):
        on = [k for k in kid["/AP"]["/N"] if k != "/Off"][0]
        return {"/AS": NameObject(on if on == "/not_share" else "/Off")}

    pdf = badpdfs.set_entries(record["pdf"], "decision", {"/V": None}, kids=kid_state)
    assert read(record, pdf).values["decision"] == "not_share"


def test_radio_with_opt_index_states(record):
    opts = ArrayObject([TextStringObject(v) for v in ("share", "share_part", "not_share")])
    pdf = badpdfs.set_entries(record["pdf"], "decision",
                              {"/V": NameObject("/2"), "/Opt": opts})
    assert read(record, pdf).values["decision"] == "not_share"


def test_checkbox_from_v_and_from_as(record):
    on_v = badpdfs.set_entries(record["pdf"], "check_secure", {"/V": NameObject("/Yes")})
    assert read(record, on_v).values["check_secure"] is True
    on_as = badpdfs.set_entries(record["pdf"], "check_secure",
                                {"/V": None, "/AS": NameObject("/Yes")})
    assert read(record, on_as).values["check_secure"] is True
    off = badpdfs.set_entries(record["pdf"], "check_secure",
                              {"/V": NameObject("/Off"), "/AS": NameObject("/Off")})
    assert read(record, off).values["check_secure"] is False


def test_combo_label_is_mapped_back_to_its_export_value(record):
    # a viewer that stores the shown label of a drop-down still matches the prefilled value
    pdf = badpdfs.set_text(record["pdf"], "urgency", "Urgent")
    assert read(record, pdf).values["urgency"] == "urgent"


def test_values_are_not_trusted_beyond_the_spec(record):
    # an extra field someone added is ignored, never returned
    import io

    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DictionaryObject

    writer = PdfWriter(PdfReader(io.BytesIO(record["pdf"])), incremental=True)
    extra = writer._add_object(DictionaryObject({
        NameObject("/T"): TextStringObject("secret_extra"),
        NameObject("/FT"): NameObject("/Tx"),
        NameObject("/V"): TextStringObject("x"),
    }))
    writer._root_object["/AcroForm"]["/Fields"].append(extra)
    out = io.BytesIO()
    writer.write(out)
    assert "secret_extra" not in read(record, out.getvalue()).values


def test_expected_value_the_field_cannot_take_is_a_caller_error(record):
    with pytest.raises(ValueError):
        read_upload(record["pdf"], record_id=record["record_id"],
                    expected={**record["expected"], "urgency": "whenever"}, isolate=False)


def test_rejection_is_picklable_and_readable():
    import pickle

    error = pickle.loads(pickle.dumps(UploadRejected("xfa")))
    assert error.code == "xfa" and "XFA" in error.message


# ---------------------------------------------------------------- the header rule


@pytest.mark.parametrize("build", [
    lambda pdf: badpdfs.zip_stored(pdf),
    lambda pdf: badpdfs.prefixed(pdf, b"\xef\xbb\xbf"),
    lambda pdf: badpdfs.prefixed(pdf, b"\n"),
    lambda pdf: badpdfs.prefixed(pdf, b"junk %PDF-1.7\n"),
], ids=["zip_stored", "bom", "newline", "junk"])
def test_an_upload_not_starting_with_the_header_is_refused_before_any_parsing(
    record, build, monkeypatch
):
    """The form inside a stored ZIP (or behind any prefix) would parse as the form: refused as
    ``not_pdf`` by the pre-parse check and by the worker's own, pypdf never called."""
    data = build(record["pdf"])
    assert record["pdf"] in data  # the whole form is in there
    import sharewise.forms.reader as reader_module

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed")

    monkeypatch.setattr(reader_module, "PdfReader", no_parse)
    for check in (lambda: precheck(data), lambda: read_pdf(data, record["record_id"], {}),
                  lambda: read(record, data, isolate=False)):
        with pytest.raises(UploadRejected) as caught:
            check()
        assert caught.value.code == "not_pdf"
        assert "not a PDF" in caught.value.message


def test_the_form_itself_starts_with_the_header(record):
    assert record["pdf"].startswith(b"%PDF-")
    precheck(record["pdf"])  # no refusal


# ---------------------------------------------------------------- other shapes of the form


def test_a_quoted_endobj_does_not_hide_a_fields_action(record):
    innocent = badpdfs.with_raw_value(record["pdf"], "decision_reasons", b"(see endobj here)")
    hostile = badpdfs.with_raw_value(
        record["pdf"], "decision_reasons",
        b"(see endobj here) /AA << /K << /S /JavaScript /JS (app.alert(1)) >> >>",
    )
    assert read(record, innocent, isolate=False).values["decision_reasons"] == "see endobj here"
    with pytest.raises(UploadRejected) as caught:
        read(record, hostile, isolate=False)
    assert caught.value.code == "active_content"


def test_object_stream_uploads_are_read_and_checked(record):
    innocent = badpdfs.with_object_streams(
        badpdfs.set_text(record["pdf"], "decision_reasons", "Plain reasons")
    )
    assert b"/ObjStm" in innocent
    result = read(record, innocent, isolate=False)
    assert result.values["decision_reasons"] == "Plain reasons"
    assert result.values["subject_name"] == record["expected"]["subject_name"]
    hostile = badpdfs.with_object_streams(badpdfs.field_action(record["pdf"], "/JavaScript"))
    with pytest.raises(UploadRejected) as caught:
        read(record, hostile, isolate=False)
    assert caught.value.code == "active_content"
    tampered = badpdfs.with_object_streams(
        badpdfs.set_text(record["pdf"], "subject_name", "Someone Else")
    )
    with pytest.raises(UploadRejected) as caught:
        read(record, tampered, isolate=False)
    assert caught.value.code == "tampered"
