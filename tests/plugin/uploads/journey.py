"""Helpers for the practitioner-journey tests: a record made through the real webhook, the
practitioner's answers (partial and complete), and a form filled with them.

Forms are filled here with :func:`forms.prefill.fill` starting from the record's own prefilled
values (so the read-only fields are exactly what prefill wrote); the browser test fills through
PDFium instead, as a person would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sharewise.forms.prefill import fill
from sharewise.plugin import links


def as_typed(answers: dict[str, Any], version: int = 2) -> dict[str, Any]:
    """What a person types into the PDF: dates as DD/MM/YYYY, date-times as DD/MM/YYYY
    HH:MM (UK time), everything else as is."""
    from sharewise.forms.spec import load_spec
    from sharewise.forms.values import to_display

    spec = load_spec(version)
    out: dict[str, Any] = {}
    for name, value in answers.items():
        if spec[name].type in ("date", "datetime"):
            value = to_display(spec[name], value)
        out[name] = value
    return out


def today_london() -> str:
    return datetime.now(ZoneInfo("Europe/London")).date().isoformat()


def now_utc() -> str:
    """A moment a minute ago, as the ISO 8601 of a date-time field."""
    return (datetime.now(UTC) - timedelta(minutes=1)).replace(second=0, microsecond=0
                                                              ).isoformat()


def complete_answers(version: int = 2) -> dict[str, Any]:
    """Answers that make the sample record complete (a child, asked for by the police):
    shared with consent, the person told."""
    today = today_london()
    if version == 1:
        return {
            "lawful_basis": "consent",
            "special_category": "no",
            "subject_informed": "yes",
            "views_expressed": "The parent agreed and asked to be kept informed.",
            "advice_sought": "no",
            "consent": "given",
            "consent_given_by": "Parent (mother)",
            "consent_date": today,
            "risk_if_shared": "Low: the school already knows of the concerns.",
            "risk_if_not_shared": "Support for the child could be delayed.",
            **dict.fromkeys(("check_necessary", "check_proportionate", "check_relevant",
                             "check_accurate", "check_timely", "check_secure"), True),
            "information_shared": "Attendance summary for the autumn term.",
            "sharing_method": "secure_email",
            "shared_on": today,
            "decision": "share",
            "decision_reasons": "Consent was given and sharing supports the child's safety.",
            "decided_on": today,
        }
    return {
        "statutory_request": "none",
        "lawful_basis": "public_task",
        "statutory_gateway": "Children Act 2004 s11",
        "special_category": "no",
        "criminal_offence_data": "no",
        "sharing_agreement": "none",
        "subject_informed": "yes",
        "views_expressed": "The parent agreed and asked to be kept informed.",
        "child_views": "Happy for the school and police to talk.",
        "parental_responsibility_informed": "yes",
        "advice_sought": "no",
        "consent": "given",
        "consent_given_by": "Parent (mother)",
        "consent_informed": True,
        "consent_date": today,
        "child_competent": "no",
        "confidentiality_basis": "consent",
        "risk_if_shared": "Low: the school already knows of the concerns.",
        "risk_if_not_shared": "Support for the child could be delayed.",
        **dict.fromkeys(("check_necessary", "check_proportionate", "check_adequate",
                         "check_relevant", "check_accurate", "check_timely", "check_secure"),
                        True),
        "information_shared": "Attendance summary for the autumn term.",
        "sharing_method": "secure_email",
        "requester_identity_checked": "yes",
        "third_party_information": "no",
        "decision": "share",
        "decision_reasons": "Consent was given and sharing supports the child's safety.",
        "decided_by_role": "Social worker",
        "decided_at": now_utc(),
    }


#: A first attempt: the decision and the risks, nothing about rules 1, 2, 3, 4 and 6.
PARTIAL_KEYS = ("decision", "decision_reasons", "decided_on", "decided_at", "decided_by_role",
                "risk_if_shared", "risk_if_not_shared")


def partial_answers(version: int = 2) -> dict[str, Any]:
    answers = complete_answers(version)
    return {k: answers[k] for k in PARTIAL_KEYS if k in answers}


def create_record(signed_post: Any, sample_event: Any, tenant: Any = "northshire",
                  **overrides: Any) -> dict[str, Any]:
    """A record made by a signed ``share.requested``; returns the 201 body."""
    resp = signed_post(tenant, sample_event(**overrides))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def path_of(url: str) -> str:
    """The path of one of the service's absolute links (the test client needs paths)."""
    return url.removeprefix("http://sharewise.test")


def token_of(url: str) -> str:
    return url.rstrip("/").split("/")[-1] if not url.endswith("/pdf") else url.split("/")[-2]


def record_row(app: Any, record_id: str) -> Any:
    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.services import get_by_public_id

    with app.app_context(), session_scope(app) as session:
        return get_by_public_id(session, record_id)


def filled_pdf(app: Any, record_id: str, answers: dict[str, Any]) -> bytes:
    """The record's form (of its own schema version) filled with ``answers`` on top of its
    prefilled values."""
    record = record_row(app, record_id)
    values = {**record.prefill, **answers}
    return fill(values, record_id=record.public_id, prefill_hash=record.prefill_hash,
                version=record.schema_version, tenant_options=record.tenant_options).pdf


def versions(app: Any, record_id: str) -> list[Any]:
    from sqlalchemy import select

    from sharewise.plugin.db import session_scope
    from sharewise.plugin.uploads.models import UploadVersion

    record = record_row(app, record_id)
    with app.app_context(), session_scope(app) as session:
        return list(session.scalars(
            select(UploadVersion).where(UploadVersion.record_id == record.id)
            .order_by(UploadVersion.version)
        ))


def fresh_links(app: Any, record_id: str) -> dict[str, str]:
    record = record_row(app, record_id)
    with app.app_context():
        return links.make_links(record, app)
