"""The online form through the HTTP surface: generated from the v2 spec, drafts as numbered
versions, a submission that completes the record exactly as a PDF upload does, and switching
between the online form and the PDF both ways without losing a value."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from pypdf import PdfReader
from sqlalchemy import select

from sharewise.forms.reader import expected_display, read_pdf
from sharewise.forms.spec import load_spec
from sharewise.forms.values import values_hash
from sharewise.forms.webform import control_value
from sharewise.plugin.db import engine_for, session_scope
from sharewise.plugin.outbox.models import Delivery
from tests.forms.viewers import fill_with_pdfium
from tests.plugin.uploads.journey import (
    PARTIAL_KEYS,
    as_typed,
    complete_answers,
    create_record,
    partial_answers,
    path_of,
    record_row,
    versions,
)

SPEC = load_spec(2)
EDITABLE = [f for f in SPEC.fields if not f.read_only]


def posted(answers: dict[str, Any], action: str = "submit",
           prefill: dict[str, Any] | None = None) -> dict[str, str]:
    """What a browser sends for ``answers`` (normalised values) on top of the editable
    prefilled values (the form shows them): ticked boxes only, dates as the controls hold
    them."""
    data = {"action": action}
    start = {f.name: (prefill or {}).get(f.name) for f in EDITABLE}
    for name, value in {**start, **answers}.items():
        text = control_value(SPEC[name], value)
        if text:
            data[name] = text
    return data


class Controls(HTMLParser):
    """Every form control of a page: its id, name, type, value, ticked state; every label."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, Any]] = []
        self.labels: set[str] = set()
        self.ids: set[str] = set()
        self._textarea: dict[str, Any] | None = None
        self._select: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        elif tag == "input" and a.get("name"):
            self.controls.append({**a, "tag": tag, "checked": "checked" in a})
        elif tag == "textarea":
            self._textarea = {**a, "tag": tag, "value": ""}
            self.controls.append(self._textarea)
        elif tag == "select":
            self._select = {**a, "tag": tag, "value": ""}
            self.controls.append(self._select)
        elif tag == "option" and self._select is not None and "selected" in a:
            self._select["value"] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea["value"] += data

    def values(self) -> dict[str, str]:
        """What the form would send (radios and check boxes: the ticked ones)."""
        out: dict[str, str] = {}
        for c in self.controls:
            if c.get("type") in ("radio", "checkbox"):
                if c["checked"]:
                    out[c["name"]] = c["value"]
            elif c.get("type") not in ("file", "submit") and c.get("name"):
                out[c["name"]] = c.get("value") or ""
        return out


def controls_of(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


def prefill_of(app: Any, made: dict[str, Any]) -> dict[str, Any]:
    return dict(record_row(app, made["record_id"]).prefill)


def save(client: Any, made: dict[str, Any], answers: dict[str, Any],
         action: str = "submit") -> Any:
    """The online form posted with ``answers`` over the record's editable prefilled values."""
    data = posted(answers, action, prefill_of(client.application, made))
    return client.post(online_path(made), data=data)


def online_path(made: dict[str, Any]) -> str:
    return path_of(made["form_url"]) + "/online"


def test_the_form_is_the_spec_with_a_label_for_every_control(client, signed_post,
                                                                sample_event):
    made = create_record(signed_post, sample_event)
    page = client.get(path_of(made["form_url"]))
    assert 'href="' + made["form_url"] + '/online"' in page.get_data(as_text=True)

    resp = client.get(online_path(made))
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    found = controls_of(html)
    # (the buttons are <button>s, which Controls does not collect; the form has no hidden input)
    names = {c.get("name") for c in found.controls}
    assert names == {f.name for f in EDITABLE}  # every field the practitioner fills, no other
    for c in found.controls:  # each one, an id and a label for it
        assert c.get("id") in found.labels, f"{c['tag']} {c.get('name')} has no label"
    for section in SPEC.sections:
        assert section.title in html
    # the case details are shown, not offered for change
    assert "CASE-2026-0042" in html
    assert "<script" not in html
    # prefilled editable fields start with the host's values
    record = record_row(client.application, made["record_id"])
    assert found.values()["purpose"] == record.prefill["purpose"]


def test_a_draft_is_a_numbered_version_that_never_completes(app, client, signed_post,
                                                            sample_event):
    made = create_record(signed_post, sample_event)
    # every item answered, but saved as a draft from section 3: kept, checked, not complete
    answers = complete_answers()  # once: its times are "a minute ago"
    resp = save(client, made, answers, "draft-3")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Draft saved as version 1" in html and 'href="#section-3"' in html
    record = record_row(app, made["record_id"])
    assert record.status == "incomplete"
    assert record.missing == []
    [v1] = versions(app, made["record_id"])
    assert (v1.version, v1.source, v1.outcome, v1.storage_key) == (1, "online", "draft", None)
    for name, value in answers.items():
        assert v1.values[name] == value
    with session_scope(app) as session:
        assert not session.scalars(select(Delivery)).all()  # nothing goes to the host

    # a partial draft: the problems are listed by rule and linked to their fields
    resp = save(client, made, partial_answers(), "draft-7")
    html = resp.get_data(as_text=True)
    assert "Draft saved as version 2" in html
    record = record_row(app, made["record_id"])
    assert {m["rule"] for m in record.missing} == {1, 2, 3, 4, 6}
    found = controls_of(html)
    links = re.findall(r'<a href="#(f-[a-z_0-9]+)">', html)
    assert {f"f-{m['field']}" for m in record.missing} == set(links)
    assert set(links) <= found.ids  # every link in the summary lands on its field
    assert [v.version for v in versions(app, made["record_id"])] == [1, 2]
    # the page says where the draft stands
    page = client.get(path_of(made["form_url"])).get_data(as_text=True)
    assert "Your draft in the online form" in page


def test_a_submission_completes_the_record_as_an_upload_does(app, client, signed_post,
                                                             sample_event):
    made = create_record(signed_post, sample_event)
    rid = made["record_id"]
    resp = save(client, made, partial_answers())
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Form saved as version 1, but" in html
    assert versions(app, rid)[-1].outcome == "incomplete"

    resp = save(client, made, complete_answers())
    assert resp.status_code == 200
    assert "Complete, thank you" in resp.get_data(as_text=True)
    record = record_row(app, rid)
    assert record.status == "complete"
    final = client.get(path_of(made["form_pdf_url"]))
    assert hashlib.sha256(final.data).hexdigest() == record.final_sha256
    reader = PdfReader(io.BytesIO(final.data))
    assert "/AcroForm" not in reader.trailer["/Root"]
    latest = versions(app, rid)[-1]
    assert (latest.version, latest.source, latest.outcome) == (2, "online", "accepted")
    assert reader.metadata["/SharewiseValuesSHA256"] == values_hash({**record.prefill,
                                                                      **latest.values})
    with session_scope(app) as session:
        [delivery] = session.scalars(select(Delivery).where(Delivery.record_id == record.id))
        data = delivery.payload["data"]
    assert data["pdf"]["sha256"] == record.final_sha256
    assert data["fields"]["decision"] == complete_answers()["decision"]

    # the record is locked: the form is no longer offered and a late save changes nothing
    locked = client.get(online_path(made)).get_data(as_text=True)
    assert 'class="online"' not in locked and "Download the final record (PDF)" in locked
    late = client.post(online_path(made), data=posted(partial_answers(), "draft-1"))
    assert late.status_code == 409
    # refused, and kept as it says: an online save has no file, so its values are the copy
    assert "We kept a copy of what you sent" in late.get_data(as_text=True)
    refused = versions(app, rid)[-1]
    assert (refused.outcome, refused.rejection_code) == ("rejected", "record_complete")
    assert refused.values["decision"] == partial_answers()["decision"]
    assert record_row(app, rid).final_sha256 == record.final_sha256


def test_the_same_save_again_is_not_a_new_version(app, client, signed_post, sample_event):
    """A refreshed page posts its form again, and a button can be clicked twice: the same save
    repeated answers as the first did and adds no version, no post-back."""
    made = create_record(signed_post, sample_event)
    rid = made["record_id"]
    draft = posted(partial_answers(), "draft-2", prefill_of(app, made))
    first = client.post(online_path(made), data=draft).get_data(as_text=True)
    again = client.post(online_path(made), data=draft).get_data(as_text=True)
    assert "Draft saved as version 1, but" in first and "Draft saved as version 1, but" in again
    assert [v.version for v in versions(app, rid)] == [1]
    # the same values from the other button is a new version: a submission is not a draft
    submitted = client.post(online_path(made), data={**draft, "action": "submit"})
    assert "Form saved as version 2, but" in submitted.get_data(as_text=True)
    # so is a draft that differs by one value
    changed = {**draft, "purpose": draft["purpose"] + " (revised)"}
    assert "version 3" in client.post(online_path(made), data=changed).get_data(as_text=True)

    complete = posted(complete_answers(), "submit", prefill_of(app, made))
    done = client.post(online_path(made), data=complete)
    assert "Complete, thank you" in done.get_data(as_text=True)
    refreshed = client.post(online_path(made), data=complete)
    assert refreshed.status_code == 200
    assert "Complete, thank you" in refreshed.get_data(as_text=True)
    assert [(v.version, v.outcome) for v in versions(app, rid)] == [
        (1, "draft"), (2, "incomplete"), (3, "draft"), (4, "accepted")]
    with session_scope(app) as session:
        assert len(session.scalars(select(Delivery)).all()) == 1


def test_text_that_is_not_a_value_is_kept_and_shown_again_with_what_it_needs(
        app, client, signed_post, sample_event, tmp_path):
    made = create_record(signed_post, sample_event)
    data = posted(partial_answers(), "draft-6", prefill_of(app, made))
    data["shared_at"] = "next tuesday"
    data["decision"] = "maybe"
    resp = client.post(online_path(made), data=data)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'value="next tuesday"' in html
    assert 'href="#f-shared_at"' in html and 'href="#f-decision"' in html
    assert 'aria-invalid="true"' in html
    [v1] = versions(app, made["record_id"])
    assert v1.values["shared_at"] is None and v1.values["decision"] is None
    assert {p["field"] for p in v1.problems} >= {"shared_at", "decision"}
    # the text is kept with the version, sealed, and shown again when the form is reopened
    assert v1.typed == {"shared_at": "next tuesday", "decision": "maybe"}
    with engine_for(app).connect() as conn:
        column = conn.execute(sa.text("SELECT typed FROM upload_versions")).scalar()
    assert column.startswith("sealed:") and "tuesday" not in column
    reopened = client.get(online_path(made)).get_data(as_text=True)
    assert 'value="next tuesday"' in reopened and 'aria-invalid="true"' in reopened
    assert "maybe" not in controls_of(reopened).values().get("decision", "")
    # the same save again is still one version; typed differently, it is the next
    assert client.post(online_path(made), data=data).status_code == 200
    assert len(versions(app, made["record_id"])) == 1
    client.post(online_path(made), data={**data, "shared_at": "next wednesday"})
    assert versions(app, made["record_id"])[-1].typed["shared_at"] == "next wednesday"

    # the subject access export holds it (free text: marked for third-party review), and the
    # purge of the finished record deletes it
    from sharewise.plugin.retention import purge
    from sharewise.plugin.subject_access import export_subject
    from tests.plugin.test_retention import NOW, _no_pending_reminders

    export_subject(app, "Zoë Ångström-Nørgaard", "2014-03-09", tmp_path / "sar")
    doc = json.loads((tmp_path / "sar" / made["record_id"] / "record.json").read_text())
    assert doc["uploads"][0]["typed_but_not_read"]["shared_at"] == "next tuesday"
    assert "shared_at" in doc["third_party_review"]["fields"]
    done = save(client, made, complete_answers())
    assert "Complete, thank you" in done.get_data(as_text=True)
    record = record_row(app, made["record_id"])
    _no_pending_reminders(app, record)
    with session_scope(app) as session:  # the host has it: what the sender writes on a 2xx
        session.execute(sa.update(Delivery).where(Delivery.record_id == record.id)
                        .values(state="delivered", delivered_at=NOW))
    assert purge(app, now=NOW + timedelta(days=31))
    with engine_for(app).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM upload_versions WHERE typed IS NOT "
                                    "NULL")).scalar() == 0


def test_online_to_pdf_keeps_every_value(app, client, signed_post, sample_event):
    made = create_record(signed_post, sample_event)
    rid = made["record_id"]
    answers = complete_answers()
    save(client, made, answers, "draft-2")
    record = record_row(app, rid)
    pdf = client.get(path_of(made["form_pdf_url"]))
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="{rid}-version-1.pdf"'
    read = read_pdf(pdf.data, rid, expected_display(rid, record.prefill, SPEC), version=2)
    assert not read.problems
    for name, value in answers.items():
        assert read.values[name] == value, name
    # and uploading that PDF unchanged completes the record with the same values
    resp = client.post(path_of(made["form_url"]),
                       data={"file": (io.BytesIO(pdf.data), "decision.pdf")},
                       content_type="multipart/form-data")
    assert "Complete, thank you" in resp.get_data(as_text=True)
    online, uploaded = versions(app, rid)
    assert uploaded.outcome == "accepted"
    for f in EDITABLE:  # the upload holds what was saved online, field by field
        assert uploaded.values[f.name] == online.values[f.name], f.name


def test_pdf_to_online_keeps_every_value(app, client, signed_post, sample_event):
    made = create_record(signed_post, sample_event)
    rid = made["record_id"]
    prefilled = client.get(path_of(made["form_pdf_url"])).data
    answers = {k: v for k, v in complete_answers().items() if k not in PARTIAL_KEYS[:2]}
    typed = fill_with_pdfium(prefilled, as_typed(answers))
    resp = client.post(path_of(made["form_url"]),
                       data={"file": (io.BytesIO(typed), "decision.pdf")},
                       content_type="multipart/form-data")
    assert resp.status_code == 200
    uploaded = versions(app, rid)[-1]
    assert uploaded.outcome == "incomplete"

    found = controls_of(client.get(online_path(made)).get_data(as_text=True)).values()
    for f in EDITABLE:
        expected = control_value(f, uploaded.values.get(f.name))
        assert found.get(f.name, "") == expected, f.name
    # submitting what the online form holds, unchanged, keeps every value of the upload
    client.post(online_path(made), data={**found, "action": "draft-1"})
    saved = versions(app, rid)[-1]
    assert saved.source == "online"
    for f in EDITABLE:
        assert saved.values[f.name] == uploaded.values.get(f.name), f.name


def test_only_the_forms_own_buttons_save(app, client, signed_post, sample_event):
    """An ``action`` that is none of the form's buttons saves nothing (400), never a
    submission."""
    made = create_record(signed_post, sample_event)
    answers = complete_answers()
    for action in (None, "", "draft-x", "draft-\u00b2", "draft-" + "9" * 5000, "Submit",
                   "submit "):
        data = posted(answers, "submit", prefill_of(app, made))
        if action is None:
            del data["action"]
        else:
            data["action"] = action
        resp = client.post(online_path(made), data=data)
        assert resp.status_code == 400, action
    assert versions(app, made["record_id"]) == []
    assert record_row(app, made["record_id"]).status == "awaiting_completion"


def _downgrade(app: Any, revision: str) -> None:
    from alembic import command

    from sharewise.plugin.db import alembic_config, engine_for

    with engine_for(app).begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def test_the_migration_goes_back_only_while_nothing_was_saved_online(app, client, signed_post,
                                                                    sample_event):
    from sharewise.plugin.db import current_revision, engine_for, head_revision, upgrade

    _downgrade(app, "0010_retention")  # nothing saved online yet: the constraints go back
    assert current_revision(engine_for(app)) == "0010_retention"
    upgrade(engine_for(app))
    made = create_record(signed_post, sample_event)
    assert save(client, made, partial_answers(), "draft-1").status_code == 200
    with pytest.raises(RuntimeError, match=r"1 version\(s\) saved through the online form"):
        _downgrade(app, "0010_retention")  # it would drop a practitioner's online save
    assert current_revision(engine_for(app)) == head_revision()  # left as it was
    assert len(versions(app, made["record_id"])) == 1

    # text the form could not read is kept too: 0012 does not go back while some is held
    data = {**posted(partial_answers(), "draft-6", prefill_of(app, made)), "shared_at": "soon"}
    client.post(online_path(made), data=data)
    with pytest.raises(RuntimeError, match=r"1 online save\(s\) hold text that could not"):
        _downgrade(app, "0011_online_form")  # it would drop text a practitioner typed
    assert current_revision(engine_for(app)) == head_revision()  # left as it was
    assert versions(app, made["record_id"])[-1].typed == {"shared_at": "soon"}
