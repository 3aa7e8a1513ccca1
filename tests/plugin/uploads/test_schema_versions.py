"""Records keep the schema version they were created with (issue 16): a tenant held at
version 1 gets version 1 records that complete with version 1's answers and post-back; a
tenant's information sharing agreements are offered on its version 2 forms and read back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.models import Delivery
from sharewise.plugin.signing import generate_secret
from sharewise.plugin.tenants import get_tenant
from sharewise.plugin.uploads.services import handle_upload
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    partial_answers,
    path_of,
    record_row,
)

SECRET = generate_secret()
EXTRA = f"""
[tenants.oldform]
name = "Held at the version 1 form"
webhook_secret = "{SECRET}"
form_version = 1

[tenants.agreements]
name = "With sharing agreements"
webhook_secret = "{SECRET}"
public_authority = false
dpia_reference = "DPIA-77"
sharing_agreements = [{{ code = "mash", title = "MASH agreement 2024" }}]
"""


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    path = Path(app_config["TENANTS"])
    path.write_text(path.read_text() + EXTRA)
    return app_config


def _upload(app: Any, record_id: str, data: bytes) -> Any:
    record = record_row(app, record_id)
    with app.app_context(), session_scope(app) as session:
        return handle_upload(session, record, data, source="api", actor="practitioner")


def test_a_version_1_record_completes_with_version_1_answers(app, signed_post, sample_event):
    tenant = get_tenant("oldform", app)
    made = create_record(signed_post, sample_event, tenant)
    rid = made["record_id"]
    record = record_row(app, rid)
    assert record.schema_version == 1 and "public_authority" not in record.prefill
    first = _upload(app, rid, filled_pdf(app, rid, partial_answers(1)))
    assert not first.completed
    assert all(m["message"].startswith(f"Rule {m['rule']}: ") for m in first.missing)
    done = _upload(app, rid, filled_pdf(app, rid, complete_answers(1)))
    assert done.completed, done.missing
    with app.app_context(), session_scope(app) as session:
        delivery = session.scalars(select(Delivery)).one()
        data = delivery.payload["data"]
    assert (data["schema"], data["schema_version"]) == ("sharewise.decision-record/1", 1)
    assert "shared_on" in data["fields"] and "confidentiality_basis" not in data["fields"]


def test_a_version_1_upload_on_a_version_2_record_is_the_wrong_form(app, signed_post,
                                                                     sample_event):
    old = create_record(signed_post, sample_event, get_tenant("oldform", app))
    new = create_record(signed_post, sample_event)
    assert record_row(app, new["record_id"]).schema_version == 2
    v1_pdf = filled_pdf(app, old["record_id"], complete_answers(1))
    refused = _upload(app, new["record_id"], v1_pdf)
    assert refused.rejection_code in ("wrong_form", "wrong_record")


def test_the_tenants_agreements_and_settings_are_on_its_forms(app, client, signed_post,
                                                              sample_event):
    tenant = get_tenant("agreements", app)
    made = create_record(signed_post, sample_event, tenant)
    rid = made["record_id"]
    record = record_row(app, rid)
    assert record.form_options == [["mash", "MASH agreement 2024"]]
    assert record.prefill["public_authority"] == "no"
    assert record.prefill["dpia_reference"] == "DPIA-77"
    pdf = client.get(path_of(made["form_pdf_url"])).data
    fields = PdfReader(io.BytesIO(pdf)).get_fields()
    assert [list(map(str, o)) for o in fields["sharing_agreement"]["/Opt"]] == [
        ["none", "None"], ["mash", "MASH agreement 2024"]]
    assert fields["dpia_reference"].value == "DPIA-77"
    # not a public authority: legitimate interests needs no reason here
    answers = {**complete_answers(), "sharing_agreement": "mash",
               "lawful_basis": "legitimate_interests", "statutory_gateway": None}
    done = _upload(app, rid, filled_pdf(app, rid, answers))
    assert done.completed, done.missing
    with app.app_context(), session_scope(app) as session:
        data = session.scalars(select(Delivery)).one().payload["data"]
    assert data["fields"]["sharing_agreement"] == "mash"


def test_an_agreement_another_tenant_has_is_not_accepted(app, signed_post, sample_event):
    made = create_record(signed_post, sample_event)  # northshire: no agreements
    rid = made["record_id"]
    answers = {**complete_answers(), "sharing_agreement": "mash"}
    from sharewise.forms.prefill import FormDataError

    with pytest.raises(FormDataError):  # its form cannot even hold the code
        filled_pdf(app, rid, answers)


def _reminders(app: Any, record_id: str) -> dict[str, Any]:
    from sharewise.plugin.reminders.models import Reminder

    record = record_row(app, record_id)
    with app.app_context(), session_scope(app) as session:
        return {(r.step, r.recipient): (r.kind, r.state, r.due_at) for r in session.scalars(
            select(Reminder).where(Reminder.record_id == record.id))}


def test_a_review_date_becomes_a_reminder_that_outlives_completion(app, signed_post,
                                                                   sample_event):
    from datetime import UTC, datetime, timedelta

    from sharewise.plugin.reminders.services import scan
    from sharewise.plugin.tenants import all_tenants

    rid = create_record(signed_post, sample_event)["record_id"]
    review = (datetime.now(UTC) + timedelta(days=10)).date()
    answers = {**partial_answers(), "decision": "not_share", "statutory_request": "none",
               "subject_informed": "yes", "views_expressed": "Agreed.",
               "child_views": "Agreed.", "parental_responsibility_informed": "yes",
               "advice_sought": "no", "consent": "refused",
               "consent_date": complete_answers()["consent_date"], "child_competent": "yes",
               "requester_told": "yes", "requester_told_on": complete_answers()["consent_date"],
               "refusal_consulted": "Team manager.", "review_on": review.isoformat()}
    done = _upload(app, rid, filled_pdf(app, rid, answers))
    assert done.completed, done.missing
    rows = _reminders(app, rid)
    kind, state, due = rows[("review", "practitioner")]
    assert (kind, state) == ("review", "pending") and due.date() == review
    # the scan on the day stops the chasing steps and claims the review
    with app.app_context(), session_scope(app) as session:
        result = scan(session, now=due + timedelta(days=30), tenants=all_tenants(app))
    rows = _reminders(app, rid)
    assert rows[("review", "practitioner")][1] == "pending" and len(result.reminders) == 1
    assert {state for key, (_, state, _) in rows.items() if key[0] != "review"} == {
        "cancelled"}


def test_an_endorsement_refused_is_escalated_to_the_manager_once(app, signed_post,
                                                                 sample_event):
    rid = create_record(signed_post, sample_event)["record_id"]
    refused = {**complete_answers(), "consent": "not_sought",
               "consent_not_sought_reason": "Would put the child at risk.",
               "consent_given_by": None, "consent_informed": False,
               "consent_date": None, "confidentiality_basis": "public_interest",
               "public_interest_facts": "Facts.", "public_interest_reasons": "Reasons.",
               "manager_endorsement": "not_endorsed", "endorser_name": "Pat Manager",
               "endorser_role": "Team manager",
               "endorsed_on": complete_answers()["consent_date"],
               "endorsement_disagreement": "Wants more evidence."}
    for _ in range(2):
        result = _upload(app, rid, filled_pdf(app, rid, refused))
        assert not result.completed
        assert [m["field"] for m in result.missing] == ["manager_endorsement"]
    escalations = [k for k in _reminders(app, rid) if k[0] == "escalation"]
    assert escalations == [("escalation", "manager")]
