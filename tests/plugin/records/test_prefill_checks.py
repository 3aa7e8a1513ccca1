"""Intake's prefill check (no PDF) agrees with forms.prefill; the PDF is made on first download."""

from __future__ import annotations

import io
import random
import unicodedata
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from sharewise.forms.fonts import field_font
from sharewise.forms.prefill import FormDataError, normalise_prefill, prefill
from sharewise.plugin.demo import sample_event as demo_event
from sharewise.plugin.records import prefill as checks
from sharewise.plugin.records import services
from sharewise.plugin.records.models import Record
from sharewise.plugin.records.schemas import (
    load_event,
    prefill_leaves,
    prefill_values,
    trusted_prefill_fields,
)
from sharewise.plugin.storage import StorageError, storage


def _values(**overrides):
    """The prefill values intake derives from the demo event, with some replaced."""
    _type, ts, data = load_event(demo_event(request_id="REQ-P"))
    return {**prefill_values(data, "SR-ABCDEFGHIJKLMNOP", ts), **overrides}


def _same_as_prefill(values):
    checked = checks.check_prefill(values)
    filled = prefill(values)
    assert checked.values == normalise_prefill(values)
    assert checked.prefill_hash == filled.prefill_hash
    assert checked.warnings == filled.warnings
    # intake's way: the fields the event schema loaded are not loaded again; same answer,
    # key order included (warnings are laid out in it)
    fast = checks.check_prefill(values, trusted=trusted_prefill_fields())
    assert list(fast.values.items()) == list(checked.values.items())
    assert (fast.prefill_hash, fast.warnings) == (checked.prefill_hash, checked.warnings)
    return checked


def test_sample_values_agree_with_prefill():
    checked = _same_as_prefill(_values())
    assert checked.warnings == ()


def test_warnings_agree_with_prefill_on_hard_cases():
    assert checks.check_prefill(_values(subject_name="i" * 120)).warnings == ()
    assert len(checks.check_prefill(_values(subject_name="i" * 150)).warnings) == 1
    cases = [
        {"subject_name": "i" * 120},  # narrow letters: fits
        {"subject_name": "i" * 150},  # clipped even so
        {"subject_name": "W" * 60},  # wide letters: clipped
        {"subject_name": "Zoe\u0308 Nørgaard"},  # not NFC
        {"subject_name": "Strategy 会议"},  # not in the font
        {"subject_name": "tab\there"},  # control character
        {"purpose": "Meeting 会议 notes"},
        {"purpose": "\n".join(["short line"] * 4)},  # a few lines: fits
        {"purpose": "\n".join(["short line"] * 40)},  # more lines than the box has
        {"purpose": "word " * 300},  # long paragraph: wrapped
        {"purpose": ("word " * 12 + "\n") * 30},  # many wrapped paragraphs: clipped
        {"information_requested": "Notes\r\nmore\rand more"},
        {"practitioner_team": "Ω" * 150},
        {"subject_date_of_birth": "1999-12-31", "requested_at": "2026-03-29T00:59:00+00:00"},
        {"urgency": "emergency", "subject_type": "adult"},
    ]
    for overrides in cases:
        _same_as_prefill(_values(**overrides))


def test_warnings_agree_with_prefill_on_random_text():
    rng = random.Random(20261124)
    font = field_font()
    alphabet = ("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'-éøÅŷ—"
                "ΩЖ€ ")
    odd = "会\t\r\n\u200b\U0001F600e\u0301"
    for _ in range(300):
        def text(lo, hi, extra=""):
            chars = alphabet + extra
            return "".join(rng.choice(chars) for _ in range(rng.randint(lo, hi))).strip() or "x"
        extra = odd if rng.random() < 0.3 else ""
        values = _values(
            subject_name=text(1, 200, extra if rng.random() < 0.5 else ""),
            recipient_organisation=text(1, 200),
            recipient_name=text(1, 120),
            recipient_role=text(1, 80),
            purpose="\n".join(text(1, 300, extra) for _ in range(rng.randint(1, 9))),
            information_requested=text(1, 4000 if rng.random() < 0.2 else 400, extra),
        )
        try:
            normalise_prefill(values)
        except FormDataError:
            continue  # over a max length: refused by both (tested below)
        _same_as_prefill(values)
    assert font.has("Ω") and not font.has("会")


def test_refused_values_are_refused_with_prefills_messages():
    values = _values()
    values["urgency"] = "whenever"
    values["subject_name"] = "x" * 201
    with pytest.raises(FormDataError) as ours:
        checks.check_prefill(values)
    with pytest.raises(FormDataError) as theirs:
        normalise_prefill(values)
    assert ours.value.errors == theirs.value.errors


def test_refusals_are_the_same_when_fields_are_trusted():
    """Only the untrusted fields are loaded: their errors are the full load's errors."""
    values = _values(urgency="whenever", requested_at="yesterday", host_request_id="")
    with pytest.raises(FormDataError) as full:
        normalise_prefill(values)
    with pytest.raises(FormDataError) as fast:
        checks.check_prefill(values, trusted=trusted_prefill_fields())
    assert fast.value.errors == full.value.errors
    assert set(full.value.errors) == {"urgency", "requested_at", "host_request_id"}


@pytest.mark.parametrize("change", [
    {"subject_name": None},  # required but missing: the claim is false
    {"subject_name": 12},  # not text: not what a loaded text field gives
    {"subject_date_of_birth": datetime(1999, 1, 2, tzinfo=UTC).date()},  # a date object
])
def test_a_false_trust_claim_does_not_let_values_through(change):
    """Values that are not what the form's fields load (no text, or a required one
    missing) are loaded in full after all. Text is taken as loaded: the claim is the
    caller's to keep, and intake's is tested below."""
    values = {k: v for k, v in {**_values(), **change}.items() if v is not None}
    trusted = trusted_prefill_fields()
    try:
        expected = normalise_prefill(values)
    except FormDataError as exc:
        with pytest.raises(FormDataError) as fast:
            normalise_prefill(values, loaded=trusted)
        assert fast.value.errors == exc.errors
    else:
        assert normalise_prefill(values, loaded=trusted) == expected


def test_unknown_or_not_prefilled_names_cannot_be_trusted():
    values = _values()
    assert normalise_prefill(values, loaded={"no_such_field"}) == normalise_prefill(values)
    values["decision"] = "share"  # a practitioner's field, never prefilled
    with pytest.raises(FormDataError) as full:
        normalise_prefill(values)
    with pytest.raises(FormDataError) as fast:
        normalise_prefill(values, loaded={"decision", "subject_name"})
    assert fast.value.errors == full.value.errors


def test_prefill_values_take_each_leaf_from_where_the_form_field_loaded_it():
    """The walk of the event schema finds every prefill field the event carries, at the
    path the host sends it, and every one is trusted (required where the form requires)."""
    paths = {leaf.name: leaf.path for leaf in prefill_leaves()}
    assert paths == {
        "case_reference": ("case", "reference"),
        "subject_name": ("subject", "name"),
        "subject_date_of_birth": ("subject", "date_of_birth"),
        "subject_type": ("subject", "type"),
        "request_direction": ("direction",),
        "requester_organisation": ("requester", "organisation"),
        "practitioner_name": ("practitioner", "name"),
        "practitioner_email": ("practitioner", "email"),
        "practitioner_team": ("practitioner", "team"),
        "manager_name": ("practitioner", "manager", "name"),
        "manager_email": ("practitioner", "manager", "email"),
        "recipient_organisation": ("recipient", "organisation"),
        "recipient_name": ("recipient", "name"),
        "recipient_role": ("recipient", "role"),
        "purpose": ("purpose",),
        "information_requested": ("information_requested",),
    }
    assert trusted_prefill_fields() == set(paths)
    event = demo_event(request_id="REQ-PATHS")
    event["data"]["subject"]["date_of_birth"] = "2011-02-03"
    _type, ts, data = load_event(event)
    values = prefill_values(data, "SR-ABCDEFGHIJKLMNOP", ts)
    sent = event["data"]
    for name, path in paths.items():
        expected = sent
        for key in path:
            expected = expected.get(key) if expected is not None else None
        assert values.get(name) == expected, name
    assert values["decided_by"] == sent["practitioner"]["name"]
    assert values["host_request_id"] == "REQ-PATHS"
    del event["data"]["requester"], event["data"]["subject"]["date_of_birth"]
    _type, ts, data = load_event(event)
    values = prefill_values(data, "SR-ABCDEFGHIJKLMNOP", ts)
    assert "requester_organisation" not in values and "subject_date_of_birth" not in values
    _same_as_prefill(values)


def test_prefill_values_are_in_the_forms_order_and_take_the_fast_path():
    """Stored in the form's order, as before the walk; and intake's values are all text, so
    the trusted fields really are taken as loaded (the full load is only a fallback)."""
    from sharewise.forms.prefill import _taken_as_loaded
    from sharewise.forms.spec import load_spec

    values = _values()
    order = [f.name for f in load_spec().prefilled_fields]
    assert list(values) == [name for name in order if name in values]
    assert _taken_as_loaded(values, trusted_prefill_fields()) is not None


def test_built_pdf_is_the_pdf_prefill_makes():
    values = _values()
    checked = checks.check_prefill(values)
    assert checks.build_pdf(values, checked.prefill_hash) == prefill(values).pdf


# ------------------------------------------------------------------ through the service


def _record(db_session, record_id):
    db_session.rollback()
    return db_session.scalar(select(Record).where(Record.public_id == record_id))


def test_first_download_after_intake_is_the_prefilled_pdf(app, client, tenant, signed_post,
                                                          sample_event, db_session):
    event = sample_event(request_id="REQ-LAZY")
    body = signed_post(tenant, event).get_json()
    record = _record(db_session, body["record_id"])
    store = storage(app)
    assert not store.exists(record.prefill_pdf_key)

    path = body["form_pdf_url"][len("http://sharewise.test"):]
    first = client.get(path)
    assert first.status_code == 200 and first.mimetype == "application/pdf"
    # what intake used to store
    assert first.data == prefill(record.prefill, record.schema_version).pdf
    assert store.get(record.prefill_pdf_key) == first.data  # kept for later downloads
    reader = PdfReader(io.BytesIO(first.data))
    fields = reader.get_fields()
    assert fields["subject_name"].value == "Zoë Ångström-Nørgaard"
    assert fields["case_reference"].value == event["data"]["case"]["reference"]
    assert reader.metadata["/SharewisePrefillHash"] == record.prefill_hash
    assert client.get(path).data == first.data  # the stored copy, byte for byte


def test_download_is_served_when_the_store_cannot_keep_it(app, tenant, signed_post,
                                                          sample_event, db_session,
                                                          monkeypatch):
    body = signed_post(tenant, sample_event()).get_json()
    record = _record(db_session, body["record_id"])
    store = storage(app)

    def broken_put(key, data):
        raise StorageError("disk full")

    monkeypatch.setattr(store, "put", broken_put)
    with app.app_context():
        pdf = services.prefilled_pdf(record)
    assert pdf.startswith(b"%PDF-") and not store.exists(record.prefill_pdf_key)
    assert pdf == prefill(record.prefill, record.schema_version).pdf


def test_warnings_in_the_201_are_prefills(tenant, signed_post, sample_event, db_session):
    event = sample_event()
    event["data"]["subject"]["name"] = "W" * 120 + " 会"
    event["data"]["purpose"] = "Strategy 会议\n" * 20
    resp = signed_post(tenant, event)
    assert resp.status_code == 201
    record = _record(db_session, resp.get_json()["record_id"])
    made = prefill(record.prefill, record.schema_version)
    assert tuple(resp.get_json()["warnings"]) == made.warnings
    warnings = resp.get_json()["warnings"]
    assert len(warnings) == 4  # subject_name, purpose: a character and clipped text each
    assert all("Strategy" not in w and "WWW" not in w for w in warnings)  # never the value


def test_requested_at_in_any_zone_hashes_like_prefill():
    values = _values()
    values["requested_at"] = datetime(2026, 3, 29, 0, 59, tzinfo=UTC).isoformat()
    _same_as_prefill(values)
    assert unicodedata.is_normalized("NFC", values["subject_name"])


def test_download_survives_values_a_later_schema_refuses(app, tenant, signed_post,
                                                         sample_event, db_session, monkeypatch):
    body = signed_post(tenant, sample_event()).get_json()
    record = _record(db_session, body["record_id"])

    def stricter(values, **_):
        raise FormDataError({"subject_name": ["Now too long."]})

    monkeypatch.setattr(checks, "normalise", stricter)
    with app.app_context():
        pdf = services.prefilled_pdf(record)
    fields = PdfReader(io.BytesIO(pdf)).get_fields()
    assert fields["subject_name"].value == "Zoë Ångström-Nørgaard"
